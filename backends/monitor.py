"""The volume cache and the live monitor that keeps it current.

The cache holds each active pool's volumes as last listed, in memory only, so a UI thread
reads it without I/O (StorageController.cached_volumes); whatever changes in it is
published as VolumesChanged. The monitor asks each active pool's driver, every few seconds,
for a cheap change token and rescans only the pools whose token changed. A change of free
space alone (SpaceToken: any writer on the same filesystem makes one) updates the pool's
sizes at once; its volumes, whose allocations follow it, are rescanned at most every
SPACE_RESCAN_INTERVAL seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from . import runner
from .drivers.base import PoolDriver, SpaceToken
from .errors import PoolkeeperError
from .events import EventBus, PoolChanged, VolumesChanged
from .format_records import FormatRecords
from .locks import LockManager
from .model import VolumeInfo
from .store import Store

MONITOR_INTERVAL = 3.0
_GONE = object()  # monitor token of a pool whose storage cannot be read
# A change of free space alone (poll) rescans the volumes at most this often: their
# allocations follow it, and a full scan of a big pool costs ~30 us of CPU per volume.
SPACE_RESCAN_INTERVAL = 30.0


class VolumeCache:
    """Each active pool's volumes as last listed; publishes what changed in them."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._cache: dict[str, dict[str, VolumeInfo]] = {}
        self._cache_lock = threading.Lock()
        self._listing: set[str] = set()  # pools whose first listing is coming in

    def volumes(self, pool: str, names: Iterable[str] | None = None) -> list[VolumeInfo]:
        """The pool's volumes (those of `names` that it has), as last listed."""
        with self._cache_lock:
            cache = self._cache.get(pool, {})
            if names is None:
                return list(cache.values())
            return [cache[n] for n in names if n in cache]

    def replace(self, pool: str, volumes: list[VolumeInfo]) -> None:
        """A new listing of the pool (its first is published as nothing changed)."""
        new = {v.name: v for v in volumes}
        with self._cache_lock:
            old = self._cache.get(pool)
            self._cache[pool] = new
        if old is None:
            return
        added = tuple(n for n in new if n not in old)
        removed = tuple(n for n in old if n not in new)
        changed = tuple(
            n for n, v in new.items()
            if n in old and (old[n].signature != v.signature or old[n].format != v.format
                             or old[n].error != v.error)
        )
        if added or removed or changed:
            self.bus.publish(VolumesChanged(pool, added, removed, changed))

    def put(self, pool: str, name: str, info: VolumeInfo, added: bool = False) -> None:
        """One volume made or changed by a verb of ours."""
        with self._cache_lock:
            self._cache.setdefault(pool, {})[name] = info
        if added:
            self.bus.publish(VolumesChanged(pool, added=(name,)))
        else:
            self.bus.publish(VolumesChanged(pool, changed=(name,)))

    def remove(self, pool: str, name: str) -> None:
        """One volume deleted by a verb of ours."""
        with self._cache_lock:
            self._cache.get(pool, {}).pop(name, None)
        self.bus.publish(VolumesChanged(pool, removed=(name,)))

    def drop(self, pool: str) -> None:
        with self._cache_lock:
            self._cache.pop(pool, None)
            self._listing.discard(pool)

    # -- a first listing, published as it comes (StorageController._list_streamed) ------
    def begin_listing(self, pool: str) -> None:
        """The pool's first listing starts: its volumes so far are none, and what the scan
        finds is published batch by batch (add_listed) until end_listing."""
        with self._cache_lock:
            self._cache[pool] = {}
            self._listing.add(pool)
        self.bus.publish(PoolChanged(pool, "listing"))

    def add_listed(self, pool: str, volumes: list[VolumeInfo]) -> None:
        """A batch the listing found: in the cache, then published as added."""
        if not volumes:
            return
        with self._cache_lock:
            cache = self._cache.setdefault(pool, {})
            for v in volumes:
                cache[v.name] = v
        self.bus.publish(VolumesChanged(pool, added=tuple(v.name for v in volumes)))

    def end_listing(self, pool: str) -> None:
        """The listing is over (done or failed): says so (PoolChanged 'listed')."""
        with self._cache_lock:
            self._listing.discard(pool)
        self.bus.publish(PoolChanged(pool, "listed"))

    def listing(self, pool: str) -> bool:
        """Is the pool's first listing still coming in?"""
        return pool in self._listing

    def has(self, pool: str) -> bool:
        """Has the pool been listed (or is it being listed) since it started?"""
        with self._cache_lock:
            return pool in self._cache


