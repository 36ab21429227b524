"""Opening an existing volume by name in a pool directory: never through a symlink, never
a FIFO, socket or character device, and the very inode that was checked."""

from __future__ import annotations

import errno
import fcntl
import os

from ..errors import UnsafePath, VolumeNotFound
from .primitives import _check_kind, _proc_fd_path, _same_file


def open_volume(dir_fd: int, name: str, flags: int) -> int:
    """Open an existing volume `name` inside the directory `dir_fd`, never following a
    symlink and never opening a FIFO, socket or character device.

    The name is first opened with O_PATH|O_NOFOLLOW (no side effects, whatever the file
    is), checked by fstat, then reopened through /proc/self/fd with the real flags plus
    O_NONBLOCK (so the same inode is opened, no rename race), checked again, and
    O_NONBLOCK is cleared. Without /proc it opens the name directly with O_NOFOLLOW.
    """
    if flags & os.O_CREAT:
        raise ValueError("open_volume opens existing volumes; use create_raw to create")
    if not name or "/" in name or name in (".", ".."):
        raise UnsafePath(f"'{name}' is not a plain volume name")
    try:
        pfd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise VolumeNotFound(f"volume '{name}' does not exist") from None
    try:
        pst = os.fstat(pfd)
        _check_kind(name, pst)
        fd = _reopen(pfd, dir_fd, name, flags)
    finally:
        os.close(pfd)
    try:
        st = os.fstat(fd)
        _check_kind(name, st)
        if not _same_file(st, pst):
            raise UnsafePath(f"'{name}' was replaced while it was being opened; try again")
        fl = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, fl & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _reopen(pfd: int, dir_fd: int, name: str, flags: int) -> int:
    full = flags | os.O_NONBLOCK | os.O_CLOEXEC
    if os.path.isdir("/proc/self/fd"):
        return os.open(_proc_fd_path(pfd), full & ~os.O_NOFOLLOW)
    try:
        return os.open(name, full | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        raise VolumeNotFound(f"volume '{name}' does not exist") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise UnsafePath(f"'{name}' is not a regular file or block device") from exc
        raise
