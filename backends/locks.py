"""Locks that hold across threads and processes: flock on files under the runtime dir.

Each acquisition opens its own file description, so two threads of one process
exclude each other exactly as two processes do, and the kernel drops a lock when
its holder dies (a stale lock never blocks). Refusals are immediate Busy errors;
only the short store lock waits.

An exclusive pool request that has to wait says so while it waits (a shared flock on the
pool's ".want" file): the live monitor, which reads a pool in short slices under a shared
hold, checks that before each slice and steps aside, so a verb never fails "busy" because
the monitor happened to be scanning (LockManager.writer_waiting).

Lock files are removed when what they guard is gone and nobody holds them (a deleted
volume's by the delete; a volume's being created when its create or clone job ends, made
or not; every free volume lock file when a pool is stopped or undefined; a pool's own when
it is undefined), without racing a new holder: a remover
unlinks a file only while it holds LOCK_EX on it, and every acquirer, once its flock
succeeds, checks that the path still names the file it locked and starts again if not.
So a lock taken on a file that was unlinked meanwhile is never trusted, and two holders
of one name never hold different files. A file that is busy when its removal is tried
stays (the next removal takes it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import Busy

_VOLUME_ADVICE = "; wait for that to finish or cancel it"
_MAX_REOPENS = 1000  # each reopen means a remover won a race; a loop this long is a bug


class HeldLock:
    """One acquired flock; release() is idempotent."""

    def __init__(self, fd: int, exclusive: bool = False, path: Path | None = None) -> None:
        self._fd: int | None = fd
        self._exclusive = exclusive
        self._path = path
        # release() removes the file by default: a lock of something that may not exist
        # after its holder (a volume being created, whose create can fail or be cancelled)
        self.remove_on_release = False

    def release(self, remove: bool | None = None) -> None:
        """Drop the lock; `remove` (an exclusive holder whose object is gone; default
        remove_on_release): unlink the lock file first, while still holding it, so no new
        holder can be using it."""
        if remove is None:
            remove = self.remove_on_release
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if remove and self._exclusive and self._path is not None:
                with contextlib.suppress(OSError):
                    if _names(self._path, fd):
                        os.unlink(self._path)
            if self._exclusive:
                # Forget who held it, while still holding it: a later refusal (by shared
                # holders, which write nothing) must not name this finished holder.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the flock

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0)
        info = json.loads(raw.decode() or "{}")
    except (OSError, ValueError):
        return ""
    what, pid = info.get("what"), info.get("pid")
    if not what:
        return ""
    if pid and not _pid_alive(int(pid)):
        return ""
    return f" ({what}, pid {pid})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _names(path: Path, fd: int) -> bool:
    """Does `path` still name the file open as `fd` (not unlinked, not replaced)?"""
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def acquire(path: Path, *, exclusive: bool, what: str, busy_message: str,
            wait: float = 0.0, readers: str = "", advice: str = "",
            announce: Path | None = None) -> HeldLock:
    """flock `path`; Busy(busy_message + holder + advice) if it is held incompatibly past
    `wait` s. Only exclusive holders record who they are; `readers` names the shared
    holders when an exclusive request finds no record. `announce`: a file held shared
    while this request waits (see writer_waiting)."""
    op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait
    for _ in range(_MAX_REOPENS):
        # O_NOFOLLOW: a link planted in the lock directory must not make us write elsewhere.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            _flock_until(fd, op, deadline, announce)
        except Busy:
            holder = _describe_holder(fd) or (readers if exclusive else "")
            os.close(fd)
            raise Busy(busy_message + holder + advice) from None
        except BaseException:
            os.close(fd)
            raise
        if _names(path, fd):
            break
        os.close(fd)  # a remover unlinked the file we locked: lock the one there now
    else:
        raise Busy(busy_message + " (its lock file keeps being removed)" + advice)
    if exclusive:
        # Tell whoever is refused what holds it.
        with contextlib.suppress(OSError):
            payload = json.dumps({"pid": os.getpid(), "what": what}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
    return HeldLock(fd, exclusive, path)


def _flock_until(fd: int, op: int, deadline: float, announce: Path | None = None) -> None:
    """flock with LOCK_NB, retried until `deadline`; Busy (bare) when it passes. While it
    waits, `announce` is held shared (a waiting writer, for writer_waiting)."""
    marker: int | None = None
    try:
        while True:
            try:
                fcntl.flock(fd, op)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                if time.monotonic() >= deadline:
                    raise Busy("") from None
            if announce is not None and marker is None:
                marker = _announce(announce)
            time.sleep(0.02)
    finally:
        if marker is not None:
            os.close(marker)


def _announce(path: Path) -> int | None:
    """A shared flock on `path` (None if it cannot be had this time: the next try does)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:  # a monitor is looking at it this very moment
        os.close(fd)
        return None
    return fd


