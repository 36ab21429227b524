"""Downloading a volume into a path the user named: the destination is opened without
following a link and checked before it is emptied, and the bytes go to a file (holes kept
when sparse), a block device or a pipe."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import select
import stat
import time
from collections.abc import Callable, Iterator

from ..errors import StateError, UnsafePath, ValidationError
from ..progress import NULL_CONTEXT, JobContext
from .primitives import (
    CHUNK_SIZE,
    _check_kind,
    _kind,
    _pread_full,
    _Progress,
    _pwrite_all,
    _same_file,
    _size_of,
    _unlink_ours,
)
from .sparse import _data_segments, _write_nonzero
from .streams import WAIT_POLL, _stop_if_cancelled, _wait_ready, check_range

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
