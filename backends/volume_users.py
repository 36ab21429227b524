"""Who else uses a volume, so that no verb changes or removes it under them.

Processes: delete, wipe, upload and a shrinking resize refuse a volume another process has
open; a growing resize refuses only one open for writing (a running guest), see openers.
Jobs look again as they start (recheck_volume): a job can wait in the queue for hours.
Images: a volume that another image names as its backing file, data file or vmdk extent,
in any defined pool (stopped ones too) and by file identity, is not deleted under it.
Pools: a directory volume that is another pool's target is not this pool's to remove.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from . import blockprobe, openers
from .drivers import features
from .drivers.base import PoolDriver
from .errors import InUse, PoolkeeperError
from .format_records import FormatRecords
from .lookup import PoolLookup
from .model import PoolDef, VolumeInfo


class VolumeUsers:
    """Refuses to act on a volume another process, image or pool uses."""

    def __init__(self, pools: PoolLookup, records: FormatRecords,
                 driver: Callable[[PoolDef], PoolDriver]) -> None:
        self._pools = pools
        self._records = records
        self._driver = driver  # a pool's driver, by its definition

    def recheck_volume(self, pool: str, name: str, *,
                       writers_only: bool = False) -> VolumeInfo:
        """The volume a job writes, as it is now, checked again as the job starts to act on
        it: a job can wait in the queue for hours behind others, and meanwhile the file can
        be rewritten or replaced, or a process can open it (the checks made when the verb
        was asked only refuse early). No other process may use it (writers_only: write
        it). The caller runs check_chain again where the volume goes to qemu-img, and the
        driver acts on the very file this found (dir._open_checked, dir.image_spec: they
        look again at the fd they hand on)."""
        info = self._pools.volume_info(pool, name)
        refuse_in_use(info, writers_only=writers_only)
        return info

    def refuse_backing_of_others(self, pool: str, info: VolumeInfo,
                                 spare_snapshots: bool = False) -> None:
        """A volume another image names (as backing file, data file or vmdk extent) cannot be
        deleted: in any defined pool whose volumes can be read, stopped ones too, and by
        file identity (a symlinked spelling of a directory is the same file).
        `spare_snapshots` (vol-delete --delete-snapshots): its LVM snapshots, which go with
        it, are no refusal."""
        key = _file_key(info.path)
        for other_pool in self._pools.store.definition_names():
            for vol in self._volumes_naming_files(other_pool):
                what = _names_file(vol, info.path, key)
                snapshot = (other_pool == pool and what == "the backing store"
                            and (vol.attributes or "").startswith("s"))  # LVM's, thick
                if snapshot and spare_snapshots:
                    continue  # deleted with it
                if snapshot:
                    raise InUse(f"volume '{info.name}' is the origin of snapshot '{vol.name}'; "
                                "delete the snapshot first, or give --delete-snapshots to "
                                "delete it with its snapshots")
                if what:
                    state = "" if self._pools.store.is_active(other_pool) else " (a stopped pool)"
                    raise InUse(
                        f"volume '{info.name}' is {what} of '{vol.name}' in pool "
                        f"'{other_pool}'{state}; delete that overlay first"
                    )

    def _volumes_naming_files(self, pool: str) -> list[VolumeInfo]:
        """The volumes of a pool, to see which files they name: an active pool's as last
        seen (or listed now), a stopped file pool's read from its directory if it can be."""
        if self._pools.store.is_active(pool):
            try:  # all of it, each header read (never a quick listing's guesses)
                return self._pools.probed_volumes(pool)
            except (PoolkeeperError, OSError):  # unreadable: it names nothing we can see
                return []
        try:
            pdef = self._pools.pool_def(pool)
            if not features(pdef.type).volumes_are_files:
                return []  # an LV or partition names no file of a file pool
            driver = self._driver(pdef)
            if not driver.check():
                return []
            return self._records.apply(pool, driver.refresh()[1])
        except (PoolkeeperError, OSError):
            return []

    def refuse_target_of_others(self, pool: str, info: VolumeInfo) -> None:
        """A directory volume that is the target of another pool (nested inside this one)
        is not this pool's to remove."""
        if info.type != "dir":
            return
        keys = blockprobe.directory_keys(info.path)
        for other in self._pools.store.definition_names():
            try:
                odef = self._pools.pool_def(other)
            except PoolkeeperError:
                continue
            if other != pool and odef.target.path and keys & blockprobe.directory_keys(
                    odef.target.path):
                raise InUse(f"'{info.name}' is the target directory of pool '{other}'; "
                            f"undefine that pool first (pool-undefine {other})")


def refuse_in_use(info: VolumeInfo, *, writers_only: bool = False) -> None:
    """Refuse a volume another process has open (writers_only: open for writing, or
    for a block device also mounted or held by the kernel), naming who."""
    block = info.type == "block" and info.path.startswith("/dev/")
    reasons = openers.users(info.path, block=block, writers_only=writers_only)
    if reasons:
        raise InUse(f"volume '{info.name}' is {'; '.join(reasons)}; stop that first")


def open_paths(paths: Iterable[str]) -> dict[str, list[str]]:
    """Which of `paths` other processes have open: path -> ['name (pid N)', ...].

    Files are matched by device and inode, so a hard link or a bind mount of the volume
    counts too. Our own process is left out: its opens belong to jobs, which hold busy
    marks (see openers)."""
    return {path: [str(o) for o in found]
            for path, found in openers.file_openers(paths).items()}


def _file_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _names_file(vol: VolumeInfo, path: str, key: tuple[int, int] | None) -> str | None:
    """What `vol` uses the file `path` (device and inode `key`) as, or None."""
    named = [("the backing store", vol.backing.path if vol.backing else None),
             ("the external data file", vol.data_file),
             *(("a vmdk extent", resolved) for _written, resolved in vol.extent_files)]
    for what, other in named:
        if other is not None and (other == path or (key is not None and _file_key(other) == key)):
            return what
    return None
