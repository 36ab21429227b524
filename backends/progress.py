"""What a long operation reports to, and is cancelled through.

fileops and drivers take a JobContext; the controller's jobs subclass it to publish
progress events. NULL_CONTEXT is for callers that do not care.
"""

from __future__ import annotations

import threading

from .errors import Cancelled


class JobContext:
    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self._cancel = threading.Event()

    def update(self, done: int, total: int | None = None) -> None:
        """Record progress (bytes done of total) and stop if cancelled."""
        self.done = done
        if total is not None:
            self.total = total
        self.check()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise Cancelled if the user asked to stop. Called between chunks."""
        if self._cancel.is_set():
            raise Cancelled()


class _NullContext(JobContext):
    def cancel(self) -> None:  # a shared context must never become cancelled
        pass


NULL_CONTEXT = _NullContext()
