"""The pieces every byte operation here is built from: chunk sizes, progress reporting
between chunks, fallocate(2) with its real errno, what kind of file an fd is and how big,
and reads and writes that finish (a short write on a full disk is InsufficientSpace)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import struct

from ..errors import InsufficientSpace, InvalidSize, UnsafePath
from ..progress import JobContext

# ioctl numbers (x86_64/aarch64 encodings; Python 3.11's fcntl module lacks most of them).
BLKGETSIZE64 = 0x80081272  # _IOR(0x12, 114, size_t)

MiB = 1024 * 1024
CHUNK_SIZE = MiB  # read/write buffer
EXTENT_CHUNK = 64 * MiB  # per fallocate / punch / discard call; progress between calls
PROGRESS_STEP = 8 * MiB  # report at most this often (and at least every EXTENT_CHUNK)

# errnos that mean "this filesystem cannot do that", as opposed to a real failure.
_NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.ENOTTY)

_libc = ctypes.CDLL(None, use_errno=True)
_c_fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
_c_fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_c_fallocate.restype = ctypes.c_int


class _Progress:
    """Bytes done of total, passed to ctx.update often enough to cancel promptly."""

    def __init__(self, ctx: JobContext, total: int | None) -> None:
        self.ctx = ctx
        self.total = total
        self.done = 0
        self._reported = 0
        ctx.update(0, total)

    def set(self, done: int) -> None:
        self.done = done
        if done - self._reported >= PROGRESS_STEP:
            self._reported = done
            self.ctx.update(done, self.total)

    def finish(self) -> None:
        self.ctx.update(self.done, self.total)


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2); raises OSError with the real errno (os.posix_fallocate hides it)."""
    while _c_fallocate(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISREG, "regular file"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


def _check_kind(name: str, st: os.stat_result) -> None:
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise UnsafePath(
            f"'{name}' is a {_kind(st.st_mode)}; "
            "poolkeeper only acts on regular files and block devices"
        )


def _size_of(fd: int, st: os.stat_result | None = None) -> int:
    """Bytes of a regular file or block device (st_size is 0 for devices)."""
    st = st or os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        buf = fcntl.ioctl(fd, BLKGETSIZE64, b"\0" * 8)
        return struct.unpack("Q", buf)[0]
    return st.st_size


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _unlink_ours(dir_fd: int | None, name: str, fd: int) -> None:
    """Remove `name` only if it is still the file open as `fd` (never someone else's)."""
    with contextlib.suppress(OSError):
        mine = os.fstat(fd)
        there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if _same_file(mine, there):
            os.unlink(name, dir_fd=dir_fd)


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.pwrite(fd, view, offset)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise InsufficientSpace("no space left on the device holding the volume") from exc
            raise
        if n == 0:
            raise InsufficientSpace("the volume is full (write past its end)")
        view = view[n:]
        offset += n


def _pread_full(fd: int, size: int, offset: int) -> bytes:
    """pread that only returns short at end of file."""
    data = os.pread(fd, size, offset)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def _check_sizes(**sizes: int | None) -> None:
    for what, value in sizes.items():
        if value is not None and value < 0:
            raise InvalidSize(f"{what} must not be negative (got {value})")


def _proc_fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"
