"""A parsed lxml tree -> the dataclasses of `model`, noting each element's line.

The pool type is checked and the structural walk (`structure`) run first; then each value
is read with the checks only its text can have: sizes with their units, whole numbers,
octal modes, numeric owner and group ids (-1 meaning unset, as libvirt writes it), yes/no
flags. The semantic checks
(pool_checks, volume_checks) come after, on the dataclasses, and find the lines in the
`_Where` filled here.
"""

from __future__ import annotations

import re

from lxml import etree

from .. import model, units
from ..drivers import pool_types
from ..errors import InvalidSize, ValidationError
from .pool_checks import _check_pool_type
from .structure import _POOL, _VOLUME, FS_NS, _walk
from .values import MAX_UID
from .where import _relocate, _Where

_DIGITS_RE = re.compile(r"[0-9]+")
_OCTAL_RE = re.compile(r"[0-7]+")


def _pool_from_xml(root: etree._Element, where: _Where) -> model.PoolDef:
    where.note("pool", root)
    ptype = root.get("type")
    if ptype is None:
        raise ValidationError(
            "the type= attribute is required: one of " + ", ".join(pool_types()),
            element="pool",
            line=root.sourceline,
        )
    _check_pool_type(ptype, where)
    _walk(root, _POOL)
    pool = model.PoolDef(type=ptype, name="")
    name_el = root.find("name")
    if name_el is not None:
        where.note("name", name_el)
        pool.name = name_el.text or ""
    uuid_el = root.find("uuid")
    if uuid_el is not None:
        where.note("uuid", uuid_el)
        pool.uuid = (uuid_el.text or "").strip()
    pool.capacity = _opt_size(root.find("capacity"))
    pool.allocation = _opt_size(root.find("allocation"))
    pool.available = _opt_size(root.find("available"))
    cow = root.find("features/cow")
    if cow is not None:
        where.note("cow", cow)
        pool.cow = _yes_no_attr(cow, "state")
    source = root.find("source")
    if source is not None:
        pool.source = _pool_source_from_xml(source, where)
    target = root.find("target")
    if target is not None:
        where.note("target", target)
        pool.target = _pool_target_from_xml(target, where)
    opts = root.find(f"{{{FS_NS}}}mount_opts")
    if opts is not None:
        where.note("mount_opts", opts)
        for i, opt in enumerate(opts):
            where.note(f"option.{i}", opt)
            pool.mount_opts.append(opt.get("name", ""))
    return pool


def _pool_source_from_xml(el: etree._Element, where: _Where) -> model.PoolSource:
    where.note("source", el)
    src = model.PoolSource()
    for i, host in enumerate(el.findall("host")):
        where.note(f"host.{i}", host)
        port = host.get("port")
        src.hosts.append(
            model.SourceHost(
                name=host.get("name", ""),
                port=None if port is None else _int_attr(host, "port", port),
            )
        )
    for i, dev in enumerate(el.findall("device")):
        where.note(f"device.{i}", dev)
        sep = dev.get("part_separator")
        device = model.SourceDevice(
            path=dev.get("path", ""),
            part_separator=None if sep is None else _yes_no_attr(dev, "part_separator"),
        )
        for j, ext in enumerate(dev.findall("freeExtent")):
            where.note(f"device.{i}.extent.{j}", ext)
            device.free_extents.append(
                model.FreeExtent(start=_int_attr(ext, "start"), end=_int_attr(ext, "end"))
            )
        src.devices.append(device)
    src.dir = _noted_attr(el.find("dir"), "path", where, "dir")
    name = el.find("name")
    if name is not None:
        where.note("source.name", name)
        src.name = name.text or ""
    src.format = _noted_attr(el.find("format"), "type", where, "format")
    src.initiator_iqn = _noted_attr(el.find("initiator/iqn"), "name", where, "iqn")
    auth = el.find("auth")
    if auth is not None:
        where.note("auth", auth)
        secret = auth.find("secret")
        where.note("secret", secret)
        src.auth = model.SourceAuth(
            type=auth.get("type", ""),
            username=auth.get("username", ""),
            secret=model.AuthSecret(usage=secret.get("usage"), uuid=secret.get("uuid")),
        )
    src.protocol_ver = _noted_attr(el.find("protocol"), "ver", where, "protocol")
    src.vendor = _noted_attr(el.find("vendor"), "name", where, "vendor")
    src.product = _noted_attr(el.find("product"), "name", where, "product")
    return src


