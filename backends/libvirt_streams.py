"""vol-upload and vol-download over a libvirt connection: the bytes move through a libvirt
stream (virStreamSend/virStreamRecv, and sendHole/recvHole for sparse streams), chunk by
chunk on the connection's worker, each chunk counting as progress for its deadline and as
a point where a cancel stops it: the stream is aborted (virStreamAbort, so libvirt stops
writing), and a download file this call created is removed.

The local end is opened as the native download opens it (fileops.download: never through
a symlink, a new file O_EXCL 0600, an existing file emptied only after it is opened).
With --sparse, an upload sends the source's holes (SEEK_DATA/SEEK_HOLE) as holes, which
libvirt skips on the volume, keeping what the volume held there (as virsh does); a
download keeps libvirt's holes as holes in a regular file.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any

from . import libvirt_checks
from .errors import InsufficientSpace, PoolkeeperError, ValidationError
from .fileops.download import (
    TargetCheck,
    _write_stream,
    checking_download_targets,
    open_download_target,
)
from .fileops.primitives import _pwrite_all, _unlink_ours
from .fileops.sparse import _data_segments
from .fileops.streams import check_range
from .fileops.upload import refuse_upload_past_end
from .jobs import Job
from .libvirt_controller import LibvirtController
from .libvirt_volumes import start_job

CHUNK = 1 << 20  # bytes per stream message we ask for or send (libvirt splits it to 256 KiB)


def _size(fd: int, st: os.stat_result) -> int | None:
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if stat.S_ISBLK(st.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return None  # a pipe: until its end


def _aborting(stream: Any) -> None:
    try:
        stream.abort()
    except Exception:  # already finished or broken: nothing left to stop
        pass


def upload(lc: LibvirtController, pool: str, name: str, src_path: str, *, offset: int = 0,
           length: int | None = None, sparse: bool = False) -> Job:
    """A job sending `src_path` (from its start, at most `length` bytes) into the volume
    at `offset`; its result is the number of bytes of the volume covered."""
    check_range(offset, length)
    try:
        fd = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise PoolkeeperError(f"cannot read '{src_path}': {exc.strerror}") from None
    st = os.fstat(fd)
    if stat.S_ISDIR(st.st_mode):
        os.close(fd)
        raise PoolkeeperError(f"'{src_path}' is a directory; give the file to upload")
    lv = lc.libvirt
    seekable = stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)
    size = _size(fd, st)
    todo = size if length is None else (length if size is None else min(length, size))
    # A raw volume keeps its size, as natively: data past its end is refused before a
    # byte is sent (a pipe's, of unknown length, is stopped at the end and refused then)
    limit: int | None = None
    try:
        info = lc.volume_info(pool, name)
        if info.type == "block" or info.format == "raw":
            refuse_upload_past_end(name, todo, offset, info.capacity,
                                   "resize the volume first (vol-resize)")
            limit = info.capacity - offset
    except BaseException:
        os.close(fd)
        raise
    todo_sent = limit if todo is None else todo  # what libvirt is told to expect

    def send(job: Job) -> int:
        holes = sparse and stat.S_ISREG(st.st_mode) and todo is not None
        flags = lv.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM if holes else 0
        stream = lc.connection.conn.newStream(0)
        lc._volume(name, pool).upload(stream, offset, todo_sent or 0, flags)
        done = 0
        try:
            if holes:
                assert todo is not None
                for begin, end in [*_data_segments(fd, 0, todo), (todo, todo)]:
                    if begin > done:
                        stream.sendHole(begin - done, 0)
                        done = begin
                        _tick(job, done, todo)
                    done = _send_range(lc, job, stream, fd, done, end, todo, seekable)
            else:
                done = _send_range(lc, job, stream, fd, 0, todo_sent, todo_sent, seekable)
                if todo is None and limit is not None and os.read(fd, 1):
                    raise InsufficientSpace(
                        f"'{src_path}' holds more than the {limit} bytes that fit in "
                        f"'{name}' after offset {offset}; the upload was stopped (a raw "
                        "volume keeps its size: resize it first, vol-resize)")
            stream.finish()
        except BaseException:
            _aborting(stream)
            raise
        return done

    def run(job: Job) -> int:
        try:
            return int(lc._call(lambda: send(job), f"cannot upload to volume '{name}'"))
        finally:
            os.close(fd)

    return start_job("upload", f"upload {os.path.basename(src_path)} to {name}", run)


def _regular_or_new(path: str) -> bool:
    """Will a download into `path` write a regular file (where holes can stay holes)?"""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # the open says what is wrong


def _tick(job: Job, done: int, total: int | None) -> None:
    job.update(done, total or 0)  # raises Cancelled once the job is cancelled


def _send_range(lc: LibvirtController, job: Job, stream: Any, fd: int, pos: int,
                end: int | None, total: int | None, seekable: bool) -> int:
    """Send [pos, end) of fd (end None: to its end; a pipe is read as it comes); the
    position reached."""
    while end is None or pos < end:
        want = CHUNK if end is None else min(CHUNK, end - pos)
        data = os.pread(fd, want, pos) if seekable else os.read(fd, want)
        if not data:
            if end is not None:
                raise OSError(f"the source became shorter during the upload (at byte {pos})")
            break
        stream.send(data)
        pos += len(data)
        lc.connection.alive()
        _tick(job, pos, total)
    return pos


def _both(first: TargetCheck | None, second: TargetCheck | None) -> TargetCheck | None:
    """Both checks of a download's destination (`also_check`: this host's own pools, where
    the connection's host is another one: Fleet)."""
    if first is None or second is None:
        return first or second

    def check(st: os.stat_result, path: str) -> None:
        first(st, path)
        second(st, path)
    return check


