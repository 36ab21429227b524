"""virsh pool-event's events, as they happen: lifecycle (Defined, Undefined, Started,
Stopped, Created, Deleted) and refresh, of pools changed by this process or any other.

Other processes' verbs are seen in the state root: each round compares the definitions and
run states with the last round's (a stop and a start in between show as the run state's
new identity). Refresh events come from the live monitor (its rescans publish what changed
in a pool's volumes) and from this process's own verbs, through the event bus; this
process's lifecycle changes are seen in the state root like any other's, once.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .events import Event, PoolChanged, Subscriber, VolumesChanged
from .store import Store

LIFECYCLE = {"defined": "Defined", "undefined": "Undefined", "started": "Started",
             "stopped": "Stopped", "built": "Created", "deleted": "Deleted"}
EVENT_TYPES = ("lifecycle", "refresh")
ROUND = 0.2  # seconds between looks at the state root


@dataclass(frozen=True)
class PoolEvent:
    kind: str  # lifecycle or refresh
    pool: str
    detail: str = ""  # lifecycle: Defined, Started, ...


class PoolEvents:
    """Subscribe to the controller's bus and watch the state root; `events()` yields the
    pool events in the order they were seen."""

    def __init__(self, store: Store,
                 subscribe: Callable[[Subscriber], Callable[[], None]]) -> None:
        self.store = store
        self._queue: queue.Queue[PoolEvent] = queue.Queue()
        self._unsubscribe = subscribe(self._heard)
        self._state = self._snapshot()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._unsubscribe()

    def _heard(self, event: Event) -> None:
        # our own lifecycle changes are found in the state root (once, like any process's);
        # a refresh leaves no trace there
        if isinstance(event, VolumesChanged) and (event.added or event.removed
                                                  or event.changed):
            self._queue.put(PoolEvent("refresh", event.pool))
        elif isinstance(event, PoolChanged) and event.reason in ("refreshed", "built",
                                                                  "deleted"):
            detail = LIFECYCLE.get(event.reason, "")
            self._queue.put(PoolEvent("lifecycle" if detail else "refresh", event.pool,
                                      detail))

    def _snapshot(self) -> dict[str, tuple[bool, object]]:
        """name -> (persistent, run identity or None)."""
        state = {}
        for name in self.store.definition_names():
            try:
                state[name] = (self.store.is_persistent(name), self.store.run_identity(name))
            except OSError:
                continue
        return state

    def _look(self) -> None:
        with self._lock:
            before, now = self._state, self._snapshot()
            self._state = now
        for name in sorted(set(before) | set(now), key=str.lower):
            old, new = before.get(name), now.get(name)
            if old == new:
                continue
            old_run = old[1] if old else None
            new_run = new[1] if new else None
            if old is None and new is not None and new[0]:
                self._queue.put(PoolEvent("lifecycle", name, "Defined"))
            if old_run is not None and old_run != new_run:
                self._queue.put(PoolEvent("lifecycle", name, "Stopped"))
            if new_run is not None and old_run != new_run:
                self._queue.put(PoolEvent("lifecycle", name, "Started"))
            if new is None and old is not None and old[0]:
                self._queue.put(PoolEvent("lifecycle", name, "Undefined"))
            if old is not None and new is not None and not old[0] and new[0]:
                self._queue.put(PoolEvent("lifecycle", name, "Defined"))

    def events(self, timeout: float | None = None) -> Iterator[PoolEvent]:
        """The events as they come, until `timeout` seconds have passed (None: forever)."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            self._look()
            wait = ROUND if end is None else min(ROUND, end - time.monotonic())
            if wait <= 0:
                return
            try:
                yield self._queue.get(timeout=wait)
                while True:
                    yield self._queue.get_nowait()
            except queue.Empty:
                continue
