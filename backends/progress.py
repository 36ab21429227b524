"""What a long operation reports to, and is cancelled through.

fileops and drivers take a JobContext; the controller's jobs subclass it to publish
progress events. NULL_CONTEXT is for callers that do not care.

A job also makes itself the thread's current context (`running`) while its verb runs, so
code deep below that was not handed the context can still be cancelled: runner.run kills a
tool when the current context is cancelled, without every driver passing it down.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

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


_CURRENT: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "poolkeeper_current_job", default=None)


def current() -> JobContext | None:
    """The context of the job running in this thread (None outside jobs)."""
    return _CURRENT.get()


@contextlib.contextmanager
def running(ctx: JobContext) -> Iterator[None]:
    """Make `ctx` this thread's current context for the with-block."""
    token = _CURRENT.set(ctx)
    try:
        yield
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """No current job within the block, so a cancel stops no tool run there: for the
    bookkeeping after a job's work is done (a refresh), which a cancel must not turn into
    a "cancelled" job whose change was in fact made."""
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)
