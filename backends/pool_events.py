"""virsh pool-event's events, as they happen: lifecycle (Defined, Undefined, Started,
Stopped, Created, Deleted) and refresh, of pools changed by this process or any other.

Every process's verbs write their events to the run state's journal (event_journal), in
the order they happened; this follows it from its end, so it reports what happens after
it starts, once each, whoever did it. Refresh events also come from this process's live
monitor (its rescans that found a pool's volumes changed), through the event bus: the
journal is read first whenever one comes, so it follows what was journalled before it.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .event_journal import JournalReader
from .events import Event, Subscriber, VolumesChanged
from .store import Store

EVENT_TYPES = ("lifecycle", "refresh")
ROUND = 0.2  # seconds between looks at the journal


@dataclass(frozen=True)
class PoolEvent:
    kind: str  # lifecycle or refresh
    pool: str
    detail: str = ""  # lifecycle: Defined, Started, ...


class PoolEvents:
    """`events()` yields the pool events in the order they were made (journal) or seen
    (this process's monitor)."""

    def __init__(self, store: Store,
                 subscribe: Callable[[Subscriber], Callable[[], None]]) -> None:
        self._journal = JournalReader(store.run_dir)  # from here on
        self._queue: queue.Queue[PoolEvent] = queue.Queue()
        self._unsubscribe = subscribe(self._heard)

    def close(self) -> None:
        self._unsubscribe()
        self._journal.close()

    def _heard(self, event: Event) -> None:
        # lifecycle changes, ours too, come from the journal; the monitor's rescans only here
        if isinstance(event, VolumesChanged) and (event.added or event.removed
                                                  or event.changed):
            self._queue.put(PoolEvent("refresh", event.pool))

    def _journalled(self) -> list[PoolEvent]:
        return [PoolEvent(kind, pool, detail if kind == "lifecycle" else "")
                for kind, pool, detail in self._journal.read()]

    def events(self, timeout: float | None = None) -> Iterator[PoolEvent]:
        """The events as they come, until `timeout` seconds have passed (None: forever)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            yield from self._journalled()
            wait = ROUND if end is None else min(ROUND, end - time.monotonic())
            if wait <= 0:
                return
            try:
                seen = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            yield from self._journalled()
            yield seen
