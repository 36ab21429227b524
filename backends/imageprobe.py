"""Image header probing: which format a volume file is, its virtual size, and every other file
qemu would open for it (backing file, qcow2 data file, vmdk extents).

Reads only through the fd (or ``read_at``) it is given: a backing file, a data file or a vmdk
extent named by the header is reported as a string and never opened, resolved or stat'ed
(a guest can write any header into a raw disk; see DESIGN "Safety and security rules").
The format is for display; actions use the recorded or declared format. The names of other
files are what qemu's driver for the probed format would open (the controller refuses an
image any of whose files is not a volume), so they follow qemu (block/*.c), not libvirt:
  * vmdk: the extents of a text descriptor, and of the descriptor a KDMV header with
    capacity 0 carries (qemu reads that one as a descriptor file; a KDMV header with a size
    is its own only extent and its descriptor is not read for extents). Extent lines are
    parsed as qemu's sscanf does (a field may continue on the next line; access RW only),
    in the first 1 MiB - 1 bytes up to the first NUL. parentFileNameHint is looked for as
    qemu does: at offset 0x200 of a KDMV file (0 of a text one), 20 sectors, the name 20
    bytes after the key up to the next '"'.
  * qcow/qcow2/qed: a name whose stated length runs past the end of the file is read as
    qemu reads it (zeros past the end). qcow2 extensions are scanned to the end of cluster 0
    (at most 2 MiB), where qemu stops.
  * The other formats qemu-img reads here (vpc, vdi, parallels/ploop, bochs, cloop, dmg, and
    raw with or without LUKS) open no other file; qemu 7.2 has no cow driver.

Layouts follow the header offsets libvirt's storage file probing uses (and each format's own
specification), with these deliberate choices:
  * Formats with a magic at offset 0 are recognised from the first read; ISO9660 ("CD001" at
    32769) and the dmg "koly" trailer are looked for only when nothing at offset 0 matched,
    which keeps every file at one read unless it is raw (libvirt tries iso first).
  * qcow2 header extensions are padded to 8 bytes (the qcow2 spec; qemu writes them so).
  * vpc capacity is the size qemu-img reports: CHS geometry for creator "vpc "/"qemu" unless
    the geometry is the maximum, else "current size" @48 (libvirt reads "original size" @40).
  * vmdk: a parent is always vmdk, so a parentFileNameHint comes with backing_format "vmdk";
    a plain-text "# Disk DescriptorFile" is probed as vmdk too (capacity = sum of extents),
    and so is a KDMV header of any version that carries a descriptor (see above).
  * LUKS2 is raw + encryption "luks", capacity from its JSON crypt segment when readable.
  * cluster_size is reported for qcow2 only, as libvirt does; compat and features for qcow2 v3
    only. The data file name is taken only when the data_file feature bit is set (as qemu).
  * capacity is what the header says, 0 included (qemu-img agrees); None only when the format
    has no size field (raw, iso, cloop) or it could not be read: the caller then uses st_size.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Callable
from dataclasses import field

from .model import FILE_VOLUME_FORMATS
from .records import FACTORY, record

__all__ = ["HEADER_BYTES", "FORMATS", "ProbeResult", "carries_descriptor", "probe_bytes",
           "probe_fd"]

HEADER_BYTES = 4096  # first read size; every format but iso, dmg and LUKS2 fits in it

# Every value ProbeResult.format can take.
FORMATS = frozenset(
    ("raw", "qcow", "qcow2", "qed", "vmdk", "vpc", "vdi", "iso", "cow", "bochs", "cloop",
     "dmg", "ploop")
)

ReadAt = Callable[[int, int], bytes]


@record(slots=True)
class ProbeResult:
    """What an image's header says: format, size, backing file, qcow2 details."""
    format: str
    capacity: int | None  # virtual size from the header; None => caller uses st_size
    backing: str | None = None  # exactly as in the header: not resolved, not opened
    backing_format: str | None = None
    cluster_size: int | None = None
    compat: str | None = None  # qcow2 v3 only ("1.1")
    features: list[str] | None = None  # qcow2 v3 only; [] when none is set
    encryption: str | None = None  # "qcow" or "luks"
    data_file: str | None = None  # qcow2 external data file name
    extents: list[str] = field(default_factory=list)  # vmdk extent files qemu opens, as written

    def __init__(
            self, format: str, capacity: int | None, backing: str | None = None,
            backing_format: str | None = None, cluster_size: int | None = None,
            compat: str | None = None, features: list[str] | None = None,
            encryption: str | None = None, data_file: str | None = None,
            extents: list[str] = FACTORY) -> None:
        self.format = format
        self.capacity = capacity
        self.backing = backing
        self.backing_format = backing_format
        self.cluster_size = cluster_size
        self.compat = compat
        self.features = features
        self.encryption = encryption
        self.data_file = data_file
        self.extents = list() if extents is FACTORY else extents


