"""What `vgs` and `lvs` report, read: their JSON reports (`--reportformat json --units b
--nosuffix`) as VG, PV, LV and segment states, an LV's extents on its PVs, and the pool's
volumes and device layout (the extent bar) made from them; what a failed call's stderr
means, and whether LVM's configuration activates anything. Parsing only: nothing here runs
a tool (logical.py does).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..errors import (
    AlreadyExists,
    InsufficientSpace,
    InUse,
    PoolkeeperError,
    StateError,
    ToolFailed,
)
from ..model import BackingStore, DeviceLayout, Extent, FreeExtent, PoolSizes, VolumeInfo
from ..runner import Completed
from ..units import human


def _num(value: object) -> int:
    """A number from a report (strings in --reportformat json, numbers in json_std)."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | float):
        return int(value)
    return int(float(str(value).strip()))


def _percent(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(str(value).strip().rstrip("%"))
    except ValueError:
        return None


def report_rows(text: str, kind: str) -> list[dict]:
    """Rows of `kind` ("vg", "pv", "lv", "pvseg") from an LVM JSON report."""
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f"LVM printed a report that is not JSON ({exc})") from None
    rows: list[dict] = []
    for part in data.get("report", []):
        rows.extend(r for r in part.get(kind, []) if isinstance(r, dict))
    return rows


@dataclass
class PVState:
    name: str  # "[unknown]" when missing
    uuid: str
    missing: bool
    pe_start: int
    dev_size: int
    pe_count: int
    pe_alloc: int


@dataclass
class VGState:
    name: str
    uuid: str
    attr: str
    size: int
    free: int
    extent_size: int
    extent_count: int
    free_count: int
    seqno: int
    lv_count: int
    missing_count: int
    pvs: list[PVState] = field(default_factory=list)
    last_seen: dict[str, str] = field(default_factory=dict)  # missing PV uuid -> device

    @property
    def sizes(self) -> PoolSizes:
        return PoolSizes(self.size, self.size - self.free, self.free)

    @property
    def missing(self) -> list[PVState]:
        return [pv for pv in self.pvs if pv.missing]

    def pe_start(self, pv_name: str) -> int | None:
        for pv in self.pvs:
            if pv.name == pv_name:
                return pv.pe_start
        return None


VGS_FIELDS = ",".join((
    "vg_name", "vg_uuid", "vg_attr", "vg_size", "vg_free", "vg_extent_size", "vg_extent_count",
    "vg_free_count", "vg_seqno", "lv_count", "vg_missing_pv_count", "pv_name", "pv_uuid",
    "pv_missing", "pe_start", "dev_size", "pv_pe_count", "pv_pe_alloc_count",
))
LVS_FIELDS = ",".join((
    "lv_name", "lv_uuid", "lv_path", "lv_attr", "lv_size", "origin", "origin_size", "pool_lv",
    "segtype", "data_percent", "lv_parent", "lv_role", "seg_start_pe", "seg_size_pe",
    "seg_pe_ranges", "devices", "lv_tags",
))
# An LV being filled by a clone carries this tag until the copy is complete: it is not
# listed, and one a killed process left is removed on the pool's next start or first use.
PARTIAL_TAG = "poolkeeper_partial"
PVSEG_FIELDS = ",".join((
    "pv_name", "pv_uuid", "vg_name", "pe_start", "dev_size", "pv_pe_count", "pvseg_start",
    "pvseg_size", "lv_name", "lv_parent", "vg_extent_size",
))
MISSING_PV = "[unknown]"  # how LVM names a PV whose device is gone
_LAST_WRITTEN = re.compile(r"missing PV (\S+) \(last written to (\S+?)\)")


