"""The contract every pool type implements, split as libvirt's storage backends are:
check / build / start / refresh / stop / delete for the pool, and the volume verbs.

A driver is made for one pool definition and is otherwise stateless: what must survive
a restart (a loop device attached at start, ...) goes in `extras`, which the controller
persists in the run state. Drivers never take locks or publish events; the controller does.

The driver class is also the one home of its pool type's facts: which <source> parts it
takes, its formats, what build and delete do in words, its define-form fields, the tools
it runs and their Debian packages. They are class attributes here (with defaults) and
reach everyone else as one PoolFeatures value (`features()`); the XML checks, the
controller and the TUI read that instead of naming pool types. Every hook the controller
calls is declared below with a default, so a driver overrides only what its type does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import ClassVar, NamedTuple, TypeVar

from .. import blockprobe, runner
from ..errors import PoolkeeperError, Unsupported
from ..model import (
    WIPE_ALGORITHMS,
    DeviceLayout,
    PoolDef,
    PoolFeatures,
    PoolSizes,
    PoolSource,
    SourceRule,
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


class Claim(NamedTuple):
    """Something a pool definition takes for itself, that no other pool may take too
    (libvirt's duplicate-source rule): pools whose claims share a (kind, key) conflict."""

    kind: str  # "directory", "device", "iscsi target", "export", "volume group"
    key: object  # compared between pools: a device number, an inode, a normalised name
    words: str  # how the refusal names it: "source device '/dev/sdb'"


def device_claims(pool: PoolDef) -> list[Claim]:
    """Each source device, by every name it has (/dev/disk/by-id/X and /dev/sdb are the
    same disk; so are two nodes of one device)."""
    return [Claim("device", key, f"source device '{dev.path}'")
            for dev in pool.source.devices for key in blockprobe.device_keys(dev.path)]


# The part of a definition each kind of claim comes from (a refusal names it: the define
# dialog shows the error beside that field).
CLAIM_ELEMENTS = {"directory": "path", "device": "device", "iscsi target": "device",
                  "export": "dir", "volume group": "name"}


def conflicting_claim(a: PoolDef, b: PoolDef) -> Claim | None:
    """What two pool definitions both claim (as `b` claims it), or None."""
    from . import driver_class  # the registry imports this module

    taken = {(c.kind, c.key) for c in driver_class(a.type).source_claims(a)}
    for claim in driver_class(b.type).source_claims(b):
        if (claim.kind, claim.key) in taken:
            return claim
    return None


def source_conflict(a: PoolDef, b: PoolDef) -> str | None:
    """What two pool definitions both claim (named as `b` names it), or None."""
    claim = conflicting_claim(a, b)
    return claim.words if claim is not None else None


E = TypeVar("E", bound=PoolkeeperError)


def refused(exc: E, element: str) -> E:
    """`exc`, naming the part of the request it refuses, as ValidationError does (its
    `element`): a dialog shows the message beside that field (volume_requests.refusal)."""
    exc.element = element  # type: ignore[attr-defined]
    return exc


class PoolDriver:
    type: ClassVar[str] = ""
    volume_formats: ClassVar[tuple[str, ...]] = ()  # (): volumes have no format of their own
    creatable_formats: ClassVar[tuple[str, ...]] = ()
    default_volume_format: ClassVar[str | None] = None
    can_create_volumes: ClassVar[bool] = False  # False: pre-allocated volumes only (iSCSI)
    can_delete_volumes: ClassVar[bool] = False
    can_resize_volumes: ClassVar[bool] = False
    can_build: ClassVar[bool] = False
    wipe_algorithms: ClassVar[tuple[str, ...]] = WIPE_ALGORITHMS
    # -- the type's facts (read through features(); see PoolFeatures for each) --------
    article: ClassVar[str] = "a"
    pool_formats: ClassVar[tuple[str, ...]] = ()
    default_pool_format: ClassVar[str | None] = None
    source_rule: ClassVar[SourceRule] = SourceRule()
    volumes_are_files: ClassVar[bool] = False
    deletes_snapshots: ClassVar[bool] = False  # delete_volume_with_snapshots
    volume_urls: ClassVar[bool] = False
    volumes_are_devices: ClassVar[bool] = False
    volume_permissions: ClassVar[bool] = True
    volumes_fully_allocated: ClassVar[bool] = False
    backing_is_snapshot: ClassVar[bool] = False
    supports_cow: ClassVar[bool] = False
    mount_options: ClassVar[bool] = False
    has_target: ClassVar[bool] = True
    delete_needs_empty: ClassVar[bool] = False
    target_automatic: ClassVar[bool] = False
    target_hint: ClassVar[str] = "the directory that holds its volumes"
    build_does: ClassVar[str] = "has nothing to build"
    delete_does: ClassVar[str] = "destroys its storage"
    form_fields: ClassVar[tuple[str, ...]] = ("name", "target")
    target_placeholder: ClassVar[str] = ""
    default_target: ClassVar[str] = ""
    discover_hint: ClassVar[str | None] = None
    tools: ClassVar[Mapping[str, str]] = {}
    optional_tools: ClassVar[Mapping[str, str]] = {}
    test_packages: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # A ToolMissing then names the package to install (the runner knows only the
        # tools every type shares).
        runner.declare_tool_packages({**cls.tools, **cls.optional_tools})

    @classmethod
    @cache
    def features(cls) -> PoolFeatures:
        """The type's facts as one value; what it can do follows from the verbs it
        overrides where that is what decides it (layout, delete)."""
        return PoolFeatures(
            type=cls.type, can_build=cls.can_build, can_create_volumes=cls.can_create_volumes,
            can_delete_volumes=cls.can_delete_volumes,
            can_resize_volumes=cls.can_resize_volumes,
            creatable_formats=tuple(cls.creatable_formats),
            default_volume_format=cls.default_volume_format,
            wipe_algorithms=tuple(cls.wipe_algorithms),
            article=cls.article, pool_formats=tuple(cls.pool_formats),
            default_pool_format=cls.default_pool_format,
            volume_formats=tuple(cls.volume_formats), source=cls.source_rule,
            volumes_are_files=cls.volumes_are_files, volume_urls=cls.volume_urls,
            volumes_are_devices=cls.volumes_are_devices,
            volume_permissions=cls.volume_permissions,
            volumes_fully_allocated=cls.volumes_fully_allocated,
            backing_is_snapshot=cls.backing_is_snapshot, supports_cow=cls.supports_cow,
            mount_options=cls.mount_options,
            has_target=cls.has_target,
            has_layout=cls.layout is not PoolDriver.layout,
            can_delete_storage=cls.delete is not PoolDriver.delete,
            delete_needs_empty=cls.delete_needs_empty,
            target_automatic=cls.target_automatic, target_hint=cls.target_hint,
            build_does=cls.build_does, delete_does=cls.delete_does,
            form_fields=tuple(cls.form_fields), target_placeholder=cls.target_placeholder,
            default_target=cls.default_target, discover_hint=cls.discover_hint,
            tools=dict(cls.tools), optional_tools=dict(cls.optional_tools),
            test_packages=tuple(cls.test_packages),
        )

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

    @classmethod
    def implied_target(cls, pool: PoolDef) -> str | None:
        """The target path the source decides (a volume group's /dev/VG); None: the
        definition names it."""
        return None

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        """What the definition takes that no other pool may (see source_conflict)."""
        return []

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

    # A type whose listing comes in batches (refresh_batches) as it scans: the controller
    # shows the first while the rest are read, and takes the sizes from sizes().
    streams_listing: ClassVar[bool] = False

    def refresh_batches(self) -> Iterator[list[VolumeInfo]]:
        """The volumes a few at a time, as refresh finds them (default: all at once)."""
        yield self.refresh()[1]

    def sizes(self) -> PoolSizes:
        """Pool capacity/allocation/available only (cheap; the live monitor calls it)."""
        raise NotImplementedError

    def watched_dir(self) -> contextlib.AbstractContextManager[int] | None:
        """An open descriptor of the directory whose entries are this pool's volumes,
        for the live monitor to watch (inotify); None: the pool is polled."""
        return None

    def change_token(self) -> object:
        """Cheap value that changes when the volume list or sizes may have changed (a
        SpaceToken when a change of free space alone is told apart: see
        StorageController.poll)."""
        return self.sizes()

    def volume_path(self, name: str) -> str:
        raise NotImplementedError

    def refresh_volume(self, name: str) -> VolumeInfo | None:
        """One volume as a refresh would find it (None: there is none); drivers that can
        look at one volume alone override this."""
        return next((v for v in self.refresh()[1] if v.name == name), None)

    def volume_names(self) -> list[str] | None:
        """The names a refresh would look at, read cheaply (one directory listing), so the
        live monitor can rescan a big pool in slices (refresh_volumes); None: this pool is
        listed by refresh() alone."""
        return None

    def refresh_volumes(self, names: list[str]) -> list[VolumeInfo | None]:
        """refresh_volume of each name, in order (a driver may share the work)."""
        return [self.refresh_volume(name) for name in names]

    def describe(self) -> str | None:
        """The pool's runtime state in words for the header (cheap; None: nothing to say)."""
        return None

    def volume_limits(self) -> str | None:
        """Why this running pool's volumes cannot be created, resized, wiped, cloned,
        uploaded or downloaded on this host (None: they can), e.g. a kernel without
        device-mapper under a logical pool. The TUI greys those keys with it."""
        return None

    def layout(self) -> list[DeviceLayout]:
        """Devices with used and free extents (disk and logical pools); [] otherwise."""
        return []

    def existing_content(self) -> list[str]:
        """What a build would destroy ("an ext4 filesystem (label 'x')"), for the warning."""
        return []

    def stored_volumes(self) -> list[str] | None:
        """What the inactive pool's storage holds that pool-delete would erase, read
        without changing anything; None: its delete erases no volume (nothing at all, or
        only an empty directory: see delete_needs_empty)."""
        return None

    def refuse_linked_target(self) -> None:
        """Before a build or start touches the target: refuse a link there."""

    def remember_target(self) -> None:
        """After a start: record which directory the target is (kept in extras)."""

    # -- what a killed process left --------------------------------------------------
    def remove_partials(self) -> list[str]:
        """Remove the hidden files of creates and clones killed mid-way (those whose
        build is not locked live); the names removed."""
        return []

    def partial_volumes(self) -> list[str]:
        """Volumes left half-made under their final name (block pools), which the
        controller removes once it holds their lock."""
        return []

    def remove_partial(self, name: str) -> None:
        raise Unsupported(f"a '{self.type}' pool leaves no half-made volumes")

    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None) -> list[PoolSource]:
        raise Unsupported(f"pool type '{cls.type}' cannot discover sources")

    # -- volumes -----------------------------------------------------------------------
    def check_new_volume(self, vol: VolumeDef) -> None:
        """Refuse now what create_volume would refuse of `vol` for this type (its name,
        where it goes, what the storage needs for it), reading the storage but changing
        nothing: the controller runs it before a create's job starts, and the create
        dialog (Controller.check_volume_def) before it closes. The job checks again."""

    def next_volume_name(self, vol: VolumeDef) -> str | None:
        """The name this storage requires for `vol` where it decides it (a partition is
        named as the kernel names it); None: any valid name will do."""
        return None

    def clone_target(self, src: VolumeInfo, vol: VolumeDef) -> VolumeDef:
        """The volume a clone of `src` asked for as `vol` makes in this pool (at least the
        source's size), refused as clone_volume refuses it: the controller asks
        check_new_volume about this one, before the clone's job starts and in the dialog."""
        return replace(vol, capacity=max(vol.capacity or 0, src.capacity))

    def check_resize(self, vol: VolumeInfo, capacity: int, *, allocate: bool,
                     shrink: bool) -> None:
        """Refuse now what resize_volume would refuse of `vol` to `capacity` bytes for this
        type, reading the storage but changing nothing (Controller.check_resize, and the
        controller before a resize's job starts). The job checks again."""

    def create_volume(self, vol: VolumeDef, ctx: JobContext) -> None:
        raise Unsupported(f"volumes cannot be created in a '{self.type}' pool")

    def clone_volume(self, src: VolumeInfo, src_driver: PoolDriver, vol: VolumeDef,
                     ctx: JobContext) -> str:
        raise Unsupported(f"volumes cannot be cloned into a '{self.type}' pool")

    def delete_volume(self, vol: VolumeInfo) -> None:
        raise Unsupported(f"volumes cannot be deleted from a '{self.type}' pool")

    def delete_volume_with_snapshots(self, vol: VolumeInfo) -> None:
        """vol-delete --delete-snapshots (where `deletes_snapshots`)."""
        raise Unsupported(f"volumes of a '{self.type}' pool have no snapshots to delete")

    def wipe_volume(self, vol: VolumeInfo, algorithm: str, ctx: JobContext) -> None:
        raise Unsupported(f"volumes of a '{self.type}' pool cannot be wiped")

    def resize_volume(self, vol: VolumeInfo, capacity: int, *, allocate: bool, shrink: bool,
                      ctx: JobContext) -> None:
        raise Unsupported(f"volumes of a '{self.type}' pool cannot be resized")

    def upload_volume(self, vol: VolumeInfo, src_path: str, offset: int, length: int | None,
                      ctx: JobContext, sparse: bool = False) -> int:
        raise Unsupported(f"cannot upload to volumes of a '{self.type}' pool")

    def download_volume(self, vol: VolumeInfo, dst_path: str, offset: int, length: int | None,
                        sparse: bool, ctx: JobContext) -> int:
        raise Unsupported(f"cannot download volumes of a '{self.type}' pool")

    def open_volume_read(self, vol: VolumeInfo) -> int:
        """A read-only fd on the volume's bytes (clone source across pools)."""
        raise Unsupported(f"cannot read volumes of a '{self.type}' pool")
