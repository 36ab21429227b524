"""Wiping a volume with one of the wipe algorithms: zeros (holes punched where the file is
sparse, else O_DIRECT writes), random bytes, a trim (hole punch or BLKDISCARD), or scrub(1)'s
patterns on the fd we hold."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import struct
from collections.abc import Callable

from .. import runner
from ..errors import Unsupported, ValidationError
from ..model import WIPE_ALGORITHMS
from ..progress import NULL_CONTEXT, JobContext
from .primitives import (
    _NOT_SUPPORTED,
    CHUNK_SIZE,
    EXTENT_CHUNK,
    _check_kind,
    _check_sizes,
    _proc_fd_path,
    _Progress,
    _pwrite_all,
    _same_file,
    _size_of,
    fallocate,
)
from .sparse import _ZERO_CHUNK, _data_segments

# ioctl numbers (x86_64/aarch64 encodings; Python 3.11's fcntl module lacks most of them).
BLKDISCARD = 0x1277  # _IO(0x12, 119), argument: uint64 [start, length]

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

DIRECT_ALIGN = 4096  # O_DIRECT offset/length alignment good for 512 and 4K devices
SCRUB_TIMEOUT = 7 * 24 * 3600.0  # days for gutmann on a big disk; poll() caps near 24 days

SCRUB_ALGORITHMS = ("nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7", "pfitzner33")


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
