"""A disk's partition table as parted and partx show it, and where a new partition goes.

The table is read with `parted -s -m DEV unit B print free` (geometry, label, flags, the
sector size) and `partx -g -r -o NR,TYPE DEV` (the type byte or GUID of each partition,
which parted's machine output does not show), and on dos labels the EBR chain is read
directly, so that the sectors holding EBRs are never reported as free. MKPART_ARGS is
the way back: what parted's mkpart is given to write each volume format.

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
  * One rule says what a free extent is, for the extent list (pool XML, the extent bar,
    the table's free rows), their count, and the sums: a gap where a new partition can go
    now (a dos slot is free for it) that holds at least 1 MiB from its first 1 MiB
    boundary, counted from that boundary. So a gpt disk's 1007 KiB before the first
    boundary (17408 to 1 MiB), the sector after an EBR, and crumbs under 1 MiB are not
    free space: parted aligns new partitions to 1 MiB too, and no partition poolkeeper
    would make fits there. `available` is the SUM of the free extents, as libvirt's (which
    sums every gap libparted reports, crumbs included, so it can be up to ~1 MiB per gap
    more); `largest` is the biggest one, the largest partition that can be made now. A
    request larger than that is refused before parted runs, naming the largest extent.
  * dos labels: at most four primary partitions; logical partitions go in an extended
    partition that must be created explicitly (format 'extended'), as in libvirt: a
    partition that silently claims the rest of the disk would be a surprise. With an
    extended partition, a new partition goes to the first extent that fits, primary
    (while a slot is free) or logical.
  * Partition names are the kernel's names (`sda1`, `nvme0n1p1`, `loop0p1`, `mmcblk0p1`).
    The number passed to parted is parsed from the name against the disk's own prefix,
    never by stripping letters (libvirt 9.0 passes 'p2' for loop0p2).
  * A partition's volume format is its TYPE in the table (0x83 / the Linux GUID -> linux,
    0x8e / LVM -> linux-lvm, ...), which a guest cannot change, not the content; 'none'
    for types poolkeeper has no name for (EFI system, BIOS boot, ...).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field

from .. import runner
from ..errors import InsufficientSpace, StateError, ToolFailed, Unsupported, ValidationError
from ..units import human

MiB = 1 << 20
ALIGN = MiB  # partition starts are aligned to this

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
NO_PART_TYPE = ("sun", "bsd")
CYLINDER_LABELS = ("sun", "pc98")  # parted insists on cylinder alignment there
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

    def usable_gaps(self, fmt: str = "linux") -> list[Gap]:
        """The gaps that count as free extents for a partition of `fmt` (the rule above)."""
        if self.label in CYLINDER_LABELS:
            return []  # poolkeeper makes no partition there
        return [g for g in self.candidate_gaps(fmt) if self.usable_size(g) >= ALIGN]

    def free_extents(self) -> list[Gap]:
        """The free extents, each from its first usable byte (see the decisions above)."""
        return [Gap(self.usable(g)[0], g.end, g.logical) for g in self.usable_gaps()]

    def largest(self, fmt: str = "linux") -> Gap | None:
        return max(self.usable_gaps(fmt), key=self.usable_size, default=None)

    @property
    def available(self) -> int:
        """The sum of the free extents (libvirt's meaning of a disk pool's available)."""
        return sum(g.size for g in self.free_extents())

    @property
    def largest_free(self) -> int:
        """The largest partition that could be made now."""
        return max((g.size for g in self.free_extents()), default=0)

    def summary(self) -> str:
        """The label, its partitions and its free space, in words."""
        free = len(self.free_extents())
        count = len(self.data_partitions)
        text = f"{self.label} label, {count} partition{'s' if count != 1 else ''}, "
        text += f"{free} free extent{'s' if free != 1 else ''}" if free else "no free space"
        if self.label in CYLINDER_LABELS:
            text += " (poolkeeper does not create partitions on this label)"
        return text


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


# == where a new partition goes ============================================================
@dataclass
class Plan:
    start: int
    end: int  # exclusive
    number: int
    part_type: str  # primary, logical, extended


def plan_partition(disk: str, table: DiskTable, fmt: str, capacity: int, start: int | None,
                   part_separator: bool | None = None) -> Plan:
    """Where a new partition of `fmt` and `capacity` bytes goes on `disk`: first fit, or at
    `start` (see the decisions above); refused with the reason if it cannot be made."""
    dos = table.label == "dos"
    if table.label in CYLINDER_LABELS:
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
                         f"({partition_name(disk, ext.number, part_separator)}); a "
                         "dos label holds only one")
    size = -(-capacity // table.sector) * table.sector
    if not table.candidate_gaps(fmt) and dos and table.extended is None and \
            not any(g.logical for g in table.gaps):
        raise StateError(
            f"the dos label on {disk} has 4 primary partitions and no extended one; "
            "delete one and create an extended partition (format 'extended') to hold "
            "logical partitions, or use a gpt label")
    gaps = table.usable_gaps(fmt)
    if not gaps:
        raise InsufficientSpace(f"{disk} has no free extent for a new partition (none of at "
                                "least 1 MiB from a 1 MiB boundary)")
    if start is not None:
        gap = _gap_at(disk, table, gaps, start, size)
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
    return Plan(start, start + size, number, part_type)


def _gap_at(disk: str, table: DiskTable, gaps: list[Gap], start: int, size: int) -> Gap:
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


def plan_growth(table: DiskTable, part: Partition, name: str, capacity: int) -> int:
    """The end of the partition `part` (named `name`) grown to `capacity` bytes: refused
    for a shrink, and past the free space right after it."""
    if capacity < part.size:
        raise Unsupported(
            f"poolkeeper does not shrink partitions: {name} is {human(part.size)} and "
            f"shrinking it to {human(capacity)} would cut off whatever lies at its end "
            "(shrink the filesystem inside first, then use parted yourself)")
    new_end = part.start + -(-capacity // table.sector) * table.sector
    logical = part.kind == "logical"
    after = next((g for g in table.gaps if g.start == part.end and g.logical == logical), None)
    room = after.end - part.end if after else 0
    if new_end > part.end + room:
        raise InsufficientSpace(
            f"{name} can grow only into the free space right after it: "
            f"{human(room)} ({room} bytes), so to at most {human(part.size + room)}")
    return new_end
