"""The pool events every process's verbs made, in one append-only journal under the run
state (RUNTIME/run/.events), for pool-event in any other process to read as they come.

One JSON line per event (lifecycle Defined, Undefined, Started, Stopped, Created, Deleted;
refresh), written with one write() on an O_APPEND fd, so two writers never interleave
partial lines. The journal is capped: the writer that takes it past MAX_BYTES renames it
to .events.1 (the one before goes) under an exclusive flock, while every writer appends
under a shared one after checking that the name is still its file: nothing is appended to
a renamed journal, and a reader that finds the name moved reads its old file to the end
first (then .events.1, if a whole journal went by meanwhile), so it loses nothing unless
more than one whole journal went by between two of its reads. A reader starts at the end:
it sees only new events.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from pathlib import Path

from .events import Event, JobFinished, PoolChanged

JOURNAL = ".events"  # no pool's run state starts with "." (check_pool_name)
MAX_BYTES = 256 * 1024
LIFECYCLE = {"defined": "Defined", "undefined": "Undefined", "started": "Started",
             "stopped": "Stopped", "built": "Created", "deleted": "Deleted"}
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC


def _same(fd: int, path: Path) -> bool:
    mine = os.fstat(fd)
    return _identity(path) == (mine.st_dev, mine.st_ino)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class EventJournal:
    """The writer: subscribe `record` to the controller's bus."""

    def __init__(self, run_dir: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path = run_dir / JOURNAL
        self.max_bytes = max_bytes

    def record(self, event: Event) -> None:
        if isinstance(event, PoolChanged) and event.journal:
            detail = LIFECYCLE.get(event.reason)
            if detail is not None:
                self.append("lifecycle", event.pool, detail)
            elif event.reason == "refreshed":
                self.append("refresh", event.pool)
        elif (isinstance(event, JobFinished) and event.job.kind == "upload"
              and event.job.state == "done" and event.job.pool):
            self.append("refresh", event.job.pool)  # libvirt refreshes after an upload

    def append(self, kind: str, pool: str, detail: str = "") -> None:
        """Best effort, as libvirt's events: the verb is done whether or not this lands."""
        line = json.dumps({"kind": kind, "pool": pool, "detail": detail}) + "\n"
        with contextlib.suppress(OSError):
            self._append(line.encode("utf-8"))

    def _append(self, data: bytes) -> None:
        for _ in range(8):
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _OPEN, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                if not _same(fd, self.path):
                    continue  # rotated between our open and our lock
                os.write(fd, data)
                full = os.fstat(fd).st_size > self.max_bytes
                fcntl.flock(fd, fcntl.LOCK_UN)
                if full:
                    self._rotate(fd)
                return
            finally:
                os.close(fd)

    def _rotate(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # a writer is at it: the next one past the cap rotates
        if _same(fd, self.path) and os.fstat(fd).st_size > self.max_bytes:
            os.replace(self.path, self.path.with_name(JOURNAL + ".1"))


class JournalReader:
    """Follows the journal from its end as it is when made: `read()` gives the events
    appended since the last call, as (kind, pool, detail), oldest first."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / JOURNAL
        self._fd: int | None = None
        self._rest = b""
        self._open(at_end=True)
        self._older = _identity(self.path.with_name(JOURNAL + ".1"))  # already there
        self._done: tuple[int, int] | None = None

    def close(self) -> None:
        if self._fd is not None:
            st = os.fstat(self._fd)
            self._done = (st.st_dev, st.st_ino)  # read: not to be read again as .1
            os.close(self._fd)
            self._fd = None

    def _open(self, at_end: bool, path: Path | None = None) -> None:
        try:
            fd = os.open(path or self.path, os.O_RDONLY | _OPEN | os.O_NONBLOCK)
        except OSError:
            return  # none yet: every event in the one made later is new
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return
        if at_end:
            os.lseek(fd, 0, os.SEEK_END)
        self._fd, self._rest = fd, b""

    def read(self) -> list[tuple[str, str, str]]:
        events: list[tuple[str, str, str]] = []
        if self._fd is None:  # none open (none yet, or between a rotation and the next
            # line): a journal rotated meanwhile that we have not read is new too
            older = self.path.with_name(JOURNAL + ".1")
            if _identity(older) not in (None, self._older, self._done):
                self._open(at_end=False, path=older)
                if self._fd is not None:
                    events += self._drain()
                    self.close()
            self._open(at_end=False)
        while self._fd is not None:
            # moved (rotated, removed): nothing more is appended to it, so once read to
            # its end, the next one is read from its start
            moved = not _same(self._fd, self.path)
            events += self._drain()
            if not moved:
                break
            older = self.path.with_name(JOURNAL + ".1")
            skipped = not _same(self._fd, older)  # rotated twice: one we never opened
            self.close()
            if skipped:
                self._open(at_end=False, path=older)
                if self._fd is not None:
                    events += self._drain()
                    self.close()
            self._open(at_end=False)
        return events

    def _drain(self) -> list[tuple[str, str, str]]:
        assert self._fd is not None
        data = self._rest
        while chunk := os.read(self._fd, 65536):
            data += chunk
        *lines, self._rest = data.split(b"\n")
        events = []
        for line in lines:
            try:
                entry = json.loads(line)
                kind, pool, detail = entry["kind"], entry["pool"], entry.get("detail", "")
            except (ValueError, TypeError, KeyError):
                continue  # not a line of ours: skipped
            if kind in ("lifecycle", "refresh") and isinstance(pool, str) \
                    and isinstance(detail, str):
                events.append((kind, pool, detail))
        return events
