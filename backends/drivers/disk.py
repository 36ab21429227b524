"""disk pools: a partition table on a whole disk; the volumes are its partitions.

The table is read with `parted -s -m DEV unit B print free` (geometry, label, flags, the
sector size) and `partx -g -r -o NR,TYPE DEV` (the type byte or GUID of each partition,
which parted's machine output does not show), and on dos labels the EBR chain is read
directly, so that the sectors holding EBRs are never reported as free.

Decisions:
  * Free extents are the exact gaps of the label's usable area, end exclusive: gpt (and the
    labels parted alone understands) between parted's first and last usable byte; dos at
    top level from sector 1 (the MBR is sector 0) to the end of the disk, and inside the
    extended partition between its start and end, minus every EBR sector. They are what
    `sfdisk --json` shows as unpartitioned (plus the EBR rule), not parted's own idea of
    free space, which on dos depends on a fictional CHS geometry.
  * A new partition starts on a 1 MiB boundary (a logical one leaves at least one sector
    before it for its EBR), is the requested size rounded up to whole sectors, and lies in
    ONE free extent: first fit, or at an explicit start (which must be 1 MiB aligned).
    `available` is the largest partition that could be made now; a request larger than
    that is refused before parted runs, naming the largest extent.
  * dos labels: at most four primary partitions; logical partitions go in an extended
    partition that must be created explicitly (format 'extended'), as in libvirt: a
    partition that silently claims the rest of the disk would be a surprise. With an
    extended partition, a new partition goes to the first extent that fits, primary
    (while a slot is free) or logical.
  * Volume names are the kernel's names (`sda1`, `nvme0n1p1`, `loop0p1`, `mmcblk0p1`); a
    create must use the name parted will give the partition (the error names it). The
    number passed to parted is parsed from the name against the disk's own prefix, never
    by stripping letters (libvirt 9.0 passes 'p2' for loop0p2).
  * The volume format is the partition TYPE in the table (0x83 / the Linux GUID -> linux,
    0x8e / LVM -> linux-lvm, ...), which a guest cannot change, not the content. The
    default format is 'linux': 'none' asks for no type, and parted then writes the Linux
    type anyway, so 'none' would come back as 'linux' on the next refresh; 'linux' is what
    a default create really makes. 'none' is accepted (libvirt XML) and reported for types
    poolkeeper has no name for (EFI system, BIOS boot, ...).
  * I/O (wipe, upload, download, clone) goes through the partition node /dev/NAME only
    after the kernel's view of it (sysfs start and size) was checked against the table,
    opened O_EXCL for writing; there is no fallback to the whole disk. The extended
    partition is never written.
  * After every table change, partition nodes are brought in line with the table with
    partx (add, delete or update per partition number), since this kernel does not read
    partition tables itself.
  * An image file as the source is attached to a loop device on start and detached on
    stop, with fs's loop identity handling and its claims (loops.py: what a killed start
    left attached is released on the next use); volume names then follow that loop
    device. The image file itself is flocked while it is checked, attached, labelled or
    wiped, so that poolkeepers with separate state roots meet on it.
  * A partition being filled by a clone is marked until the copy is complete (the gpt
    name 'poolkeeper-partial', or a record under the config dir for other labels; see
    disk_partial.py): it is not listed, and one a killed clone left is removed on the
    next use. Delete refuses a table that still has partitions unless forced.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .. import blockprobe, fileops, runner
from ..checks import require_device_path
from ..errors import (
    InsufficientSpace,
    InUse,
    PoolkeeperError,
    StateError,
    ToolFailed,
    Unsupported,
    ValidationError,
    VolumeNotFound,
)
from ..model import (
    DISK_POOL_FORMATS,
    DISK_VOLUME_FORMATS,
    DeviceLayout,
    Extent,
    FreeExtent,
    Permissions,
    PoolDef,
    PoolSizes,
    PoolSource,
    SourceDevice,
    SourceRule,
    VolumeDef,
    VolumeInfo,
)
from ..progress import NULL_CONTEXT, JobContext, shielded
from ..units import human
from .base import Claim, PoolDriver, device_claims
from .disk_partial import (
    COMPLETE_NAME,
    PARTIAL_NAME,
    FillRecord,
    FillRecords,
    block_backing,
    disk_identity,
    image_backing,
)
from .fddata import FdDataVerbs
from .loopsource import LoopImageSource

MiB = 1 << 20
ALIGN = MiB  # partition starts are aligned to this
SYSFS_SECTOR = 512  # sysfs start/size are always in 512-byte units

# pool format -> parted's label name ('unknown' means dos, as in libvirt)
PARTED_LABELS = {
    "unknown": "msdos", "dos": "msdos", "dvh": "dvh", "gpt": "gpt", "mac": "mac",
    "bsd": "bsd", "pc98": "pc98", "sun": "sun",
}
_LABEL_OF_PARTED = {v: k for k, v in PARTED_LABELS.items() if k != "unknown"}
# parted labels that are not partition tables ('loop': a filesystem on the whole device)
_NOT_TABLES = ("unknown", "loop")
# volume format -> (parted FS-TYPE for mkpart, flag to set on) ; libvirt's virStoragePartedFs
MKPART_ARGS: dict[str, tuple[str | None, str | None]] = {
    "none": (None, None),
    "linux": ("ext2", None),
    "fat16": ("fat16", None),
    "fat32": ("fat32", None),
    "linux-swap": ("linux-swap", None),
    "linux-lvm": ("ext2", "lvm"),
    "linux-raid": ("ext2", "raid"),
    "extended": (None, None),
}
_DOS_TYPES = {
    0x83: "linux", 0x82: "linux-swap", 0x8E: "linux-lvm", 0xFD: "linux-raid",
    0x04: "fat16", 0x06: "fat16", 0x0E: "fat16", 0x0B: "fat32", 0x0C: "fat32",
    0x05: "extended", 0x0F: "extended", 0x85: "extended",
}
_GPT_TYPES = {
    "0fc63daf-8483-4772-8e79-3d69d8477de4": "linux",
    "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": "linux-swap",
    "e6d6d379-f507-44c2-a23c-238f2a3df928": "linux-lvm",
    "a19d880f-05fc-4d3b-a006-743f0f84911e": "linux-raid",
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7": "fat32",  # basic data: fat16 if parted says so
}
_FLAG_FORMATS = (("lvm", "linux-lvm"), ("raid", "linux-raid"), ("swap", "linux-swap"))
_DOS_CODE = re.compile(r"0x[0-9a-f]{1,2}")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# labels whose partitions have neither a type (primary/logical) nor a name: parted's mkpart
# takes no PART-TYPE word there and needs a FS-TYPE
_NO_PART_TYPE = ("sun", "bsd")
_CYLINDER_LABELS = ("sun", "pc98")  # parted insists on cylinder alignment there
_TARGET = re.compile(r"/dev(/disk/by-[A-Za-z0-9_.-]+)?")
_NUMBER = re.compile(r"[1-9][0-9]{0,3}")
_EBR_LIMIT = 256  # logical partitions followed at most (a looping chain stops here)


# == names ================================================================================
def partition_name(disk: str, number: int, part_separator: bool | None = None) -> str:
    """The kernel's name of partition `number` of `disk` (a path or a name): the disk's
    name, a 'p' if that ends in a digit (or part_separator says so), and the number.
    sda -> sda1, nvme0n1 -> nvme0n1p1, loop0 -> loop0p1, mmcblk0 -> mmcblk0p1."""
    base = os.path.basename(disk.rstrip("/"))
    sep = base[-1:].isdigit() if part_separator is None else part_separator
    return f"{base}{'p' if sep else ''}{number}"


def partition_number(disk: str, name: str, part_separator: bool | None = None) -> int | None:
    """The partition number a volume name stands for on `disk`, or None if the name is not
    one of that disk's partitions ('loop0p2' -> 2 on loop0; 'p2' or 'loop02' -> None)."""
    prefix = partition_name(disk, 1, part_separator)[:-1]
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix):]
    return int(rest) if rest.isascii() and _NUMBER.fullmatch(rest) else None


