"""LUKS-encrypted image files: their secrets and the qemu-img arguments that open them.

The passphrase reaches qemu-img only as `--object secret,id=sec0,file=F`, F being the
secret store's own 0600 value file (secrets.SecretStore.path): never argv, never a temp
copy. A volume's secret is the one its XML names when it is made; afterwards the one it was
made or cloned with (the store's volume-keys record), else the one whose usage names its
path (as libvirt). Another secret whose usage names the path is refused at create and clone.

Which operation needs the key (checked with qemu-img 7.2):
* create: `-f luks -o key-secret=sec0` (raw) or `-o encrypt.format=luks,encrypt.key-secret=
  sec0` (qcow2);
* resize: qemu opens the image, so the key is needed (and checked: a wrong passphrase is
  refused, "Invalid password, cannot unlock any keyslot"): a json spec with driver luks
  (a raw LUKS volume) or qcow2 with encrypt.key-secret;
* clone: a byte copy keeps the same header, key slots and so the same passphrase; cheaper
  than qemu-img convert (which would decrypt and encrypt again) and needs no key. A clone
  therefore keeps its source's format and size, and its secret (recorded for its path);
* wipe, upload and download move the raw (encrypted) bytes, as libvirt's do: a wipe
  destroys the LUKS header, so the volume is plain zeros after it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from . import runner
from .drivers.checked_image import image_spec
from .errors import PoolkeeperError, StateError, ToolFailed, Unsupported, ValidationError
from .model import Encryption, EncryptionSecret, VolumeDef, VolumeInfo
from .secret_defs import SecretDef
from .secrets import SecretNotFound, SecretStore

SECRET_ID = "sec0"


def store_for(config_dir: Path | None) -> SecretStore:
    if config_dir is None:
        raise StateError("encrypted volumes need the state root's secret store, and none is "
                         "known here")
    return SecretStore(config_dir)


def request_secret(store: SecretStore, vol: VolumeDef) -> SecretDef:
    """The defined secret, with a value, that the <encryption> of `vol` names; refused
    clearly before anything is made."""
    assert vol.target.encryption is not None
    [ref] = vol.target.encryption.secrets
    name = ref.uuid or ref.usage or ""
    sdef = store.find(name)
    if sdef is None:
        raise ValidationError(
            f"no secret '{name}' is defined; define it first (poolkeeper secret-define FILE, "
            "with <usage type='volume'><volume>PATH</volume></usage>), then give it the "
            "passphrase (poolkeeper secret-set-value UUID)", element="secret")
    if not store.has_value(sdef.uuid):
        raise ValidationError(
            f"secret {sdef.uuid} has no value yet; give it the passphrase first (poolkeeper "
            f"secret-set-value {sdef.uuid}, reading it from stdin or --file)", element="secret")
    return sdef


def secret_object(store: SecretStore, uuid: str) -> list[str]:
    """qemu's --object reading the value from the store's file (',' doubled: qemu's
    option syntax)."""
    path = str(store.path(uuid, legacy=False)).replace(",", ",,")
    return ["--object", f"secret,id={SECRET_ID},file={path}"]


def refuse_other_usage(store: SecretStore, path: str, sdef: SecretDef, made: str) -> None:
    """A secret whose volume usage names `path` but is not `sdef`, the key the new volume
    gets: refused, so no secret ever claims to open a volume it does not."""
    _refuse_named(store.usage_secret(path), path, sdef, made)


def _refuse_named(named: SecretDef | None, path: str, sdef: SecretDef, made: str) -> None:
    if named is not None and named.uuid != sdef.uuid:
        raise ValidationError(
            f"secret {named.uuid} is defined for the volume {path}, but the volume would be "
            f"{made} secret {sdef.uuid}; name {named.uuid} in <encryption>, or change or "
            f"undefine {named.uuid} first (poolkeeper secret-undefine {named.uuid})",
            element="secret")


def create_args(config_dir: Path | None, vol: VolumeDef, fmt: str, path: str | None = None
                ) -> tuple[list[str], str, list[str]]:
    """(objects, qemu-img format, -o options) for creating `vol` as `fmt` (at `path`: a
    secret naming that path must be the one asked for)."""
    if vol.target.encryption is None:
        return [], fmt, []
    store = store_for(config_dir)
    sdef = request_secret(store, vol)
    if path is not None:
        refuse_other_usage(store, path, sdef, "encrypted with")
    objects = secret_object(store, sdef.uuid)
    if fmt == "qcow2":
        return objects, "qcow2", ["encrypt.format=luks", f"encrypt.key-secret={SECRET_ID}"]
    opts = [f"key-secret={SECRET_ID}"] + (["nocow=on"] if vol.target.nocow else [])
    return objects, "luks", opts


# qemu 7.2 times its PBKDF on the thread's CPU clock before it writes a key slot, and
# gives up when a round measured 0 ms (a coarse clock): the same create run again works.
# Each failed run ends at once; seen in about 1 run of 5 here, more under load, so enough
# tries that a create never fails for it (libvirt's qemu-img runs fail the same way:
# LibvirtController.create_volume_xml retries on the same message).
PBKDF_CLOCK = "Unable to get accurate CPU usage"
CREATE_TRIES = 10


def run_create(argv: list[str], pass_fds: tuple[int, ...], timeout: float) -> None:
    """qemu-img create of an encrypted image, run again when qemu's PBKDF timing failed
    (nothing else is retried; the target is the same fd, truncated by each run)."""
    for attempt in range(CREATE_TRIES):
        try:
            runner.run(argv, pass_fds=pass_fds, timeout=timeout)
            return
        except ToolFailed as exc:
            if attempt == CREATE_TRIES - 1 or PBKDF_CLOCK not in exc.stderr:
                raise


def volume_secret(config_dir: Path | None, vol: VolumeInfo) -> SecretDef:
    """The secret that opens the encrypted volume `vol`, or a clear refusal."""
    if vol.encryption != "luks":
        raise Unsupported(f"'{vol.name}' is encrypted with {vol.encryption} (AES) encryption, "
                          "which poolkeeper cannot open; convert it with qemu-img first")
    sdef = store_for(config_dir).volume_secret(vol.path)
    if sdef is None:
        raise ValidationError(
            f"'{vol.name}' is LUKS-encrypted and no secret is known for it: define one with "
            f"<usage type='volume'><volume>{vol.path}</volume></usage> (secret-define) and "
            "give it the passphrase (secret-set-value)", element="secret")
    return sdef


def opened_image(config_dir: Path | None, vol: VolumeInfo, fd: int) -> tuple[list[str], str]:
    """(objects, image spec) for qemu-img to open the volume open as `fd`: image_spec,
    with the key for an encrypted one."""
    if vol.encryption is None:
        return [], image_spec(vol, fd)
    sdef = volume_secret(config_dir, vol)
    store = store_for(config_dir)
    try:
        objects = secret_object(store, sdef.uuid)
    except SecretNotFound:
        raise ValidationError(f"secret {sdef.uuid} of '{vol.name}' has no value; give it the "
                              "passphrase (secret-set-value)", element="secret") from None
    spec = json.loads(image_spec(vol, fd).removeprefix("json:"))
    if vol.format == "raw":
        spec["driver"] = "luks"
        spec.pop("backing", None)  # the luks driver has no backing
        spec["key-secret"] = SECRET_ID
    else:
        spec["encrypt"] = {"key-secret": SECRET_ID}
    return objects, "json:" + json.dumps(spec)


def check_clone(src: VolumeInfo, vol: VolumeDef, fmt: str, capacity: int,
                config_dir: Path | None = None, new_path: str | None = None) -> None:
    """A clone of an encrypted volume is a byte copy (same key): refuse what it would not
    give (another format or size, a conversion, another secret); and a plain volume is not
    encrypted by cloning it. The secrets are checked when `config_dir` is given."""
    enc = vol.target.encryption
    if src.encryption is None:
        if enc is not None:
            raise ValidationError(f"'{src.name}' is not encrypted and a clone copies it as it "
                                  "is; remove <encryption>", element="encryption")
        return
    if fmt != src.format:
        raise Unsupported(f"'{src.name}' is encrypted: its clone is a byte copy with the same "
                          f"key, so it stays {src.format}, not {fmt}")
    if capacity > src.capacity:
        raise Unsupported(f"'{src.name}' is encrypted: its clone is a byte copy of the same "
                          "size; resize the clone afterwards (vol-resize)")
    if src.backing is not None:
        raise Unsupported(f"'{src.name}' is encrypted and has a backing file; poolkeeper does "
                          "not clone such an image")
    if enc is not None and enc.format != src.encryption:
        raise ValidationError(f"'{src.name}' is encrypted with {src.encryption}; a byte copy "
                              f"cannot be {enc.format}", element="encryption")
    # qemu-img convert would need the key to read it, and writes a plain image unless told
    # to encrypt again: an encrypted source is only ever copied byte for byte
    if vol.prealloc_metadata:
        raise Unsupported(f"'{src.name}' is encrypted: its clone is a byte copy of the "
                          "encrypted image, and --prealloc-metadata would need a new image "
                          "written by qemu-img convert; leave --prealloc-metadata out")
    if src.extent_files:
        raise Unsupported(f"'{src.name}' is encrypted and has extent files; poolkeeper does "
                          "not clone such an image")
    if config_dir is not None and src.encryption == "luks":
        _check_clone_secret(store_for(config_dir), src, vol, new_path)


def _check_clone_secret(store: SecretStore, src: VolumeInfo, vol: VolumeDef,
                        new_path: str | None) -> None:
    """The clone opens with its source's secret: a different one asked for in its XML,
    or defined for its path, is refused (never silently replaced by the source's). The
    source's secret is looked up (once) only when there is something to compare it with."""
    enc = vol.target.encryption
    asked = enc.secrets[0] if enc is not None and enc.secrets else None
    named = store.usage_secret(new_path) if new_path is not None else None
    if asked is None and named is None:
        return
    have = store.volume_secret(src.path)
    if asked is not None:
        ref = asked.uuid or asked.usage or ""
        want = store.find(ref)
        if have is None or want is None or want.uuid != have.uuid:
            key, keep = ((f"secret {have.uuid}", f" (or name {have.uuid})") if have else
                         ("a secret poolkeeper does not know", ""))
            raise ValidationError(
                f"a clone of an encrypted volume keeps its key: '{src.name}' opens with {key}, "
                f"not with the secret '{ref}'; leave the <secret> out{keep}. To change the "
                "key, change the clone's passphrase afterwards with a LUKS tool, or create a "
                "new encrypted volume and copy the data into it", element="secret")
    if new_path is not None and have is not None:  # unknown: the clone's key cannot be told
        _refuse_named(named, new_path, have, "a clone keyed with")


def _recorded(ctx: object, path: str, record: Callable[[], None]) -> None:
    """The volume is made by now: a record that cannot be written is a warning on the job
    (the volume's secret is then found by its usage only), never a failed job."""
    try:
        record()
    except (PoolkeeperError, OSError) as exc:
        warnings = getattr(ctx, "warnings", None)
        if isinstance(warnings, list):
            warnings.append(f"could not record the secret of {path}: {exc}")


def remember_clone(config_dir: Path | None, src: VolumeInfo, new_path: str,
                   ctx: object = None) -> None:
    """The clone of an encrypted volume opens with its source's secret: record it for the
    clone's path (no secret's usage names that path)."""
    if src.encryption is None:
        return

    def record() -> None:
        store = store_for(config_dir)
        sdef = store.volume_secret(src.path)
        if sdef is not None and not (sdef.usage_type == "volume"
                                     and sdef.usage_id == new_path):
            store.remember_volume(new_path, sdef.uuid)
    _recorded(ctx, new_path, record)


def remember_created(config_dir: Path | None, vol: VolumeDef, path: str,
                     ctx: object = None) -> None:
    """Record the secret a new encrypted volume was made with, unless its usage names the
    volume's path already."""
    if vol.target.encryption is None:
        return

    def record() -> None:
        store = store_for(config_dir)
        sdef = request_secret(store, vol)
        store.remember_volume(path, None if sdef.usage_id == path else sdef.uuid)
    _recorded(ctx, path, record)


def forget(config_dir: Path | None, path: str) -> None:
    """The volume at `path` is gone: so is the record of its secret (best effort: the
    record only adds to what a secret's usage says)."""
    if config_dir is not None:
        with contextlib.suppress(PoolkeeperError, OSError):
            SecretStore(config_dir).remember_volume(path, None)


def described(config_dir: Path | None, info: VolumeInfo) -> Encryption | None:
    """The <encryption> of a listed volume: its header's format, and the secret that
    opens it when one is known (as libvirt, by the secret's usage)."""
    if info.encryption is None:
        return None
    enc = Encryption(format=info.encryption)
    if config_dir is not None and info.encryption == "luks":
        try:
            sdef = SecretStore(config_dir).volume_secret(info.path)
        except (OSError, PoolkeeperError):  # a listing is never refused over it
            sdef = None
        if sdef is not None:
            enc = replace(enc, secrets=[EncryptionSecret(uuid=sdef.uuid)])
    return enc
