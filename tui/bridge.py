"""Controller events (published on worker threads) -> Textual messages on the app, and
what a verb run from a key reports (Outcome).

App.post_message is thread-safe, so the bridge never touches widgets itself; the screen
handles the messages on the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

from textual.message import Message
from textual.message_pump import MessagePump

from backends.events import (
    CommandRun,
    ConnectionChanged,
    Event,
    JobFinished,
    JobProgress,
    PoolChanged,
    VolumesChanged,
)
from backends.jobs import Job
from backends.runner import Completed


class Outcome(NamedTuple):
    """What a verb that did only part of its work reports instead of its success text
    (MainScreenBase.run_verb): said with this severity, "warning" for a partial result."""

    text: str
    severity: Literal["information", "warning", "error"]


def _listed(names: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def batch_outcome(verb: str, done_verb: str, noun: str, done: Sequence[str],
                  failed: Sequence[tuple[str, str]]) -> Outcome:
    """One report for a verb run on several items: which succeeded, which failed and why.
    ("delete", "deleted", "volume", ["a.img"], [("base.qcow2", "it is the backing ...")])
    -> "deleted 1 of 2 volumes: a.img; not deleted: base.qcow2 (it is the backing ...)"."""
    total = len(done) + len(failed)
    nouns = noun if total == 1 else f"{noun}s"
    why = "; ".join(f"{name} ({reason})" for name, reason in failed)
    if not failed:
        return Outcome(f"{done_verb} {total} {nouns}: {_listed(done)}", "information")
    if not done:
        if total == 1:
            return Outcome(f"could not {verb} {failed[0][0]}: {failed[0][1]}", "error")
        return Outcome(f"could not {verb} {total} {nouns}: {why}", "error")
    return Outcome(f"{done_verb} {len(done)} of {total} {nouns}: {_listed(done)}; "
                   f"not {done_verb}: {why}", "warning")


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


class ConnectionEvent(Message):
    """A host connection's state or pools changed (backends.fleet)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


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
    if isinstance(event, ConnectionChanged):
        return ConnectionEvent(event.name)
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
