"""Locks that hold across threads and processes: flock on files under the runtime dir.

Each acquisition opens its own file description, so two threads of one process
exclude each other exactly as two processes do, and the kernel drops a lock when
its holder dies (a stale lock never blocks). Refusals are immediate Busy errors;
only the short store lock waits.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import Busy


class HeldLock:
    """One acquired flock; release() is idempotent."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
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


def acquire(path: Path, *, exclusive: bool, what: str, busy_message: str,
            wait: float = 0.0) -> HeldLock:
    """flock `path`; Busy(busy_message + holder) if it is held incompatibly past `wait` s."""
    # O_NOFOLLOW: a link planted in the lock directory must not make us write elsewhere.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    op = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, op)
            break
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                os.close(fd)
                raise
            if time.monotonic() >= deadline:
                holder = _describe_holder(fd)
                os.close(fd)
                raise Busy(busy_message + holder) from None
            time.sleep(0.02)
    if exclusive:
        # Tell whoever is refused what holds it.
        with contextlib.suppress(OSError):
            payload = json.dumps({"pid": os.getpid(), "what": what}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, payload, 0)
    return HeldLock(fd)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()[:32]


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
        return acquire(self.dir / f"pool-{_key(pool)}.lock", exclusive=exclusive, what=what,
                       busy_message=msg, wait=wait)

    def records(self, pool: str) -> HeldLock:
        """Serialises updates of a pool's volume records (a short critical section)."""
        return acquire(self.dir / f"records-{_key(pool)}.lock", exclusive=True,
                       what="recording volume formats",
                       busy_message=f"the volume records of pool '{pool}' are busy", wait=10.0)

    def volume(self, pool: str, volume: str, *, exclusive: bool, what: str) -> HeldLock:
        """Shared: readers (clone source, download). Exclusive: writers (wipe, upload,
        resize, delete, being created)."""
        msg = f"volume '{volume}' in pool '{pool}' is busy"
        return acquire(self.dir / f"vol-{_key(pool, volume)}.lock", exclusive=exclusive,
                       what=what, busy_message=msg)
