"""Events the controller publishes, from whatever thread produced them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .jobs import Job
    from .runner import Completed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolChanged:
    pool: str
    reason: str  # defined, undefined, started, stopped, built, deleted, refreshed, autostart, sizes


@dataclass(frozen=True)
class VolumesChanged:
    pool: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobProgress:
    job: Job


@dataclass(frozen=True)
class JobFinished:
    job: Job


@dataclass(frozen=True)
class CommandRun:
    command: Completed


Event = PoolChanged | VolumesChanged | JobProgress | JobFinished | CommandRun
Subscriber = Callable[[Event], None]


@dataclass
class EventBus:
    _subscribers: list[Subscriber] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break the verb that published
                log.exception("event subscriber failed")