def download(lc: LibvirtController, pool: str, name: str, dst_path: str, *, offset: int = 0,
             length: int | None = None, sparse: bool = False,
             also_check: TargetCheck | None = None) -> Job:
    """A job receiving the volume from `offset` (at most `length` bytes) into `dst_path`;
    its result is the number of bytes of the volume covered. The stream is started before
    the local file is opened, so a refusal (an offset past the end, a driver without
    downloads) leaves an existing file as it was; on a connection to this host the file
    is never a pool's (libvirt_checks.download_check)."""
    check_range(offset, length)
    lv = lc.libvirt
    local = libvirt_checks.is_local(lc.uri)

    def begin(holes: bool) -> tuple[Any, int | None, Any]:
        vol = lc._volume(name, pool)
        try:  # the bytes a stream carries are the file's (a qcow2's, not its capacity)
            physical: int | None = int(vol.infoFlags(lv.VIR_STORAGE_VOL_GET_PHYSICAL)[2])
        except lv.libvirtError:
            physical = None  # no bar, then
        if physical is not None and offset > physical:
            raise ValidationError(f"offset {offset} is past the end of '{name}' ({physical} "
                                  "bytes); nothing was downloaded")
        total = None if physical is None else physical - offset
        if length is not None:
            total = length if total is None else min(total, length)
        check = libvirt_checks.download_check(lc.connection.conn, lv) if local else None
        stream = lc.connection.conn.newStream(0)
        vol.download(stream, offset, length or 0,
                     lv.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM if holes else 0)
        return stream, total, check

    def receive(job: Job, fd: int, stream: Any, total: int | None, holes: bool) -> int:
        st = os.fstat(fd)
        seekable = stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)
        if holes and not stat.S_ISREG(st.st_mode):  # swapped since it was looked at
            raise PoolkeeperError(f"'{dst_path}' is no longer a regular file; nothing was "
                                  "downloaded")
        pos = 0
        try:
            while True:
                got = stream.recvFlags(CHUNK, lv.VIR_STREAM_RECV_STOP_AT_HOLE if holes else 0)
                if got == -3:  # a hole: skipped in the file, sized by the final truncate
                    pos += int(stream.recvHole(0))
                elif isinstance(got, bytes) and got:
                    if seekable:
                        _pwrite_all(fd, got, pos)
                    else:
                        _write_stream(fd, got, job)
                    pos += len(got)
                elif isinstance(got, bytes):
                    break
                else:
                    raise OSError(f"unexpected answer {got!r} from the stream")
                lc.connection.alive()
                _tick(job, pos, total)
            stream.finish()
        except BaseException:
            _aborting(stream)
            raise
        return pos

    def run(job: Job) -> int:
        holes = sparse and _regular_or_new(dst_path)
        stream, total, check = lc._call(lambda: begin(holes),
                                        f"cannot download volume '{name}'", long=True)
        check = _both(check, also_check)
        try:
            with checking_download_targets(check) if check else contextlib.nullcontext():
                fd, created = open_download_target(dst_path, job)
        except BaseException:
            _aborting(stream)
            raise
        try:
            pos = int(lc._call(lambda: receive(job, fd, stream, total, holes),
                               f"cannot download volume '{name}'"))
            if stat.S_ISREG(os.fstat(fd).st_mode):  # local work: no deadline on it
                os.ftruncate(fd, pos)  # trailing holes count
                os.fsync(fd)
            return pos
        except BaseException:
            if created:  # nothing half-written of ours stays behind
                _unlink_ours(None, dst_path, fd)
            raise
        finally:
            os.close(fd)

    return start_job("download", f"download {name}", run)