def remove_if_free(path: Path) -> bool:
    """Unlink the lock file `path` if nobody holds it: LOCK_EX|LOCK_NB, check that the
    path still names the file locked, unlink, then close (see the module docstring)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False  # gone already, or not a file of ours
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not _names(path, fd):
            return False
        os.unlink(path)
        return True
    except OSError:  # EWOULDBLOCK: held
        return False
    finally:
        os.close(fd)


def _key(*parts: str) -> str:
    try:  # CPython's own SHA-256, the same digest: hashlib loads OpenSSL (~3 ms a command)
        from _sha256 import sha256
    except ImportError:  # not CPython 3.11 (3.12 renamed it)
        from hashlib import sha256

    return sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:32]


class LockManager:
    def __init__(self, locks_dir: Path) -> None:
        self.dir = locks_dir
        self.dir.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def store(self, wait: float = 10.0) -> Iterator[None]:
        """Serialises define/undefine across processes (a short critical section)."""
        held = acquire(self.dir / "store.lock", exclusive=True, what="defining pools",
                       busy_message="another poolkeeper is changing pool definitions", wait=wait)
        try:
            yield
        finally:
            held.release()

    def pool(self, pool: str, *, exclusive: bool, what: str, wait: float = 2.0) -> HeldLock:
        """Shared: listing and volume verbs. Exclusive: build/start/stop/delete/undefine."""
        if exclusive:
            msg = (f"pool '{pool}' is busy: jobs or another poolkeeper process are using it; "
                   "wait for them or cancel them first")
        else:
            msg = f"pool '{pool}' is busy: it is being changed"
        return acquire(self._pool_path(pool), exclusive=exclusive, what=what,
                       busy_message=msg, wait=wait,
                       announce=self._want_path(pool) if exclusive and wait > 0 else None)

    def writer_waiting(self, pool: str) -> bool:
        """Is an exclusive request waiting for the pool (see the module docstring)? The
        monitor asks before each slice of a scan and lets it in. Creates no file."""
        try:
            fd = os.open(self._want_path(pool), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return False  # nobody ever waited
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def records(self, pool: str) -> HeldLock:
        """Serialises updates of a pool's volume records (a short critical section)."""
        return acquire(self.dir / f"records-{_key(pool)}.lock", exclusive=True,
                       what="recording volume formats",
                       busy_message=f"the volume records of pool '{pool}' are busy", wait=10.0)

    def volume(self, pool: str, volume: str, *, exclusive: bool, what: str) -> HeldLock:
        """Shared: readers (clone source, download). Exclusive: writers (wipe, upload,
        resize, delete, being created)."""
        return acquire(self._volume_path(pool, volume), exclusive=exclusive, what=what,
                       busy_message=self._volume_busy(pool, volume),
                       readers=" (a clone or download is reading it)", advice=_VOLUME_ADVICE)

    def check_volume_writer(self, pool: str, volume: str) -> None:
        """Busy if a writer holds the volume (one being created has no file under its name
        yet, so this is how a lookup tells "being created" from "no such volume"). Takes no
        lock and creates no lock file."""
        try:
            fd = os.open(self._volume_path(pool, volume),
                         os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return  # never locked, so nobody holds it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(self._volume_busy(pool, volume) + _describe_holder(fd)
                           + _VOLUME_ADVICE) from None
        finally:
            os.close(fd)  # drops the shared lock, if it was taken

    def _volume_path(self, pool: str, volume: str) -> Path:
        return self.dir / f"vol-{_key(pool, volume)}.lock"

    # -- removal of lock files whose object is gone ---------------------------------------
    def sweep_volume_locks(self) -> int:
        """Remove every volume lock file that nobody holds (those of deleted volumes, of
        creates that failed, of pools undefined); returns how many went. Removing a free
        one is always safe (see the module docstring): the next user makes it again. The
        names are hashes, so this is not limited to one pool."""
        try:
            names = [n for n in os.listdir(self.dir)
                     if n.startswith("vol-") and n.endswith(".lock")]
        except OSError:
            return 0
        return sum(remove_if_free(self.dir / name) for name in names)

    def forget_pool(self, pool: str) -> None:
        """The pool was undefined: its records lock file and the free volume lock files
        go; its pool lock file goes with the holder's release(remove=True)."""
        self.sweep_volume_locks()
        remove_if_free(self.dir / f"records-{_key(pool)}.lock")
        remove_if_free(self._want_path(pool))

    def _pool_path(self, pool: str) -> Path:
        return self.dir / f"pool-{_key(pool)}.lock"

    def _want_path(self, pool: str) -> Path:
        return self.dir / f"pool-{_key(pool)}.want"

    @staticmethod
    def _volume_busy(pool: str, volume: str) -> str:
        return f"volume '{volume}' in pool '{pool}' is busy: it is in use"
