"""Making a new volume file: built under a hidden name behind a flock guard and published
under its own name only when complete, never replacing a name; what killed builds left
behind is removed at the next pool start. create_raw builds a raw image this way."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import AlreadyExists, UnsafePath, Unsupported
from ..names import PARTIAL_PREFIX
from ..oserror import os_failure
from ..progress import NULL_CONTEXT, JobContext
from ..store import create_locked_temp, remove_if_abandoned
from .primitives import (
    _NOT_SUPPORTED,
    _check_sizes,
    _libc,
    _Progress,
    _same_file,
    _unlink_ours,
)
from .sizing import _allocate

# ioctl numbers (x86_64/aarch64 encodings; Python 3.11's fcntl module lacks most of them).
FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long); the kernel copies an int
FS_IOC_SETFLAGS = 0x40086602  # _IOW('f', 2, long)
FS_NOCOW_FL = 0x00800000

RENAME_NOREPLACE = 1
_c_renameat2 = getattr(_libc, "renameat2", None)
if _c_renameat2 is not None:
    _c_renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_uint)
    _c_renameat2.restype = ctypes.c_int


# A new volume is built under a hidden name and appears under its own name only when it is
# complete, so no kill, crash or failure ever leaves a half-made file under a volume's name.
# The build is guarded by a flock on a separate empty file (PARTIAL_PREFIX + random), held
# while the data file (the guard's name + PARTIAL_DATA) is built: not on the data file itself,
# because on NFS a flock is a whole-file POSIX lock that qemu-img's own locks would hit.
PARTIAL_DATA = ".img"


class Partial(NamedTuple):
    fd: int  # the file being built, open read-write
    name: str  # its hidden name in the same directory (for tools that take a path)


@contextlib.contextmanager
def building(
    dir_fd: int, name: str, *, mode: int = 0o600, owner: int | None = None,
    group: int | None = None,
) -> Iterator[Partial]:
    """Build a new file for `name` inside the with-block; on success it is published as
    `name` (a hard link: an existing name is never replaced, AlreadyExists instead), on any
    failure or cancel it is removed, and a killed build's file goes at the next pool start
    (remove_partials). OSErrors come out as our errors."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        raise AlreadyExists(f"volume target '{name}' already exists")
    try:
        guard_fd, guard = create_locked_temp(dir_fd)
        try:
            with _built(dir_fd, guard + PARTIAL_DATA, name, mode, owner, group) as part:
                yield part
        finally:
            with contextlib.suppress(OSError):
                os.unlink(guard, dir_fd=dir_fd)
            os.close(guard_fd)
    except OSError as exc:
        raise os_failure(exc, f"create '{name}'") from exc


@contextlib.contextmanager
def _built(dir_fd: int, data: str, name: str, mode: int, owner: int | None,
           group: int | None) -> Iterator[Partial]:
    fd = _create_excl(dir_fd, data, mode, owner, group)
    try:
        yield Partial(fd, data)
        os.fsync(fd)  # per inode: covers what a tool wrote through its own fd
        _publish(dir_fd, data, fd, name)
    except BaseException:
        _unlink_ours(dir_fd, data, fd)
        raise
    finally:
        os.close(fd)


def _publish(dir_fd: int, data: str, fd: int, name: str) -> None:
    """Give the complete file its name, atomically and without replacing anything. The link
    is made from the open file (/proc/self/fd), not its hidden name: whatever someone may
    have put under that name meanwhile is never published."""
    try:
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dir_fd, follow_symlinks=True)
    except FileExistsError:
        raise AlreadyExists(f"volume target '{name}' already exists") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.ENOENT):
            raise
        # a filesystem without hard links (vfat, which has no symlinks either), or no /proc
        there = os.stat(data, dir_fd=dir_fd, follow_symlinks=False)
        if not _same_file(os.fstat(fd), there):
            raise UnsafePath(
                f"the file being built for '{name}' was replaced; not published") from exc
        _rename_noreplace(dir_fd, data, name)
    else:
        _unlink_ours(dir_fd, data, fd)  # else it goes at the next pool start
    with contextlib.suppress(OSError):  # published either way; durability is best effort
        os.fsync(dir_fd)


def _rename_noreplace(dir_fd: int, old: str, new: str) -> None:
    if _c_renameat2 is None:
        raise Unsupported("this filesystem has no hard links and this C library no renameat2")
    if _c_renameat2(dir_fd, os.fsencode(old), dir_fd, os.fsencode(new), RENAME_NOREPLACE) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise AlreadyExists(f"volume target '{new}' already exists")
    raise OSError(err, os.strerror(err), new)


def remove_partials(dir_fd: int, names: list[str] | None = None) -> list[str]:
    """Remove what builds killed mid-way left in the directory (their guard's flock died
    with them; a live build's guard is locked and stays). Returns the names removed.
    `names`: the partial names a complete read of the directory just found (not read
    again); each is checked as it is now."""
    if names is None:
        with os.scandir(dir_fd) as entries:
            names = [e.name for e in entries if e.name.startswith(PARTIAL_PREFIX)]
    removed = []
    for guard in (n for n in names if not n.endswith(PARTIAL_DATA)):
        removed += remove_if_abandoned(dir_fd, guard, also=(guard + PARTIAL_DATA,))
    for data in (n for n in names if n.endswith(PARTIAL_DATA)):
        # A data file lives only while its guard does: without one it is a leftover.
        if _lexists(dir_fd, data[: -len(PARTIAL_DATA)]) or not _lexists(dir_fd, data):
            continue
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(data, dir_fd=dir_fd).st_mode):
                os.unlink(data, dir_fd=dir_fd)
                removed.append(data)
    if removed:
        os.fsync(dir_fd)
    return removed


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def _set_nocow(fd: int) -> None:
    """chattr +C while the file is still empty (btrfs only honours it then)."""
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("i", 0))
        flags = struct.unpack("i", buf)[0]
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_NOCOW_FL))
    except OSError as exc:
        if exc.errno not in _NOT_SUPPORTED:
            raise


def _create_excl(dir_fd: int, name: str, mode: int, owner: int | None, group: int | None) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, mode, dir_fd=dir_fd)
    except FileExistsError:
        raise AlreadyExists(f"volume target '{name}' already exists") from None
    try:
        os.fchmod(fd, mode)  # the umask must not narrow what the XML asked for
        if owner is not None or group is not None:
            os.fchown(fd, -1 if owner is None else owner, -1 if group is None else group)
    except BaseException:
        _unlink_ours(dir_fd, name, fd)
        os.close(fd)
        raise
    return fd


def create_raw(
    dir_fd: int,
    name: str,
    capacity: int,
    allocation: int,
    *,
    mode: int = 0o600,
    owner: int | None = None,
    group: int | None = None,
    nocow: bool = False,
    ctx: JobContext = NULL_CONTEXT,
) -> None:
    """Create a raw file volume: sparse if allocation is 0, else the first `allocation`
    bytes (at most capacity) allocated. Built under a hidden name (see building)."""
    _check_sizes(capacity=capacity, allocation=allocation)
    alloc = min(allocation, capacity)
    with building(dir_fd, name, mode=mode, owner=owner, group=group) as part:
        if nocow:
            _set_nocow(part.fd)
        os.ftruncate(part.fd, capacity)
        progress = _Progress(ctx, alloc)
        if alloc > 0:
            _allocate(part.fd, 0, alloc, progress)
        progress.finish()