def _pool_target_from_xml(el: etree._Element, where: _Where) -> model.PoolTarget:
    target = model.PoolTarget()
    path = el.find("path")
    if path is not None:
        where.note("target.path", path)
        target.path = path.text or ""
    target.permissions = _permissions_from_xml(el.find("permissions"), where, "target")
    return target


def _noted_attr(el: etree._Element | None, attr: str, where: _Where, key: str) -> str | None:
    if el is None:
        return None
    where.note(key, el)
    return el.get(attr, "")


def _volume_from_xml(root: etree._Element, where: _Where) -> model.VolumeDef:
    where.note("volume", root)
    _walk(root, _VOLUME)
    name_el = root.find("name")
    if name_el is None:
        raise ValidationError(
            "missing <name>: every volume needs a name", element="volume", line=root.sourceline
        )
    where.note("name", name_el)
    vol = model.VolumeDef(name=name_el.text or "", type=root.get("type"))
    key = root.find("key")
    if key is not None:
        where.note("key", key)
        vol.key = key.text or ""
    for i, dev in enumerate(root.findall("source/device")):
        where.note(f"device.{i}", dev)
        extents = []
        for j, ext in enumerate(dev.findall("extent")):
            where.note(f"device.{i}.extent.{j}", ext)
            extents.append(model.Extent(start=_int_attr(ext, "start"), end=_int_attr(ext, "end")))
        vol.source_devices.append((dev.get("path", ""), extents))
    for tag in ("capacity", "allocation", "physical"):
        el = root.find(tag)
        where.note(tag, el)
        setattr(vol, tag, _opt_size(el))
    target = root.find("target")
    if target is not None:
        where.note("target", target)
        vol.target = _volume_target_from_xml(target, where)
    backing = root.find("backingStore")
    if backing is not None:
        vol.backing = _backing_from_xml(backing, where)
    return vol


def _volume_target_from_xml(el: etree._Element, where: _Where) -> model.VolumeTarget:
    target = model.VolumeTarget()
    path = el.find("path")
    if path is not None:
        where.note("target.path", path)
        target.path = path.text or ""
    target.format = _noted_attr(el.find("format"), "type", where, "target.format")
    target.permissions = _permissions_from_xml(el.find("permissions"), where, "target")
    target.timestamps = _timestamps_from_xml(el.find("timestamps"), where, "target")
    enc = el.find("encryption")
    if enc is not None:
        where.note("encryption", enc)
        target.encryption = model.Encryption(format=enc.get("format", ""))
        for i, sec in enumerate(enc.findall("secret")):
            where.note(f"encryption.secret.{i}", sec)
            target.encryption.secrets.append(
                model.EncryptionSecret(
                    type=sec.get("type", "passphrase"), uuid=sec.get("uuid"), usage=sec.get("usage")
                )
            )
    compat = el.find("compat")
    if compat is not None:
        where.note("compat", compat)
        target.compat = (compat.text or "").strip()
    target.nocow = el.find("nocow") is not None
    cluster = el.find("clusterSize")
    where.note("clusterSize", cluster)
    target.cluster_size = _opt_size(cluster)
    features = el.find("features")
    if features is not None:
        where.note("features", features)
        target.features = [child.tag for child in features]
    return target


