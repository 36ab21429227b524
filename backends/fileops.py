"""Byte-level work on volumes, by file descriptor.

Everything here works on an open fd so that block devices (partitions, LVs) reuse the
same code as image files. All of it streams with bounded memory, reports progress (and
is cancelled) through a JobContext between chunks, and never follows a symlink for a
destructive act: names are opened relative to a pool directory fd with O_NOFOLLOW.

Nothing here blocks beyond a cancel: pipes, FIFOs and terminals (upload sources, download
destinations) are opened O_NONBLOCK and waited for with poll in WAIT_POLL steps that look
at the cancel flag, and tools (scrub) run through runner.run, which kills them on cancel.

Offsets are always explicit (pread/pwrite/copy_file_range), so the file position of
the fds passed in is left unspecified (SEEK_DATA/SEEK_HOLE move it).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import errno
import fcntl
import mmap
import os
import select
import stat
import struct
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from . import runner
from .errors import (
    AlreadyExists,
    InsufficientSpace,
    InvalidSize,
    PoolkeeperError,
    StateError,
    UnsafePath,
    Unsupported,
    ValidationError,
    VolumeNotFound,
)
from .model import WIPE_ALGORITHMS
from .names import PARTIAL_PREFIX
from .oserror import os_failure
from .progress import NULL_CONTEXT, JobContext, current
from .store import create_locked_temp, remove_if_abandoned

# ioctl numbers (x86_64/aarch64 encodings; Python 3.11's fcntl module lacks most of them).
FICLONE = 0x40049409  # _IOW(0x94, 9, int)
FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range)
FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long); the kernel copies an int
FS_IOC_SETFLAGS = 0x40086602  # _IOW('f', 2, long)
FS_NOCOW_FL = 0x00800000
BLKGETSIZE64 = 0x80081272  # _IOR(0x12, 114, size_t)
BLKDISCARD = 0x1277  # _IO(0x12, 119), argument: uint64 [start, length]

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

MiB = 1024 * 1024
CHUNK_SIZE = MiB  # read/write buffer
EXTENT_CHUNK = 64 * MiB  # per fallocate / punch / discard call; progress between calls
COPY_CHUNK = 16 * MiB  # per copy_file_range call
READAHEAD = 32 * MiB  # source data asked for ahead of a sparse copy (_read_ahead)
PROGRESS_STEP = 8 * MiB  # report at most this often (and at least every EXTENT_CHUNK)
PIECE = 4096  # granularity of zero detection when writing sparsely
DIRECT_ALIGN = 4096  # O_DIRECT offset/length alignment good for 512 and 4K devices
SCRUB_TIMEOUT = 7 * 24 * 3600.0  # days for gutmann on a big disk; poll() caps near 24 days
WAIT_POLL = 0.1  # seconds between looks at the cancel flag while a pipe is not ready

SCRUB_ALGORITHMS = ("nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7", "pfitzner33")

_ZERO_CHUNK = bytes(CHUNK_SIZE)
_ZERO_PIECE = bytes(PIECE)
# errnos that mean "this filesystem cannot do that", as opposed to a real failure.
_NOT_SUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.ENOTTY)
_NO_COPY_RANGE = (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS)

_libc = ctypes.CDLL(None, use_errno=True)
_c_fallocate = getattr(_libc, "fallocate64", None) or _libc.fallocate
_c_fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
_c_fallocate.restype = ctypes.c_int
RENAME_NOREPLACE = 1
_c_renameat2 = getattr(_libc, "renameat2", None)
if _c_renameat2 is not None:
    _c_renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                             ctypes.c_uint)
    _c_renameat2.restype = ctypes.c_int


# ---------------------------------------------------------------------------- helpers


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


def _is_zero(data: bytes) -> bool:
    # bytes == bytes is a memcmp; far faster than any() or count().
    if len(data) == CHUNK_SIZE:
        return data == _ZERO_CHUNK
    return data == bytes(len(data))


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


def _write_nonzero(fd: int, data: bytes, offset: int) -> None:
    """pwrite `data` at `offset` but leave all-zero 4 KiB pieces unwritten (holes).

    Offsets passed here are multiples of CHUNK_SIZE, so the pieces are block-aligned.
    """
    if _is_zero(data):
        return
    run_start = None
    for at in range(0, len(data), PIECE):
        zero = data[at : at + PIECE] == _ZERO_PIECE[: len(data) - at]
        if not zero and run_start is None:
            run_start = at
        elif zero and run_start is not None:
            _pwrite_all(fd, data[run_start:at], offset + run_start)
            run_start = None
    if run_start is not None:
        _pwrite_all(fd, data[run_start:], offset + run_start)


def _data_segments(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(begin, end) ranges of data in [start, end) by SEEK_DATA/SEEK_HOLE.

    A filesystem without hole reporting (or a block device) gives one segment.
    """
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only holes from pos to EOF
                return
            if exc.errno in (errno.EINVAL, *_NOT_SUPPORTED):
                yield pos, end
                return
            raise
        if data >= end:
            return
        try:
            hole = os.lseek(fd, data, os.SEEK_HOLE)
        except OSError:
            hole = end
        hole = min(hole, end)
        yield data, hole
        pos = hole