def parse_vgs(text: str, stderr: str = "") -> VGState | None:
    """The VG from `vgs -o VGS_FIELDS VG` (one row per PV); None if no row."""
    rows = report_rows(text, "vg")
    if not rows:
        return None
    first = rows[0]
    state = VGState(
        name=str(first.get("vg_name", "")), uuid=str(first.get("vg_uuid", "")),
        attr=str(first.get("vg_attr", "")), size=_num(first.get("vg_size")),
        free=_num(first.get("vg_free")), extent_size=_num(first.get("vg_extent_size")),
        extent_count=_num(first.get("vg_extent_count")),
        free_count=_num(first.get("vg_free_count")), seqno=_num(first.get("vg_seqno")),
        lv_count=_num(first.get("lv_count")),
        missing_count=_num(first.get("vg_missing_pv_count")),
    )
    for row in rows:
        state.pvs.append(PVState(
            name=str(row.get("pv_name", "")), uuid=str(row.get("pv_uuid", "")),
            missing=bool(row.get("pv_missing")) or not str(row.get("pv_name", "")).startswith("/"),
            pe_start=_num(row.get("pe_start")), dev_size=_num(row.get("dev_size")),
            pe_count=_num(row.get("pv_pe_count")), pe_alloc=_num(row.get("pv_pe_alloc_count")),
        ))
    state.missing_count = max(state.missing_count, len(state.missing))
    for match in _LAST_WRITTEN.finditer(stderr):
        state.last_seen[match.group(1)] = match.group(2).rstrip(").")
    return state


@dataclass
class LVSegment:
    le_start: int
    le_count: int
    ranges: str  # seg_pe_ranges: "/dev/sdb:0-24 /dev/sdc:0-24" or "sub_lv:0-9"


@dataclass
class LVState:
    name: str
    uuid: str
    path: str
    attr: str
    size: int
    origin: str
    origin_size: int
    pool_lv: str
    segtype: str
    data_percent: float | None
    parent: str
    roles: tuple[str, ...]
    hidden: bool
    segments: list[LVSegment] = field(default_factory=list)
    tags: tuple[str, ...] = ()

    @property
    def is_thin_pool(self) -> bool:
        return self.segtype == "thin-pool" or self.attr[:1] == "t"

    @property
    def is_thin(self) -> bool:
        return self.segtype == "thin" or self.attr[:1] == "V"

    @property
    def is_thick_snapshot(self) -> bool:
        return self.attr[:1] in ("s", "S")

    @property
    def is_volume(self) -> bool:
        """Shown as a pool volume: a public LV (not a thin pool, not an internal LV)."""
        if self.hidden or self.is_thin_pool or PARTIAL_TAG in self.tags:
            return False
        return "private" not in self.roles


def parse_lvs(text: str) -> list[LVState]:
    """LVs from `lvs -a -o LVS_FIELDS VG` (one row per segment), grouped in report order."""
    by_uuid: dict[str, LVState] = {}
    for row in report_rows(text, "lv"):
        raw_name = str(row.get("lv_name", ""))
        hidden = raw_name.startswith("[") and raw_name.endswith("]")
        uuid = str(row.get("lv_uuid", "")) or raw_name
        lv = by_uuid.get(uuid)
        if lv is None:
            lv = by_uuid[uuid] = LVState(
                name=raw_name[1:-1] if hidden else raw_name, uuid=str(row.get("lv_uuid", "")),
                path=str(row.get("lv_path", "")), attr=str(row.get("lv_attr", "")),
                size=_num(row.get("lv_size")), origin=str(row.get("origin", "")),
                origin_size=_num(row.get("origin_size")), pool_lv=str(row.get("pool_lv", "")),
                segtype=str(row.get("segtype", "")),
                data_percent=_percent(row.get("data_percent")),
                parent=str(row.get("lv_parent", "")).strip("[]"),
                roles=tuple(r for r in str(row.get("lv_role", "")).split(",") if r),
                hidden=hidden,
                tags=tuple(t for t in str(row.get("lv_tags", "")).split(",") if t),
            )
        lv.segments.append(LVSegment(_num(row.get("seg_start_pe")),
                                     _num(row.get("seg_size_pe")),
                                     str(row.get("seg_pe_ranges", ""))))
    return list(by_uuid.values())


def _ranges(text: str) -> list[tuple[str, int, int]]:
    """'/dev/sdb:0-24 /dev/sdc:3-9' -> [(name, first, last)] (PV names may hold ':')."""
    found = []
    for token in re.split(r"[\s,]+", text.strip()):
        name, sep, span = token.rpartition(":")
        first, dash, last = span.partition("-")
        if not sep or not dash or not first.isdigit() or not last.isdigit():
            continue
        found.append((name, int(first), int(last)))
    return found


