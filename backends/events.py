"""Events the controller publishes, from whatever thread produced them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import TYPE_CHECKING

from .listeners import Listeners
from .records import FACTORY, record
from .records import set_field as _set

if TYPE_CHECKING:
    from .jobs import Job
    from .runner import Completed

@record(frozen=True)
class PoolChanged:
    """Something happened to a pool (the reason says what)."""
    pool: str
    # defined, undefined, started, stopped, built, deleted, refreshed, autostart, sizes;
    # listing / listed: a first listing is coming in (its batches are VolumesChanged
    # with added names) / is over
    reason: str
    # False: no pool event of this process's making for pool-event (event_journal): the
    # monitor saw another process's change, a transient pool ended, a failed start undone
    journal: bool = True

    def __init__(self, pool: str, reason: str, journal: bool = True) -> None:
        _set(self, "pool", pool)
        _set(self, "reason", reason)
        _set(self, "journal", journal)


@record(frozen=True)
class VolumesChanged:
    """Volumes of a pool were added, removed or changed."""
    pool: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __init__(
            self, pool: str, added: tuple[str, ...] = (), removed: tuple[str, ...] = (),
            changed: tuple[str, ...] = ()) -> None:
        _set(self, "pool", pool)
        _set(self, "added", added)
        _set(self, "removed", removed)
        _set(self, "changed", changed)


@record(frozen=True)
class JobProgress:
    """A job moved on."""
    job: Job

    def __init__(self, job: Job) -> None:
        _set(self, "job", job)


@record(frozen=True)
class JobFinished:
    """A job ended (done, failed or cancelled)."""
    job: Job

    def __init__(self, job: Job) -> None:
        _set(self, "job", job)


@record(frozen=True)
class CommandRun:
    """A tool was run."""
    command: Completed

    def __init__(self, command: Completed) -> None:
        _set(self, "command", command)


@record(frozen=True)
class ConnectionChanged:
    """A host connection's state or pools changed (backends.fleet; the name is
    the connection's, "" for this host)."""
    name: str

    def __init__(self, name: str) -> None:
        _set(self, "name", name)


Event = PoolChanged | VolumesChanged | JobProgress | JobFinished | CommandRun | ConnectionChanged
Subscriber = Callable[[Event], None]


@record()
class EventBus:
    """Delivers events to subscribers, in this process."""
    _subscribers: Listeners[Event] = field(default_factory=Listeners)

    def __init__(self, _subscribers: Listeners[Event] = FACTORY) -> None:
        self._subscribers = Listeners() if _subscribers is FACTORY else _subscribers

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Returns the function that unsubscribes `fn`."""
        return self._subscribers.add(fn)

    def publish(self, event: Event) -> None:
        for fn in self._subscribers.now():
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break the verb that published
                import logging  # only then: it costs every command ~2 ms to import

                logging.getLogger(__name__).exception("event subscriber failed")
