"""What of a volume definition's <encryption> poolkeeper can honour when it makes the
volume (refuse_unhonoured calls this): LUKS (format='luks') with one passphrase secret, in
a raw (qemu's luks driver) or qcow2 (encrypt.format=luks) image file, as libvirt creates
them. Everything else is refused with what to do, never made unencrypted."""

from __future__ import annotations

from ..drivers import features
from ..errors import ValidationError
from ..model import VolumeDef

CREATABLE_ENCRYPTION = "luks"
ENCRYPTABLE_FORMATS = ("raw", "qcow2")


def refuse_unhonoured_encryption(vol: VolumeDef, pool_type: str) -> None:
    enc = vol.target.encryption
    if enc is None:
        return
    if enc.format != CREATABLE_ENCRYPTION:
        why = {"luks2": "qemu-img here cannot create LUKS2 images",
               "qcow": "qcow (AES) encryption is insecure and qemu no longer creates it",
               "default": "'default' names no format"}.get(enc.format, "")
        raise ValidationError(
            "poolkeeper creates encrypted volumes with format='luks' only"
            + (f" ({why})" if why else "") + "; use <encryption format='luks'>",
            element="encryption")
    if not features(pool_type).volumes_are_files:
        raise ValidationError(
            f"poolkeeper encrypts image files only, not the volumes of {pool_type} pools; "
            "remove <encryption> (or encrypt inside the guest)", element="encryption")
    fmt = vol.target.format
    if fmt not in ENCRYPTABLE_FORMATS:
        raise ValidationError(
            f"a LUKS-encrypted volume is raw or qcow2, not {fmt}; choose one of those "
            "formats or remove <encryption>", element="encryption")
    if len(enc.secrets) != 1:
        raise ValidationError(
            "<encryption format='luks'> needs its passphrase: add <secret type='passphrase' "
            "uuid='...'/> naming a secret defined with secret-define and given a value with "
            "secret-set-value", element="secret")
    if vol.backing is not None:
        raise ValidationError(
            "poolkeeper does not create encrypted images over a backing file; remove "
            "<backingStore> or <encryption>", element="backingStore")
    if fmt == "raw" and vol.allocation is not None and vol.allocation != 0:
        raise ValidationError(
            "qemu-img makes a LUKS volume sparse; poolkeeper cannot honour <allocation> "
            "for it: remove <allocation> or give 0", element="allocation")