# == the table ============================================================================
@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # bytes
    end: int  # bytes, exclusive
    kind: str  # primary, logical, extended (dos); primary elsewhere; metadata (the label's)
    fs: str  # parted's file system column (what it probed inside)
    label: str  # gpt partition name
    flags: tuple[str, ...]
    type_code: str | None  # partx TYPE: '0x83' or a GUID

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def format(self) -> str:
        return volume_format(self.type_code, self.fs, self.flags)


@dataclass(frozen=True)
class Gap:
    start: int
    end: int  # exclusive
    logical: bool = False  # inside the extended partition (dos)

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class DiskTable:
    device: str  # the node (or image) that was read
    size: int
    sector: int  # logical sector size
    parted_label: str  # as parted names it: msdos, gpt, unknown, loop, ...
    partitions: list[Partition] = field(default_factory=list)  # in disk order
    gaps: list[Gap] = field(default_factory=list)
    raw: str = ""  # parted's output (change detection)

    @property
    def label(self) -> str | None:
        """The pool format of the label (dos, gpt, ...), None if there is no table."""
        if self.parted_label in _NOT_TABLES:
            return None
        return _LABEL_OF_PARTED.get(self.parted_label, self.parted_label)

    @property
    def extended(self) -> Partition | None:
        return next((p for p in self.partitions if p.kind == "extended"), None)

    def get(self, number: int) -> Partition | None:
        return next((p for p in self.partitions if p.number == number), None)

    @property
    def data_partitions(self) -> list[Partition]:
        return [p for p in self.partitions if p.kind not in ("extended", "metadata")]

    def usable(self, gap: Gap) -> tuple[int, int]:
        """(start, end) a new partition may take in `gap`: the start on a 1 MiB boundary
        (after the EBR sector for a logical one); empty if start >= end."""
        first = max(gap.start + (self.sector if gap.logical else 0), ALIGN)  # never in MiB 0
        start = -(-first // ALIGN) * ALIGN
        return start, gap.end

    def usable_size(self, gap: Gap) -> int:
        start, end = self.usable(gap)
        return max(0, end - start)

    def candidate_gaps(self, fmt: str) -> list[Gap]:
        """Free extents where a partition of `fmt` may go (dos slot rules applied)."""
        if self.label != "dos":
            return list(self.gaps)
        top = [p for p in self.partitions if p.kind != "logical"]
        out = []
        for gap in self.gaps:
            if gap.logical:
                if fmt != "extended":
                    out.append(gap)
            elif len(top) < 4 and not (fmt == "extended" and self.extended is not None):
                out.append(gap)
        return out

    def largest(self, fmt: str = "linux") -> Gap | None:
        gaps = [g for g in self.candidate_gaps(fmt) if self.usable_size(g) > 0]
        return max(gaps, key=self.usable_size, default=None)


def volume_format(type_code: str | None, fs: str = "", flags: tuple[str, ...] = ()) -> str:
    """The volume format of a partition: its type in the table first (dos type byte or gpt
    GUID), else what parted's flags and file system column say."""
    for flag, fmt in _FLAG_FORMATS:
        if flag in flags:
            return fmt
    code = (type_code or "").lower()
    if _DOS_CODE.fullmatch(code):
        return _DOS_TYPES.get(int(code, 16), "none")  # "none": a type without a libvirt name
    if code in _GPT_TYPES:
        found = _GPT_TYPES[code]
        return "fat16" if found == "fat32" and fs == "fat16" else found
    if _GUID.fullmatch(code):
        return "none"
    # other labels (mac, sun, ...) name types their own way: go by what parted says
    if fs in ("fat16", "fat32"):
        return fs
    if fs.startswith("linux-swap"):
        return "linux-swap"
    return "linux" if fs else "none"


def _split_machine(line: str) -> list[str]:
    """Fields of one line of parted -m output (';' ended, ':' separated, '\\' escapes)."""
    line = line.rstrip()
    if line.endswith(";"):
        line = line[:-1]
    fields, cur, escaped = [], [], False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def _bytes(text: str) -> int:
    if not text.endswith("B") or not text[:-1].isdigit():
        raise ValueError(f"not a byte count: {text!r}")
    return int(text[:-1])


def parse_parted(text: str) -> tuple[dict, list[dict]]:
    """parted -s -m DEV unit B print free -> (disk, rows). Rows are partitions and free
    space in disk order with start/end in bytes (end exclusive)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].strip() != "BYT;" or len(lines) < 2:
        raise ValueError("parted printed no machine-readable table")
    dev = _split_machine(lines[1])
    # path:size:transport:logical:physical:label:model:flags (the path may hold ':')
    head = dev[-7:] if len(dev) >= 8 else dev[1:]
    if len(head) < 5:
        raise ValueError(f"cannot read parted's disk line {lines[1]!r}")
    disk = {"size": _bytes(head[0]), "sector": int(head[2]), "physical": int(head[3]),
            "label": head[4]}
    rows = []
    for line in lines[2:]:
        f = _split_machine(line)
        if len(f) < 5:
            continue
        start, end = _bytes(f[1]), _bytes(f[2]) + 1
        if f[4] == "free" and len(f) == 5:
            rows.append({"free": True, "start": start, "end": end})
            continue
        flags = tuple(x.strip() for x in (f[6] if len(f) > 6 else "").split(",") if x.strip())
        rows.append({"free": False, "number": int(f[0]), "start": start, "end": end,
                     "fs": f[4], "name": f[5] if len(f) > 5 else "", "flags": flags})
    return disk, rows


def _gaps(start: int, end: int, used: list[tuple[int, int]], logical: bool = False
          ) -> list[Gap]:
    """The free runs of [start, end) around the `used` ranges."""
    out, pos = [], start
    for u_start, u_end in sorted(used):
        if u_start > pos:
            out.append(Gap(pos, min(u_start, end), logical))
        pos = max(pos, u_end)
    if pos < end:
        out.append(Gap(pos, end, logical))
    return [g for g in out if g.end > g.start]


def ebr_sectors(fd: int, ext_start: int, sector: int) -> list[int]:
    """Byte offsets of the EBRs of a dos extended partition starting at `ext_start` (bytes):
    the first is at its start, each names the next relative to that start."""
    found: list[int] = []
    at = ext_start
    while len(found) < _EBR_LIMIT and at not in found:
        data = os.pread(fd, 512, at)
        if len(data) < 512 or data[510:512] != b"\x55\xaa":
            break
        found.append(at)
        link_type = data[446 + 16 + 4]
        link_start = struct.unpack_from("<I", data, 446 + 16 + 8)[0]
        if link_type == 0 or link_start == 0:
            break
        at = ext_start + link_start * sector
    return found


def read_table(device: str) -> DiskTable:
    """What the partition table on `device` (a block device or an image file) says."""
    done = runner.run(["parted", "-s", "-m", device, "unit", "B", "print", "free"],
                      check=False, timeout=60)
    try:
        disk, rows = parse_parted(done.stdout)
    except ValueError:
        raise ToolFailed(done.shown, done.returncode, done.stderr) from None
    table = DiskTable(device=device, size=disk["size"], sector=disk["sector"],
                      parted_label=disk["label"], raw=done.stdout)
    if table.label is None:
        return table
    if done.returncode != 0:
        raise ToolFailed(done.shown, done.returncode, done.stderr)
    types = _partition_types(device)
    dos = table.label == "dos"
    parts = []
    for row in (r for r in rows if not r["free"]):
        code = types.get(row["number"])
        kind = "primary"
        if _is_label_metadata(table.label, row["number"], code):
            kind = "metadata"
        if table.label not in ("dos", "gpt"):
            code = None  # type bytes and GUIDs mean what we think only on dos and gpt
        if dos and row["number"] > 4:
            kind = "logical"
        elif dos and volume_format(code) == "extended":
            kind = "extended"
        parts.append(Partition(row["number"], row["start"], row["end"], kind, row["fs"],
                               row["name"] if not dos else "", row["flags"], code))
    if dos:  # without partx: the primary that holds the logical ones is the extended one
        for i, p in enumerate(parts):
            if p.kind == "primary" and any(q.kind == "logical" and p.start <= q.start < p.end
                                           for q in parts):
                parts[i] = Partition(p.number, p.start, p.end, "extended", p.fs, p.label,
                                     p.flags, p.type_code)
    parts.sort(key=lambda p: (p.start, p.kind != "extended"))
    table.partitions = parts
    table.gaps = _table_gaps(table, rows)
    return table


def _is_label_metadata(label: str | None, number: int, code: str | None) -> bool:
    """Partitions that are part of the label itself: the mac partition map, the dvh volume
    header and whole-volume entries. Listed, never written or removed."""
    return (label == "mac" and code == "Apple_partition_map") or (
        label == "dvh" and number in (9, 11))


def _table_gaps(table: DiskTable, rows: list[dict]) -> list[Gap]:
    if table.label == "dos":
        top = [(p.start, p.end) for p in table.partitions if p.kind != "logical"]
        # 32-bit sector numbers: a dos label ends at 2 TiB (512-byte sectors) at the latest
        gaps = _gaps(table.sector, min(table.size, (1 << 32) * table.sector), top)
        ext = table.extended
        if ext is not None:
            used = [(p.start, p.end) for p in table.partitions if p.kind == "logical"]
            fd = os.open(table.device, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
            try:
                used += [(s, s + table.sector) for s in ebr_sectors(fd, ext.start, table.sector)]
            finally:
                os.close(fd)
            gaps += _gaps(ext.start, ext.end, used, logical=True)
        return sorted(gaps, key=lambda g: g.start)
    if not rows:
        return []
    # gpt and the rest: parted's rows span exactly the usable area (gpt: first to last
    # usable LBA); what no partition covers in it is free (dvh's volume header overlaps)
    first = min(r["start"] for r in rows)
    last = max(r["end"] for r in rows)
    return _gaps(first, last, [(p.start, p.end) for p in table.partitions])


def _partition_types(device: str) -> dict[int, str]:
    done = runner.run(["partx", "-g", "-r", "-o", "NR,TYPE", device], check=False, timeout=60)
    types = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            types[int(parts[0])] = parts[1]
    return types


# == the kernel's partition nodes ===========================================================
@dataclass(frozen=True)
class KernelPartition:
    name: str
    number: int
    start: int  # bytes
    size: int  # bytes
    dev: str  # "major:minor"


def kernel_partitions(disk: str) -> dict[int, KernelPartition]:
    """The partitions the kernel has for the whole disk node `disk` (from sysfs)."""
    base = Path("/sys/class/block") / os.path.basename(disk)
    found = {}
    with contextlib.suppress(OSError):
        for child in base.iterdir():
            try:
                number = int((child / "partition").read_text())
                start = int((child / "start").read_text()) * SYSFS_SECTOR
                size = int((child / "size").read_text()) * SYSFS_SECTOR
                dev = (child / "dev").read_text().strip()
            except (OSError, ValueError):
                continue
            found[number] = KernelPartition(child.name, number, start, size, dev)
    return found


def _kernel_matches(kp: KernelPartition | None, part: Partition) -> bool:
    if kp is None or kp.start != part.start:
        return False
    return part.kind == "extended" or kp.size == part.size  # extended: a 1 KiB stub


def sync_nodes(disk: str, table: DiskTable) -> list[str]:
    """Make the kernel's partitions of `disk` match `table` (partx per partition number:
    delete what is gone or moved, add what is missing, resize what changed). Returns what
    still differs afterwards, in words (empty: all in line)."""
    want = {p.number: p for p in table.partitions}
    have = kernel_partitions(disk)
    for number, kp in sorted(have.items()):
        part = want.get(number)
        if part is None or kp.start != part.start:
            runner.run(["partx", "-d", "--nr", f"{number}:{number}", disk], check=False)
    have = kernel_partitions(disk)
    for number, part in sorted(want.items()):
        kp = have.get(number)
        if kp is None:
            runner.run(["partx", "-a", "--nr", f"{number}:{number}", disk], check=False)
        elif not _kernel_matches(kp, part):
            runner.run(["partx", "-u", "--nr", f"{number}:{number}", disk], check=False)
    have = kernel_partitions(disk)
    problems = []
    for number, part in sorted(want.items()):
        if not _kernel_matches(have.get(number), part):
            problems.append(f"partition {number} is not known to the kernel as in the table")
    problems += [f"the kernel still has {kp.name}, which is not in the table"
                 for n, kp in sorted(have.items()) if n not in want]
    return problems


# == the driver ===========================================================================
def _check_device_path(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("a disk pool needs <device path='/dev/...'/>", "device")
    return require_device_path(value)


@dataclass
class _Plan:
    start: int
    end: int  # exclusive
    number: int
    part_type: str  # primary, logical, extended


class DiskDriver(FdDataVerbs, LoopImageSource, PoolDriver):
    type = "disk"
    fit_hint = "grow the partition first (vol-resize)"
    volume_formats: ClassVar[tuple[str, ...]] = DISK_VOLUME_FORMATS
    creatable_formats: ClassVar[tuple[str, ...]] = DISK_VOLUME_FORMATS
    default_volume_format: ClassVar[str | None] = "linux"
    can_build = True
    can_create_volumes = True
    can_delete_volumes = True
    can_resize_volumes = True
    pool_formats = DISK_POOL_FORMATS
    source_rule = SourceRule(
        devices=(1, 1),
        part_separator=True,
        needs={"device": "exactly one <device path='/dev/...'/>: the disk to partition"},
    )
    volumes_fully_allocated = True  # a partition is never sparse
    volumes_are_devices = True
    target_hint = "the directory of the partition device nodes, usually /dev"
    build_does = "writes a new partition table on {source} (parted mklabel)"
    delete_does = "wipes the partition table of {source}: every partition on it is lost"
    form_fields = ("name", "target", "device", "format")
    target_placeholder = "/dev"
    default_target = "/dev"
    discover_hint = "look for local disks"
    tools = {"parted": "parted"}

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        return device_claims(pool)

    # -- definition --------------------------------------------------------------------------
    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        if len(pool.source.devices) != 1:
            raise ValidationError("a disk pool needs exactly one <device path='...'/>: the "
                                  "disk to partition", "source")
        _check_device_path(pool.source.devices[0].path)
        fmt = pool.source.format
        if fmt is not None and fmt not in DISK_POOL_FORMATS:
            raise ValidationError(f"'{fmt}' is not a partition table poolkeeper knows; use one "
                                  "of: " + ", ".join(DISK_POOL_FORMATS), "format")
        target = pool.target.path
        if not isinstance(target, str) or not _TARGET.fullmatch(target.rstrip("/") or "/"):
            raise ValidationError(
                f"a disk pool's target is where the partition nodes appear: /dev or a "
                f"/dev/disk/by-* directory, not {target!r}", "path")

    @property
    def source_path(self) -> str:
        return self.pool.source.devices[0].path

    @property
    def target(self) -> str:
        return (self.pool.target.path or "/dev").rstrip("/") or "/dev"

    @property
    def part_separator(self) -> bool | None:
        return self.pool.source.devices[0].part_separator

    def _source_kind(self) -> str:
        path = self.source_path
        kind = blockprobe.source_kind(path, self.name)
        if kind == "block":
            real = os.path.realpath(path)
            whole = blockprobe.whole_disk(real)
            if whole != real:
                raise ValidationError(f"{path} is a partition of {whole}; a disk pool needs the "
                                      "whole disk", "device")
        return kind

    def _disk(self) -> str:
        """The whole-disk node the table is on (/dev/sdb, /dev/loop3 for an image)."""
        if self._source_kind() == "image":
            loop = self._recorded_loop()
            if loop is None:
                raise StateError(f"the image {self.source_path} of pool '{self.name}' is not "
                                 f"attached any more; stop and start the pool")
            return loop.device
        return "/dev/" + os.path.basename(os.path.realpath(self.source_path))

    def _table(self, disk: str | None = None) -> DiskTable:
        table = read_table(disk or self._disk())
        if table.label is None:
            what = "a filesystem" if table.parted_label == "loop" else "no partition table"
            raise StateError(f"{self.source_path} holds {what}; build pool '{self.name}' first "
                             f"(pool-build {self.name})")
        return table

    # -- pool --------------------------------------------------------------------------------
    def check(self) -> bool:
        try:
            return stat.S_ISBLK(os.stat(self._disk()).st_mode)
        except (OSError, PoolkeeperError):
            return False

    def existing_content(self) -> list[str]:
        try:
            return blockprobe.signatures(self.source_path)
        except (PoolkeeperError, OSError) as exc:
            return [f"unknown content ({exc})"]

    def build(self, overwrite: bool | None, ctx: JobContext) -> None:
        self.validate(self.pool)
        fmt = self.pool.source.format or "dos"
        if fmt == "lvm2":
            raise Unsupported("parted cannot write an 'lvm2' label; an LVM physical volume on "
                              "the whole disk belongs in a logical pool")
        label = PARTED_LABELS[fmt]
        runner.tool_path("parted")  # before anything is touched
        kind = self._source_kind()
        if kind == "image":
            device = os.path.realpath(self.source_path)
            lock = blockprobe.image_lock(device)  # every state root meets on the image itself
        else:
            device = self._disk()
            lock = blockprobe.disk_lock(device)
        with lock:
            if kind == "image":
                self._release_and_refuse_attached(device, "attached as {device}; poolkeeper "
                                                  "will not write a partition table over it, "
                                                  "even with --overwrite")
            else:
                self._refuse_in_use(device, "write a partition table on it")
            blockprobe.refuse_unless_overwrite(blockprobe.probe(device), overwrite, device)
            (ctx or NULL_CONTEXT).check()
            # Begun, the change is made whole: a cancel from here on (which never kills
            # wipefs or parted, see runner) does not stop the job between the wipe, the
            # label and the kernel's nodes; the build ends done.
            with shielded():
                if overwrite:
                    _wipe_signatures(device, kind)
                runner.run(["parted", "-s", device, "mklabel", label], timeout=120)
                if kind == "block":
                    sync_nodes(device, read_table(device))  # drop the old partitions' nodes

    def _refuse_in_use(self, device: str, verb: str) -> None:
        users = blockprobe.device_users(device)
        if users:
            raise InUse(f"{device} is in use ({'; '.join(users)}); poolkeeper will not {verb}, "
                        "even with --overwrite")

    def start(self) -> None:
        self.validate(self.pool)
        kind = self._source_kind()
        attached = self._attach_image_for_start() if kind == "image" else None
        try:
            disk = self._disk()
            table = read_table(disk)
            self._check_label(table)
            sync_nodes(disk, table)  # problems show as volume errors, not a failed start
        except BaseException:
            if attached is not None:
                self._detach(attached)
            raise

    def _check_label(self, table: DiskTable) -> None:
        want = self.pool.source.format
        if table.label is None:
            what = ("a filesystem and no partition table" if table.parted_label == "loop"
                    else "no partition table")
            raise StateError(f"{self.source_path} holds {what}; build the pool first "
                             f"(pool-build {self.name})")
        if want not in (None, "unknown") and table.label != want:
            raise StateError(f"{self.source_path} has a {table.label} partition table, but pool "
                             f"'{self.name}' expects {want}; fix <format type=...> or rebuild "
                             "the pool with --overwrite")

    def _detach(self, loop: blockprobe.LoopIdentity) -> None:
        """Drop the partition nodes, then the loop device (only if it is still ours)."""
        now = blockprobe.loop_identity(loop.device)
        if now is None or not now.matches(loop.record()):
            return
        if kernel_partitions(loop.device):
            runner.run(["partx", "-d", loop.device], check=False, timeout=60)
        self._loops.detach(loop)
        self.extras.pop("loop", None)

    def stop(self) -> None:
        loop = self._recorded_loop()
        if loop is not None:
            users = blockprobe.device_users(loop.device)
            if users:
                raise InUse(f"cannot stop pool '{self.name}': {loop.device} (the image "
                            f"{self.source_path}) is in use ({'; '.join(users)})")
            self._detach(loop)
        self.extras.pop("loop", None)

    def delete(self) -> None:
        """Remove the partition table (wipefs), refused while anything on the disk is used.
        Whether it still holds partitions is the controller's question first
        (stored_volumes)."""
        self.validate(self.pool)
        if self._source_kind() == "image":
            image = os.path.realpath(self.source_path)
            with blockprobe.image_lock(image):
                self._release_and_refuse_attached(image, "attached as {device}; detach it "
                                                  "first")
                _wipe_signatures(image, "image")
            return
        device = self._disk()
        with blockprobe.disk_lock(device):
            self._refuse_in_use(device, "delete its partition table")
            _wipe_signatures(device, "block")
            sync_nodes(device, read_table(device))

    def stored_volumes(self) -> list[str]:
        """The partitions of the inactive pool's disk that are volumes (not the extended
        container, not label metadata, not one a clone left half-made), read from the
        table without changing anything. A source that holds something other than a
        partition table cannot be judged."""
        self.validate(self.pool)
        kind = self._source_kind()
        device = os.path.realpath(self.source_path) if kind == "image" else self._disk()
        table = read_table(device)
        if table.label is None:
            found = blockprobe.probe(device)
            if found.signatures or found.problem:
                why = found.problem or f"it holds {found.describe()}, not a partition table"
                raise StateError(f"cannot tell whether pool '{self.name}' still holds volumes "
                                 f"({why}); pool-delete {self.name} --force erases it anyway")
            return []
        marked, _orphans = self._partials(device, table)
        parts = [p for p in table.data_partitions if p.number not in marked]
        if kind == "image":  # no kernel names while the image is not attached
            return [f"partition {p.number} ({human(p.size)})" for p in parts]
        return [partition_name(device, p.number, self.part_separator) for p in parts]

    # -- reading -----------------------------------------------------------------------------
    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        disk = self._disk()
        table = self._table(disk)
        kernel = kernel_partitions(disk)
        marked, _orphans = self._partials(disk, table)
        return self._sizes(table), [self._info(disk, table, p, kernel)
                                    for p in table.partitions if p.number not in marked]

    def refresh_volume(self, name: str) -> VolumeInfo | None:
        disk = self._disk()
        number = partition_number(disk, name, self.part_separator)
        if number is None:
            return None
        table = self._table(disk)
        part = table.get(number)
        if part is None or number in self._partials(disk, table)[0]:
            return None  # being filled by a clone, or half-made by a killed one
        return self._info(disk, table, part, kernel_partitions(disk))

    # -- partitions being filled (see disk_partial.py) ---------------------------------------
    @property
    def _fill_records(self) -> FillRecords:
        return FillRecords(self.config_dir)

    def _record_identity(self, disk: str, table: DiskTable) -> dict:
        """What this pool's fill records say of `disk` (the image itself or the loop
        device it is attached to, or the whole-disk node): see disk_partial.py."""
        if self._source_kind() == "image":
            loop = blockprobe.loop_identity(disk)  # attached: the file the kernel has
            backing = image_backing(disk) if loop is None else {
                "kind": "image", "st_dev": loop.st_dev, "st_ino": loop.st_ino}
        else:
            backing = block_backing(disk)
        return disk_identity(disk, table.label, table.size, pool=self.name, backing=backing)

    def _partials(self, disk: str, table: DiskTable
                  ) -> tuple[dict[int, FillRecord | None], list[FillRecord]]:
        """Partitions a clone is filling or a killed one left (number -> its record; None
        for a gpt name), and records of this disk whose partition is not in the table (a
        clone killed before parted made it, or one still about to)."""
        if table.label == "gpt":
            return {p.number: None for p in table.partitions if p.label == PARTIAL_NAME}, []
        marked: dict[int, FillRecord | None] = {}
        orphans = []
        for record in self._fill_records.of_disk(self._record_identity(disk, table)):
            part = next((p for p in table.partitions
                         if (p.start, p.end) == (record.start, record.end)), None)
            if part is None:
                orphans.append(record)
            else:
                marked[part.number] = record
        return marked, orphans

    def partial_volumes(self) -> list[str]:
        """Names of the partitions clones are filling or killed ones left (the controller
        tells them apart by the volume lock a live clone holds)."""
        disk = self._disk()
        table = self._table(disk)
        marked, orphans = self._partials(disk, table)
        numbers = set(marked) | {r.number for r in orphans}
        return sorted(partition_name(disk, n, self.part_separator) for n in numbers)

    def remove_partial(self, name: str) -> None:
        """Remove a half-made partition (never one in use: a live clone has it open O_EXCL)
        and its record."""
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = self._table(disk)
            number = self._number(disk, name)
            marked, orphans = self._partials(disk, table)
            for record in orphans:
                if record.number == number:
                    FillRecords.remove(record.path)
            part = table.get(number)
            if part is None or number not in marked:
                return
            problems = self._remove_partition(disk, table, part, name,
                                              f"remove the half-made partition {name}")
            if not problems:
                record = marked[number]
                FillRecords.remove(record.path if record is not None else None)

    def _mark_complete(self, part: Partition, record: Path | None) -> None:
        """The copy is done: drop the record of a non-gpt partition, or rename a gpt one to
        what every other create gets."""
        FillRecords.remove(record)
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = read_table(disk)
            if table.label != "gpt":
                return
            now = table.get(part.number)
            if now is None or now.start != part.start or now.label != PARTIAL_NAME:
                raise StateError(f"partition {part.number} of {disk} changed while it was "
                                 "being filled")
            runner.run(["parted", "-s", disk, "name", str(part.number), COMPLETE_NAME],
                       timeout=120)
            sync_nodes(disk, read_table(disk))

    def sizes(self) -> PoolSizes:
        return self._sizes(self._table())

    @staticmethod
    def _sizes(table: DiskTable) -> PoolSizes:
        largest = table.largest()
        available = table.usable_size(largest) if largest else 0
        return PoolSizes(capacity=table.size,
                         allocation=sum(p.size for p in table.data_partitions),
                         available=0 if table.label in _CYLINDER_LABELS else available)

    def change_token(self) -> object:
        disk = self._disk()
        done = runner.run(["parted", "-s", "-m", disk, "unit", "B", "print", "free"],
                          check=False, timeout=60)
        kernel = sorted((k.number, k.start, k.size) for k in kernel_partitions(disk).values())
        return hashlib.sha256(f"{done.stdout}{kernel}".encode()).hexdigest()

    def describe(self) -> str | None:
        try:
            table = self._table()
        except (PoolkeeperError, OSError):
            return None
        usable = [g for g in table.candidate_gaps("linux") if table.usable_size(g) > 0]
        count = len(table.data_partitions)
        text = f"{table.label} label, {count} partition{'s' if count != 1 else ''}, "
        if usable:
            total = sum(g.size for g in usable)
            largest = max(table.usable_size(g) for g in usable)
            text += (f"{human(total)} free in {len(usable)} extent"
                     f"{'s' if len(usable) != 1 else ''}, largest {human(largest)}")
        else:
            text += "no free space"
        if table.label in _CYLINDER_LABELS:
            text += " (poolkeeper does not create partitions on this label)"
        if self._source_kind() == "image":
            text += f" ({self.source_path} attached as {table.device})"
        return text

    def layout(self) -> list[DeviceLayout]:
        disk = self._disk()
        table = self._table(disk)
        return [DeviceLayout(
            path=self.source_path, size=table.size,
            used=[(p.start, p.end, partition_name(disk, p.number, self.part_separator))
                  for p in table.data_partitions],
            free=[FreeExtent(g.start, g.end) for g in table.gaps])]

    def volume_path(self, name: str) -> str:
        node = f"/dev/{name}"
        if self.target == "/dev":
            return node
        with contextlib.suppress(OSError):  # the stable link to it, as libvirt shows
            for entry in sorted(os.listdir(self.target)):
                link = os.path.join(self.target, entry)
                if os.path.islink(link) and os.path.realpath(link) == node:
                    return link
        return node

    def _info(self, disk: str, table: DiskTable, part: Partition,
              kernel: dict[int, KernelPartition]) -> VolumeInfo:
        name = partition_name(disk, part.number, self.part_separator)
        path = self.volume_path(name)
        info = VolumeInfo(name=name, key=path, path=path, type="block", format=part.format,
                          capacity=part.size, allocation=part.size, physical=part.size,
                          extents=[(self.source_path, [Extent(part.start, part.end)])],
                          attributes=", ".join(part.flags) or None)
        info.signature = ("partition", part.number, part.start, part.end, part.type_code,
                          part.flags)
        kp = kernel.get(part.number)
        if not _kernel_matches(kp, part) or kp.name != name:
            info.error = (f"the kernel has no partition node {name} matching the table "
                          f"(partx -u {disk} updates it)")
            return info
        try:
            st = os.stat(f"/dev/{name}")
        except OSError as exc:
            info.error = f"/dev/{name}: {exc.strerror}"
            return info
        info.permissions = Permissions(st.st_mode & 0o777, st.st_uid, st.st_gid)
        info.times_ns = (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
        return info

    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None) -> list[PoolSource]:
        if host is not None:
            raise ValidationError("disk pool sources are local disks: give a device, not a "
                                  "host", "host")
        if device is not None:
            device = _check_device_path(device)
        rows = blockprobe.lsblk("NAME,PATH,TYPE,SIZE,PTTYPE", device)
        disks = [r for r in rows if r.get("type") in ("disk", "loop") and r.get("size")
                 and r.get("path")]
        blockprobe.fill_from_blkid(disks, "pttype", "PTTYPE")
        sources = []
        for row in disks:
            label = {"sgi": "dvh"}.get(row.get("pttype") or "", row.get("pttype"))
            if label in DISK_POOL_FORMATS and label != "unknown":
                sources.append(PoolSource(devices=[SourceDevice(row["path"])], format=label))
        return sources

    # -- volumes -----------------------------------------------------------------------------
    def _number(self, disk: str, name: str) -> int:
        number = partition_number(disk, name, self.part_separator)
        if number is None:
            raise VolumeNotFound(f"'{name}' is not a partition of {disk} (its partitions are "
                                 f"named {partition_name(disk, 1, self.part_separator)}, "
                                 f"{partition_name(disk, 2, self.part_separator)}, ...)")
        return number

    def _partition(self, disk: str, table: DiskTable, name: str) -> Partition:
        part = table.get(self._number(disk, name))
        if part is None:
            raise VolumeNotFound(f"{disk} has no partition {name}")
        return part

    @staticmethod
    def _refuse_metadata(part: Partition, name: str, verb: str) -> None:
        if part.kind == "metadata":
            raise Unsupported(f"{name} is part of the partition table itself; poolkeeper will "
                              f"not {verb} it")

    def _plan(self, disk: str, table: DiskTable, fmt: str, capacity: int,
              start: int | None) -> _Plan:
        dos = table.label == "dos"
        if table.label in _CYLINDER_LABELS:
            raise Unsupported(
                f"{disk} has a {table.label} label, whose partitions must start and end on "
                "cylinder boundaries; poolkeeper places partitions on 1 MiB boundaries and "
                "does not create them there (parted can); listing, wipe, upload, download "
                "and delete work")
        if fmt == "extended" and not dos:
            raise ValidationError(f"extended partitions exist only on dos labels; {disk} has "
                                  f"a {table.label} label", "format")
        if dos and fmt == "extended" and table.extended is not None:
            ext = table.extended
            raise StateError(f"{disk} already has an extended partition "
                             f"({partition_name(disk, ext.number, self.part_separator)}); a "
                             "dos label holds only one")
        size = -(-capacity // table.sector) * table.sector
        gaps = table.candidate_gaps(fmt)
        if not gaps:
            if dos and not any(g.logical for g in table.gaps) and table.extended is None:
                raise StateError(
                    f"the dos label on {disk} has 4 primary partitions and no extended one; "
                    "delete one and create an extended partition (format 'extended') to hold "
                    "logical partitions, or use a gpt label")
            raise InsufficientSpace(f"{disk} has no free extent for a new partition")
        if start is not None:
            gap = self._gap_at(disk, table, gaps, start, size)
        else:
            gap = next((g for g in gaps if table.usable_size(g) >= size), None)
            if gap is None:
                largest = max(gaps, key=table.usable_size)
                raise InsufficientSpace(
                    f"no free extent on {disk} can hold {human(size)} ({size} bytes): the "
                    f"largest free extent is {largest.start}-{largest.end} "
                    f"({human(largest.size)}), of which {human(table.usable_size(largest))} "
                    f"({table.usable_size(largest)} bytes) can be used once aligned to 1 MiB")
            start = table.usable(gap)[0]
        if gap.logical:
            part_type = "logical"
            number = max([p.number for p in table.partitions if p.kind == "logical"],
                         default=4) + 1
        else:
            part_type = "extended" if fmt == "extended" else "primary"
            used = {p.number for p in table.partitions}
            limit = 4 if dos else 1 << 16
            number = next(n for n in range(1, limit + 1) if n not in used)
        return _Plan(start, start + size, number, part_type)

    def _gap_at(self, disk: str, table: DiskTable, gaps: list[Gap], start: int,
                size: int) -> Gap:
        if start % ALIGN:
            raise ValidationError(f"start {start} is not aligned to 1 MiB; use "
                                  f"{start - start % ALIGN} or {start - start % ALIGN + ALIGN}",
                                  "extent")
        for gap in gaps:
            first, end = table.usable(gap)
            if first <= start < end:
                if start + size > end:
                    raise InsufficientSpace(
                        f"{human(size)} from {start} does not fit in the free extent "
                        f"{gap.start}-{gap.end} of {disk}: {human(end - start)} ({end - start} "
                        "bytes) are free from there")
                return gap
        free = ", ".join(f"{g.start}-{g.end}" for g in gaps if table.usable_size(g)) or "none"
        raise InsufficientSpace(f"start {start} is not in a usable free extent of {disk} "
                                f"(usable free extents: {free})")

    def create_volume(self, vol: VolumeDef, ctx: JobContext) -> None:
        self._create(vol, ctx)

    def _create(self, vol: VolumeDef, ctx: JobContext, *, partial: bool = False
                ) -> tuple[str, Partition, Path | None]:
        """Make the partition; `partial`: marked as being filled (see disk_partial.py),
        returning the record of a non-gpt one."""
        fmt = vol.target.format or self.default_volume_format or "linux"
        if fmt not in DISK_VOLUME_FORMATS:
            raise ValidationError(f"'{fmt}' is not a partition type; use one of: "
                                  + ", ".join(DISK_VOLUME_FORMATS), "format")
        if not vol.capacity or vol.capacity <= 0:
            raise ValidationError("a partition needs a capacity greater than 0", "capacity")
        start = None
        if vol.source_devices and vol.source_devices[0][1]:
            start = vol.source_devices[0][1][0].start
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = self._table(disk)
            plan = self._plan(disk, table, fmt, vol.capacity, start)
            expected = partition_name(disk, plan.number, self.part_separator)
            if vol.name != expected:
                raise ValidationError(
                    f"the new partition on {disk} will be number {plan.number}, so the volume "
                    f"must be named '{expected}' (partitions are named as the kernel names "
                    "them)", "name")
            (ctx or NULL_CONTEXT).check()
            fstype, flag = MKPART_ARGS[fmt]
            argv = ["parted", "-s", disk, "mkpart"]
            if table.label in _NO_PART_TYPE:
                fstype = fstype or "ext2"
            elif partial and table.label == "gpt":
                argv.append(PARTIAL_NAME)  # on gpt this word is the partition's name
            else:
                argv.append(plan.part_type)
            if fstype:
                argv.append(fstype)
            record = None
            if partial and table.label != "gpt":  # recorded before the partition exists
                record = self._fill_records.add(self._record_identity(disk, table),
                                                plan.start, plan.end, plan.number)
            try:
                with shielded():  # parted is never stopped half-way (see runner)...
                    made = self._mkpart(disk, [*argv, f"{plan.start}B", f"{plan.end - 1}B"],
                                        plan)
            except BaseException:
                with contextlib.suppress(PoolkeeperError, OSError):
                    if not any(p.start == plan.start for p in read_table(disk).partitions):
                        FillRecords.remove(record)  # no partition came of it
                raise
            try:
                (ctx or NULL_CONTEXT).check()  # ...a cancel meanwhile removes what it made
                if made.number != plan.number or made.end != plan.end:
                    raise StateError(
                        f"parted made partition {made.number} ({made.start}-{made.end}) instead "
                        f"of {plan.number} ({plan.start}-{plan.end}); it was removed again")
                if flag:
                    runner.run(["parted", "-s", disk, "set", str(made.number), flag, "on"],
                               timeout=120)
                after = read_table(disk)
                problems = sync_nodes(disk, after)
                node = kernel_partitions(disk).get(made.number)
                if node is None or node.name != expected:
                    raise StateError(f"the kernel did not create /dev/{expected} for the new "
                                     f"partition ({'; '.join(problems) or 'partx failed'}); it "
                                     "was removed again")
            except BaseException:
                with contextlib.suppress(PoolkeeperError, OSError):
                    runner.run(["parted", "-s", disk, "rm", str(made.number)], timeout=120)
                    sync_nodes(disk, read_table(disk))
                    FillRecords.remove(record)  # only once the partition is gone
                raise
            return expected, made, record

    @staticmethod
    def _mkpart(disk: str, argv: list[str], plan: _Plan) -> Partition:
        runner.run(argv, timeout=120)
        made = next((p for p in read_table(disk).partitions if p.start == plan.start), None)
        if made is None:
            raise StateError(f"parted reported success but {disk} has no partition at "
                             f"{plan.start}")
        return made

    def clone_volume(self, src: VolumeInfo, src_driver: PoolDriver, vol: VolumeDef,
                     ctx: JobContext) -> str:
        fmt = vol.target.format if vol.target.format in DISK_VOLUME_FORMATS else None
        if fmt == "extended":
            raise ValidationError("an extended partition cannot be a copy of a volume", "format")
        if src.format not in ("raw", *DISK_VOLUME_FORMATS) or src.format == "extended":
            raise Unsupported(f"'{src.name}' is a {src.format} image; a partition gets its bytes "
                              "as they are, so convert it to raw first (qemu-img convert)")
        capacity = max(vol.capacity or 0, src.capacity)
        new = VolumeDef(name=vol.name, capacity=capacity, source_devices=vol.source_devices)
        new.target.format = fmt
        src_fd = src_driver.open_volume_read(src)
        try:
            # marked as being filled until the copy is complete: a kill -9 meanwhile leaves
            # a partition that is not listed and is removed on the next use
            name, part, record = self._create(new, ctx, partial=True)
            try:
                dst_fd = self._open(name, os.O_RDWR | os.O_EXCL)
                try:
                    method = fileops.clone_fd(src_fd, dst_fd, min(src.capacity, part.size),
                                              sparse=False, ctx=ctx or NULL_CONTEXT)
                finally:
                    os.close(dst_fd)
                self._mark_complete(part, record)
                return method
            except BaseException:
                with contextlib.suppress(PoolkeeperError, OSError):
                    self._remove_made(part)
                    FillRecords.remove(record)  # only once the partition is gone
                raise
        finally:
            os.close(src_fd)

    def _remove_made(self, part: Partition) -> None:
        """Remove the partition a failed clone made, if it is still that one."""
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            now = read_table(disk).get(part.number)
            if now is not None and (now.start, now.end) == (part.start, part.end):
                runner.run(["parted", "-s", disk, "rm", str(part.number)], timeout=120)
                sync_nodes(disk, read_table(disk))

    def delete_volume(self, vol: VolumeInfo) -> None:
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = self._table(disk)
            part = self._partition(disk, table, vol.name)
            name = partition_name(disk, part.number, self.part_separator)
            problems = self._remove_partition(disk, table, part, name, f"delete {name}")
        if problems:
            raise StateError(f"{name} was removed from the table, but the kernel's partition "
                             f"nodes are not in line with it: {'; '.join(problems)}")

    def _remove_partition(self, disk: str, table: DiskTable, part: Partition, name: str,
                          verb: str) -> list[str]:
        """parted rm, refused for label metadata, a non-empty extended partition, and a
        partition in use (or a logical one after it, which would be renumbered). Returns
        what sync_nodes could not bring in line."""
        self._refuse_metadata(part, name, "delete")
        if part.kind == "extended":
            inside = [partition_name(disk, p.number, self.part_separator)
                      for p in table.partitions if p.kind == "logical"]
            if inside:
                raise StateError(f"the extended partition {name} still holds the logical "
                                 f"partitions {', '.join(inside)}; delete them first")
        kernel = kernel_partitions(disk)
        self._refuse_used(kernel.get(part.number), verb)
        if part.kind == "logical":  # the ones after it are renumbered: N+1 becomes N
            for later in (p for p in table.partitions
                          if p.kind == "logical" and p.number > part.number):
                self._refuse_used(kernel.get(later.number),
                                  f"{verb}, which renumbers the logical partitions after it")
        runner.run(["parted", "-s", disk, "rm", str(part.number)], timeout=120)
        return sync_nodes(disk, read_table(disk))

    @staticmethod
    def _refuse_used(kp: KernelPartition | None, verb: str) -> None:
        if kp is None:
            return
        users = blockprobe.device_users(f"/dev/{kp.name}")
        if users:
            raise InUse(f"/dev/{kp.name} is in use ({'; '.join(users)}); poolkeeper will not "
                        f"{verb}")

    def resize_volume(self, vol: VolumeInfo, capacity: int, *, allocate: bool, shrink: bool,
                      ctx: JobContext) -> None:
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = self._table(disk)
            part = self._partition(disk, table, vol.name)
            name = partition_name(disk, part.number, self.part_separator)
            self._refuse_metadata(part, name, "resize")
            if capacity < part.size:
                raise Unsupported(
                    f"poolkeeper does not shrink partitions: {name} is {human(part.size)} and "
                    f"shrinking it to {human(capacity)} would cut off whatever lies at its end "
                    "(shrink the filesystem inside first, then use parted yourself)")
            new_end = part.start + -(-capacity // table.sector) * table.sector
            if new_end == part.end:
                return
            logical = part.kind == "logical"
            after = next((g for g in table.gaps if g.start == part.end and g.logical == logical),
                         None)
            room = after.end - part.end if after else 0
            if new_end > part.end + room:
                raise InsufficientSpace(
                    f"{name} can grow only into the free space right after it: "
                    f"{human(room)} ({room} bytes), so to at most {human(part.size + room)}")
            (ctx or NULL_CONTEXT).check()
            with shielded():  # begun, the table and the kernel's node change together
                runner.run(["parted", "-s", disk, "resizepart", str(part.number),
                            f"{new_end - 1}B"], timeout=120)
                problems = sync_nodes(disk, read_table(disk))
        if problems:
            raise StateError(f"{name} was resized in the table, but the kernel's partition "
                             f"nodes are not in line with it: {'; '.join(problems)}")

    def _open(self, name: str, flags: int) -> int:
        """An fd on the partition node /dev/NAME, after checking that the kernel's partition
        is exactly the one in the table. Never the whole disk."""
        disk = self._disk()
        table = self._table(disk)
        part = self._partition(disk, table, name)
        self._refuse_metadata(part, name, "read or write")
        if part.kind == "extended":
            raise Unsupported(f"{name} is an extended partition (a container for logical "
                              "partitions): it cannot be wiped, uploaded to or downloaded")
        kp = kernel_partitions(disk).get(part.number)
        fix = (f"poolkeeper will not fall back to the whole disk; partx -u {disk} brings the "
               "kernel in line with the table")
        if kp is None or kp.name != name:
            raise StateError(f"the partition node /dev/{name} does not exist; {fix}")
        if not _kernel_matches(kp, part):
            raise StateError(
                f"the partition node /dev/{name} ({kp.start}-{kp.start + kp.size}) does not "
                f"match the table ({part.start}-{part.end}); {fix}")
        dfd = os.open("/dev", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                fd = fileops.open_volume(dfd, name, flags)
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    raise InUse(f"/dev/{name} is in use (mounted or claimed by the kernel)"
                                ) from None
                raise
        finally:
            os.close(dfd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISBLK(st.st_mode) or \
                    f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" != kp.dev:
                raise StateError(f"/dev/{name} is not the kernel's partition {kp.dev}")
            size = os.lseek(fd, 0, os.SEEK_END)
            if size != part.size:
                raise StateError(f"/dev/{name} has {size} bytes, the table says {part.size}")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_volume_write(self, vol: VolumeInfo) -> int:
        disk = self._disk()
        number = self._number(disk, vol.name)
        self._refuse_used(kernel_partitions(disk).get(number), f"write to {vol.name}")
        return self._open(vol.name, os.O_RDWR | os.O_EXCL)

    def open_volume_read(self, vol: VolumeInfo) -> int:
        return self._open(vol.name, os.O_RDONLY)


def _wipe_signatures(device: str, kind: str) -> None:
    """wipefs --all, and make sure it did: wipefs skips a partition table in a regular file
    ("nested") without --force and still exits 0."""
    force = ["--force"] if kind == "image" else []
    runner.run(["wipefs", "--all", *force, "--", device], timeout=120)
    left = blockprobe.probe(device)
    if left.signatures:
        raise StateError(f"wipefs left {left.describe()} on {device}")


