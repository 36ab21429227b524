"""Pool and volume definitions -> XML text in libvirt's own layout.

Decides the layout: libvirt's element order, 2-space indent, single-quoted attributes,
`unit='bytes'` sizes, so `virsh pool-dumpxml` output comes back byte for byte; and the
escaping, so that any text a definition holds reads back the same (a value XML cannot
carry at all is refused rather than written).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import ValidationError
from ..model import (
    Encryption,
    Permissions,
    PoolDef,
    PoolSource,
    PoolTarget,
    Timestamps,
    VolumeDef,
    VolumeTarget,
)
from ..textsafe import describe
from .structure import FS_NS
from .values import _NOT_XML_RE

WRITTEN_FEATURES = ("lazy_refcounts", "extended_l2")  # the qcow2 features libvirt reads


def format_pool(pool: PoolDef) -> str:
    """libvirt-style <pool> XML (2-space indent, single quotes, ends with a newline)."""
    w = _Writer()
    root_attrs = [("type", pool.type)]
    if pool.mount_opts:
        root_attrs.append(("xmlns:fs", FS_NS))
    w.open("pool", root_attrs)
    if pool.name:
        w.leaf("name", pool.name)
    if pool.uuid:
        w.leaf("uuid", pool.uuid)
    for tag, value in (
        ("capacity", pool.capacity),
        ("allocation", pool.allocation),
        ("available", pool.available),
    ):
        if value is not None:
            w.leaf(tag, str(value), [("unit", "bytes")])
    if pool.cow is not None:
        w.open("features")
        w.empty("cow", [("state", _yes_no(pool.cow))])
        w.close("features")
    _write_pool_source(w, pool.source)
    _write_pool_target(w, pool.target)
    if pool.mount_opts:
        w.open("fs:mount_opts")
        for opt in pool.mount_opts:
            w.empty("fs:option", [("name", opt)])
        w.close("fs:mount_opts")
    w.close("pool")
    return w.text()


def format_volume(vol: VolumeDef) -> str:
    """libvirt-style <volume> XML (2-space indent, single quotes, ends with a newline)."""
    w = _Writer()
    w.open("volume", [("type", vol.type)])
    w.leaf("name", vol.name)
    if vol.key is not None:
        w.leaf("key", vol.key)
    if vol.source_devices:
        w.open("source")
        for path, extents in vol.source_devices:
            if extents:
                w.open("device", [("path", path)])
                for ext in extents:
                    w.empty("extent", [("start", str(ext.start)), ("end", str(ext.end))])
                w.close("device")
            else:
                w.empty("device", [("path", path)])
        w.close("source")
    for tag, value in (
        ("capacity", vol.capacity),
        ("allocation", vol.allocation),
        ("physical", vol.physical),
    ):
        if value is not None:
            w.leaf(tag, str(value), [("unit", "bytes")])
    _write_volume_target(w, vol.target)
    if vol.backing is not None:
        b = vol.backing
        w.open("backingStore")
        w.leaf("path", b.path)
        if b.format is not None:
            w.empty("format", [("type", b.format)])
        _write_permissions(w, b.permissions)
        _write_timestamps(w, b.timestamps)
        w.close("backingStore")
    w.close("volume")
    return w.text()


class _Writer:
    """Line-based XML writer in virsh's layout: 2-space indent, single-quoted attributes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0
        self.stack: list[str] = []

    def _start(self, tag: str, attrs: Iterable[tuple[str, str | None]]) -> str:
        parts = [tag]
        for name, value in attrs:
            if value is not None:
                parts.append(f"{name}='{_escape_attr(value, tag)}'")
        return "  " * self.depth + "<" + " ".join(parts)

    def open(self, tag: str, attrs: Iterable[tuple[str, str | None]] = ()) -> None:
        self.lines.append(self._start(tag, attrs) + ">")
        self.stack.append(tag)
        self.depth += 1

    def close(self, tag: str) -> None:
        assert self.stack.pop() == tag
        self.depth -= 1
        self.lines.append("  " * self.depth + f"</{tag}>")

    def empty(self, tag: str, attrs: Iterable[tuple[str, str | None]] = ()) -> None:
        self.lines.append(self._start(tag, attrs) + "/>")

    def leaf(self, tag: str, text: str, attrs: Iterable[tuple[str, str | None]] = ()) -> None:
        self.lines.append(self._start(tag, attrs) + f">{_escape_text(text, tag)}</{tag}>")

    def text(self) -> str:
        assert not self.stack
        return "\n".join(self.lines) + "\n"


def _check_xml_chars(value: str, tag: str) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"expected text, got {type(value).__name__}", element=tag)
    bad = _NOT_XML_RE.search(value)
    if bad:
        raise ValidationError(
            f"the value '{value}' holds {describe(bad.group(0))}, which XML cannot carry",
            element=tag,
        )


