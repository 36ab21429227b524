"""Callables told of each thing that happens (the event bus's subscribers, the command
log's listeners): added and removed from any thread, called outside the lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Listeners(Generic[T]):
    def __init__(self) -> None:
        self._fns: list[Callable[[T], None]] = []
        self._lock = threading.Lock()

    def add(self, fn: Callable[[T], None]) -> Callable[[], None]:
        """Add `fn`; returns the function that removes it again."""
        with self._lock:
            self._fns.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._fns:
                    self._fns.remove(fn)

        return remove

    def now(self) -> list[Callable[[T], None]]:
        """The listeners as they are now: call them outside any lock."""
        with self._lock:
            return list(self._fns)
