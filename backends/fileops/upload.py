"""Uploading a file or pipe into an open volume: how much will be written, whether it fits
(refused before a byte is written when that is known), and the copy itself."""

from __future__ import annotations

import os
import select
import stat

from ..errors import InsufficientSpace, PoolkeeperError, ValidationError
from ..progress import NULL_CONTEXT, JobContext
from .primitives import CHUNK_SIZE, _check_kind, _Progress, _pwrite_all, _size_of, fallocate
from .sparse import _is_zero
from .streams import _wait_ready, check_range


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
    sparse: bool = False,
    ctx: JobContext = NULL_CONTEXT,
) -> int:
    """Stream src_path (a file or a pipe) into the volume at `offset`, at most `length`
    bytes. Like virsh vol-upload, a file volume is neither truncated nor limited to its
    size unless `limit` says where it ends; a block device ends at its size. Data that would
    run past the end is refused before anything is written when its size is known (a pipe
    is stopped at the end). `sparse` (vol-upload --sparse): in a file volume, zeros of the
    source become holes (punched, so old data there reads as zeros too). Returns bytes
    written."""
    check_range(offset, length)
    dst_st = os.fstat(dst_fd)
    _check_kind("volume", dst_st)
    end = _size_of(dst_fd, dst_st) if stat.S_ISBLK(dst_st.st_mode) else limit
    holes = sparse and stat.S_ISREG(dst_st.st_mode)
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
            if not (holes and _is_zero(data) and _punch(dst_fd, offset + done, len(data))):
                _pwrite_all(dst_fd, data, offset + done)
            done += len(data)
            progress.set(done)
        if holes and os.fstat(dst_fd).st_size < offset + done:  # a hole at the end
            os.ftruncate(dst_fd, offset + done)
        os.fsync(dst_fd)
        progress.finish()
        return done
    finally:
        os.close(src)


def _punch(fd: int, offset: int, length: int) -> bool:
    """Make [offset, offset+length) of a file a hole (it reads as zeros); False where the
    filesystem cannot, for the caller to write the zeros instead."""
    try:
        fallocate(fd, 0x02 | 0x01, offset, length)  # FALLOC_FL_PUNCH_HOLE | KEEP_SIZE
    except OSError:
        return False
    return True
