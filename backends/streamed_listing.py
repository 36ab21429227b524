"""A pool's first listing, shown as it comes, and the headers it left to read after.

A big directory takes seconds to read; its first volumes go into the cache (and so to a
view) at once, the rest at intervals that double up to LISTING_SLICE seconds, since each
publication costs a view a merge of everything it shows.

Most of a listing's time is opening each file and reading its header (format, virtual
size, backing file). A quick listing (headers=False, what the TUI asks for) reads only
the directory and one lstat per file: its regular files come as pending volumes
(VolumeInfo.pending: format, capacity and backing unknown), so the whole pool is listed
and sorted at once. HeaderProber then reads their headers in a thread, the names a view
asks for first (the rows on screen), and puts each in the cache where the pending one
still is. Nothing acts on a pending volume: a verb reads its volume again (volume_info),
and a check that reads the cache takes StorageController.probed_volumes, which reads
what is left first.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .drivers.base import PoolDriver
from .errors import Busy, PoolkeeperError
from .events import VolumesChanged
from .format_records import FormatRecords
from .locks import LockManager
from .model import VolumeInfo
from .monitor import VolumeCache

if TYPE_CHECKING:
    import logging

# A streamed listing publishes what it found at least this often (seconds)
LISTING_SLICE = 1.0
PROBE_SLICE = 256  # headers read per shared hold of the pool lock (a few ms)
# What the headers said is published: the first slice (the rows on screen) at once, then
# at intervals that double up to PROBE_PUBLISH seconds (each costs a view a pass)
PROBE_PUBLISH = 1.0
PROBE_RETRY = 0.1  # after stepping aside for a verb that wants the pool (seconds)


def log() -> logging.Logger:
    """This module's logger: logging is imported only when there is something to say (it
    costs every command ~3 ms to import, as in events.EventBus.publish)."""
    import logging

    return logging.getLogger(__name__)


def list_streamed(cache: VolumeCache, records: FormatRecords, name: str,
                  driver: PoolDriver, before: Callable[[str], None] | None = None, *,
                  first: bool = False, headers: bool = True) -> bool:
    """The pool's listing into the cache, published batch by batch as it is read.
    `before(name)` runs once the listing has begun, before the first file is read (the
    monitor's watch: what changes from then on is seen, PoolMonitor.prepare). `first`:
    only if the pool has no listing yet; returns whether it listed. headers=False: a
    quick listing (see the module docstring); the caller starts a HeaderProber."""
    if not cache.begin_listing(name, first):
        return False
    complete = False
    batches = driver.refresh_batches() if headers else driver.refresh_batches(headers=False)
    collecting = gc.isenabled() and not headers
    if collecting:  # see _frozen_after
        gc.disable()
    try:
        if before is not None:
            before(name)
        pending: list[VolumeInfo] = []
        shown_at, wait = None, LISTING_SLICE / 8
        for batch in batches:
            pending += batch
            now = time.monotonic()
            if shown_at is None or now - shown_at >= wait:
                cache.add_listed(name, _recorded(records, name, pending))
                pending = []
                if shown_at is not None:
                    wait = min(wait * 2, LISTING_SLICE)
                shown_at = now
        cache.add_listed(name, _recorded(records, name, pending))
        complete = True
    finally:
        if collecting:
            _frozen_after()
        cache.end_listing(name, complete)
    return True


def _frozen_after() -> None:
    """A quick listing (the TUI's) of 100,000 volumes makes a million objects that live
    as long as the pool is listed and hold no cycles: collecting while they come only
    walks them again and again (0.3 s of a 1 s listing), and every later full collection
    would walk them once more (0.3 s on whichever thread, the UI's too). So the collector
    pauses while they come, and what lives then is moved out of its sight (gc.freeze):
    a cycle that became garbage before is kept, once per listing."""
    gc.freeze()
    gc.enable()


def _recorded(records: FormatRecords, pool: str, volumes: list[VolumeInfo]
              ) -> list[VolumeInfo]:
    """The format records applied to the volumes read whole (a pending one gets its
    record when its header is read: the record needs the file's identity)."""
    records.apply(pool, [v for v in volumes if not v.pending])
    return volumes


class _StepAside(Exception):
    """A verb waits for the pool, or holds it: read later."""


class HeaderProber:
    """Reads the headers quick listings left unread, one thread per pool while there are
    some (see the module docstring). `driver_for(pool)` is the active pool's driver."""

    def __init__(self, cache: VolumeCache, records: FormatRecords, locks: LockManager,
                 driver_for: Callable[[str], PoolDriver]) -> None:
        self._cache = cache
        self._records = records
        self._locks = locks
        self._driver_for = driver_for
        self._guard = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._again: set[str] = set()  # start() came while the pool's thread was ending
        self._first: dict[str, list[str]] = {}  # pool -> names to read first
        self._stop = threading.Event()

    def start(self, pool: str) -> None:
        """Read the pool's pending headers in a thread (one per pool at a time)."""
        if not self._cache.pending(pool, limit=1):
            return
        with self._guard:
            if self._stop.is_set():
                return
            running = self._threads.get(pool)
            if running is not None:
                self._again.add(pool)
                return
            thread = self._threads[pool] = threading.Thread(
                target=self._run, args=(pool,), name="pk-headers", daemon=True)
        thread.start()

    def prefer(self, pool: str, names: Iterable[str]) -> None:
        """Read these first (the rows a view shows); the latest wish replaces the last.
        Memory only."""
        with self._guard:
            self._first[pool] = list(names)

    def stop(self) -> None:
        """No more reading (each thread ends after its slice)."""
        self._stop.set()
        with self._guard:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=1.0)

    def finish(self, pool: str) -> None:
        """Read every header still pending now, in this thread (a check is about to rely
        on the cache): no lock is taken, as volume_info takes none."""
        while True:
            batch = self._cache.pending(pool, limit=4096)
            if not batch:
                return
            found = self._driver_for(pool).refresh_volumes([v.name for v in batch])
            self._publish(pool, *self._put(pool, batch, found))

    # -- the thread -------------------------------------------------------------------
    def _run(self, pool: str) -> None:
        changed: list[str] = []
        removed: list[str] = []
        published_at: float | None = None
        wait = PROBE_PUBLISH / 4
        try:
            # one driver for the run (each slice checks it is the directory the pool
            # started on: dir_fd); a stop drops the cache, and with it what is pending
            driver = self._driver_for(pool)
            while not self._stop.is_set():
                with self._guard:
                    first = self._first.pop(pool, ())
                batch = self._cache.pending(pool, first, PROBE_SLICE)
                if not batch:
                    break
                try:
                    found = self._read(pool, driver, [v.name for v in batch])
                except _StepAside:
                    with self._guard:  # still first, unless a newer wish came
                        self._first.setdefault(pool, list(first))
                    self._stop.wait(PROBE_RETRY)
                    continue
                c, r = self._put(pool, batch, found)
                changed += c
                removed += r
                now = time.monotonic()
                if published_at is None or now - published_at >= wait:
                    self._publish(pool, changed, removed)
                    if published_at is not None:
                        wait = min(wait * 2, PROBE_PUBLISH)
                    changed, removed, published_at = [], [], now
        except (PoolkeeperError, OSError) as exc:
            # stopped, or unreadable: what is left stays pending (the monitor says why,
            # and its next full read replaces the lot)
            log().info("reading the headers of pool '%s' stopped: %s", pool, exc)
        except Exception:  # a bug: say so; the rows read so far are kept
            log().exception("reading the headers of pool '%s' failed", pool)
        finally:
            self._publish(pool, changed, removed)
            with self._guard:
                del self._threads[pool]
                again = pool in self._again
                self._again.discard(pool)
            if again:
                self.start(pool)

    def _read(self, pool: str, driver: PoolDriver, names: list[str]
              ) -> list[VolumeInfo | None]:
        """One slice under a shared hold of the pool, unless a verb waits for it (as the
        monitor's scans do: a verb never fails on our account)."""
        if self._locks.writer_waiting(pool):
            raise _StepAside
        try:
            with self._locks.pool(pool, exclusive=False, what="reading headers", wait=0):
                return driver.refresh_volumes(names)
        except Busy:
            raise _StepAside from None

    def _put(self, pool: str, batch: list[VolumeInfo], found: list[VolumeInfo | None]
             ) -> tuple[list[str], list[str]]:
        self._records.apply(pool, [v for v in found if v is not None])
        return self._cache.probed(pool, list(zip(batch, found, strict=True)))

    def _publish(self, pool: str, changed: list[str], removed: list[str]) -> None:
        if changed or removed:
            self._cache.bus.publish(VolumesChanged(pool, removed=tuple(removed),
                                                   changed=tuple(changed)))
