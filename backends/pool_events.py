"""virsh pool-event's events, as they happen: lifecycle (Defined, Undefined, Started,
Stopped, Created, Deleted) and refresh, of pools changed by this process or any other.

Every process's verbs write their events to the run state's journal (event_journal), in
the order they happened; this follows it from its end, so it reports what happens after
it starts, once each, whoever did it. Refresh events also come from this process's live
monitor (its rescans that found a pool's volumes changed), through the event bus: the
journal is read first whenever one comes, so it follows what was journalled before it.

Nothing is polled while inotify can be had: an inotify watch on the run directory wakes
the reader when the journal is written, made or renamed (another process's verbs), and a
pipe wakes it when the monitor publishes; idle, it sleeps in select(). Without inotify
(no instance left, the run directory on a network filesystem, where other hosts' writes
are not seen) the journal is looked at every ROUND seconds as well.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import watch
from .event_journal import JournalReader
from .events import Event, Subscriber, VolumesChanged
from .store import Store

EVENT_TYPES = ("lifecycle", "refresh")
ROUND = 0.2  # seconds between looks at the journal where inotify cannot tell us
# the journal written, made (after a rotation), renamed (rotated) or removed; the run
# directory itself removed or moved (then only polling is left)
_JOURNAL_MASK = (watch.IN_MODIFY | watch.IN_CREATE | watch.IN_MOVED_FROM | watch.IN_MOVED_TO
                 | watch.IN_DELETE | watch.IN_DELETE_SELF | watch.IN_MOVE_SELF
                 | watch.IN_ONLYDIR)


@dataclass(frozen=True)
class PoolEvent:
    kind: str  # lifecycle or refresh
    pool: str
    detail: str = ""  # lifecycle: Defined, Started, ...


class _JournalWatch:
    """An inotify watch on the run directory: fileno() is readable when the journal may
    have changed. `polled` when inotify cannot be trusted to say so."""

    def __init__(self, run_dir: Path) -> None:
        self._watcher: watch.Watcher | None = None
        self.polled = True
        try:
            dir_fd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            self._watcher = watch.Watcher()
            self._watcher.add(dir_fd, _JOURNAL_MASK)
            self.polled = watch.remote_fs(dir_fd)  # other hosts' writes are not seen
        except OSError:  # no inotify instance or watch left (the user's limits)
            self.close()
        finally:
            os.close(dir_fd)

    def fileno(self) -> int | None:
        return None if self._watcher is None else self._watcher.fileno()

    def drain(self) -> None:
        """Forget what was queued (the journal is read next); the directory gone: poll."""
        if self._watcher is None:
            return
        if any(e.mask & (watch.IN_IGNORED | watch.IN_DELETE_SELF | watch.IN_MOVE_SELF)
               for e in self._watcher.read()):
            self.close()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        self.polled = True


class PoolEvents:
    """`events()` yields the pool events in the order they were made (journal) or seen
    (this process's monitor)."""

    def __init__(self, store: Store,
                 subscribe: Callable[[Subscriber], Callable[[], None]]) -> None:
        self._journal = JournalReader(store.run_dir)  # from here on
        # after the reader: events() reads the journal once the watch is in place, so a
        # line written in between is read then
        self._watch = _JournalWatch(store.run_dir)
        self._queue: queue.SimpleQueue[PoolEvent] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_lock = threading.Lock()  # no write to a closed (reused) descriptor
        self._closed = False
        self._unsubscribe = subscribe(self._heard)

    def close(self) -> None:
        if self._closed:
            return
        self._unsubscribe()
        with self._wake_lock:
            self._closed = True
            os.close(self._wake_r)
            os.close(self._wake_w)
        self._watch.close()
        self._journal.close()

    def _heard(self, event: Event) -> None:  # on the monitor's thread
        # lifecycle changes, ours too, come from the journal; the monitor's rescans only here
        if isinstance(event, VolumesChanged) and (event.added or event.removed
                                                  or event.changed):
            self._queue.put(PoolEvent("refresh", event.pool))
            with self._wake_lock, contextlib.suppress(OSError):  # full: awake already
                if not self._closed:
                    os.write(self._wake_w, b"x")

    def _journalled(self) -> list[PoolEvent]:
        return [PoolEvent(kind, pool, detail if kind == "lifecycle" else "")
                for kind, pool, detail in self._journal.read()]

    def events(self, timeout: float | None = None) -> Iterator[PoolEvent]:
        """The events as they come, until `timeout` seconds have passed (None: forever)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            # the watch drained before the journal is read: a line written after this
            # read makes it readable again, so the wait below wakes for it
            self._watch.drain()
            yield from self._journalled()
            while True:
                try:
                    seen = self._queue.get_nowait()
                except queue.Empty:
                    break
                yield from self._journalled()  # what was journalled before it, first
                yield seen
            wait = None if end is None else end - time.monotonic()
            if wait is not None and wait <= 0:
                return
            if self._watch.polled:
                wait = ROUND if wait is None else min(ROUND, wait)
            fds = [self._wake_r]
            if (fd := self._watch.fileno()) is not None:
                fds.append(fd)
            ready, _, _ = select.select(fds, [], [], wait)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
