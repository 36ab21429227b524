"""A StorageController stand-in with fixed data, for deterministic TUI snapshots.

It implements exactly the controller members the TUI calls, backends.api.Controller (a unit
test, tests/unit/test_controller_api.py, holds their signatures to the protocol's):
the read side returns the same pools, volumes, sizes and XML every time; the verbs record
the call and return a job that never runs. Tests publish controller events (JobProgress,
JobFinished, CommandRun, ...) with `publish`, which goes through the same bridge the real
controller's EventBus feeds.

Pools (3 pools of 2 types):
    default  dir      running  85 % used (warning), 6 volumes, overcommitted
    backups  dir      inactive
    vg0      logical  running  30 % used, 2 volumes
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from backends import xmlio
from backends.drivers import features, pool_types
from backends.errors import PoolkeeperError, PoolNotFound, VolumeNotFound
from backends.events import Event, EventBus
from backends.jobs import Job, JobManager
from backends.model import (
    BackingStore,
    DeviceLayout,
    FreeExtent,
    Permissions,
    PoolDef,
    PoolFeatures,
    PoolSource,
    PoolStatus,
    PoolTarget,
    SourceDevice,
    VolumeDef,
    VolumeInfo,
)
from backends.reports import volume_def_from_info
from backends.runner import Completed
from backends.secret_defs import SecretDef
from backends.volume_requests import Refusal

MiB = 1 << 20
GiB = 1 << 30
IMAGES = "/var/lib/poolkeeper/images"
BACKUPS = "/srv/backups"

# What each pool type is and can do: the drivers' own declarations (the stub stands in
# for a host's controller, not for the pool types).
FEATURES = {pool_type: features(pool_type) for pool_type in pool_types()}

DEFINITIONS = {
    "default": PoolDef(type="dir", name="default",
                       uuid="6f1c7d52-3e0b-4b8e-9a51-2f7d0c1e9a01",
                       target=PoolTarget(path=IMAGES, permissions=Permissions(0o711, 0, 0))),
    "backups": PoolDef(type="dir", name="backups",
                       uuid="0b9e44a1-5c2d-4f63-8e7a-7d3b1a6c2e02",
                       target=PoolTarget(path=BACKUPS)),
    "vg0": PoolDef(type="logical", name="vg0", uuid="c3a8f0d9-1b7e-4a2c-b6d5-9e8f7a6b5c03",
                   source=PoolSource(devices=[SourceDevice("/dev/sdb")], name="vg0",
                                     format="lvm2"),
                   target=PoolTarget(path="/dev/vg0")),
}

POOLS = [
    PoolStatus(name="default", type="dir", uuid=DEFINITIONS["default"].uuid or "",
               state="running", autostart=True, persistent=True, capacity=100 * GiB,
               allocation=85 * GiB, available=15 * GiB, target=IMAGES, source="",
               features=FEATURES["dir"]),
    PoolStatus(name="backups", type="dir", uuid=DEFINITIONS["backups"].uuid or "",
               state="inactive", autostart=False, persistent=True, target=BACKUPS,
               source="", features=FEATURES["dir"]),
    PoolStatus(name="vg0", type="logical", uuid=DEFINITIONS["vg0"].uuid or "",
               state="running", autostart=True, persistent=True, capacity=500 * GiB,
               allocation=150 * GiB, available=350 * GiB, target="/dev/vg0",
               source="/dev/sdb vg0", features=FEATURES["logical"]),
]


def _vol(pool_dir: str, name: str, capacity: int, allocation: int, fmt: str = "raw",
         backing: str | None = None, vtype: str = "file") -> VolumeInfo:
    path = f"{pool_dir}/{name}"
    return VolumeInfo(
        name=name, key=path, path=path, type=vtype, format=fmt, format_recorded=True,
        capacity=capacity, allocation=allocation, physical=allocation,
        backing=BackingStore(path=f"{pool_dir}/{backing}", format="qcow2") if backing else None,
        permissions=Permissions(0o600, 0, 0),
    )


VOLUMES = {
    "default": [
        _vol(IMAGES, "base.qcow2", 20 * GiB, 3 * GiB + 200 * MiB, "qcow2"),
        _vol(IMAGES, "web01.qcow2", 20 * GiB, 1 * GiB + 100 * MiB, "qcow2",
             backing="base.qcow2"),
        _vol(IMAGES, "web01-snap.qcow2", 20 * GiB, 256 * MiB, "qcow2", backing="web01.qcow2"),
        _vol(IMAGES, "db01.img", 60 * GiB, 60 * GiB),
        _vol(IMAGES, "debian-12.7.0-amd64-netinst.iso", 631 * MiB, 631 * MiB, "iso"),
        _vol(IMAGES, "scratch.img", 40 * GiB, 0),
    ],
    "backups": [],
    "vg0": [
        _vol("/dev/vg0", "lv-web02", 100 * GiB, 100 * GiB, vtype="block"),
        _vol("/dev/vg0", "lv-db02", 50 * GiB, 50 * GiB, vtype="block"),
    ],
}

USERS = {"default": {"db01.img": "qemu-system-x86 (pid 4242)"}, "backups": {}, "vg0": {}}

SOURCES_XML = """<sources>
  <source>
    <host name='192.0.2.20'/>
    <dir path='/export/iso'/>
    <format type='nfs'/>
  </source>