def _pv_ranges(lv: LVState, by_name: dict[str, LVState], first: int, last: int,
               depth: int = 0) -> list[tuple[str, int, int]]:
    """PV extent ranges (pv, first PE, last PE) behind logical extents first..last of lv,
    following sub-LVs (thin pool data, RAID images) down to the PVs."""
    if depth > 8:
        return []
    out: list[tuple[str, int, int]] = []
    for seg in lv.segments:
        lo, hi = max(first, seg.le_start), min(last, seg.le_start + seg.le_count - 1)
        if lo > hi:
            continue
        for name, pfirst, plast in _ranges(seg.ranges):
            # One range per stripe or image, each covering the segment in its own units:
            # for linear segments the offset into the segment maps one to one.
            span = plast - pfirst + 1
            if span == seg.le_count:
                sub_first, sub_last = pfirst + (lo - seg.le_start), pfirst + (hi - seg.le_start)
            else:  # striped/raid: take the stripe's whole range for the covered segment
                sub_first, sub_last = pfirst, plast
            if name.startswith("/") or name == MISSING_PV:
                out.append((name, sub_first, sub_last))
            elif name.strip("[]") in by_name:
                out += _pv_ranges(by_name[name.strip("[]")], by_name, sub_first, sub_last,
                                  depth + 1)
    return out


def lv_extents(lv: LVState, by_name: dict[str, LVState], vg: VGState
               ) -> tuple[list[tuple[str, list[Extent]]], bool]:
    """(device -> byte extents on that device, touches a missing PV). Offsets are where
    the bytes lie on the device: pe_start + PE * extent size (libvirt leaves out pe_start;
    poolkeeper's extents and layout() agree with each other and with the disk)."""
    total = sum(seg.le_count for seg in lv.segments)
    per_dev: dict[str, list[Extent]] = {}
    missing = False
    for name, first, last in _pv_ranges(lv, by_name, 0, max(total - 1, 0)):
        start = vg.pe_start(name) if name.startswith("/") else None
        if start is None:
            missing = True
            continue
        per_dev.setdefault(name, []).append(Extent(start + first * vg.extent_size,
                                                   start + (last + 1) * vg.extent_size))
    result = []
    for dev, extents in per_dev.items():
        extents.sort(key=lambda e: e.start)
        merged: list[Extent] = []
        for ext in extents:
            if merged and merged[-1].end == ext.start:
                merged[-1] = Extent(merged[-1].start, ext.end)
            else:
                merged.append(ext)
        result.append((dev, merged))
    return result, missing


def volume_of(lv: LVState, vg: VGState, by_name: dict[str, LVState]) -> VolumeInfo:
    capacity = lv.size
    allocation = lv.size
    if lv.is_thick_snapshot:
        # The snapshot's device is as big as its origin; lv_size is its copy-on-write space.
        capacity = lv.origin_size or (by_name[lv.origin].size if lv.origin in by_name
                                      else lv.size)
        allocation = lv.size
    elif lv.is_thin:
        # Thin LVs take space as they are written; the pool knows how much (only while
        # active: an inactive thin LV reports nothing and counts 0 here).
        pct = lv.data_percent
        allocation = round(lv.size * pct / 100) if pct is not None else 0
    extents, touches_missing = lv_extents(lv, by_name, vg)
    attributes = lv.attr
    if lv.pool_lv:
        attributes += f" thin pool={lv.pool_lv}"
    error = None
    if touches_missing or lv.attr[8:9] == "p":
        error = ("part of it is on a missing physical volume of volume group "
                 f"'{vg.name}'; reattach that disk")
    elif lv.attr[4:5] in ("I", "S"):
        error = "the snapshot is invalid (its copy-on-write space filled up)"
    backing = BackingStore(path=f"/dev/{vg.name}/{lv.origin}", format=None) if lv.origin \
        else None
    return VolumeInfo(
        name=lv.name, key=lv.uuid, path=f"/dev/{vg.name}/{lv.name}", type="block",
        format="raw", capacity=capacity, allocation=allocation, physical=capacity,
        backing=backing, extents=extents, attributes=attributes, error=error,
        signature=(lv.uuid, lv.size, lv.attr, lv.origin, lv.pool_lv,
                   tuple((d, tuple((e.start, e.end) for e in ex)) for d, ex in extents)),
    )