_U16BE = struct.Struct(">H")
_U32BE = struct.Struct(">I")
_U64BE = struct.Struct(">Q")
_U32LE = struct.Struct("<I")
_U64LE = struct.Struct("<Q")
_CHS = struct.Struct(">HBB")  # vpc cylinders, heads, sectors per track @56
_QCOW_BACKING = struct.Struct(">QI")  # backing offset @8, length @16
_QCOW2_HDR = struct.Struct(">QIIQI")  # backing offset, length, cluster bits, size, crypt @8
_QCOW2_V3 = struct.Struct(">QQQII")  # incompatible, compatible, autoclear, refcount, hdr len
_QED_BACKING = struct.Struct("<II")  # backing offset @56, length @60
_VMDK_DESC = struct.Struct("<QQ")  # descriptor offset @28, size @36 (sectors)
_EXT_HDR = struct.Struct(">II")  # qcow2 header extension: magic, length

_ISO_OFFSET = 32769
_ISO_MAGIC = b"CD001"
_VDI_MAGIC = b"\x7f\x10\xda\xbe"
_VPC_MAGIC = b"conectix"
_VPC_MAX_CHS_SECTORS = 65535 * 16 * 255
_PLOOP_MAGIC = b"WithouFreSpacExt"
_LUKS_MAGIC = b"LUKS\xba\xbe"
_BOCHS_MAGIC = b"Bochs Virtual HD Image\0"  # qemu compares it as a C string: NUL follows
_CLOOP_MAGIC = (
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
)
_VMDK_TEXT_MAGIC = b"# Disk DescriptorFile"

_QCOW2_EXT_BACKING_FORMAT = 0xE2792ACA
_QCOW2_EXT_DATA_FILE = 0x44415441
_QCOW_BACKING_MAX = 1023  # libvirt and qemu refuse longer qcow/qcow2 backing names
_NAME_MAX = 4096  # other formats: PATH_MAX
_EXT_SCAN_MAX = 2 * 1024 * 1024  # qcow2 extensions live in cluster 0, at most 2 MiB (qemu)
_DESCRIPTOR_MAX = (1 << 20) - 1  # what qemu's vmdk_read_desc reads of a descriptor
_PARENT_AREA = 20 * 512  # qemu's DESC_SIZE: where vmdk_parent_open looks for the hint
_PARENT_KEY = b"parentFileNameHint"
_KDMV_DESCRIPTOR_AT = 0x200  # qemu reads a KDMV file's parent hint here, whatever the header says
_LUKS2_HDR_MAX = 4 * 1024 * 1024  # largest LUKS2 binary+JSON header the spec allows

_KNOWN_FORMATS = frozenset(FILE_VOLUME_FORMATS)
_VMDK_EXTENT = re.compile(rb"^[ \t]*(?:RW|RDONLY|NOACCESS)[ \t]+(\d{1,20})\b", re.MULTILINE)


def _raw() -> ProbeResult:
    return ProbeResult("raw", None)


def _cstr(data: bytes) -> str | None:
    """A name stored in a header: cut at the first NUL, undecodable bytes kept (surrogates)."""
    nul = data.find(0)
    if nul >= 0:
        data = data[:nul]
    if not data:
        return None
    return data.decode("utf-8", "surrogateescape")


def _fetch(head: bytes, read_at: ReadAt | None, size: int, off: int, n: int) -> bytes:
    """Bytes [off, off+n) clipped to the file; from head if there, else read; b"" if absent."""
    if off < 0 or n <= 0 or off >= size:
        return b""
    end = off + min(n, size - off)
    if end <= len(head) or read_at is None:
        return head[off:end]
    return read_at(off, end - off)[: end - off]