</sources>
"""


class FrozenJob(Job):
    """A real Job whose progress, rate and ETA the test sets (no clock involved)."""

    def __init__(self, kind: str, description: str, pool: str | None, volume: str | None,
                 bus: EventBus, *, state: str = "running", done: int = 0, total: int = 0,
                 rate: float = 0.0, eta: float | None = None,
                 error: BaseException | None = None) -> None:
        super().__init__(kind, description, pool, volume, bus)
        self.state, self.done, self.total, self.error = state, done, total, error
        self._rate, self._eta = rate, eta
        if state in ("done", "failed", "cancelled"):
            self._finished.set()

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def eta(self) -> float | None:
        return self._eta


def command(shown: list[str], returncode: int | None = 0, duration: float = 0.05,
            stderr: str = "") -> Completed:
    return Completed(argv=list(shown), shown=list(shown), returncode=returncode, stdout="",
                     stderr=stderr, duration=duration)


class StubController:
    """The controller surface the TUI uses, with the fixed data above."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.jobs = JobManager(self.bus)  # stays empty: the stub's jobs never run
        self.pools = {p.name: replace(p) for p in POOLS}
        self.volumes = {name: list(vols) for name, vols in VOLUMES.items()}
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.monitoring: float | None = None
        self.held: dict[str, list[str] | None] = {}  # stored_volumes per pool (default [])
        self.secrets: list[tuple[SecretDef, bool]] = []  # defined secrets, has a value

    # -- events ------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def job(self, description: str, **kwargs: Any) -> FrozenJob:
        kind = kwargs.pop("kind", "wipe")
        return FrozenJob(kind, description, kwargs.pop("pool", "default"),
                         kwargs.pop("volume", None), self.bus, **kwargs)

    def startup_problems(self) -> list[str]:
        return []

    def start_monitor(self, interval: float = 3.0) -> None:
        self.monitoring = interval

    def stop_monitor(self) -> None:
        self.monitoring = None

    def close(self) -> None:
        self.stop_monitor()

    # -- reading -----------------------------------------------------------------------
    def _status(self, name: str) -> PoolStatus:
        try:
            return self.pools[name]
        except KeyError:
            raise PoolNotFound(f"no pool named '{name}'") from None

    def list_pools(self) -> list[PoolStatus]:
        return [replace(p) for p in self.pools.values()]

    def pool_info(self, name: str) -> PoolStatus:
        return replace(self._status(name))

    def pool_types(self) -> dict[str, PoolFeatures]:
        return dict(FEATURES)

    def pool_features(self, pool_type: str) -> PoolFeatures:
        try:
            return FEATURES[pool_type]
        except KeyError:
            raise PoolkeeperError(f"'{pool_type}' pools are not supported") from None

    def list_volumes(self, pool: str) -> list[VolumeInfo]:
        self._status(pool)
        return list(self.volumes[pool])

    def cached_volumes(self, pool: str, names: Iterable[str] | None = None
                       ) -> list[VolumeInfo]:
        volumes = self.volumes.get(pool, [])
        if names is None:
            return list(volumes)
        by_name = {v.name: v for v in volumes}
        return [by_name[n] for n in names if n in by_name]

    def probe_first(self, pool: str, names: Iterable[str]) -> None:
        pass  # every stub volume is read whole

    def volume_users(self, pool: str) -> dict[str, str]:
        self._status(pool)
        return dict(USERS.get(pool, {}))

    def pool_xml(self, name: str, inactive: bool = False) -> str:
        status = self._status(name)
        pdef = DEFINITIONS[name]
        if status.active and not inactive:
            pdef = replace(pdef, capacity=status.capacity, allocation=status.allocation,
                           available=status.available)
        return xmlio.format_pool(pdef)

    def volume_xml(self, pool: str, name: str) -> str:
        for volume in self.volumes.get(pool, []):
            if volume.name == name:
                return xmlio.format_volume(volume_def_from_info(volume))
        raise VolumeNotFound(f"no volume named '{name}' in pool '{pool}'")

    def find_pool_sources(self, pool_type: str, host: str | None = None,
                          device: str | None = None) -> str:
        return SOURCES_XML

    # -- verbs: recorded, never run ----------------------------------------------------
    def _record(self, verb: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((verb, args, kwargs))

    def _recorded_job(self, verb: str, *args: Any, **kwargs: Any) -> FrozenJob:
        self._record(verb, *args, **kwargs)
        return self.job(f"{verb} {' '.join(map(str, args))}", kind=verb)

    def define_pool(self, xml: str | bytes) -> PoolStatus:
        self._record("define_pool", xml)
        return replace(POOLS[0])

    def define_pool_def(self, pdef: PoolDef) -> PoolStatus:
        self._record("define_pool_def", pdef)
        return PoolStatus(name=pdef.name, type=pdef.type, uuid="", state="inactive",
                          autostart=False, persistent=True, target=pdef.target.path,
                          features=FEATURES[pdef.type])

    def check_pool_def(self, pdef: PoolDef, new: bool = True) -> Refusal | None:
        """Nothing is refused but a name that a listed pool has (snapshots show forms)."""
        if new and pdef.name in DEFINITIONS:
            return Refusal("name", f"a pool named '{pdef.name}' already exists")
        return None

    def check_volume_def(self, pool: str, vdef: VolumeDef) -> Refusal | None:
        return None

    def check_clone(self, pool: str, source: str, new_name: str, *,
                    target_pool: str | None = None, xml: str | bytes | None = None
                    ) -> Refusal | None:
        return None

    def check_resize(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                     shrink: bool = False, allocate: bool = False) -> Refusal | None:
        return None

    def volume_name_for(self, pool: str, vdef: VolumeDef) -> str | None:
        return None

    def pool_def(self, name: str) -> PoolDef:
        self._status(name)
        return DEFINITIONS[name]

    def has_secret(self, usage: str) -> bool:
        return False

    def set_secret(self, usage: str, value: str | bytes) -> None:
        self._record("set_secret", usage)  # (never the value)

    def list_secrets(self) -> list[tuple[SecretDef, bool]]:
        return list(self.secrets)

    def pool_layout(self, name: str) -> list[DeviceLayout]:
        """vg0's two PVs, to scale (the other pools have no extents)."""
        self._status(name)
        if name != "vg0":
            return []
        gib = 1 << 30
        return [
            DeviceLayout("/dev/loop8", 10 * gib, used=[(4 << 20, 6 * gib, "lv-data")],
                         free=[FreeExtent(6 * gib, 10 * gib)]),
            DeviceLayout("/dev/loop9", 10 * gib, used=[(4 << 20, 2 * gib, "lv-swap")],
                         free=[FreeExtent(2 * gib, 10 * gib)]),
        ]

    def block_devices(self) -> list[tuple[str, int, str]]:
        return [("/dev/sdb", 500 * GiB, "LVM2_member (vg0)")]

    def build_warning(self, name: str) -> str | None:
        self._status(name)
        return None

    def build_pool(self, name: str, overwrite: bool | None = None) -> Job:
        return self._recorded_job("build_pool", name, overwrite=overwrite)

    def start_pool(self, name: str) -> PoolStatus:
        self._record("start_pool", name)
        return self.pool_info(name)

    def stop_pool(self, name: str) -> None:
        self._record("stop_pool", name)

    def set_autostart(self, name: str, enabled: bool = True) -> None:
        self._record("set_autostart", name, enabled)

    def delete_pool(self, name: str, force: bool = False,
                    expected: Sequence[str] | None = None) -> None:
        self._record("delete_pool", name, force=force, expected=expected)

    def stored_volumes(self, name: str) -> list[str] | None:
        self._status(name)
        return self.held.get(name, [])

    def undefine_pool(self, name: str) -> None:
        self._record("undefine_pool", name)

    def create_volume_def(self, pool: str, vdef: VolumeDef) -> Job:
        return self._recorded_job("create_volume_def", pool, vdef.name)

    def clone_volume(self, pool: str, source: str, new_name: str, *,
                     target_pool: str | None = None, xml: str | bytes | None = None) -> Job:
        return self._recorded_job("clone_volume", pool, source, new_name,
                                  target_pool=target_pool, xml=xml)

    def delete_volume(self, pool: str, name: str) -> None:
        self._record("delete_volume", pool, name)

    def wipe_volume(self, pool: str, name: str, algorithm: str = "zero") -> Job:
        return self._recorded_job("wipe_volume", pool, name, algorithm)

    def resize_volume(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                      shrink: bool = False, allocate: bool = False) -> Job:
        return self._recorded_job("resize_volume", pool, name, capacity, delta=delta,
                                  shrink=shrink, allocate=allocate)

    def upload_volume(self, pool: str, name: str, src_path: str, *, offset: int = 0,
                      length: int | None = None) -> Job:
        return self._recorded_job("upload_volume", pool, name, src_path, offset=offset,
                                  length=length)

    def download_volume(self, pool: str, name: str, dst_path: str, *, offset: int = 0,
                        length: int | None = None, sparse: bool = False) -> Job:
        return self._recorded_job("download_volume", pool, name, dst_path, offset=offset,
                                  length=length, sparse=sparse)
