"""The controller surface a front end depends on: the `Controller` protocol.

The TUI is written against this protocol, not against StorageController (the native engine
in backends.controller), so another implementation can stand behind the same screens. It
holds exactly the members the TUI uses, with StorageController's signatures; a test checks
that StorageController and the TUI tests' stub controller provide each one with the same
parameters, and that the TUI reaches the controller through no other member.

The contract beside the signatures, as StorageController keeps it:
- Read calls and verbs may do I/O and block: the TUI calls them from worker threads only.
  `cached_volumes` is the exception, memory only and safe on the UI thread.
- Failures raise PoolkeeperError (backends.errors), whose text is shown to the user as is.
- Verbs that take long return a Job at once (backends.jobs) and run it in the background;
  its progress and end, and every change to pools and volumes, reach `subscribe`rs as events
  (backends.events), from any thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from .events import Subscriber
from .jobs import Job, JobManager
from .model import DeviceLayout, PoolDef, PoolFeatures, PoolStatus, VolumeDef, VolumeInfo
from .secret_defs import SecretDef
from .volume_requests import Refusal


class Controller(Protocol):
    """Pools, volumes and jobs, as the TUI uses them."""

    # == lifetime and events ===========================================================
    @property
    def jobs(self) -> JobManager:
        """The jobs, running and finished."""
        ...

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Call `fn` with every event from now on; returns the unsubscribe."""
        ...

    def start_monitor(self, interval: float = ...) -> None:
        """Watch the active pools for outside changes every `interval` seconds (events)."""
        ...

    def close(self) -> None:
        """Stop the monitor, cancel the running jobs and wait for them to clean up."""
        ...

    def startup_problems(self) -> list[str]:
        """What failed as the controller started (an autostart), in words (memory only)."""
        ...

    # == reading =======================================================================
    def list_pools(self) -> list[PoolStatus]: ...

    def pool_info(self, name: str) -> PoolStatus: ...

    def pool_def(self, name: str) -> PoolDef: ...

    def pool_xml(self, name: str, inactive: bool = False) -> str: ...

    def pool_features(self, pool_type: str) -> PoolFeatures: ...

    def pool_types(self) -> dict[str, PoolFeatures]:
        """Every pool type this host can define, in display order (the define form)."""
        ...

    def pool_layout(self, name: str) -> list[DeviceLayout]:
        """Partitions/segments and free extents of each device, for the extent bar."""
        ...

    def list_volumes(self, pool: str) -> list[VolumeInfo]:
        """A fresh listing (refreshes the pool)."""
        ...

    def cached_volumes(self, pool: str, names: Iterable[str] | None = None
                       ) -> list[VolumeInfo]:
        """Volumes as of the last refresh (memory only: safe on a UI thread); some may be
        pending (VolumeInfo.pending: their headers are being read)."""
        ...

    def probe_first(self, pool: str, names: Iterable[str]) -> None:
        """Read these pending volumes' headers before the others (memory only)."""
        ...

    def volume_xml(self, pool: str, name: str) -> str: ...

    def volume_users(self, pool: str) -> dict[str, str]:
        """name -> 'process (pid N), ...' for the pool's volumes that processes hold open."""
        ...

    def block_devices(self) -> list[tuple[str, int, str]]:
        """Every disk, partition and loop device: (path, size, what is on it in words)."""
        ...

    def find_pool_sources(self, pool_type: str, host: str | None = None,
                          device: str | None = None) -> str: ...

    def build_warning(self, name: str) -> str | None:
        """What building the pool would destroy, in words (None: nothing found)."""
        ...

    def stored_volumes(self, name: str) -> list[str] | None:
        """What an inactive pool's storage still holds, for deleting it to name first."""
        ...

    # == checks before a form closes (what the verb would refuse, nothing changed) ======
    def check_pool_def(self, pdef: PoolDef, new: bool = True) -> Refusal | None:
        """What define_pool_def would refuse (`new`: a pool of that name too)."""
        ...

    def check_volume_def(self, pool: str, vdef: VolumeDef) -> Refusal | None:
        """What create_volume_def would refuse before its job starts."""
        ...

    def check_clone(self, pool: str, source: str, new_name: str, *,
                    target_pool: str | None = None, xml: str | bytes | None = None
                    ) -> Refusal | None:
        """What clone_volume would refuse before its job starts."""
        ...

    def check_resize(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                     shrink: bool = False, allocate: bool = False) -> Refusal | None:
        """What resize_volume would refuse before its job starts, or at its start."""
        ...

    def volume_name_for(self, pool: str, vdef: VolumeDef) -> str | None:
        """The name the storage requires for `vdef` (a partition's), or None."""
        ...

    # == pool verbs ====================================================================
    def define_pool(self, xml: str | bytes) -> PoolStatus: ...

    def define_pool_def(self, pdef: PoolDef) -> PoolStatus: ...

    def undefine_pool(self, name: str) -> None: ...

    def build_pool(self, name: str, overwrite: bool | None = None) -> Job: ...

    def start_pool(self, name: str) -> PoolStatus: ...

    def stop_pool(self, name: str) -> None: ...

    def delete_pool(self, name: str, force: bool = False,
                    expected: Sequence[str] | None = None) -> None:
        """Destroy the pool's storage. `expected`: the volumes the caller showed before
        asking (stored_volumes); if the storage holds others by then, nothing is erased."""
        ...

    def set_autostart(self, name: str, enabled: bool = True) -> None: ...

    # == volume verbs ==================================================================
    def create_volume_def(self, pool: str, vdef: VolumeDef) -> Job: ...

    def clone_volume(self, pool: str, source: str, new_name: str, *,
                     target_pool: str | None = None, xml: str | bytes | None = None) -> Job: ...

    def delete_volume(self, pool: str, name: str) -> None: ...

    def wipe_volume(self, pool: str, name: str, algorithm: str = "zero") -> Job: ...

    def resize_volume(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                      shrink: bool = False, allocate: bool = False) -> Job: ...

    def upload_volume(self, pool: str, name: str, src_path: str, *, offset: int = 0,
                      length: int | None = None) -> Job: ...

    def download_volume(self, pool: str, name: str, dst_path: str, *, offset: int = 0,
                        length: int | None = None, sparse: bool = False) -> Job: ...

    # == secrets =======================================================================
    def has_secret(self, usage: str) -> bool: ...

    def set_secret(self, usage: str, value: str | bytes) -> None:
        """Store the value of the secret a pool names (never logged)."""
        ...

    def list_secrets(self) -> list[tuple[SecretDef, bool]]:
        """The defined secrets, each with whether it has a value (never the value)."""
        ...
