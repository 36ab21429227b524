"""logical pools: an LVM volume group whose logical volumes are the pool's volumes.

The pool's <source><name> is the volume group (default: the pool name), its <device>s are
the physical volumes, the target is /dev/VG. What the LVM tools are asked:
  * build: `pvcreate` per device, then `vgcreate`; refused over a filesystem, a partition
    table, an LVM label (a PV of another VG) or an uncertain probe unless overwrite=True,
    and over a device in use (mounted, open, held by device-mapper) always; a failed build
    `pvremove`s the PVs it made. delete: `vgremove -f` + `pvremove` of every PV of the VG.
  * start/stop: `vgchange -aly` / `-aln`; check: the VG exists and no PV is missing (the
    error names the missing PV by device and UUID).
  * refresh: ONE `vgs` (VG sizes plus one row per PV: pe_start, missing flag) and ONE
    `lvs -a` (one row per segment), both `--reportformat json --units b --nosuffix`.
  * volumes: `lvcreate` (thick, thin in a thin pool for sparse volumes, snapshot for a
    backing store that is an LV of the VG), `lvremove -f`, `lvresize`; wipe, clone, upload
    and download go through the LV's device node (fileops on the fd), opened only after its
    device-mapper UUID proved it is the LV that was listed.

Every LVM call carries `lvm_env()`: LVM_SYSTEM_DIR from $POOLKEEPER_LVM_SYSTEM_DIR or
`LVM_ENV` (tests point it at a private lvm.conf), so the whole backend runs on a custom LVM
configuration. Values that reach an argv are checked here (VG and LV names by LVM's own
rules, device paths) and placed after `--`.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from .. import blockprobe, fileops, runner
from ..checks import check_lv_name as check_lv_name
from ..checks import require_device_path, require_vg_name
from ..errors import (
    AlreadyExists,
    Cancelled,
    InUse,
    PoolkeeperError,
    StateError,
    UnsafePath,
    Unsupported,
    ValidationError,
    VolumeNotFound,
)
from ..model import (
    LOGICAL_POOL_FORMATS,
    DeviceLayout,
    PoolDef,
    PoolSizes,
    PoolSource,
    SourceDevice,
    SourceRule,
    VolumeDef,
    VolumeInfo,
)
from ..names import check_name
from ..progress import JobContext, shielded
from ..units import human
from .base import Claim, PoolDriver, device_claims, refused
from .fddata import FdDataVerbs
from .lvm_report import (
    DM_MISSING,
    LVS_FIELDS,
    PARTIAL_TAG,
    PVSEG_FIELDS,
    VGS_FIELDS,
    LVState,
    VGState,
    activation_enabled,
    lvm_failure,
    parse_layout,
    parse_lvs,
    parse_vgs,
    report_rows,
    round_up,
    size_words,
    volumes_of,
)

# == the LVM environment ===============================================================
# Extra environment for every LVM call (e.g. {"LVM_SYSTEM_DIR": "/srv/test-lvm"}). Set by
# whoever embeds poolkeeper; $POOLKEEPER_LVM_SYSTEM_DIR does the same from outside.
LVM_ENV: dict[str, str] = {}
SYSTEM_DIR_VARIABLE = "POOLKEEPER_LVM_SYSTEM_DIR"

# Where LV device nodes and device-mapper identities are looked up (tests point these at a
# private tree that imitates device-mapper with loop devices).
DEV_DIR = "/dev"
SYS_DEV_BLOCK = "/sys/dev/block"

LVM_TIMEOUT = 300.0
STATUS_TTL = 1.0  # seconds one `vgs` answers check()/sizes()/describe() of one driver
ACTIVATION_TTL = 30.0  # seconds LVM's global/activation is taken as read (per config dir)
_ACTIVATES: dict[str, tuple[float, bool]] = {}
MiB = 1 << 20
_ZERO_CHUNK = bytes(MiB)


def lvm_env() -> dict[str, str]:
    """The environment added to every LVM call (one place, read at call time)."""
    env = {"LVM_SUPPRESS_FD_WARNINGS": "1"}  # a leaked fd warning is not an error
    system_dir = os.environ.get(SYSTEM_DIR_VARIABLE)
    if system_dir:
        env["LVM_SYSTEM_DIR"] = system_dir
    env.update(LVM_ENV)
    return env


def _lvm(argv: list[str], *, check: bool = True,
         timeout: float = LVM_TIMEOUT) -> runner.Completed:
    done = runner.run(argv, env=lvm_env(), check=False, timeout=timeout)
    if check and done.returncode != 0:
        raise lvm_failure(done)
    return done


def _check_device_path(value: object) -> str:
    return require_device_path(value, lvm=True)


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path


# == the driver ========================================================================
class LogicalDriver(FdDataVerbs, PoolDriver):
    type = "logical"
    volume_formats: ClassVar[tuple[str, ...]] = ()
    creatable_formats: ClassVar[tuple[str, ...]] = ()
    default_volume_format = None
    can_create_volumes = True
    can_delete_volumes = True
    can_resize_volumes = True
    can_build = True
    pool_formats = LOGICAL_POOL_FORMATS
    default_pool_format = "lvm2"
    source_rule = SourceRule(devices=(0, None), name=True, device_kind="lvm-path")
    volume_permissions = False  # udev owns an LV's device node
    volumes_are_devices = True
    backing_is_snapshot = True
    deletes_snapshots = True
    target_automatic = True
    build_does = "creates the volume group on {source} (pvcreate + vgcreate)"
    delete_does = ("removes the volume group and the LVM labels of {source}: every logical "
                   "volume in it is lost")
    form_fields = ("name", "target", "vg", "device", "format")
    target_placeholder = "/dev/VG (automatic)"
    discover_hint = "look for LVM volume groups"
    tools = {tool: "lvm2" for tool in (
        "lvm", "pvcreate", "pvremove", "pvs", "vgcreate", "vgremove", "vgchange", "vgs",
        "lvs", "lvcreate", "lvremove", "lvresize")}

    @classmethod
    def implied_target(cls, pool: PoolDef) -> str | None:
        return f"/dev/{pool.source.name}"  # the volume group's device directory

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        group = pool.source.name or pool.name
        return device_claims(pool) + [Claim("volume group", group, f"volume group '{group}'")]

    # -- definition ----------------------------------------------------------------------
    def __init__(self, pool: PoolDef, extras: dict | None = None, *,
                 config_dir: Path | None = None, runtime_dir: Path | None = None) -> None:
        super().__init__(pool, extras, config_dir=config_dir, runtime_dir=runtime_dir)
        self._status: tuple[float, VGState | None] | None = None

    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        vg = require_vg_name(pool.source.name or pool.name)
        if pool.target.path is not None and os.path.normpath(pool.target.path) != f"/dev/{vg}":
            raise ValidationError(f"a logical pool's target path is always /dev/{vg}, not "
                                  f"'{pool.target.path}'", "path")
        fmt = pool.source.format
        if fmt is not None and fmt not in LOGICAL_POOL_FORMATS:
            raise ValidationError(f"'{fmt}' is not a format of logical pools; use lvm2",
                                  "format")
        seen: set[str] = set()
        for dev in pool.source.devices:
            path = os.path.normpath(_check_device_path(dev.path))
            if path in seen:
                raise ValidationError(f"device {path} is listed twice", "device")
            seen.add(path)
        if pool.source.hosts or pool.source.dir:
            raise ValidationError("a logical pool's source is a volume group on local "
                                  "devices: remove <host> and <dir>", "source")

    @property
    def vg(self) -> str:
        return require_vg_name(self.pool.source.name or self.pool.name)

    @property
    def devices(self) -> list[str]:
        return [_check_device_path(d.path) for d in self.pool.source.devices]

    def volume_path(self, name: str) -> str:
        return f"/dev/{self.vg}/{check_name(name, 'volume name')}"

    # -- reading LVM ---------------------------------------------------------------------
    def _vg_state(self, *, missing_ok: bool = False) -> VGState | None:
        vg = self.vg
        done = _lvm(["vgs", "--reportformat", "json", "--units", "b", "--nosuffix",
                     "-o", VGS_FIELDS, "--", vg], check=False)
        if done.returncode != 0:
            if re.search(r'Volume group "[^"]*" not found', done.stderr):
                if missing_ok:
                    return None
                raise StateError(
                    f"volume group '{vg}' of pool '{self.name}' does not exist (vgs lists no "
                    f"such VG); build the pool (pool-build {self.name}) or check that its "
                    "disks are attached")
            raise lvm_failure(done)
        state = parse_vgs(done.stdout, done.stderr)
        if state is None:
            if missing_ok:
                return None
            raise StateError(f"vgs reported nothing for volume group '{vg}'")
        return state

    def _status_vg(self) -> VGState | None:
        """The VG for the cheap status verbs (check, sizes, describe): one `vgs` serves all
        three when the controller asks them in a row. Verbs that change anything, refresh
        and change_token always read afresh."""
        now = time.monotonic()
        if self._status is not None and now - self._status[0] < STATUS_TTL:
            return self._status[1]
        state = self._vg_state(missing_ok=True)
        self._status = (now, state)
        return state

    def _require_status_vg(self) -> VGState:
        state = self._status_vg()
        if state is None:
            self._status = None
            return self._require_vg()  # raises the explanation
        return state

    def _change(self, argv: list[str]) -> runner.Completed:
        """An LVM call that changes the VG: the cached status is stale after it."""
        self._status = None
        try:
            return _lvm(argv)
        finally:
            self._status = None

    def _require_vg(self) -> VGState:
        state = self._vg_state()
        assert state is not None
        return state

    def _lvs(self) -> list[LVState]:
        done = _lvm(["lvs", "-a", "--reportformat", "json", "--units", "b", "--nosuffix",
                     "-o", LVS_FIELDS, "--", self.vg])
        return parse_lvs(done.stdout)

    def _missing_message(self, state: VGState) -> str:
        present = {_real(pv.name) for pv in state.pvs if not pv.missing}
        unaccounted = [d for d in self.devices if _real(d) not in present]
        names = []
        for pv in state.missing:
            seen = state.last_seen.get(pv.uuid)
            if seen is None and len(unaccounted) == 1:
                seen = unaccounted[0]
            names.append(f"{seen} (PV UUID {pv.uuid})" if seen else f"PV UUID {pv.uuid}")
        if not names:
            names.append(f"{state.missing_count} physical volume(s)")
        return (f"volume group '{state.name}' of pool '{self.name}' is incomplete: physical "
                f"volume {', '.join(names)} is missing. Reattach that disk; if it is lost for "
                f"good, `vgreduce --removemissing {state.name}` drops it (and the LVs on it)")

    def _require_complete(self, state: VGState) -> None:
        if state.missing_count or state.missing:
            raise StateError(self._missing_message(state))

    # -- pool ----------------------------------------------------------------------------
    def check(self) -> bool:
        """True if the VG exists and is complete; otherwise a StateError that says what is
        wrong (the missing PV by device and UUID), which the controller reports."""
        self._require_complete(self._require_status_vg())
        return True

    def describe(self) -> str | None:
        state = self._status_vg()
        if state is None:
            return f"volume group {self.vg} not found"
        text = (f"VG {state.name}: {len(state.pvs)} PV{'s' if len(state.pvs) != 1 else ''}, "
                f"extent size {size_words(state.extent_size)}, {state.free_count} free "
                f"extent{'s' if state.free_count != 1 else ''}")
        if state.missing_count:
            text += f", {state.missing_count} PV missing"
        return text

    def sizes(self) -> PoolSizes:
        return self._require_status_vg().sizes

    def volume_limits(self) -> str | None:
        """Without device-mapper, LVM changes metadata only where its configuration turns
        activation off (a test lvm.conf); otherwise lvcreate, lvresize and activation fail
        (lvresize after changing the metadata), so they are refused before they run."""
        if blockprobe.device_mapper_available():
            return None
        key, now = lvm_env().get("LVM_SYSTEM_DIR", ""), time.monotonic()
        if key not in _ACTIVATES or now - _ACTIVATES[key][0] > ACTIVATION_TTL:
            done = _lvm(["lvm", "config", "--typeconfig", "full", "global/activation"],
                        check=False)
            _ACTIVATES[key] = (now, activation_enabled(done.stdout))
        return DM_MISSING if _ACTIVATES[key][1] else None

    def _need_dm(self) -> None:
        limit = self.volume_limits()
        if limit:
            raise Unsupported(limit)

    def change_token(self) -> object:
        state = self._require_vg()
        return (state.seqno, state.size, state.free, state.missing_count, len(state.pvs))

    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        state = self._require_vg()
        return state.sizes, volumes_of(state, self._lvs())

    def layout(self) -> list[DeviceLayout]:
        done = _lvm(["pvs", "--segments", "--reportformat", "json", "--units", "b",
                     "--nosuffix", "-o", PVSEG_FIELDS])
        layouts = parse_layout(done.stdout, self.vg)
        if not layouts and self._vg_state(missing_ok=True) is None:
            raise StateError(f"volume group '{self.vg}' does not exist")
        return layouts

    def start(self) -> None:
        self.validate(self.pool)
        state = self._require_vg()
        self._require_complete(state)
        if self.devices:
            ours = {_real(pv.name) for pv in state.pvs}
            if not any(_real(d) in ours for d in self.devices):
                raise StateError(
                    f"volume group '{state.name}' is on "
                    f"{', '.join(pv.name for pv in state.pvs)}, none of which is a device of "
                    f"pool '{self.name}' ({', '.join(self.devices)}); fix <source><device> or "
                    "<source><name>")
        _ACTIVATES.clear()  # read afresh: lvm.conf may have changed since
        if self.volume_limits() is None:  # else nothing can be activated: metadata only
            self._change(["vgchange", "-aly", "--", state.name])

    def stop(self) -> None:
        if self._vg_state(missing_ok=True) is None:
            return  # nothing to deactivate
        self._change(["vgchange", "-aln", "--", self.vg])

    def _pv_owners(self) -> dict[str, str]:
        """realpath of every PV LVM sees -> its VG name ('' for an orphan PV)."""
        done = _lvm(["pvs", "--reportformat", "json", "-o", "pv_name,vg_name"], check=False)
        if done.returncode != 0:
            return {}
        rows = report_rows(done.stdout, "pv")
        return {_real(str(r.get("pv_name", ""))): str(r.get("vg_name", ""))
                for r in rows if str(r.get("pv_name", "")).startswith("/")}

    def existing_content(self) -> list[str]:
        found = []
        try:
            owners = self._pv_owners()
        except PoolkeeperError:
            owners = {}
        for dev in self.pool.source.devices:
            try:
                described = blockprobe.signatures(dev.path)
            except (PoolkeeperError, OSError) as exc:
                described = [f"unknown content ({exc})"]
            vg = owners.get(_real(dev.path))
            for text in described:
                if vg and "LVM2 physical volume" in text:
                    text += f" of volume group '{vg}'"
                found.append(f"{dev.path}: {text}")
        return found

    def build(self, overwrite: bool | None, ctx: JobContext) -> None:
        """pvcreate on every source device, then vgcreate; a failure pvremoves what this
        build made. Nothing is written until every device passed every check."""
        self.validate(self.pool)
        devices = self.devices
        vg = self.vg
        if not devices:
            raise ValidationError(f"pool '{self.name}' names no <source><device>; a logical "
                                  "pool is built from at least one device", "device")
        for dev in devices:
            try:
                mode = os.stat(dev).st_mode
            except OSError as exc:
                raise StateError(f"source device {dev} of pool '{self.name}' cannot be used: "
                                 f"{exc.strerror}") from None
            if not stat.S_ISBLK(mode):
                raise StateError(f"{dev} is not a block device; a logical pool is built on "
                                 "disks or partitions (attach an image with losetup first)")
        if len({_real(d) for d in devices}) != len(devices):
            raise ValidationError("two source devices are the same disk", "device")
        existing = self._vg_state(missing_ok=True)
        if existing is not None:
            raise StateError(
                f"volume group '{vg}' already exists (on "
                f"{', '.join(pv.name for pv in existing.pvs)}); start the pool instead "
                f"(pool-start {self.name}), or delete it first (pool-delete {self.name})")
        with contextlib.ExitStack() as locks:
            for dev in sorted({blockprobe.whole_disk(d) for d in devices}):
                locks.enter_context(blockprobe.disk_lock(dev))
            for dev in devices:
                users = blockprobe.device_users(dev)
                if users:
                    raise InUse(f"{dev} is in use ({'; '.join(users)}); poolkeeper will not "
                                "make it a physical volume, even with --overwrite")
            owners = self._pv_owners()
            to_wipe = []
            for dev in devices:
                found = blockprobe.probe(dev)
                if found.signatures or found.problem:
                    self._refuse_unless_overwrite(dev, found, owners.get(_real(dev)),
                                                  overwrite)
                    to_wipe.append(dev)
            ctx.check()
            created: list[str] = []
            try:
                for dev in devices:
                    ctx.check()
                    if dev in to_wipe:
                        runner.run(["wipefs", "--all", "--", dev], timeout=120)
                    created.append(dev)  # before: a cancel is seen after pvcreate made it
                    self._change(["pvcreate", "--", dev])
                ctx.check()
                with shielded():  # begun, the VG is made: a cancel cannot undo it now
                    self._change(["vgcreate", "--", vg, *devices])
            except BaseException:
                for dev in created:
                    with contextlib.suppress(PoolkeeperError, OSError):
                        self._change(["pvremove", "--", dev])
                raise

    @staticmethod
    def _refuse_unless_overwrite(dev: str, found: blockprobe.Probe, vg: str | None,
                                 overwrite: bool | None) -> None:
        if overwrite:
            return
        if found.signatures:
            what = found.describe()
            if vg:
                what += f" (a physical volume of volume group '{vg}')"
            raise StateError(f"{dev} holds {what}; pass --overwrite to destroy it")
        raise StateError(
            f"cannot tell whether {dev} holds data ({found.problem}); poolkeeper treats that "
            "as in use: pass --overwrite only if you are sure nothing on it is needed")

    def delete(self) -> None:
        """vgremove -f (its LVs go with it) and pvremove of every PV it had; orphan PVs on
        the source devices (left by a failed build) are removed too."""
        self.validate(self.pool)
        state = self._vg_state(missing_ok=True)
        pvs: list[str] = []
        if state is not None:
            if state.missing_count:
                raise StateError(self._missing_message(state) + "; poolkeeper will not remove "
                                 "an incomplete volume group")
            pvs = [pv.name for pv in state.pvs]
            self._change(["vgremove", "-f", "--", state.name])
        owners = self._pv_owners()
        for dev in self.devices:
            if owners.get(_real(dev)) == "" and _real(dev) not in {_real(p) for p in pvs}:
                pvs.append(dev)
        for dev in pvs:
            self._change(["pvremove", "--", dev])

    def stored_volumes(self) -> list[str]:
        """The logical volumes of the inactive pool's group that are volumes (not thin
        pools or LVM's internal LVs, not one a clone left half-made); none if the group
        does not exist. Read from LVM's metadata, nothing is changed."""
        self.validate(self.pool)
        state = self._vg_state(missing_ok=True)
        if state is None:
            return []
        if state.missing_count:  # what delete says first: not even --force removes it
            raise StateError(self._missing_message(state) + "; poolkeeper will not remove "
                             "an incomplete volume group")
        return sorted(lv.name for lv in self._lvs() if lv.is_volume)

    # -- discovery -----------------------------------------------------------------------
    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None) -> list[PoolSource]:
        if host:
            raise ValidationError("logical pool sources are volume groups on local disks: "
                                  "give no host", "host")
        wanted = _real(_check_device_path(device)) if device else None
        done = _lvm(["pvs", "--reportformat", "json", "-o", "pv_name,vg_name"])
        groups: dict[str, list[str]] = {}
        for row in report_rows(done.stdout, "pv"):
            vg, pv = str(row.get("vg_name", "")), str(row.get("pv_name", ""))
            if vg and pv.startswith("/"):
                groups.setdefault(vg, []).append(pv)
        return [PoolSource(name=vg, devices=[SourceDevice(p) for p in pvs], format="lvm2")
                for vg, pvs in sorted(groups.items())
                if wanted is None or wanted in {_real(p) for p in pvs}]

    # -- volumes -------------------------------------------------------------------------
    def _find_lv(self, name: str, lvs: list[LVState] | None = None) -> LVState | None:
        for lv in self._lvs() if lvs is None else lvs:
            if lv.name == name and not lv.hidden:
                return lv
        return None

    def _current(self, vol: VolumeInfo) -> tuple[LVState, list[LVState]]:
        """The LV `vol` describes, as it is now (same name and UUID), and all LVs."""
        lvs = self._lvs()
        lv = self._find_lv(vol.name, lvs)
        if lv is None or not lv.is_volume:
            raise VolumeNotFound(f"logical volume '{vol.name}' is gone from volume group "
                                 f"'{self.vg}'")
        if vol.key and lv.uuid != vol.key:
            raise StateError(f"logical volume '{vol.name}' was replaced since it was listed "
                             f"(UUID {lv.uuid}, not {vol.key}); refresh the pool and retry")
        return lv, lvs

    def create_argv(self, vol: VolumeDef, state: VGState, lvs: list[LVState]) -> list[str]:
        """The lvcreate argv for `vol` (sizes in bytes, rounded up to whole extents)."""
        name = check_lv_name(vol.name)
        vg = state.name
        ext = state.extent_size
        if vol.target.encryption is not None:
            raise Unsupported("poolkeeper does not create encrypted logical volumes; encrypt "
                              "inside the guest or with cryptsetup on the LV")
        if vol.backing is not None:
            return self._snapshot_argv(vol, name, state, lvs)
        capacity = vol.capacity or 0
        if capacity <= 0:
            raise ValidationError("a logical volume cannot be empty (LVM has no 0-byte LVs): "
                                  "give a capacity greater than 0", "capacity")
        size = round_up(capacity, ext)
        if vol.allocation is not None and vol.allocation < capacity:
            pools = sorted(lv.name for lv in lvs if lv.is_thin_pool and not lv.hidden)
            if not pools:  # beside the allocation asked for, in the create dialog
                raise refused(Unsupported(
                    f"volume group '{vg}' has no thin pool, so its logical volumes are fully "
                    f"allocated: leave out the allocation (or make it {capacity} bytes, the "
                    f"capacity), or create a thin pool for sparse volumes "
                    f"(lvcreate --type thin-pool -L SIZE -n NAME {vg})"), "allocation")
            return ["lvcreate", "--yes", "--name", name, "--thin", "-V", f"{size}b", "--",
                    f"{vg}/{pools[0]}"]
        return ["lvcreate", "--yes", "--name", name, "-L", f"{size}b", "--", vg]

    def _snapshot_argv(self, vol: VolumeDef, name: str, state: VGState,
                       lvs: list[LVState]) -> list[str]:
        assert vol.backing is not None
        path = os.path.normpath(vol.backing.path)
        prefix = f"/dev/{state.name}/"
        origin_name = path[len(prefix):] if path.startswith(prefix) else ""
        origin = self._find_lv(origin_name, lvs) if origin_name and "/" not in origin_name \
            else None
        if origin is None or not origin.is_volume:
            raise ValidationError(
                f"the backing store of a logical volume must be an LV of volume group "
                f"'{state.name}' ({prefix}NAME), not '{vol.backing.path}'", "backingStore")
        if origin.is_thick_snapshot:
            raise Unsupported(f"'{origin.name}' is itself a snapshot; LVM cannot snapshot a "
                              "snapshot (snapshot its origin instead)")
        target = f"{state.name}/{origin.name}"
        if origin.is_thin:
            # A thin snapshot shares the thin pool and needs no size of its own.
            return ["lvcreate", "--yes", "-s", "-n", name, "--", target]
        capacity = vol.capacity or origin.size
        cow = min(vol.allocation, capacity) if vol.allocation else capacity
        if cow <= 0:  # as for a thick LV: never an "-L 0b" or a negative size
            raise ValidationError("a snapshot needs a size greater than 0", "capacity")
        return ["lvcreate", "--yes", "-s", "-L", f"{round_up(cow, state.extent_size)}b",
                "-n", name, "--", target]

    def check_new_volume(self, vol: VolumeDef) -> list[str]:
        """Refused as create_volume refuses it (a sparse LV needs a thin pool): its argv."""
        name = check_lv_name(vol.name)
        self._need_dm()
        state = self._require_vg()
        self._require_complete(state)
        lvs = self._lvs()
        existing = next((lv for lv in lvs if lv.name == name), None)
        if existing is not None:
            raise AlreadyExists(
                f"the logical volume '{name}' in volume group '{state.name}' is what a clone "
                f"left half-made and could not remove; remove it with: lvremove "
                f"{state.name}/{name}" if PARTIAL_TAG in existing.tags else
                f"a logical volume named '{name}' already exists in volume group '{state.name}'")
        return self.create_argv(vol, state, lvs)

    def create_volume(self, vol: VolumeDef, ctx: JobContext, *, partial: bool = False) -> None:
        """lvcreate; `partial`: tagged as being filled (see PARTIAL_TAG)."""
        argv, name = self.check_new_volume(vol), vol.name
        if partial:
            end = argv.index("--")
            argv[end:end] = ["--addtag", PARTIAL_TAG]
        ctx.check()
        with shielded():  # lvcreate is never stopped half-way (see runner)...
            self._change(argv)
        try:
            ctx.check()
        except Cancelled:  # ...a cancel that came meanwhile removes the LV it made
            made = self._find_lv(name)
            if made is not None:
                self._remove_made(name, made.uuid)
            raise

    def partial_volumes(self) -> list[str]:
        """LVs a clone is filling, or a killed one left (the controller tells them apart by
        the volume lock a live clone holds)."""
        return [lv.name for lv in self._lvs() if PARTIAL_TAG in lv.tags]

    def remove_partial(self, name: str) -> None:
        lv = next((lv for lv in self._lvs() if lv.name == name), None)
        if lv is not None and PARTIAL_TAG in lv.tags:
            self._remove_made(name, lv.uuid)

    def delete_volume(self, vol: VolumeInfo) -> None:
        self._delete(vol, delete_snapshots=False)

    def delete_volume_with_snapshots(self, vol: VolumeInfo) -> None:
        self._delete(vol, delete_snapshots=True)

    def _delete(self, vol: VolumeInfo, delete_snapshots: bool) -> None:
        """lvremove; an origin of thick snapshots only with them (`delete_snapshots`)."""
        lv, lvs = self._current(vol)
        snapshots = sorted(o.name for o in lvs if o.origin == lv.name and o.is_thick_snapshot)
        if snapshots and not delete_snapshots:
            raise InUse(f"logical volume '{lv.name}' is the origin of snapshot(s) "
                        f"{', '.join(snapshots)}; lvremove would delete them with it, so "
                        "delete them first (or give --delete-snapshots)")
        self._change(["lvremove", "-f", "--", *(f"{self.vg}/{s}" for s in snapshots),
                      f"{self.vg}/{lv.name}"])

    def check_resize(self, vol: VolumeInfo, capacity: int, *, allocate: bool,
                     shrink: bool) -> None:
        self._resized(vol, capacity, allocate, shrink)

    def _resized(self, vol: VolumeInfo, capacity: int, allocate: bool, shrink: bool
                 ) -> tuple[LVState, int]:
        """The LV and its size in whole extents for `capacity`, or refused."""
        self._need_dm()
        lv, _lvs = self._current(vol)
        state = self._require_vg()
        if lv.is_thick_snapshot:
            raise Unsupported(f"'{lv.name}' is a snapshot: its size is its origin's "
                              f"('{lv.origin}'); resize the origin instead")
        if allocate and lv.is_thin:
            raise refused(Unsupported(f"'{lv.name}' is a thin volume: it takes space as it is "
                                      "written and cannot be allocated in advance"), "allocation")
        new = round_up(capacity, state.extent_size)
        if new < lv.size and not shrink:
            raise ValidationError(
                f"resizing '{lv.name}' from {human(lv.size)} to {human(new)} would discard the "
                "data at its end; pass --shrink if that is what you want")
        return lv, new

    def resize_volume(self, vol: VolumeInfo, capacity: int, *, allocate: bool, shrink: bool,
                      ctx: JobContext) -> None:
        lv, new = self._resized(vol, capacity, allocate, shrink)
        if new == lv.size:
            return  # already that size (after rounding to whole extents)
        argv = ["lvresize"]
        if new < lv.size:
            argv += ["--yes", "-f"]  # the confirmation LVM would ask for; --shrink said yes
        ctx.check()
        with shielded():  # begun, the resize is made: a cancel during it ends the job done
            self._change([*argv, "-L", f"{new}b", "--", f"{self.vg}/{lv.name}"])

    # -- bytes through the LV device ---------------------------------------------------------
    def _open_lv(self, name: str, key: str, flags: int) -> int:
        """An fd on the LV's device node: /dev/VG/LV resolved to the node it links to (in
        /dev or /dev/mapper), opened there with fileops.open_volume (never through a link),
        and accepted only if it is a block device whose device-mapper UUID is the LV's."""
        name = check_lv_name(name)
        self._need_dm()
        link = os.path.join(DEV_DIR, self.vg, name)
        try:
            node = os.path.realpath(link, strict=True)
        except OSError:
            raise StateError(f"LV device {link} does not exist (not active?); start the pool "
                             f"(pool-start {self.name}) or activate it "
                             f"(lvchange -ay {self.vg}/{name})") from None
        allowed = {os.path.realpath(DEV_DIR), os.path.realpath(os.path.join(DEV_DIR, "mapper"))}
        node_dir = os.path.dirname(node)
        if node_dir not in allowed:
            raise UnsafePath(f"{link} leads to {node}, not to a device node in {DEV_DIR}; "
                             "poolkeeper will not open it")
        dir_fd = os.open(node_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fd = fileops.open_volume(dir_fd, os.path.basename(node), flags)
        finally:
            os.close(dir_fd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISBLK(st.st_mode):
                raise UnsafePath(f"{link} is not a block device; poolkeeper will not use it")
            self._check_dm_uuid(link, st, key)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _check_dm_uuid(link: str, st: os.stat_result, key: str) -> None:
        uuid_file = os.path.join(SYS_DEV_BLOCK, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}",
                                 "dm", "uuid")
        try:
            with open(uuid_file, encoding="ascii", errors="replace") as fh:
                dm_uuid = fh.read().strip()
        except OSError:
            dm_uuid = ""
        want = key.replace("-", "")
        # LVM names its device-mapper devices "LVM-<VG uuid><LV uuid>" (32 + 32 characters);
        # sub-devices (-real, -cow, -tpool) carry a suffix and are refused.
        if not (want and dm_uuid.startswith("LVM-") and len(dm_uuid) == 4 + 64
                and dm_uuid.endswith(want)):
            raise UnsafePath(f"{link} is not the device of logical volume UUID {key} "
                             f"(device-mapper UUID {dm_uuid or 'unknown'}); refresh the pool "
                             "and retry")

    def open_volume_read(self, vol: VolumeInfo) -> int:
        return self._open_lv(vol.name, vol.key, os.O_RDONLY)

    def wipe_volume(self, vol: VolumeInfo, algorithm: str, ctx: JobContext) -> None:
        self._need_dm()
        lv, _lvs = self._current(vol)
        if lv.is_thick_snapshot:
            raise Unsupported(f"'{lv.name}' is a snapshot: wiping it would fill its "
                              "copy-on-write space and invalidate it; delete it instead")
        super().wipe_volume(replace(vol, name=lv.name, key=lv.uuid), algorithm, ctx)

    def open_volume_write(self, vol: VolumeInfo) -> int:
        return self._open_lv(vol.name, vol.key, os.O_RDWR)

    def clone_target(self, src: VolumeInfo, vol: VolumeDef) -> VolumeDef:
        name = check_lv_name(vol.name)
        self._need_dm()
        if src.format != "raw":
            raise Unsupported(f"'{src.name}' is a {src.format} image; only raw volumes can be "
                              "cloned into a logical pool (convert it to raw first)")
        capacity = max(vol.capacity or 0, src.capacity)
        allocation = vol.allocation if vol.allocation is not None and \
            vol.allocation < capacity else None
        return VolumeDef(name=name, capacity=capacity, allocation=allocation)

    def clone_volume(self, src: VolumeInfo, src_driver: PoolDriver, vol: VolumeDef,
                     ctx: JobContext) -> str:
        """A new LV (thick, or thin where a sparse one is asked for and a thin pool exists)
        filled with a streamed copy of `src`; removed again on failure or cancel."""
        new = self.clone_target(src, vol)
        name = new.name
        src_fd = src_driver.open_volume_read(src)
        try:
            self.create_volume(new, ctx, partial=True)
            made: LVState | None = None
            try:
                lv = made = self._find_lv(name)
                if lv is None:
                    raise StateError(f"lvcreate made no logical volume '{name}'")
                dst_fd = self._open_lv(name, lv.uuid, os.O_WRONLY)
                try:
                    method = fileops.clone_fd(src_fd, dst_fd, src.capacity, sparse=False,
                                              ctx=ctx)
                    if not lv.is_thin:  # a fresh thin LV reads as zeros; a thick one may not
                        self._zero_tail(dst_fd, src.capacity, ctx)
                finally:
                    os.close(dst_fd)
                self._change(["lvchange", "--deltag", PARTIAL_TAG, "--", f"{self.vg}/{name}"])
            except BaseException:
                self._remove_made(name, made.uuid if made is not None else None)
                raise
        finally:
            os.close(src_fd)
        return method

    def _zero_tail(self, fd: int, start: int, ctx: JobContext) -> None:
        """Zero the bytes past the copy: a new thick LV holds whatever a deleted LV left."""
        end = os.lseek(fd, 0, os.SEEK_END)
        pos = start
        while pos < end:
            n = min(len(_ZERO_CHUNK), end - pos)
            written = os.pwrite(fd, _ZERO_CHUNK[:n], pos)
            pos += written
            ctx.check()
        os.fsync(fd)

    def _remove_made(self, name: str, uuid: str | None) -> None:
        """Remove the LV a failed clone made (only if it is still that LV)."""
        with contextlib.suppress(PoolkeeperError, OSError):
            lv = self._find_lv(name)
            if lv is not None and (uuid is None or lv.uuid == uuid):
                self._change(["lvremove", "-f", "--", f"{self.vg}/{name}"])