# ---------------------------------------------------------------------------- opening


def _proc_fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


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


def allocation_of(fd: int) -> int:
    """Bytes the volume occupies on disk (libvirt's allocation for files)."""
    return os.fstat(fd).st_blocks * 512


# ---------------------------------------------------------------------------- allocate


def _allocate(fd: int, offset: int, length: int, progress: _Progress) -> str:
    """Make [offset, offset+length) allocated without changing its content or the size.

    fallocate(2) in EXTENT_CHUNK steps; where the filesystem has no fallocate (ext2,
    some network filesystems) write zeros into the holes instead. Returns the method.
    """
    end = offset + length
    origin = progress.done - offset  # progress.done == origin + pos
    pos = offset
    while pos < end:
        n = min(EXTENT_CHUNK, end - pos)
        try:
            fallocate(fd, 0, pos, n)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise InsufficientSpace(
                    f"not enough free space to allocate {length} bytes"
                ) from exc
            if exc.errno not in _NOT_SUPPORTED:
                raise
            _zero_fill(fd, pos, end, progress, origin)
            return "zero-write"
        pos += n
        progress.set(origin + pos)
    return "fallocate"


def _zero_fill(fd: int, start: int, end: int, progress: _Progress, origin: int) -> None:
    """Allocate by writing zeros where the file reads as zeros (holes); data is kept.

    Reading first is what makes this safe on a file that already has data (a clone being
    made non-sparse); on a fresh file the reads hit holes and cost no I/O.
    """
    pos = start
    while pos < end:
        n = min(CHUNK_SIZE, end - pos)
        data = _pread_full(fd, n, pos).ljust(n, b"\0")
        if _is_zero(data):
            _pwrite_all(fd, data, pos)
        else:
            for at in range(0, n, PIECE):
                piece = data[at : at + PIECE]
                if _is_zero(piece):
                    _pwrite_all(fd, piece, pos + at)
        pos += n
        progress.set(origin + pos)


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


def _check_sizes(**sizes: int | None) -> None:
    for what, value in sizes.items():
        if value is not None and value < 0:
            raise InvalidSize(f"{what} must not be negative (got {value})")


# ---------------------------------------------------------------------------- building
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


def remove_partials(dir_fd: int) -> list[str]:
    """Remove what builds killed mid-way left in the directory (their guard's flock died
    with them; a live build's guard is locked and stays). Returns the names removed."""
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


# ---------------------------------------------------------------------------- clone


class _FallBack(Exception):
    """copy_file_range cannot be used between these two files."""


def _try_reflink(src_fd: int, dst_fd: int) -> bool:
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError:
        return False  # EXDEV, EOPNOTSUPP (ext4), EINVAL (unaligned tail), ...: copy instead
    return True


