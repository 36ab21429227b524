"""The contract every pool type implements, split as libvirt's storage backends are:
check / build / start / refresh / stop / delete for the pool, and the volume verbs.

A driver is made for one pool definition and is otherwise stateless: what must survive
a restart (a loop device attached at start, ...) goes in `extras`, which the controller
persists in the run state. Drivers never take locks or publish events; the controller does.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, NamedTuple

from ..errors import Unsupported
from ..model import (
    WIPE_ALGORITHMS,
    DeviceLayout,
    PoolDef,
    PoolSizes,
    PoolSource,
    VolumeDef,
    VolumeInfo,
)
from ..progress import JobContext


class SpaceToken(NamedTuple):
    """A change token in two parts: `listing` changes when volumes were added, removed or
    renamed; `space` when only the free space of the storage changed, which any process
    writing anywhere on the same filesystem does, several times a second."""

    listing: object
    space: object


class PoolDriver:
    type: ClassVar[str] = ""
    volume_formats: ClassVar[tuple[str, ...]] = ()
    creatable_formats: ClassVar[tuple[str, ...]] = ()
    default_volume_format: ClassVar[str | None] = None
    can_create_volumes: ClassVar[bool] = False  # False: pre-allocated volumes only (iSCSI)
    can_delete_volumes: ClassVar[bool] = False
    can_resize_volumes: ClassVar[bool] = False
    can_build: ClassVar[bool] = False
    wipe_algorithms: ClassVar[tuple[str, ...]] = WIPE_ALGORITHMS

    def __init__(self, pool: PoolDef, extras: dict | None = None, *,
                 config_dir: Path | None = None, runtime_dir: Path | None = None) -> None:
        self.pool = pool
        self.extras: dict = extras if extras is not None else {}
        # The state root's config dir (secrets live under it); None in bare unit tests.
        self.config_dir = config_dir
        # Its runtime dir (claims on the loop devices a driver attaches); None likewise.
        self.runtime_dir = runtime_dir

    @property
    def name(self) -> str:
        return self.pool.name

    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        """Type-specific checks of a definition, without touching the system (called at
        define time, so a bad definition is refused before it is stored)."""

    # -- pool --------------------------------------------------------------------------
    def check(self) -> bool:
        """Is the pool's storage usable right now (for an active pool: still there)?"""
        raise NotImplementedError

    def build(self, overwrite: bool | None, ctx: JobContext) -> None:
        raise Unsupported(f"pool type '{self.type}' has nothing to build")

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def delete(self) -> None:
        raise Unsupported(f"pool type '{self.type}' cannot delete its storage")

    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        raise NotImplementedError

    def sizes(self) -> PoolSizes:
        """Pool capacity/allocation/available only (cheap; the live monitor calls it)."""
        raise NotImplementedError

    def change_token(self) -> object:
        """Cheap value that changes when the volume list or sizes may have changed (a
        SpaceToken when a change of free space alone is told apart: see
        StorageController.poll)."""
        return self.sizes()

    def volume_path(self, name: str) -> str:
        raise NotImplementedError

    def describe(self) -> str | None:
        """The pool's runtime state in words for the header (cheap; None: nothing to say)."""
        return None

    def layout(self) -> list[DeviceLayout]:
        """Devices with used and free extents (disk and logical pools); [] otherwise."""
        return []

    def existing_content(self) -> list[str]:
        """What a build would destroy ("an ext4 filesystem (label 'x')"), for the warning."""
        return []

    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None) -> list[PoolSource]:
        raise Unsupported(f"pool type '{cls.type}' cannot discover sources")

    # -- volumes -----------------------------------------------------------------------
    def create_volume(self, vol: VolumeDef, ctx: JobContext) -> None:
        raise Unsupported(f"volumes cannot be created in a '{self.type}' pool")

    def clone_volume(self, src: VolumeInfo, src_driver: PoolDriver, vol: VolumeDef,
                     ctx: JobContext) -> str:
        raise Unsupported(f"volumes cannot be cloned into a '{self.type}' pool")

    def delete_volume(self, vol: VolumeInfo) -> None:
        raise Unsupported(f"volumes cannot be deleted from a '{self.type}' pool")

    def wipe_volume(self, vol: VolumeInfo, algorithm: str, ctx: JobContext) -> None:
        raise Unsupported(f"volumes of a '{self.type}' pool cannot be wiped")

    def resize_volume(self, vol: VolumeInfo, capacity: int, *, allocate: bool, shrink: bool,
                      ctx: JobContext) -> None:
        raise Unsupported(f"volumes of a '{self.type}' pool cannot be resized")

    def upload_volume(self, vol: VolumeInfo, src_path: str, offset: int, length: int | None,
                      ctx: JobContext) -> int:
        raise Unsupported(f"cannot upload to volumes of a '{self.type}' pool")

    def download_volume(self, vol: VolumeInfo, dst_path: str, offset: int, length: int | None,
                        sparse: bool, ctx: JobContext) -> int:
        raise Unsupported(f"cannot download volumes of a '{self.type}' pool")

    def open_volume_read(self, vol: VolumeInfo) -> int:
        """A read-only fd on the volume's bytes (clone source across pools)."""
        raise Unsupported(f"cannot read volumes of a '{self.type}' pool")
