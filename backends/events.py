"""Events the controller publishes, from whatever thread produced them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .listeners import Listeners

if TYPE_CHECKING:
    from .jobs import Job
    from .runner import Completed

@dataclass(frozen=True)
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


@dataclass(frozen=True)
class VolumesChanged:
    """Volumes of a pool were added, removed or changed."""
    pool: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobProgress:
    """A job moved on."""
    job: Job


@dataclass(frozen=True)
class JobFinished:
    """A job ended (done, failed or cancelled)."""
    job: Job


@dataclass(frozen=True)
class CommandRun:
    """A tool was run."""
    command: Completed


@dataclass(frozen=True)
class ConnectionChanged:
    """A host connection's state or pools changed (backends.fleet; the name is
    the connection's, "" for this host)."""
    name: str


Event = PoolChanged | VolumesChanged | JobProgress | JobFinished | CommandRun | ConnectionChanged
Subscriber = Callable[[Event], None]


@dataclass
class EventBus:
    """Delivers events to subscribers, in this process."""
    _subscribers: Listeners[Event] = field(default_factory=Listeners)

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