def volumes_of(vg: VGState, lvs: list[LVState]) -> list[VolumeInfo]:
    by_name = {lv.name: lv for lv in lvs}
    return [volume_of(lv, vg, by_name) for lv in lvs if lv.is_volume]


def parse_layout(text: str, vg_name: str) -> list[DeviceLayout]:
    """Per PV of `vg_name`: size, used segments (by top-level LV name), free ranges, from
    `pvs --segments -o PVSEG_FIELDS`. Missing PVs have no device to draw and are left out."""
    rows = [r for r in report_rows(text, "pvseg") if r.get("vg_name") == vg_name]
    parents = {str(r.get("lv_name", "")).strip("[]"): str(r.get("lv_parent", "")).strip("[]")
               for r in rows if r.get("lv_name")}

    def owner(name: str) -> str:
        seen = set()
        while parents.get(name) and name not in seen:
            seen.add(name)
            name = parents[name]
        return name

    layouts: dict[str, DeviceLayout] = {}
    for row in rows:
        pv = str(row.get("pv_name", ""))
        if not pv.startswith("/"):
            continue
        ext = _num(row.get("vg_extent_size"))
        pe_start = _num(row.get("pe_start"))
        layout = layouts.get(pv)
        if layout is None:
            layout = layouts[pv] = DeviceLayout(path=pv, size=_num(row.get("dev_size")))
        start = pe_start + _num(row.get("pvseg_start")) * ext
        end = start + _num(row.get("pvseg_size")) * ext
        name = str(row.get("lv_name", "")).strip("[]")
        if name:
            layout.used.append((start, end, owner(name)))
        else:
            layout.free.append(FreeExtent(start, end))
    for layout in layouts.values():
        used: list[tuple[int, int, str]] = []
        for start, end, name in sorted(layout.used):  # e.g. a thin pool's data + metadata
            if used and used[-1][1] == start and used[-1][2] == name:
                used[-1] = (used[-1][0], end, name)
            else:
                used.append((start, end, name))
        layout.used = used
        layout.free.sort(key=lambda f: f.start)
    return list(layouts.values())


def size_words(size: int) -> str:
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size and size % unit == 0:
            return f"{size // unit} {name}"
    return human(size)


def round_up(size: int, extent: int) -> int:
    return -(-size // extent) * extent if extent > 0 else size


# == what LVM says besides its reports ====================================================
def _useful_lines(stderr: str) -> list[str]:
    """LVM's stderr without its warnings (activation disabled, not zeroed, ...)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return [ln for ln in lines if not ln.startswith("WARNING:")] or lines


def lvm_failure(done: Completed) -> PoolkeeperError:
    """The error a failed LVM call means, with LVM's own first real error line in it."""
    lines = _useful_lines(done.stderr)
    first = lines[0] if lines else "no error output"
    low = " ".join(lines).lower()
    tool = done.shown[0]
    if done.returncode is None:
        return ToolFailed(done.shown, None, done.stderr)
    if "insufficient free space" in low or "insufficient suitable" in low:
        return InsufficientSpace(f"{tool}: {first}")
    if "already exists" in low:
        return AlreadyExists(f"{tool}: {first}")
    if " in use" in low or "is open" in low or "device or resource busy" in low:
        return InUse(f"{tool}: {first}")
    if "pvs are missing" in low or "missing pv" in low:
        return StateError(f"{tool}: {first} (a physical volume of the group is missing)")
    exc = ToolFailed(done.shown, done.returncode, done.stderr)
    exc.message = f"'{tool}' failed (exit {done.returncode}): {first}"
    exc.args = (exc.message,)
    return exc


# Said wherever a logical pool cannot reach its LVs' bytes: the header, the greyed keys,
# and the refusal of every verb that needs device-mapper (LVM's own words are
# "striped: Required device-mapper target(s) not detected in your kernel").
DM_MISSING = (
    "device-mapper is not available in this kernel (modprobe dm_mod): logical volumes "
    "cannot be created, resized, wiped, cloned, uploaded, downloaded or activated; the "
    "volume group, listing its volumes and deleting inactive ones work")


def activation_enabled(config_text: str) -> bool:
    """From `lvm config --typeconfig full global/activation`: does LVM activate LVs (and so
    need device-mapper)? 0 means metadata only, as a test lvm.conf sets it."""
    return config_text.strip().replace(" ", "") != "activation=0"