class PoolMonitor:
    """Polls the active pools' change tokens (in a thread, or a round at a time) and
    rescans into the cache the pools that changed."""

    def __init__(self, store: Store, locks: LockManager, bus: EventBus, cache: VolumeCache,
                 records: FormatRecords, driver_for: Callable[[str], PoolDriver]) -> None:
        self.store = store
        self.locks = locks
        self.bus = bus
        self._cache = cache
        self._records = records
        self._driver_for = driver_for  # pool name -> its driver
        self._tokens: dict[str, object] = {}
        self._scanned_at: dict[str, float] = {}  # monotonic time of each pool's last scan
        self._space_changed: set[str] = set()  # free space changed since the last scan
        self._monitor: threading.Thread | None = None
        self._monitor_stop = threading.Event()

    def start(self, interval: float = MONITOR_INTERVAL) -> None:
        if self._monitor is not None:
            return
        self._monitor_stop.clear()

        def loop() -> None:
            while not self._monitor_stop.wait(interval):
                self.poll()

        self._monitor = threading.Thread(target=loop, name="pk-monitor", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor_stop.set()
            self._monitor.join(timeout=10)
            self._monitor = None

    def forget(self, pool: str) -> None:
        """The pool stopped or went: its listing and token go (the next start rescans)."""
        self._cache.drop(pool)
        self._tokens.pop(pool, None)

    def poll(self) -> None:
        """One monitor round: cheap token per active pool, rescan only what changed (its
        tools are routine reads: see runner.routine)."""
        with runner.routine():
            self._poll()

    def _poll(self) -> None:
        for name in self.store.definition_names():
            try:
                if not self.store.is_active(name):
                    if name in self._tokens:
                        self.forget(name)
                        self.bus.publish(PoolChanged(name, "stopped"))
                    continue
                driver = self._driver_for(name)
                try:
                    token = driver.change_token()
                except (PoolkeeperError, OSError):
                    # The storage went away (directory removed, unmounted): say so once.
                    if self._tokens.get(name) is not _GONE:
                        self._tokens[name] = _GONE
                        self.bus.publish(PoolChanged(name, "inaccessible"))
                    continue
                seen = self._tokens.get(name)
                first = name not in self._tokens
                due = time.monotonic() - self._scanned_at.get(name, 0.0) >= SPACE_RESCAN_INTERVAL
                if seen == token and not (due and name in self._space_changed):
                    continue
                if seen != token and _space_only(seen, token) and not due:
                    # Free space alone changed: the header's sizes follow at once, the
                    # volumes' allocations with the next scan that is due.
                    self._tokens[name] = token
                    self._space_changed.add(name)
                    self.bus.publish(PoolChanged(name, "sizes"))
                    continue
                with self.locks.pool(name, exclusive=False, what="monitoring", wait=0):
                    _sizes, volumes = driver.refresh()
                self._cache.replace(name, self._records.apply(name, volumes))
                self._tokens[name] = token  # only now: a busy round is retried next time
                self._scanned_at[name] = time.monotonic()
                self._space_changed.discard(name)
                if not first:
                    self.bus.publish(PoolChanged(name, "sizes"))
            except (PoolkeeperError, OSError):
                continue  # busy or vanished: try again next round


def _space_only(seen: object, token: object) -> bool:
    """Did only the free space change between two monitor tokens (SpaceToken)?"""
    return isinstance(seen, SpaceToken) and isinstance(token, SpaceToken) and \
        seen.listing == token.listing