def _escape_text(value: str, tag: str) -> str:
    _check_xml_chars(value, tag)
    return escape_text(value)


def escape_text(value: str) -> str:
    """&, < and > as entities, and a carriage return as a character reference (a parser
    reads a raw one as a newline). (xml.sax.saxutils.escape leaves it raw, and imports
    urllib and http: ~15 ms of a command's start.)"""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "\r", "&#13;")


def _escape_attr(value: str, tag: str) -> str:
    _check_xml_chars(value, tag)
    out = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = out.replace("'", "&apos;").replace('"', "&quot;")
    # Attribute-value normalisation would turn raw whitespace controls into spaces.
    return out.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _write_pool_source(w: _Writer, src: PoolSource) -> None:
    # libvirt prints <source> even when empty, and in this child order.
    w.open("source")
    for host in src.hosts:
        port = None if host.port is None else str(host.port)
        w.empty("host", [("name", host.name), ("port", port)])
    for dev in src.devices:
        sep = None if dev.part_separator is None else _yes_no(dev.part_separator)
        attrs = [("path", dev.path), ("part_separator", sep)]
        if dev.free_extents:
            w.open("device", attrs)
            for ext in dev.free_extents:
                w.empty("freeExtent", [("start", str(ext.start)), ("end", str(ext.end))])
            w.close("device")
        else:
            w.empty("device", attrs)
    if src.dir is not None:
        w.empty("dir", [("path", src.dir)])
    if src.name is not None:
        w.leaf("name", src.name)
    if src.initiator_iqn is not None:
        w.open("initiator")
        w.empty("iqn", [("name", src.initiator_iqn)])
        w.close("initiator")
    if src.format is not None:
        w.empty("format", [("type", src.format)])
    if src.auth is not None:
        w.open("auth", [("type", src.auth.type), ("username", src.auth.username)])
        w.empty("secret", [("uuid", src.auth.secret.uuid), ("usage", src.auth.secret.usage)])
        w.close("auth")
    if src.protocol_ver is not None:
        w.empty("protocol", [("ver", src.protocol_ver)])
    if src.vendor is not None:
        w.empty("vendor", [("name", src.vendor)])
    if src.product is not None:
        w.empty("product", [("name", src.product)])
    w.close("source")


def _write_pool_target(w: _Writer, target: PoolTarget) -> None:
    perms = target.permissions
    if target.path is None and (perms is None or perms.is_empty()):
        return
    w.open("target")
    if target.path is not None:
        w.leaf("path", target.path)
    _write_permissions(w, perms)
    w.close("target")


def _write_permissions(w: _Writer, perms: Permissions | None) -> None:
    if perms is None or perms.is_empty():
        return
    w.open("permissions")
    if perms.mode is not None:
        w.leaf("mode", f"0{perms.mode:o}")
    if perms.owner is not None:
        w.leaf("owner", str(perms.owner))
    if perms.group is not None:
        w.leaf("group", str(perms.group))
    if perms.label:
        w.leaf("label", perms.label)
    w.close("permissions")


def _write_timestamps(w: _Writer, stamps: Timestamps | None) -> None:
    if stamps is None:
        return
    values = [(t, getattr(stamps, t)) for t in ("atime", "mtime", "ctime", "btime")]
    if all(v is None for _t, v in values):
        return
    w.open("timestamps")
    for tag, value in values:
        if value is not None:
            w.leaf(tag, value)
    w.close("timestamps")


def _write_volume_target(w: _Writer, target: VolumeTarget) -> None:
    # libvirt's schema requires <target>; it may be empty.
    w.open("target")
    if target.path is not None:
        w.leaf("path", target.path)
    if target.format is not None:
        w.empty("format", [("type", target.format)])
    _write_permissions(w, target.permissions)
    _write_timestamps(w, target.timestamps)
    if target.encryption is not None:
        _write_encryption(w, target.encryption)
    if target.compat is not None:
        w.leaf("compat", target.compat)
    if target.nocow:
        w.empty("nocow")
    if target.cluster_size is not None:
        w.leaf("clusterSize", str(target.cluster_size), [("unit", "B")])
    if target.features is not None:
        # libvirt's schema and parser (9.x) know no <data_file/>: an external data file
        # cannot be said in volume XML, so it is left out rather than printed invalid
        feats = [f for f in target.features if f in WRITTEN_FEATURES]
        if feats:
            w.open("features")
            for feat in feats:
                w.empty(feat)
            w.close("features")
        else:
            w.empty("features")
    w.close("target")


def _write_encryption(w: _Writer, enc: Encryption) -> None:
    if not enc.secrets:
        w.empty("encryption", [("format", enc.format)])
        return
    w.open("encryption", [("format", enc.format)])
    for sec in enc.secrets:
        w.empty("secret", [("type", sec.type), ("uuid", sec.uuid), ("usage", sec.usage)])
    w.close("encryption")
