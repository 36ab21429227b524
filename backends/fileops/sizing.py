"""A file's size and allocation: allocating a range (fallocate, or zeros written into the
holes where the filesystem has none), resizing a raw file, and what is allocated or holds
data."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ..errors import InsufficientSpace, Unsupported
from ..progress import NULL_CONTEXT, JobContext
from .primitives import (
    _NOT_SUPPORTED,
    CHUNK_SIZE,
    EXTENT_CHUNK,
    _check_sizes,
    _kind,
    _pread_full,
    _Progress,
    _pwrite_all,
    _size_of,
    fallocate,
)
from .sparse import PIECE, _data_segments, _is_zero


def allocation_of(fd: int) -> int:
    """Bytes the volume occupies on disk (libvirt's allocation for files)."""
    return os.fstat(fd).st_blocks * 512


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
