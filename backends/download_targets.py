"""Download targets: a download never writes into a pool.

Not onto its own source, not into another volume behind that volume's busy mark (through
a hard link, a bind mount, a partition, an LV, a loop device on a volume), not into a
pool's directory or onto a device a pool is built on, and never through a symlink (which
could aim it at any file root can write). The path is looked at by name before the job;
the job looks again at the file it opened (fileops.checking_download_targets), with the
same rule. Files and devices are matched by identity (targets), in every defined pool,
stopped ones too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from . import blockprobe, fileops, targets
from .drivers import features
from .errors import PoolkeeperError, UnsafePath
from .lookup import PoolLookup
from .model import VolumeInfo


class DownloadTargets:
    """Refuses a download target that is a pool's volume, directory entry or device."""

    def __init__(self, pools: PoolLookup) -> None:
        self._pools = pools

    def refuse_volume_as_target(self, dst_path: str, source: VolumeInfo) -> None:
        """A download never writes into a pool: not onto its own source, not into another
        volume behind that volume's busy mark (through a hard link, a partition, an LV,
        a loop device on a volume), and never through a symlink (which could aim it at any
        file root can write). This looks by name before the job; the job looks again at
        the file it opened (fileops.checking_download_targets)."""
        try:
            st = os.lstat(dst_path)
        except FileNotFoundError:
            self.refuse_pool_object(None, dst_path, source)
            return
        except OSError:
            return  # the open says what is wrong with the path
        if stat.S_ISLNK(st.st_mode):
            raise fileops.link_refusal(dst_path)
        self.refuse_pool_object(st, dst_path, source)

    def refuse_pool_object(self, st: os.stat_result | None, path: str,
                           source: VolumeInfo) -> None:
        """Refuse `path` (stat `st`, None if it does not exist yet) as a download target if
        it is a pool's volume, directory entry or device."""
        role = self._pool_dir_role(path)
        if role is None and st is not None:
            role = self._pool_role(st, source)
        if role:
            raise UnsafePath(f"'{path}' is {role}; a download never writes into a pool: "
                             "download to a file outside the pools (to copy a volume into "
                             "a pool, use vol-clone)")

    def _pool_role(self, st: os.stat_result, source: VolumeInfo) -> str | None:
        """What the existing file or device `st` is in a pool, by identity (None: nothing)."""
        with contextlib.suppress(OSError):
            if targets.same_file(st, os.stat(source.path)):
                return f"the volume '{source.name}' itself"
        if stat.S_ISREG(st.st_mode):
            return self._pool_file_role(st)
        if stat.S_ISBLK(st.st_mode):
            return self._pool_device_role(st.st_rdev)
        return None

    def _pool_targets(self) -> Iterator[tuple[str, str, os.stat_result]]:
        """(pool, target path, its stat) of every defined pool whose volumes are the files in
        its target directory (dir, fs, netfs), if that directory can be read. The targets of
        the others (/dev, /dev/VG) only hold nodes: their volumes are matched as devices."""
        for pool in self._pools.store.definition_names():
            try:
                pdef = self._pools.pool_def(pool)
                if features(pdef.type).volumes_are_files and pdef.target.path:
                    yield pool, pdef.target.path, os.stat(pdef.target.path)
            except (PoolkeeperError, OSError):
                continue

    def _pool_dir_role(self, path: str) -> str | None:
        """Is `path` a name in a pool's target directory (however the directory is spelled:
        compared by device and inode)?"""
        try:
            parent = os.stat(os.path.dirname(os.path.abspath(path)))
        except OSError:
            return None
        for pool, _target, tst in self._pool_targets():
            if targets.same_file(parent, tst):
                return f"inside pool '{pool}'"
        return None

    def _pool_file_role(self, st: os.stat_result) -> str | None:
        """Is the regular file `st` a volume of a pool by another path (a hard link, or a
        bind mount of the volume, which leaves its link count at 1), or the image file a
        pool is built on? Every file pool's directory on the same filesystem is scanned
        for the inode (readdir's d_ino: no stat but of a name that matches)."""
        for pool in self._pools.store.definition_names():
            with contextlib.suppress(PoolkeeperError):
                for dev in self._pools.pool_def(pool).source.devices:
                    with contextlib.suppress(OSError):
                        if targets.same_file(st, os.stat(dev.path)):
                            return f"the image file of pool '{pool}'"
        for pool, target, tst in self._pool_targets():
            if tst.st_dev == st.st_dev:
                names = targets.hard_link_names(target, st)
                if names and st.st_nlink >= 2:
                    return f"a hard link to volume '{names[0]}' of pool '{pool}'"
                if names:
                    return (f"volume '{names[0]}' of pool '{pool}', reached by another path "
                            "(a bind mount)")
        return None

    def _pool_device_role(self, rdev: int) -> str | None:
        """Is the block device `rdev` a pool's volume or device, part of one (a partition of a
        pool's disk, an LV on its PVs), a disk holding one, or a loop device on a pool's
        file?"""
        owned = self._pool_devices()
        family = targets.block_family(rdev)
        for number, _name in family:
            if number in owned:
                return (owned[number] if number == rdev
                        else f"{family[0][1]}, which is on {owned[number]}")
        for number, _name in targets.partitions_of(rdev):
            if number in owned:
                return f"{family[0][1]}, which holds {owned[number]}"
        for number, name in family:
            backing = targets.loop_backing(number)
            if backing is None:
                continue
            role = self._pool_dir_role(backing[0]) or self._pool_file_role(backing[1])
            if role:
                return f"{name}, a loop device on '{backing[0]}', which is {role}"
        return None

    def _pool_devices(self) -> dict[int, str]:
        """Device number -> what it is, for every block device a pool is built on or has as
        a volume (volumes as the last refresh saw them, refreshed if none was made)."""
        owned: dict[int, str] = {}
        for pool in self._pools.store.definition_names():
            try:
                pdef = self._pools.pool_def(pool)
            except PoolkeeperError:
                continue
            for dev in pdef.source.devices:
                for node in self._source_nodes(dev.path):
                    with contextlib.suppress(OSError):
                        st = os.stat(node)
                        if stat.S_ISBLK(st.st_mode):
                            owned.setdefault(st.st_rdev, f"{node}, a device of pool '{pool}'")
            for vol in self._block_volumes(pool):
                with contextlib.suppress(OSError):
                    st = os.stat(vol.path)
                    if stat.S_ISBLK(st.st_mode):
                        owned[st.st_rdev] = f"volume '{vol.name}' of pool '{pool}'"
        return owned

    @staticmethod
    def _source_nodes(path: str) -> list[str]:
        """A pool's source device, or the loop devices attached to its image file."""
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.stat(path).st_mode):
                return [ident.device for ident in blockprobe.loops_backed_by(path)]
        return [path]

    def _block_volumes(self, pool: str) -> list[VolumeInfo]:
        pools = self._pools
        if (not pools.store.is_active(pool)
                or features(pools.pool_def(pool).type).volumes_are_files):
            return []
        vols = pools.cached_volumes(pool)
        if not vols:  # a fresh process knows no pool yet: look
            with contextlib.suppress(PoolkeeperError, OSError):
                vols = pools.list_volumes(pool)
        return [v for v in vols if v.type == "block"]