def _read_ahead(fd: int, segments: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Pass the segments on, having asked the kernel (POSIX_FADV_WILLNEED) for up to
    READAHEAD bytes of the ones after: the scattered pieces of a cold source then reach the
    disk as many requests at once instead of one by one (bench/clone.py: 2 GiB holding
    200 MiB in 64 KiB pieces, ext4, cold: 0.70 s -> 0.45 s)."""
    queued: list[tuple[int, int]] = []
    ahead = 0
    for begin, end in segments:
        with contextlib.suppress(OSError):  # only a hint
            os.posix_fadvise(fd, begin, min(end - begin, READAHEAD), os.POSIX_FADV_WILLNEED)
        queued.append((begin, end))
        ahead += end - begin
        while ahead >= READAHEAD:
            first = queued.pop(0)
            ahead -= first[1] - first[0]
            yield first
    yield from queued


def _range_copy(src_fd: int, dst_fd: int, length: int, sparse: bool, progress: _Progress) -> None:
    """copy_file_range over the data segments (or everything when not sparse)."""
    segments = (_read_ahead(src_fd, _data_segments(src_fd, 0, length)) if sparse
                else iter([(0, length)]))
    for begin, end in segments:
        pos = begin
        progress.set(pos)
        while pos < end:
            n = min(COPY_CHUNK, end - pos)
            try:
                copied = os.copy_file_range(src_fd, dst_fd, n, pos, pos)
            except OSError as exc:
                if exc.errno in _NO_COPY_RANGE:
                    raise _FallBack() from exc
                if exc.errno == errno.ENOSPC:
                    raise InsufficientSpace("no space left to copy the volume") from exc
                raise
            if copied == 0:
                raise StateError("the source volume became shorter during the copy")
            pos += copied
            progress.set(pos)


def _stream_copy(
    src_fd: int, dst_fd: int, length: int, skip_zeros: bool, progress: _Progress
) -> None:
    """read/write in CHUNK_SIZE pieces; all-zero 4 KiB pieces are skipped if asked."""
    pos = 0
    while pos < length:
        data = _pread_full(src_fd, min(CHUNK_SIZE, length - pos), pos)
        if not data:
            raise StateError("the source volume became shorter during the copy")
        if skip_zeros:
            _write_nonzero(dst_fd, data, pos)
        else:
            _pwrite_all(dst_fd, data, pos)
        pos += len(data)
        progress.set(pos)


def clone_fd(
    src_fd: int,
    dst_fd: int,
    length: int,
    *,
    sparse: bool = True,
    ctx: JobContext = NULL_CONTEXT,
) -> str:
    """Copy the first `length` bytes of src into dst, which the caller created empty (or
    truncated): what is skipped as a hole must already read as zeros there.

    Returns the method: "reflink" (FICLONE, whole file, same filesystem), "sparse-copy"
    (copy_file_range over SEEK_DATA segments) or "copy" (read/write, skipping zero 4 KiB
    pieces when sparse and dst is a regular file). With sparse=False the destination
    ends up fully allocated. src is only read.
    """
    _check_sizes(length=length)
    src_st, dst_st = os.fstat(src_fd), os.fstat(dst_fd)
    _check_kind("source", src_st)
    _check_kind("destination", dst_st)
    both_files = stat.S_ISREG(src_st.st_mode) and stat.S_ISREG(dst_st.st_mode)
    dst_is_file = stat.S_ISREG(dst_st.st_mode)
    # Bytes past a source file's end do not exist: they stay zeros (holes) in dst.
    todo = min(length, _size_of(src_fd, src_st))
    progress = _Progress(ctx, length)

    method = ""
    same_fs = src_st.st_dev == dst_st.st_dev
    if both_files and same_fs and todo == src_st.st_size and _try_reflink(src_fd, dst_fd):
        method = "reflink"
    # Size dst first: writes past EOF would get xfs speculative preallocation, which
    # stays allocated (filling holes) once a later write moves EOF beyond it.
    if dst_is_file and os.fstat(dst_fd).st_size < length:
        os.ftruncate(dst_fd, length)
    if not method and both_files:
        try:
            _range_copy(src_fd, dst_fd, todo, sparse, progress)
            method = "sparse-copy"
        except _FallBack:
            pass
    if not method:
        _stream_copy(src_fd, dst_fd, todo, sparse and dst_is_file, progress)
        method = "copy"
    if dst_is_file and not sparse and allocation_of(dst_fd) < length:
        _allocate(dst_fd, 0, length, _Progress(ctx, length))
    progress.set(length)
    os.fsync(dst_fd)
    progress.finish()
    return method


def clone_file(
    src_dir_fd: int,
    src_name: str,
    dst_dir_fd: int,
    dst_name: str,
    *,
    capacity: int | None = None,
    sparse: bool = True,
    mode: int = 0o600,
    owner: int | None = None,
    group: int | None = None,
    ctx: JobContext = NULL_CONTEXT,
) -> str:
    """Clone volume src_name into a new file dst_name, grown to `capacity` if that is
    larger than the source. Built under a hidden name (see building)."""
    _check_sizes(capacity=capacity)
    with building(dst_dir_fd, dst_name, mode=mode, owner=owner, group=group) as part:
        return clone_into(src_dir_fd, src_name, part.fd, capacity=capacity, sparse=sparse,
                          ctx=ctx)


def clone_into(
    src_dir_fd: int,
    src_name: str,
    dst_fd: int,
    *,
    capacity: int | None = None,
    sparse: bool = True,
    ctx: JobContext = NULL_CONTEXT,
) -> str:
    """Copy volume src_name into the empty file dst_fd (one being built), grown to
    `capacity` if that is larger than the source; returns the method (see clone_fd)."""
    _check_sizes(capacity=capacity)
    src = open_volume(src_dir_fd, src_name, os.O_RDONLY)
    try:
        size = _size_of(src)
        method = clone_fd(src, dst_fd, size, sparse=sparse, ctx=ctx)
    finally:
        os.close(src)
    if capacity is not None and capacity > size:
        os.ftruncate(dst_fd, capacity)
        if not sparse:
            _allocate(dst_fd, size, capacity - size, _Progress(ctx, capacity - size))
    return method


# ---------------------------------------------------------------------------- wipe


def _open_direct(fd: int) -> int | None:
    """A second, O_DIRECT fd on the same file, or None where O_DIRECT is refused."""
    try:
        dfd = os.open(_proc_fd_path(fd), os.O_WRONLY | os.O_DIRECT | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP):
            return None
        raise
    if not _same_file(os.fstat(dfd), os.fstat(fd)):  # paranoia: /proc must be ours
        os.close(dfd)
        return None
    return dfd


def _overwrite(
    fd: int, end: int, fill: Callable[[memoryview], None] | None, progress: _Progress
) -> None:
    """Overwrite [0, end) in CHUNK_SIZE writes from a page-aligned buffer: zeros, or what
    `fill` puts there per chunk. O_DIRECT where possible (no page-cache churn, dd-like
    speed); the unaligned tail and O_DIRECT-less filesystems use buffered writes."""
    dfd = _open_direct(fd)
    buf = mmap.mmap(-1, CHUNK_SIZE)  # anonymous: zero-filled and page-aligned
    view = memoryview(buf)
    try:
        pos = 0
        while pos < end:
            n = min(CHUNK_SIZE, end - pos)
            if fill is not None:
                fill(view)
            if dfd is not None and n % DIRECT_ALIGN == 0:
                try:
                    _pwrite_all(dfd, view[:n], pos)
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    os.close(dfd)  # O_DIRECT opened but refused on write: go buffered
                    dfd = None
                    _pwrite_all(fd, view[:n], pos)
            else:
                _pwrite_all(fd, view[:n], pos)
            pos += n
            progress.set(pos)
        os.fdatasync(fd)
    finally:
        view.release()
        buf.close()
        if dfd is not None:
            os.close(dfd)


def _fill_random(view: memoryview) -> None:
    # os.urandom (getrandom(2), ChaCha20 in the kernel) measured faster here than
    # random.randbytes reseeded per chunk (about 580 vs 390 MB/s), and it is unpredictable.
    view[:] = os.urandom(len(view))


def _trim(fd: int, st: os.stat_result, end: int, progress: _Progress) -> None:
    if stat.S_ISREG(st.st_mode):
        mode, what = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, "punch holes in"
    else:
        mode, what = -1, "discard"
    pos = 0
    while pos < end:
        n = min(EXTENT_CHUNK, end - pos)
        try:
            if mode == -1:
                fcntl.ioctl(fd, BLKDISCARD, struct.pack("QQ", pos, n))
            else:
                fallocate(fd, mode, pos, n)
        except OSError as exc:
            raise Unsupported(
                f"the storage under this volume cannot {what} it ({exc.strerror}); "
                "use the 'zero' algorithm instead"
            ) from exc
        pos += n
        progress.set(pos)
    os.fsync(fd)


def _zero_sparse(fd: int, end: int, progress: _Progress) -> None:
    """Make [0, end) of a sparse file read as zeros without ever changing its size, so a
    kill at any moment leaves the volume's capacity as it was: punch holes
    (PUNCH_HOLE|KEEP_SIZE) over its data in EXTENT_CHUNK steps; where the filesystem cannot
    punch, write zeros over the data that is left (holes already read as zeros).
    Each step starts at the next data, so long holes cost one lseek, and scattered small
    pieces of data go many per call (one punch per piece took 3 s for 8192 of them)."""
    pos = 0
    while True:
        pos = next(_data_segments(fd, pos, end), (end, end))[0]
        if pos >= end:
            break
        n = min(EXTENT_CHUNK, end - pos)
        try:
            fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, pos, n)
        except OSError as exc:
            if exc.errno not in _NOT_SUPPORTED:
                raise
            _zero_data(fd, pos, end, progress)
            return
        pos += n
        progress.set(pos)
    os.fsync(fd)
    progress.set(end)


def _zero_data(fd: int, start: int, end: int, progress: _Progress) -> None:
    """Write zeros over the data segments of [start, end); holes are left alone."""
    zeros = memoryview(_ZERO_CHUNK)
    for begin, stop in _data_segments(fd, start, end):
        pos = begin
        while pos < stop:
            n = min(CHUNK_SIZE, stop - pos)
            _pwrite_all(fd, zeros[:n], pos)
            pos += n
            progress.set(pos)
    os.fsync(fd)
    progress.set(end)


def _scrub(fd: int, algorithm: str, size: int, end: int, progress: _Progress) -> None:
    """scrub(1) on /dev/fd/N: it reopens the very file we hold, whatever its name is now.
    Hours for gutmann on a big volume: a cancel of the job kills it (runner.run)."""
    argv = ["scrub", "-f", "-p", algorithm]
    if end < size:
        argv += ["-s", str(end)]
    argv.append(f"/dev/fd/{fd}")
    progress.ctx.check()
    runner.run(argv, pass_fds=(fd,), timeout=SCRUB_TIMEOUT, cancel=progress.ctx)
    progress.set(end)


def wipe_fd(
    fd: int, algorithm: str, *, length: int | None = None, ctx: JobContext = NULL_CONTEXT
) -> None:
    """Wipe the first `length` bytes (default: all) of an open volume with `algorithm`."""
    if algorithm not in WIPE_ALGORITHMS:
        raise ValidationError(
            f"unknown wipe algorithm '{algorithm}'; valid ones: {', '.join(WIPE_ALGORITHMS)}"
        )
    _check_sizes(length=length)
    st = os.fstat(fd)
    _check_kind("volume", st)
    size = _size_of(fd, st)
    end = size if length is None else min(length, size)  # a wipe never grows a file
    progress = _Progress(ctx, end)
    is_file = stat.S_ISREG(st.st_mode)
    if algorithm == "zero":
        if is_file and st.st_blocks * 512 < size:
            _zero_sparse(fd, end, progress)  # holes stay holes, data becomes holes
        else:
            _overwrite(fd, end, None, progress)
    elif algorithm == "random":
        _overwrite(fd, end, _fill_random, progress)
    elif algorithm == "trim":
        _trim(fd, st, end, progress)
    else:
        _scrub(fd, algorithm, size, end, progress)
    progress.finish()


# ---------------------------------------------------------------------------- resize


def resize_raw_fd(
    fd: int, new_size: int, *, allocate: bool = False, ctx: JobContext = NULL_CONTEXT
) -> None:
    """Set a raw file's size. Growing with allocate=True allocates the new range; if that
    fails or is cancelled, the old size is restored. Shrinking was checked by the caller."""
    _check_sizes(new_size=new_size)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise Unsupported(f"a {_kind(st.st_mode)} cannot be resized as a raw file")
    old = st.st_size
    progress = _Progress(ctx, max(new_size - old, 0) if allocate else 0)
    os.ftruncate(fd, new_size)
    if allocate and new_size > old:
        try:
            _allocate(fd, old, new_size - old, progress)
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, old)
            raise
    os.fsync(fd)
    progress.finish()


def has_data_beyond(fd: int, offset: int) -> bool:
    """True if any data (not a hole) lies at or after `offset`; used to warn on shrink.

    Filesystems that cannot report holes count everything before EOF as data."""
    size = _size_of(fd)
    return offset < size and next(_data_segments(fd, offset, size), None) is not None


# ---------------------------------------------------------------------------- streams


def check_range(offset: int, length: int | None) -> None:
    """The offset and length of an upload or download: neither negative, and a length (when
    given) moves something; 0 is refused rather than read as "everything" as virsh does."""
    _check_sizes(offset=offset, length=length)
    if length == 0:
        raise InvalidSize("a length of 0 moves no data; leave the length out to transfer "
                          "everything from the offset on")


def _stop_if_cancelled(ctx: JobContext) -> None:
    """Raise Cancelled if `ctx` or the job running in this thread was cancelled."""
    ctx.check()
    job = current()
    if job is not None and job is not ctx:
        job.check()


def _wait_ready(fd: int, events: int, ctx: JobContext) -> None:
    """Wait until a pipe, socket or terminal is ready for `events` (POLLIN/POLLOUT), or
    reports a hang-up or an error (the next read or write then says which). Cancelled
    meanwhile: Cancelled. A reader that stops reading or a writer that never writes can
    then hold us only until the job is cancelled."""
    poller = select.poll()
    poller.register(fd, events)
    while True:
        _stop_if_cancelled(ctx)
        if poller.poll(int(WAIT_POLL * 1000)):
            return


def _is_stream(st: os.stat_result) -> bool:
    """A file whose reads and writes can wait for someone else (pipe, socket, terminal)."""
    return not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode))


def _open_source(path: str) -> int:
    """Open an upload's source without blocking: a FIFO with no writer yet is opened at
    once (O_NONBLOCK), and reads wait in _read_source, where a cancel reaches them."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise PoolkeeperError(f"cannot read '{path}': {exc.strerror}") from None


def _read_source(fd: int, size: int, stream: bool, ctx: JobContext) -> bytes:
    """Up to `size` bytes; b"" at the end. A stream is polled first: on Linux a FIFO
    opened before any writer reports neither data nor hang-up until a writer came and
    went, so reading only when poll says so never takes "no writer yet" for the end."""
    while True:
        if stream:
            _wait_ready(fd, select.POLLIN, ctx)
        try:
            return os.read(fd, size)
        except BlockingIOError:
            continue


def upload_amount(src_path: str, length: int | None) -> int | None:
    """How many bytes an upload of src_path (at most `length`) will write, when that is known
    before reading: a regular file or a block device; None for a pipe or socket (upload_fd
    stops it at the volume's end)."""
    try:
        st = os.stat(src_path)
        if stat.S_ISBLK(st.st_mode):
            fd = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                size: int | None = os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
        else:
            size = st.st_size if stat.S_ISREG(st.st_mode) else None
    except OSError as exc:
        raise PoolkeeperError(f"cannot read '{src_path}': {exc.strerror}") from None
    if size is None:
        return None
    return size if length is None else min(length, size)


def refuse_upload_past_end(name: str, amount: int | None, offset: int, size: int,
                           hint: str) -> None:
    """Before anything is written: `amount` bytes (None: not known yet) at `offset` must fit
    in the volume `name` of `size` bytes; `hint` says what to do when they do not (each pool
    type's own: resize the volume, grow the partition, the LUN's size is set on the target)."""
    amount = amount or 0
    if offset + amount > size or offset > size:
        raise ValidationError(f"{amount} bytes at offset {offset} do not fit in '{name}' "
                              f"({size} bytes); {hint}")


def _refuse_past_end(offset: int, amount: int, end: int) -> None:
    if offset + amount > end:
        raise InsufficientSpace(
            f"{amount} bytes at offset {offset} do not fit in the volume ({end} bytes, "
            f"{max(end - offset, 0)} left after the offset); nothing was written"
        )


def upload_fd(
    dst_fd: int,
    src_path: str,
    *,
    offset: int = 0,
    length: int | None = None,
    limit: int | None = None,
    ctx: JobContext = NULL_CONTEXT,
) -> int:
    """Stream src_path (a file or a pipe) into the volume at `offset`, at most `length`
    bytes. Like virsh vol-upload, a file volume is neither truncated nor limited to its
    size unless `limit` says where it ends; a block device ends at its size. Data that would
    run past the end is refused before anything is written when its size is known (a pipe
    is stopped at the end). Returns bytes written."""
    check_range(offset, length)
    dst_st = os.fstat(dst_fd)
    _check_kind("volume", dst_st)
    end = _size_of(dst_fd, dst_st) if stat.S_ISBLK(dst_st.st_mode) else limit
    src = _open_source(src_path)
    try:
        src_st = os.fstat(src)
        stream = _is_stream(src_st)
        known = None if stream else _size_of(src, src_st)
        total = length if known is None else known if length is None else min(length, known)
        if end is not None:
            _refuse_past_end(offset, total or 0, end)
        progress = _Progress(ctx, total)
        done = 0
        while length is None or done < length:
            want = CHUNK_SIZE if length is None else min(CHUNK_SIZE, length - done)
            data = _read_source(src, want, stream, progress.ctx)
            if not data:
                break
            if end is not None and offset + done + len(data) > end:
                raise InsufficientSpace(
                    f"the data does not fit in the volume ({end} bytes): {done} bytes were "
                    f"written from offset {offset} before it reached the end"
                )
            _pwrite_all(dst_fd, data, offset + done)
            done += len(data)
            progress.set(done)
        os.fsync(dst_fd)
        progress.finish()
        return done
    finally:
        os.close(src)


# A download's destination is a name the user gave, in a directory others may write (/tmp):
# a planted symlink or hard link there must never turn the download into a write elsewhere.
_TARGET_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
TargetCheck = Callable[[os.stat_result, str], None]
_target_check: contextvars.ContextVar[TargetCheck | None] = contextvars.ContextVar(
    "poolkeeper_download_target_check", default=None)


@contextlib.contextmanager
def checking_download_targets(check: TargetCheck) -> Iterator[None]:
    """Within the block (this thread), every download destination opened here is passed to
    `check(stat of the open file, path)` before a byte is written or truncated; it raises to
    refuse (the controller refuses volumes of its pools)."""
    token = _target_check.set(check)
    try:
        yield
    finally:
        _target_check.reset(token)


def link_refusal(path: str) -> UnsafePath:
    """The error for a download destination that is a symlink, naming where it points."""
    try:
        where = f" to '{os.readlink(path)}'"
    except OSError:
        where = ""
    return UnsafePath(f"'{path}' is a symbolic link{where}; poolkeeper does not write a "
                      "download through a link: remove it, or give the real file's name")


def _open_existing_target(path: str, ctx: JobContext) -> int:
    """Open an existing destination without following a link, without truncating it and
    without blocking: a FIFO with no reader yet is retried every WAIT_POLL seconds until
    one comes or the job is cancelled."""
    while True:
        try:
            lst = os.lstat(path)
        except FileNotFoundError:
            raise StateError(f"'{path}' disappeared while it was being opened; try again"
                             ) from None
        if stat.S_ISLNK(lst.st_mode):
            raise link_refusal(path)
        if not (stat.S_ISREG(lst.st_mode) or stat.S_ISBLK(lst.st_mode)
                or stat.S_ISFIFO(lst.st_mode) or stat.S_ISCHR(lst.st_mode)):
            raise UnsafePath(f"'{path}' is a {_kind(lst.st_mode)}; a download goes to a file, "
                             "a block device or a pipe")
        try:
            fd = os.open(path, _TARGET_FLAGS)
        except OSError as exc:
            if exc.errno == errno.ENXIO and stat.S_ISFIFO(lst.st_mode):  # no reader yet
                _stop_if_cancelled(ctx)
                time.sleep(WAIT_POLL)
                continue
            if exc.errno == errno.ELOOP:
                raise link_refusal(path) from None
            raise  # EACCES, EROFS, ...: the job says it as our error, naming the path
        if not _same_file(os.fstat(fd), lst):
            os.close(fd)
            raise UnsafePath(f"'{path}' was replaced while it was being opened; try again")
        return fd


def open_download_target(path: str, ctx: JobContext = NULL_CONTEXT) -> tuple[int, bool]:
    """(fd, created) for a download into `path`: a new file is made O_EXCL, mode 0600; an
    existing one (a file, block device, FIFO or character device; never through a
    symlink) is opened as it is, checked (see checking_download_targets), and only then,
    if it is a regular file, emptied (like virsh, a download replaces a file's content).
    The fd is O_NONBLOCK: writes to a pipe wait in _write_stream, where cancel reaches."""
    try:
        fd, created = os.open(path, _TARGET_FLAGS | os.O_CREAT | os.O_EXCL, 0o600), True
    except FileExistsError:  # also a symlink, dangling or not: O_EXCL never follows one
        fd, created = _open_existing_target(path, ctx), False
    except IsADirectoryError:
        raise UnsafePath(f"'{path}' is a directory; give the name of a file") from None
    try:
        st = os.fstat(fd)
        check = _target_check.get()
        if check is not None:
            check(st, path)
        if stat.S_ISREG(st.st_mode) and not created:
            os.ftruncate(fd, 0)
    except BaseException:
        if created:
            _unlink_ours(None, path, fd)
        os.close(fd)
        raise
    return fd, created


def _write_stream(fd: int, data: bytes, ctx: JobContext) -> None:
    """Sequential write to a pipe or terminal (O_NONBLOCK): short writes are continued and
    a full pipe is waited for with the cancel flag in view."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            _wait_ready(fd, select.POLLOUT, ctx)


def _download(
    src_fd: int, dst: int, offset: int, length: int, sparse: bool, progress: _Progress
) -> None:
    seekable = stat.S_ISREG(os.fstat(dst).st_mode)
    skip = sparse and seekable  # a pipe or terminal gets every zero byte
    if seekable:
        os.ftruncate(dst, length)  # trailing holes count; no writes past EOF (see clone_fd)
    end = offset + length
    segments = _data_segments(src_fd, offset, end) if skip else iter([(offset, end)])
    for begin, stop in segments:
        pos = begin
        while pos < stop:
            data = _pread_full(src_fd, min(CHUNK_SIZE, stop - pos), pos)
            if not data:
                raise StateError("the volume became shorter during the download")
            if skip:
                _write_nonzero(dst, data, pos - offset)
            elif seekable:
                _pwrite_all(dst, data, pos - offset)
            else:
                _write_stream(dst, data, progress.ctx)
            pos += len(data)
            progress.set(pos - offset)
    if seekable:
        os.fsync(dst)


def download_fd(
    src_fd: int,
    dst_path: str,
    *,
    offset: int = 0,
    length: int | None = None,
    sparse: bool = False,
    ctx: JobContext = NULL_CONTEXT,
) -> int:
    """Stream the volume from `offset` (at most `length` bytes) into dst_path. With
    sparse, holes and all-zero pieces become holes in dst. Returns the bytes of volume
    covered. On failure or cancel a dst_path this call created is removed."""
    check_range(offset, length)
    src_st = os.fstat(src_fd)
    _check_kind("volume", src_st)
    size = _size_of(src_fd, src_st)
    if offset > size:
        raise ValidationError(f"offset {offset} is past the end of the volume ({size} bytes)")
    todo = size - offset if length is None else min(length, size - offset)
    dst, created = open_download_target(dst_path, ctx)
    try:
        progress = _Progress(ctx, todo)
        _download(src_fd, dst, offset, todo, sparse, progress)
        progress.set(todo)
        progress.finish()
    except BaseException:
        if created:
            _unlink_ours(None, dst_path, dst)
        raise
    finally:
        os.close(dst)
    return todo
