"""Holes: where a file's data lies (SEEK_DATA/SEEK_HOLE), whether a chunk is all zeros,
and writing a chunk so that its all-zero 4 KiB pieces stay holes."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

from .primitives import _NOT_SUPPORTED, CHUNK_SIZE, _pwrite_all

PIECE = 4096  # granularity of zero detection when writing sparsely

_ZERO_CHUNK = bytes(CHUNK_SIZE)
_ZERO_PIECE = bytes(PIECE)


def _is_zero(data: bytes) -> bool:
    # bytes == bytes is a memcmp; far faster than any() or count().
    if len(data) == CHUNK_SIZE:
        return data == _ZERO_CHUNK
    return data == bytes(len(data))


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
