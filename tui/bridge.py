"""Controller events (published on worker threads) -> Textual messages on the app.

App.post_message is thread-safe, so the bridge never touches widgets itself; the screen
handles the messages on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.message import Message
from textual.message_pump import MessagePump

from backends.events import (
    CommandRun,
    Event,
    JobFinished,
    JobProgress,
    PoolChanged,
    VolumesChanged,
)
from backends.jobs import Job
from backends.runner import Completed


class PoolEvent(Message):
    def __init__(self, pool: str, reason: str) -> None:
        super().__init__()
        self.pool, self.reason = pool, reason


class VolumeEvent(Message):
    def __init__(self, pool: str, added: tuple[str, ...], removed: tuple[str, ...],
                 changed: tuple[str, ...]) -> None:
        super().__init__()
        self.pool, self.added, self.removed, self.changed = pool, added, removed, changed


class JobEvent(Message):
    def __init__(self, job: Job, finished: bool) -> None:
        super().__init__()
        self.job, self.finished = job, finished


class CommandEvent(Message):
    def __init__(self, command: Completed) -> None:
        super().__init__()
        self.command = command


def to_message(event: Event) -> Message | None:
    if isinstance(event, PoolChanged):
        return PoolEvent(event.pool, event.reason)
    if isinstance(event, VolumesChanged):
        return VolumeEvent(event.pool, event.added, event.removed, event.changed)
    if isinstance(event, JobProgress):
        return JobEvent(event.job, False)
    if isinstance(event, JobFinished):
        return JobEvent(event.job, True)
    if isinstance(event, CommandRun):
        return CommandEvent(event.command)
    return None


def connect(target: MessagePump,
            subscribe: Callable[[Callable[[Event], None]], Callable[[], None]]
            ) -> Callable[[], None]:
    """Forward every controller event to `target` as a message; returns the disconnect."""

    def forward(event: Event) -> None:
        message = to_message(event)
        if message is not None:
            target.post_message(message)  # thread-safe; dropped once target has closed

    return subscribe(forward)