def _backing_from_xml(el: etree._Element, where: _Where) -> model.BackingStore:
    where.note("backingStore", el)
    path = el.find("path")
    where.note("backing.path", path)
    return model.BackingStore(
        path=path.text or "",
        format=_noted_attr(el.find("format"), "type", where, "backing.format"),
        permissions=_permissions_from_xml(el.find("permissions"), where, "backing"),
        timestamps=_timestamps_from_xml(el.find("timestamps"), where, "backing"),
    )


def _permissions_from_xml(
    el: etree._Element | None, where: _Where, prefix: str
) -> model.Permissions | None:
    if el is None:
        return None
    values: dict[str, int | str | None] = {}
    mode = el.find("mode")
    if mode is not None:
        where.note(f"{prefix}.mode", mode)
        value = (mode.text or "").strip()
        if not _OCTAL_RE.fullmatch(value):
            raise ValidationError(
                f"mode '{value}' is not an octal permission such as 0755",
                element="mode",
                line=mode.sourceline,
            )
        values["mode"] = int(value, 8)
    for tag in ("owner", "group"):
        child = el.find(tag)
        if child is not None:
            where.note(f"{prefix}.{tag}", child)
            values[tag] = _id_value(child)
    label = el.find("label")
    if label is not None:
        where.note(f"{prefix}.label", label)
        values["label"] = label.text or None
    perms = model.Permissions(**values)  # type: ignore[arg-type]
    return None if perms.is_empty() else perms


def _timestamps_from_xml(
    el: etree._Element | None, where: _Where, prefix: str
) -> model.Timestamps | None:
    if el is None:
        return None
    stamps = model.Timestamps()
    for tag in ("atime", "mtime", "ctime", "btime"):
        child = el.find(tag)
        if child is not None:
            where.note(f"{prefix}.{tag}", child)
            setattr(stamps, tag, (child.text or "").strip())
    if all(getattr(stamps, t) is None for t in ("atime", "mtime", "ctime", "btime")):
        return None
    return stamps


def _opt_size(el: etree._Element | None) -> int | None:
    """A <capacity unit='..'>N</capacity>-style element in bytes (None if absent)."""
    if el is None:
        return None
    tag = el.tag
    try:
        return units.scale(el.text or "", el.get("unit"), tag)
    except InvalidSize as exc:
        raise _relocate(exc, tag, el.sourceline) from None


def _int_attr(el: etree._Element, attr: str, value: str | None = None) -> int:
    text = (el.get(attr, "") if value is None else value).strip()
    if not _DIGITS_RE.fullmatch(text) or not text.isascii():
        raise ValidationError(
            f"{attr}='{text}' is not a whole number", element=el.tag, line=el.sourceline
        )
    digits = text.lstrip("0") or "0"
    # Compare lengths first: int() refuses more than 4300 digits (ValueError).
    if len(digits) > len(str(units.MAX_SIZE)) or int(digits) > units.MAX_SIZE:
        raise ValidationError(
            f"{attr}='{text[:40]}' is too large", element=el.tag, line=el.sourceline
        )
    return int(digits)


def _id_value(el: etree._Element) -> int | None:
    """owner/group: a decimal id; -1 means 'not set' (libvirt's convention)."""
    text = (el.text or "").strip()
    if text == "-1":
        return None
    if not _DIGITS_RE.fullmatch(text) or not text.isascii():
        raise ValidationError(
            f"{el.tag} '{text}' is not a numeric id (use a number such as 107, or -1 for none)",
            element=el.tag,
            line=el.sourceline,
        )
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(MAX_UID)):  # out of range anyway; int() refuses > 4300 digits
        raise ValidationError(
            f"{el.tag} '{text[:40]}' is out of range (0-{MAX_UID}, or -1 for none)",
            element=el.tag,
            line=el.sourceline,
        )
    return int(digits)


def _yes_no_attr(el: etree._Element, attr: str) -> bool:
    value = el.get(attr, "")
    if value not in ("yes", "no"):
        raise ValidationError(
            f"{attr}='{value}' must be 'yes' or 'no'", element=el.tag, line=el.sourceline
        )
    return value == "yes"