def _name_at(
    head: bytes, read_at: ReadAt | None, size: int, off: int, n: int, limit: int
) -> str | None:
    """A backing-style name at (off, n): None when absent, too long or starting past the end.
    A name running past the end of the file is read as qemu reads it: zeros from there."""
    if off == 0 or n == 0 or n > limit or off >= size:
        return None
    return _cstr(_fetch(head, read_at, size, off, n))


# --- formats with a magic at offset 0 ------------------------------------------------------
# Each returns None when its magic does not fully match, the version is wrong or the header
# is too short to hold the fields it needs; the caller then goes on and ends at raw.


def _vpc(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 64 or not head.startswith(_VPC_MAGIC):
        return None
    if _U32BE.unpack_from(head, 12)[0] != 0x00010000:
        return None
    cyls, heads, secs = _CHS.unpack_from(head, 56)
    chs = cyls * heads * secs
    # qemu: Virtual PC and old qemu size the disk by geometry, everyone else by current size.
    if head[28:32] in (b"vpc ", b"qemu") and chs != _VPC_MAX_CHS_SECTORS:
        capacity = chs * 512
    else:
        capacity = _U64BE.unpack_from(head, 48)[0]
    return ProbeResult("vpc", capacity)


def _vdi(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 376 or _U32LE.unpack_from(head, 68)[0] != 0x00010001:
        return None
    return ProbeResult("vdi", _U64LE.unpack_from(head, 368)[0])


def _ploop(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 44 or not head.startswith(_PLOOP_MAGIC):
        return None
    return ProbeResult("ploop", _U64LE.unpack_from(head, 36)[0] * 512)


def _cow(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 1044 or not head.startswith(b"OOOM"):
        return None
    if _U32BE.unpack_from(head, 4)[0] != 2:
        return None
    return ProbeResult("cow", _U64BE.unpack_from(head, 1036)[0], backing=_cstr(head[8:1032]))


def _qcow(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    # Magic is "QFI" (3 bytes, as libvirt compares it); the version picks qcow or qcow2.
    if len(head) < 8:
        return None
    version = _U32BE.unpack_from(head, 4)[0]
    if version == 1:
        if len(head) < 40:
            return None
        off, n = _QCOW_BACKING.unpack_from(head, 8)
        return ProbeResult(
            "qcow",
            _U64BE.unpack_from(head, 24)[0],
            backing=_name_at(head, read_at, size, off, n, _QCOW_BACKING_MAX),
            encryption="qcow" if _U32BE.unpack_from(head, 36)[0] == 1 else None,
        )
    if version == 2 or version == 3:
        return _qcow2(head, size, read_at, version)
    return None


def _qcow2(head: bytes, size: int, read_at: ReadAt | None, version: int) -> ProbeResult | None:
    if len(head) < (72 if version == 2 else 104):
        return None
    backing_off, backing_len, bits, capacity, crypt = _QCOW2_HDR.unpack_from(head, 8)
    cluster = 1 << bits if 9 <= bits <= 21 else None  # qemu's bounds; anything else is junk
    res = ProbeResult(
        "qcow2",
        capacity,
        backing=_name_at(head, read_at, size, backing_off, backing_len, _QCOW_BACKING_MAX),
        cluster_size=cluster,
        encryption="qcow" if crypt == 1 else "luks" if crypt == 2 else None,
    )
    want_data_file = False
    if version == 2:
        start = 72
    else:
        incompat, compat, _, _, start = _QCOW2_V3.unpack_from(head, 72)  # start: header_length
        res.compat = "1.1"
        features: list[str] = []
        if compat & 1:
            features.append("lazy_refcounts")
        if incompat & 0x10:
            features.append("extended_l2")
        if incompat & 0x04:
            features.append("data_file")
            want_data_file = True
        res.features = features
    # Extensions sit between the header and the backing name (or the end of cluster 0). Only
    # two matter: the backing format (only with a backing name) and the data file name (only
    # with the data_file feature), so most images need no scan at all.
    want_backing_format = res.backing is not None
    if (want_backing_format or want_data_file) and start >= (72 if version == 2 else 104):
        end = backing_off if backing_off else (cluster or _EXT_SCAN_MAX)
        _qcow2_extensions(
            res, head, read_at, start, min(end, size, _EXT_SCAN_MAX),
            want_backing_format, want_data_file,
        )
    return res


def _qcow2_extensions(
    res: ProbeResult, head: bytes, read_at: ReadAt | None, off: int, end: int,
    want_backing_format: bool, want_data_file: bool,
) -> None:
    buf = head
    while off + 8 <= end:
        if off + 8 > len(buf) and not (buf := _extend(head, buf, read_at, end)):
            return
        magic, n = _EXT_HDR.unpack_from(buf, off)
        off += 8
        if magic == 0:
            return
        if n > end - off:
            return  # claims more than there is: stop, keep what was found
        if magic in (_QCOW2_EXT_BACKING_FORMAT, _QCOW2_EXT_DATA_FILE):
            if off + n > len(buf) and not (buf := _extend(head, buf, read_at, end)):
                return
            name = _cstr(buf[off : off + n])
            if magic == _QCOW2_EXT_BACKING_FORMAT:
                want_backing_format = False
                if name is not None:
                    res.backing_format = name if name in _KNOWN_FORMATS else "raw"
            else:
                want_data_file = False
                res.data_file = name
            if not (want_backing_format or want_data_file):
                return  # found all there is to find
        off += (n + 7) & ~7


def _extend(head: bytes, buf: bytes, read_at: ReadAt | None, end: int) -> bytes:
    """Grow the extension buffer to `end` once; b"" if that is not possible."""
    if buf is not head or read_at is None or end <= len(head):
        return b""
    more = read_at(len(head), end - len(head))
    return head + more if more else b""


def _qed(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 64:
        return None
    res = ProbeResult("qed", _U64LE.unpack_from(head, 48)[0])
    features = _U64LE.unpack_from(head, 16)[0]
    if features & 1:  # has a backing file
        off, n = _QED_BACKING.unpack_from(head, 56)
        res.backing = _name_at(head, read_at, size, off, n, _NAME_MAX)
        if res.backing is not None and features & 4:
            res.backing_format = "raw"
    return res


def _vmdk(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 44 or not head.startswith(b"KDMV"):
        return None
    capacity = _U64LE.unpack_from(head, 12)[0]
    desc_sec = _U64LE.unpack_from(head, 28)[0]
    if capacity == 0 and desc_sec:
        # qemu (vmdk_open_vmdk4) opens this as the descriptor file it carries, before it
        # looks at the version: its extents are what qemu opens. A guest can write this.
        text = _descriptor(head, read_at, size, desc_sec * 512, min(size, _DESCRIPTOR_MAX))
        res = _vmdk_descriptor(text)
    elif _U32LE.unpack_from(head, 4)[0] in (1, 2, 3):
        res = ProbeResult("vmdk", capacity * 512)  # its own only extent
    else:
        return None
    _vmdk_parent(res, head, read_at, size, _KDMV_DESCRIPTOR_AT)
    return res


def carries_descriptor(head: bytes) -> bool:
    """Does this file (its first 36 bytes) make qemu read a descriptor's extents when it is
    opened as a vmdk, or as a sparse extent of one? (A KDMV header with capacity 0.)"""
    return (len(head) >= 36 and head.startswith(b"KDMV")
            and _U64LE.unpack_from(head, 12)[0] == 0 and _U64LE.unpack_from(head, 28)[0] != 0)


def _descriptor(head: bytes, read_at: ReadAt | None, size: int, off: int, n: int) -> bytes:
    """The C string qemu sees: n bytes (at most _DESCRIPTOR_MAX) at off, up to the first NUL."""
    n = min(n, _DESCRIPTOR_MAX)
    # Usually the text ends (NUL) well inside the first read: no second read then.
    if off < len(head):
        part = head[off : off + n]
        nul = part.find(0)
        if nul >= 0:
            return part[:nul]
    text = _fetch(head, read_at, size, off, n)
    nul = text.find(0)
    return text[:nul] if nul >= 0 else text


def _vmdk_descriptor(text: bytes) -> ProbeResult:
    sectors = [int(s) for s in _VMDK_EXTENT.findall(text)]
    return ProbeResult("vmdk", sum(sectors) * 512 if sectors else None,
                       extents=_vmdk_extent_files(text))


def _vmdk_parent(res: ProbeResult, head: bytes, read_at: ReadAt | None, size: int,
                 off: int) -> None:
    """qemu's vmdk_parent_open: the key is found in the C string of 20 sectors at `off`; the
    name starts 20 bytes after the key's start (whatever those two bytes are, maybe past a
    NUL) and ends at the next '"'; a NUL first or a name over 4095 bytes fails the open."""
    area = _fetch(head, read_at, size, off, _PARENT_AREA)
    nul = area.find(0)
    i = (area if nul < 0 else area[:nul]).find(_PARENT_KEY)
    if i < 0:
        return
    start = i + len(_PARENT_KEY) + 2
    area += b"\0"  # qemu's buffer is zero-filled one byte past what it read
    quote, end = area.find(b'"', start), area.find(0, start)
    if quote < 0 or 0 <= end < quote or quote - start > 4095:
        return
    res.backing = _cstr(area[start:quote])
    if res.backing is not None:
        res.backing_format = "vmdk"  # a vmdk's parent is a vmdk (qemu opens it as one)


_C_SPACE = b" \t\n\v\f\r"  # isspace() in the C locale: what sscanf skips
_EXTENT_NAME_MAX = 511  # %511[^\n\r"]


def _vmdk_extent_files(text: bytes) -> list[str]:
    """The files qemu's vmdk_parse_extents opens for a descriptor: from the start of each
    line, sscanf("%10s %ld %10s \"%511[^\n\r\"]\" %ld") must fill at least access, size,
    type and name, and access must be RW. The size and type qemu also checks are not: a
    name it would not open is still reported (refusing more is safe), and so is one on a
    line after an invalid one (qemu stops there)."""
    names: list[str] = []
    pos = 0
    while pos < len(text):
        name = _scan_extent_line(text, pos)
        if name is not None:
            names.append(name)
        nl = text.find(b"\n", pos)
        if nl < 0:
            break
        pos = nl + 1
    return names


def _scan_extent_line(text: bytes, pos: int) -> str | None:
    access, pos = _scan_word(text, pos)
    if access != b"RW":
        return None
    pos = _skip_space(text, pos)
    digits = pos + (1 if text[pos:pos + 1] in (b"+", b"-") else 0)
    end = digits
    while text[end:end + 1].isdigit():
        end += 1
    if end == digits:
        return None  # no size: fewer than 4 fields
    kind, pos = _scan_word(text, end)
    if not kind:
        return None
    pos = _skip_space(text, pos)
    if text[pos:pos + 1] != b'"':
        return None
    pos += 1
    end = pos
    while end < len(text) and end - pos < _EXTENT_NAME_MAX and text[end] not in b'\n\r"':
        end += 1
    if end == pos:
        return None
    return text[pos:end].decode("utf-8", "surrogateescape")


def _skip_space(text: bytes, pos: int) -> int:
    while pos < len(text) and text[pos] in _C_SPACE:
        pos += 1
    return pos


def _scan_word(text: bytes, pos: int) -> tuple[bytes, int]:
    """sscanf's %10s: skip white space, then up to 10 other bytes."""
    pos = _skip_space(text, pos)
    end = pos
    while end < len(text) and end - pos < 10 and text[end] not in _C_SPACE:
        end += 1
    return text[pos:end], end


def _vmdk_text(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if not head.startswith(_VMDK_TEXT_MAGIC):
        return None
    res = _vmdk_descriptor(_descriptor(head, read_at, size, 0, size))
    _vmdk_parent(res, head, read_at, size, 0)
    return res


def _luks(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 8 or not head.startswith(_LUKS_MAGIC):
        return None
    version = _U16BE.unpack_from(head, 6)[0]
    if version == 1:
        if len(head) < 108:
            return None
        payload = _U32BE.unpack_from(head, 104)[0] * 512
        return ProbeResult("raw", max(size - payload, 0), encryption="luks")
    if version == 2:
        return ProbeResult("raw", _luks2_capacity(head, size, read_at), encryption="luks")
    return None


def _luks2_capacity(head: bytes, size: int, read_at: ReadAt | None) -> int | None:
    """Payload size from the LUKS2 JSON area (after the 4 KiB binary header); None if unsure."""
    if len(head) < 16:
        return None
    hdr_size = _U64BE.unpack_from(head, 8)[0]
    if not 4096 < hdr_size <= _LUKS2_HDR_MAX:
        return None
    area = _fetch(head, read_at, size, 4096, hdr_size - 4096)
    nul = area.find(0)
    if nul >= 0:
        area = area[:nul]
    try:
        segments = json.loads(area)["segments"]
        if len(segments) != 1:
            return None  # e.g. mid-reencryption: no single answer
        (segment,) = segments.values()
        offset = int(segment["offset"])
        if offset < 0:
            return None
        if segment["size"] == "dynamic":
            return max(size - offset, 0)
        length = int(segment["size"])
        return length if length >= 0 else None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError):
        return None


def _bochs(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if len(head) < 96 or not head.startswith(_BOCHS_MAGIC):
        return None
    version = _U32LE.unpack_from(head, 64)[0]
    if version == 0x00020000:
        return ProbeResult("bochs", _U64LE.unpack_from(head, 88)[0])
    if version == 0x00010000:
        return ProbeResult("bochs", _U64LE.unpack_from(head, 84)[0])
    return None


def _cloop(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult | None:
    if not head.startswith(_CLOOP_MAGIC):
        return None
    return ProbeResult("cloop", None)


_Prober = Callable[[bytes, int, ReadAt | None], ProbeResult | None]

# Dispatch on the first three bytes: one dict lookup decides which parser (if any) runs.
_BY_PREFIX: dict[bytes, _Prober] = {
    _VPC_MAGIC[:3]: _vpc,
    _PLOOP_MAGIC[:3]: _ploop,
    b"OOO": _cow,
    b"QFI": _qcow,
    b"QED": _qed,
    b"KDM": _vmdk,
    _VMDK_TEXT_MAGIC[:3]: _vmdk_text,
    _LUKS_MAGIC[:3]: _luks,
    _BOCHS_MAGIC[:3]: _bochs,
    _CLOOP_MAGIC[:3]: _cloop,
}


def _probe(head: bytes, size: int, read_at: ReadAt | None) -> ProbeResult:
    prober = _BY_PREFIX.get(head[:3])
    if prober is _vpc:  # vpc precedes vdi in libvirt's order
        res = _vpc(head, size, read_at)
        if res is not None:
            return res
        prober = None
    if head[64:68] == _VDI_MAGIC:
        res = _vdi(head, size, read_at)
        if res is not None:
            return res
    if prober is not None:
        res = prober(head, size, read_at)
        if res is not None:
            return res
    # Nothing at offset 0: the two formats whose mark lives elsewhere.
    if size >= _ISO_OFFSET + 5 and _fetch(head, read_at, size, _ISO_OFFSET, 5) == _ISO_MAGIC:
        return ProbeResult("iso", None)
    if size >= 512:
        trailer = _fetch(head, read_at, size, size - 512, 512)
        if len(trailer) == 512 and trailer.startswith(b"koly") and (
            _U32BE.unpack_from(trailer, 8)[0] == 512  # header size: the trailer's own check
        ):
            sectors = _U64BE.unpack_from(trailer, 492)[0]
            return ProbeResult("dmg", sectors * 512 if sectors else None)
    return _raw()


def probe_bytes(head: bytes, size: int, read_at: ReadAt | None = None) -> ProbeResult:
    """Probe a buffer holding the start of a `size`-byte image.

    `read_at(offset, length)` fetches bytes beyond `head` when a format needs them; with None
    only `head` is used. Garbage, short or corrupt input gives ProbeResult("raw", None);
    OSError from read_at propagates.
    """
    try:
        return _probe(head, size, read_at)
    except (struct.error, ValueError, IndexError, OverflowError):
        return _raw()  # a parser missed a bound: still never fail a listing on garbage


def probe_fd(fd: int, size: int) -> ProbeResult:
    """Probe an open fd (regular file or block device) of `size` bytes.

    Reads HEADER_BYTES at offset 0 and more only when a format needs it. Never opens anything
    (in particular never a backing file). OSError from reading propagates.
    """
    if size <= 0:
        return _raw()

    def read_at(off: int, n: int) -> bytes:
        return os.pread(fd, n, off)

    return probe_bytes(os.pread(fd, min(HEADER_BYTES, size), 0), size, read_at)
