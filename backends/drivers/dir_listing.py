"""How a dir pool's listing reads its directory entries (DirDriver.refresh_batches and
_scan): the entry's kind from d_type, the parts of one stat a volume keeps (shared where
100,000 volumes hold the same values), what an open file's header says (fill), and the
quick listing's one-call fast path."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import stat
from collections.abc import Iterator

from .. import fileid, imageprobe
from ..checks import is_remote_backing
from ..model import NO_ITEMS, BackingStore, Permissions, VolumeInfo, shared_size
from ..textsafe import first_unsafe

# What the directory entry says a name is.
UNKNOWN, REGULAR, LINK, SPECIAL = range(4)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A scan allocates thousands of objects that all live on: collecting in the middle of
    it only costs time (about 10 % of a 10,000-volume refresh)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def entry_kind(entry: os.DirEntry[str]) -> int:
    if entry.is_symlink():
        return LINK
    if entry.is_file(follow_symlinks=False) or entry.is_dir(follow_symlinks=False):
        return REGULAR
    return UNKNOWN  # block device, FIFO, ...: one lstat tells


@functools.lru_cache(maxsize=256)
def shared_permissions(mode: int, owner: int, group: int) -> Permissions:
    """One Permissions per (mode, owner, group) a listing meets, shared by its volumes
    (nothing changes one in place): 16 MB less for 100,000 files of a few owners."""
    return Permissions(mode, owner, group)


def stamp(info: VolumeInfo, st: os.stat_result) -> tuple[int, int]:
    """Permissions, times, signature from `st` (each st_ attribute read is a new int: the
    tuples share them, for 100,000 volumes); returns (size, allocation)."""
    return _stamp(info, st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_size,
                  st.st_blocks, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


def _stamp(info: VolumeInfo, mode: int, uid: int, gid: int, ino: int, size: int,
           blocks: int, atime: int, mtime: int, ctime: int) -> tuple[int, int]:
    info.permissions = shared_permissions(mode & 0o777, uid, gid)
    size = shared_size(size)
    info.times_ns = (atime, mtime, mtime if ctime == mtime else ctime)
    info.signature = (ino, size, blocks, mtime)
    return size, shared_size(blocks * 512)


def beside(image: str, name: str) -> str:
    """A file name from an image header, as qemu resolves it: relative to the image."""
    if name.startswith("/") or is_remote_backing(name):
        return name
    return os.path.join(os.path.dirname(image), name)


def fill(info: VolumeInfo, fd: int) -> VolumeInfo | None:
    """`info` of the open file `fd`: its stat, identity and what its header says (the
    header alone: nothing it names is opened); None: not a volume (a symlink to a FIFO,
    socket or character device). OSError: it could not be read."""
    (mode, *st), file_id = fileid.stat_fd(fd)
    size, allocation = _stamp(info, mode, *st)
    info.file_id = file_id
    if stat.S_ISDIR(mode):
        info.type, info.format, info.probed_format = "dir", "dir", "dir"
        return info
    if stat.S_ISBLK(mode):
        info.type = "block"
        size = allocation = os.lseek(fd, 0, os.SEEK_END)
    elif not stat.S_ISREG(mode):
        return None
    info.physical, info.allocation = size, allocation
    result = imageprobe.probe_fd(fd, size)
    info.format = info.probed_format = result.format
    info.capacity = shared_size(result.capacity) if result.capacity else size
    info.cluster_size = result.cluster_size and shared_size(result.cluster_size)
    info.compat = result.compat
    info.features = result.features or (None if result.features is None else NO_ITEMS)
    info.encryption = result.encryption
    path = info.path
    if result.backing:
        info.backing = BackingStore(path=beside(path, result.backing),
                                    format=result.backing_format)
    if result.data_file:  # qemu reads and writes it as the image's data
        info.data_file = beside(path, result.data_file)
    info.extent_files = [(n, beside(path, n)) for n in result.extents] or NO_ITEMS
    return info


def quick_file(dfd: int, name: str, prefix: str) -> VolumeInfo | None:
    """_scan's quick listing of a plain regular file with a safe name, in one call (most
    of a 100,000-volume listing); None: anything else, for _scan to tell."""
    if first_unsafe(name) is not None:
        return None
    try:
        st = os.lstat(name, dir_fd=dfd)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    path = prefix + name
    mtime, ctime, size = st.st_mtime_ns, st.st_ctime_ns, shared_size(st.st_size)
    return VolumeInfo(
        name=name, key=path, path=path, format="", pending=True, physical=size,
        allocation=shared_size(st.st_blocks * 512),
        permissions=shared_permissions(st.st_mode & 0o777, st.st_uid, st.st_gid),
        times_ns=(st.st_atime_ns, mtime, mtime if ctime == mtime else ctime),
        signature=(st.st_ino, size, st.st_blocks, mtime))




def listed_file(name: str, path: str, fmt: str, capacity: int, physical: int,
                allocation: int, backing: BackingStore | None, data_file: str | None,
                extent_files: list[tuple[str, str]], cluster_size: int | None,
                compat: str | None, features: list[str] | None, encryption: str | None,
                permissions: Permissions, signature: tuple,
                file_id: tuple[int, int | None, int | None],
                times_ns: tuple[int, int, int]) -> VolumeInfo:
    """VolumeInfo(name=name, key=path, path=path, format=fmt, probed_format=fmt, ...) of a
    plain file whose header was read, the other fields their defaults, as the probe cache
    makes 10,000 of them: each field set here, in one call (a third of the time of the
    constructor's keywords and default factories); tests/unit/test_listed_file.py holds the two
    equal, field for field."""
    v = _new(VolumeInfo)
    v.name = name
    v.key = path
    v.path = path
    v.type = "file"
    v.format = fmt
    v.format_recorded = False
    v.probed_format = fmt
    v.capacity = capacity
    v.allocation = allocation
    v.physical = physical
    v.backing = backing
    v.data_file = data_file
    v.extent_files = extent_files
    v.backing_chain = None
    v.cluster_size = cluster_size
    v.compat = compat
    v.features = features
    v.encryption = encryption
    v.permissions = permissions
    v.timestamps = None
    v.symlink = None
    v.extents = NO_ITEMS
    v.attributes = None
    v.error = None
    v.signature = signature
    v.file_id = file_id
    v.times_ns = times_ns
    v.pending = False
    return v


_new = object.__new__
