"""The volume cache and the live monitor that keeps it current.

The cache holds each active pool's volumes as last listed, in memory only, so a UI thread
reads it without I/O (StorageController.cached_volumes); whatever changes in it is
published as VolumesChanged.

The monitor is change-driven (one thread, or a round at a time through poll()):
  * a pool whose volumes are files (the driver's features say so) gets an inotify watch on
    its directory (backends/watch.py); an event names the entry that changed, and only
    that entry is read again (the driver's refresh_volumes). Writes to a volume (modify,
    close_write, attrib) re-read it at most every MODIFY_INTERVAL seconds; entries made,
    removed or renamed at once. A lost event (IN_Q_OVERFLOW) rescans the pool in full; a
    watch that cannot be added makes the pool a polled one.
  * its capacity figures (statvfs) are read every `interval` seconds, apart from the
    volumes: free space that changed (any writer on the filesystem) publishes
    PoolChanged "sizes", never a rescan.
  * a pool with no notification (block devices, iSCSI; a file pool without a watch) is
    polled: its driver's cheap change token every `interval` seconds, doubling up to
    POLL_MAX while nothing changes, back to `interval` on a change, which rescans it in
    full. A watched pool on a network filesystem (NFS, CIFS: inotify sees only this host's
    changes) is polled that way too.
  * one scan at a time (one round at a time), and no pool lock held for long: a scan reads
    SLICE volumes per shared hold of the pool lock, and before each slice it steps aside
    for an exclusive verb that waits (LockManager.writer_waiting) or for stop(); a scan
    raced by a stop or start (the run state changed) is dropped, and tried again later.
Our own first listing of a pool (backends/streamed_listing.py) calls prepare() before it
reads a file: the watch (or a polled pool's token) is in place first, so that listing is
the pool's first full read and the monitor opens no file again after it.
A pool whose storage cannot be read (its directory removed, its filesystem unmounted) is
reported inaccessible once (PoolChanged "inaccessible").
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import field
from typing import TYPE_CHECKING

from . import runner, watch
from .drivers.base import PoolDriver, SpaceToken
from .errors import Busy, PoolkeeperError
from .events import EventBus, PoolChanged, VolumesChanged
from .format_records import FormatRecords
from .locks import LockManager
from .model import VolumeInfo
from .records import FACTORY, record
from .store import Store

if TYPE_CHECKING:
    import logging

MONITOR_INTERVAL = 3.0  # sizes, new pools, and the first step of a poll (seconds)
POLL_MAX = 30.0  # a polled pool in which nothing changes is asked at most this rarely
MODIFY_INTERVAL = 2.0  # a volume being written is read again at most this often
SLICE = 256  # volumes read per shared hold of the pool lock (~10 ms)
EVENT_SETTLE = 0.1  # a burst of events is gathered this long before it is read
RETRY = 1.0  # after a scan was dropped (busy pool, a verb waiting, a restart)
STOP_WAIT = 1.0  # stop() waits this long for the thread (a scan stops within a slice)
PREPARE_WAIT = 1.0  # prepare() waits this long for a round in progress
LISTING_RECHECK = 0.5  # while our own listing of a pool runs, is it over? (seconds)


def log() -> logging.Logger:
    """This module's logger: logging is imported only when there is something to say (it
    costs every command ~3 ms to import, as in events.EventBus.publish)."""
    import logging

    return logging.getLogger(__name__)


class VolumeCache:
    """Each active pool's volumes as last listed; publishes what changed in them."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._cache: dict[str, dict[str, VolumeInfo]] = {}
        self._cache_lock = threading.Lock()
        self._listing: set[str] = set()  # pools whose first listing is coming in
        self._incomplete: set[str] = set()  # pools whose first listing failed half-way
        # pool -> names whose info is pending (header unread), in listing order
        self._pending: dict[str, dict[str, None]] = {}

    def volumes(self, pool: str, names: Iterable[str] | None = None) -> list[VolumeInfo]:
        """The pool's volumes (those of `names` that it has), as last listed."""
        with self._cache_lock:
            cache = self._cache.get(pool, {})
            if names is None:
                return list(cache.values())
            return [cache[n] for n in names if n in cache]

    def listed(self, pool: str) -> bool:
        """Has the pool been listed (or is it being listed) since it started?"""
        with self._cache_lock:
            return pool in self._cache

    def replace(self, pool: str, volumes: list[VolumeInfo]) -> None:
        """A new listing of the pool (its first is published as nothing changed)."""
        new = {v.name: v for v in volumes}
        with self._cache_lock:
            old = self._cache.get(pool)
            self._cache[pool] = new
            self._pending[pool] = {v.name: None for v in volumes if v.pending}
        if old is None:
            return
        added = tuple(n for n in new if n not in old)
        removed = tuple(n for n in old if n not in new)
        changed = tuple(n for n, v in new.items() if n in old and _differs(old[n], v))
        if added or removed or changed:
            self.bus.publish(VolumesChanged(pool, added, removed, changed))

    def update(self, pool: str, found: dict[str, VolumeInfo | None]) -> None:
        """Some volumes read again (None: not there, or not a volume); one event for all.
        A pool not listed yet is left alone (its first listing is on its way)."""
        added: list[str] = []
        removed: list[str] = []
        changed: list[str] = []
        with self._cache_lock:
            cache = self._cache.get(pool)
            if cache is None:
                return
            pending = self._pending.get(pool, {})
            for name, info in found.items():
                old = cache.get(name)
                pending.pop(name, None)
                if info is None:
                    if old is not None:
                        del cache[name]
                        removed.append(name)
                    continue
                cache[name] = info
                if old is None:
                    added.append(name)
                elif _differs(old, info):
                    changed.append(name)
        if added or removed or changed:
            self.bus.publish(VolumesChanged(pool, tuple(added), tuple(removed), tuple(changed)))

    def put(self, pool: str, name: str, info: VolumeInfo, added: bool = False) -> None:
        """One volume made or changed by a verb of ours."""
        with self._cache_lock:
            self._cache.setdefault(pool, {})[name] = info
            self._pending.get(pool, {}).pop(name, None)
        if added:
            self.bus.publish(VolumesChanged(pool, added=(name,)))
        else:
            self.bus.publish(VolumesChanged(pool, changed=(name,)))

    def remove(self, pool: str, name: str) -> None:
        """One volume deleted by a verb of ours."""
        with self._cache_lock:
            self._cache.get(pool, {}).pop(name, None)
            self._pending.get(pool, {}).pop(name, None)
        self.bus.publish(VolumesChanged(pool, removed=(name,)))

    def drop(self, pool: str) -> None:
        with self._cache_lock:
            self._cache.pop(pool, None)
            self._pending.pop(pool, None)
            self._listing.discard(pool)
            self._incomplete.discard(pool)

    # -- a first listing, published as it comes (StorageController._list_streamed) ------
    def begin_listing(self, pool: str, first: bool = False) -> bool:
        """The pool's first listing starts: its volumes so far are none, and what the scan
        finds is published batch by batch (add_listed) until end_listing. `first`: only if
        the pool has no listing yet (checked and claimed at once, so of two callers one
        lists); False when it has one."""
        with self._cache_lock:
            if first and pool in self._cache:
                return False
            self._cache[pool] = {}
            self._pending[pool] = {}
            self._listing.add(pool)
            self._incomplete.add(pool)
        self.bus.publish(PoolChanged(pool, "listing"))
        return True

    def add_listed(self, pool: str, volumes: list[VolumeInfo]) -> None:
        """A batch the listing found: in the cache, then published as added."""
        if not volumes:
            return
        with self._cache_lock:
            cache = self._cache.setdefault(pool, {})
            pending = self._pending.setdefault(pool, {})
            for v in volumes:
                cache[v.name] = v
                if v.pending:
                    pending[v.name] = None
        self.bus.publish(VolumesChanged(pool, added=tuple(v.name for v in volumes)))

    def end_listing(self, pool: str, complete: bool = False) -> None:
        """The listing is over (complete, or failed half-way): says so (PoolChanged
        'listed')."""
        with self._cache_lock:
            self._listing.discard(pool)
            if complete:
                self._incomplete.discard(pool)
        self.bus.publish(PoolChanged(pool, "listed"))

    # -- headers a quick listing left unread (streamed_listing.HeaderProber) -------------
    def pending(self, pool: str, first: Iterable[str] = (), limit: int = 1 << 62
                ) -> list[VolumeInfo]:
        """Up to `limit` of the pool's pending volumes (VolumeInfo.pending): those of
        `first` that are, then the rest in listing order."""
        with self._cache_lock:
            pending = self._pending.get(pool)
            if not pending:
                return []
            cache = self._cache[pool]
            names = [n for n in dict.fromkeys(first) if n in pending][:limit]
            if len(names) < limit:
                chosen = set(names)
                for n in pending:
                    if n not in chosen:
                        names.append(n)
                        if len(names) >= limit:
                            break
            return [cache[n] for n in names]

    def probed(self, pool: str, found: list[tuple[VolumeInfo, VolumeInfo | None]]
               ) -> tuple[list[str], list[str]]:
        """Pending volumes read again, as (the pending info, what was read: None if it is
        gone or not a volume), where the cache still holds that pending info (a newer
        read, a new listing or a drop wins). What was read goes INTO the pending info, its
        `pending` cleared last: a view that holds it needs no new object in its sorted
        lists, and a reader never sees a half-filled one as read. Publishes nothing:
        returns the names (changed, removed) for the caller to publish, a batch at a time."""
        changed: list[str] = []
        removed: list[str] = []
        with self._cache_lock:
            cache = self._cache.get(pool)
            pending = self._pending.get(pool)
            if cache is None or pending is None:
                return changed, removed
            for old, new in found:
                name = old.name
                if cache.get(name) is not old or not old.pending:  # (the first read wins)
                    continue
                pending.pop(name, None)
                if new is None:
                    del cache[name]
                    removed.append(name)
                    continue
                for field in _READ_FIELDS:
                    value = getattr(new, field)
                    if value != getattr(old, field):  # (equal: the listed one stays, and
                        setattr(old, field, value)    # what was read goes at once)
                ids = old.file_id
                if ids and old.signature and ids[0] == old.signature[0]:
                    old.file_id = (old.signature[0], *ids[1:])  # one inode int, as _fill has
                old.pending = False
                changed.append(name)
            if not pending:  # a dict keeps the table it grew to: 5 MB for 100,000 names
                self._pending[pool] = {}
        return changed, removed

    def listing(self, pool: str) -> bool:
        """Is the pool's first listing still coming in?"""
        return pool in self._listing

    def complete(self, pool: str) -> bool:
        """Is the pool listed in full (no first listing failed half-way)?"""
        with self._cache_lock:
            return pool in self._cache and pool not in self._incomplete


# What reading a pending volume's header fills in (VolumeCache.probed): all but its names.
_READ_FIELDS = tuple(f for f in VolumeInfo.__slots__ if f not in ("name", "key", "path",
                                                                 "pending"))


def _differs(old: VolumeInfo, new: VolumeInfo) -> bool:
    return (old.signature != new.signature or old.format != new.format
            or old.error != new.error or old.permissions != new.permissions
            or old.pending != new.pending)


class _Dropped(Exception):
    """A scan stepped aside (stop, a verb waiting, the pool restarted): try again later."""


@record()
class _Pool:
    """What the monitor knows of one active pool."""

    name: str
    generation: object  # its run state's identity: another start or a stop changes it
    mode: str = "new"  # new (not set up yet), watched, polled
    wd: int | None = None  # inotify watch
    remote: bool = False  # watched, but others change it unseen (network filesystem)
    full: bool = True  # a full scan is due (first sight, lost events, a changed token)
    scanned: bool = False  # the first full scan is done (later ones say "sizes")
    listing: bool = False  # our own first listing, begun after the watch, is the full scan
    gone: bool = False  # reported inaccessible
    token: object = None  # a polled pool's last change token
    sizes: object = None  # a watched pool's last capacity figures
    names: dict[str, float] = field(default_factory=dict)  # to read again -> when due
    read_at: dict[str, float] = field(default_factory=dict)  # name -> last read (modify)
    step: float = 0.0  # current poll interval (backoff)
    poll_due: float = 0.0
    sizes_due: float = 0.0
    retry_due: float = 0.0  # no scan before this (after a dropped one)

    def __init__(
            self, name: str, generation: object, mode: str = "new", wd: int | None = None,
            remote: bool = False, full: bool = True, scanned: bool = False, listing: bool = False,
            gone: bool = False, token: object = None, sizes: object = None,
            names: dict[str, float] = FACTORY, read_at: dict[str, float] = FACTORY,
            step: float = 0.0, poll_due: float = 0.0, sizes_due: float = 0.0,
            retry_due: float = 0.0) -> None:
        self.name = name
        self.generation = generation
        self.mode = mode
        self.wd = wd
        self.remote = remote
        self.full = full
        self.scanned = scanned
        self.listing = listing
        self.gone = gone
        self.token = token
        self.sizes = sizes
        self.names = dict() if names is FACTORY else names
        self.read_at = dict() if read_at is FACTORY else read_at
        self.step = step
        self.poll_due = poll_due
        self.sizes_due = sizes_due
        self.retry_due = retry_due


class PoolMonitor:
    """Keeps the cache current for the active pools (see the module docstring): start()
    runs it in a thread; poll() runs one round now (every check due or not)."""

    def __init__(self, store: Store, locks: LockManager, bus: EventBus, cache: VolumeCache,
                 records: FormatRecords, driver_for: Callable[[str], PoolDriver]) -> None:
        self.store = store
        self.locks = locks
        self.bus = bus
        self._cache = cache
        self._records = records
        self._driver_for = driver_for  # pool name -> its driver
        self.interval = MONITOR_INTERVAL
        self._pools: dict[str, _Pool] = {}
        self._by_wd: dict[int, str] = {}
        self._watcher: watch.Watcher | None = None
        self._no_inotify = False
        self._forgotten: set[str] = set()  # by forget(), applied at the next round
        self._inactive: set[str] = set()  # defined pools last seen inactive
        self._forgotten_lock = threading.Lock()
        self._round_lock = threading.Lock()  # one round (so one scan) at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own = threading.local()  # the monitor thread's own stop event (_stopping)
        self._wake: _Wake | None = None
        self.full_scans = 0  # counters, for tests and benches
        self.volumes_read = 0

    # == the thread ====================================================================
    def start(self, interval: float = MONITOR_INTERVAL) -> None:
        if self._thread is not None:
            return
        self.interval = interval
        # A thread of its own stop event and wake pipe: a thread that outlived stop()'s
        # wait (inside a tool) still stops once it returns, whatever start() does next.
        self._stop = threading.Event()
        self._wake = _Wake()
        self._thread = threading.Thread(target=self._run, args=(self._wake, self._stop),
                                        name="pk-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (a scan steps aside at its next slice) and drop the watches."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            if self._wake is not None:
                self._wake.poke()
            thread.join(timeout=STOP_WAIT)
            self._wake = None  # the thread closes it on its way out
            if thread.is_alive():
                return  # inside a tool (a block pool's refresh): it is a daemon thread
        with self._round_lock:
            for pool in list(self._pools):
                self._drop(pool)
            if self._watcher is not None:
                self._watcher.close()
                self._watcher = None

    def _run(self, wake: _Wake, stop: threading.Event) -> None:
        self._own.stop = stop
        try:
            if stop.wait(self.interval):  # the app's own first listing goes first
                return
            while not stop.is_set():
                try:
                    self._round(force=False)
                    with self._round_lock:
                        timeout = self._sleep_for()
                        watcher = self._watcher
                except Exception:  # a bug: say so, never die (the next round retries)
                    log().exception("live monitor round failed")
                    timeout, watcher = self.interval, None
                if stop.is_set():
                    break
                fds = [wake.read_fd] + ([watcher.fileno()] if watcher is not None else [])
                try:
                    ready, _, _ = select.select(fds, [], [], timeout)
                except (OSError, ValueError):
                    ready = []
                    stop.wait(self.interval)
                if len(fds) > 1 and fds[1] in ready:
                    stop.wait(EVENT_SETTLE)  # gather the rest of a burst
        finally:
            wake.close()

    def _stopping(self) -> bool:
        """Stop asked: of this monitor thread (one that outlived a stop() inside a tool
        sees its own event, not the next thread's), or of the monitor (poll())."""
        return getattr(self._own, "stop", self._stop).is_set()

    def _sleep_for(self) -> float:
        """Until the next check or read that is due (at most `interval`: new pools)."""
        now = time.monotonic()
        due = now + self.interval
        for p in self._pools.values():
            if p.listing:  # nothing due until our listing is over: is it?
                due = min(due, now + LISTING_RECHECK)
                continue
            if p.gone or p.mode == "polled" or p.remote:
                due = min(due, p.poll_due)
            if p.mode == "watched" and not p.gone and not p.remote:
                due = min(due, p.sizes_due)
            if p.full:
                due = min(due, p.retry_due)
            elif p.names:
                due = min(due, max(p.retry_due, min(p.names.values())))
        return max(0.0, due - now)

    # == rounds ========================================================================
    def poll(self) -> None:
        """One round now: every check and pending read, whatever is due (its tools are
        routine reads: see runner.routine)."""
        self._round(force=True)

    def forget(self, pool: str) -> None:
        """The pool stopped or went: its listing goes now, its watch at the next round (the
        next start rescans)."""
        self._cache.drop(pool)
        with self._forgotten_lock:
            self._forgotten.add(pool)

    def prepare(self, pool: str) -> None:
        """Our own first listing of the active pool has begun (VolumeCache.begin_listing)
        and has read no file yet: watch it (or take a polled pool's token) now, so that
        what changes during or after the listing is seen and the listing stands for the
        first full scan (none is done: it would open every file again). Waits at most
        PREPARE_WAIT for a round in progress; failing that, the pool is read in full later
        as before."""
        if self._stop.is_set() or not self._round_lock.acquire(timeout=PREPARE_WAIT):
            return
        try:
            generation = self._generation(pool)
            if generation is None:
                return
            self._drop(pool)
            with self._forgotten_lock:  # a stop before this start is applied here
                self._forgotten.discard(pool)
            now = time.monotonic()
            p = self._pools[pool] = _Pool(pool, generation, poll_due=now, sizes_due=now)
            self._inactive.discard(pool)
            driver = self._driver_for(pool)
            self._setup(p, driver)
            if p.mode == "polled" or p.remote:
                p.token = driver.change_token()  # a change while listing changes it
            p.full, p.scanned, p.listing = False, True, True
        except (PoolkeeperError, OSError):
            self._drop(pool)  # found at the next round, as a pool it never saw
        finally:
            self._round_lock.release()

    def _round(self, force: bool) -> None:
        with self._round_lock, runner.routine():
            self._sync()
            self._read_events()
            for p in list(self._pools.values()):
                if self._stopping() and not force:
                    return
                self._tend(p, force)

    def _sync(self) -> None:
        """Pools stopped, forgotten, restarted or started since the last round."""
        with self._forgotten_lock:
            forgotten, self._forgotten = self._forgotten, set()
        for name in forgotten:
            self._drop(name)
            self._inactive.add(name)
        now = time.monotonic()
        defined = self.store.definition_names()
        for name in set(self._pools) - set(defined):  # undefined by another process
            self._drop(name)
            self._cache.drop(name)
        self._inactive &= set(defined)
        for name in defined:
            generation = self._generation(name)
            p = self._pools.get(name)
            if p is not None and p.generation == generation:
                continue
            if p is not None:
                self._drop(name)
                if generation is None:  # stopped (by another process)
                    self._cache.drop(name)
                    self.bus.publish(PoolChanged(name, "stopped", journal=False))
            if generation is None:
                self._inactive.add(name)
                continue
            self._pools[name] = _Pool(name, generation, poll_due=now, sizes_due=now)
            if name in self._inactive and not self._cache.listed(name):
                # Started by another process (a start of ours lists it first): say so,
                # so that a view of it lists it; that listing goes first (the watch is
                # set up at once, the monitor's own full read an interval later).
                self._pools[name].retry_due = now + self.interval
                self.bus.publish(PoolChanged(name, "started", journal=False))
            self._inactive.discard(name)

    def _generation(self, pool: str) -> object:
        """The identity of the pool's run state (None: not active)."""
        return self.store.run_identity(pool)

    def _drop(self, pool: str) -> None:
        p = self._pools.pop(pool, None)
        if p is not None:
            self._unwatch(p)

    def _unwatch(self, p: _Pool) -> None:
        if p.wd is not None:
            self._by_wd.pop(p.wd, None)
            if self._watcher is not None:
                self._watcher.remove(p.wd)
            p.wd = None
        p.mode = "new"

    def _read_events(self) -> None:
        if self._watcher is None:
            return
        now = time.monotonic()
        for event in self._watcher.read():
            if event.mask & watch.IN_Q_OVERFLOW:  # events were lost: read everything
                for p in self._pools.values():
                    p.full = p.full or p.mode == "watched"
                continue
            p = self._pools.get(self._by_wd.get(event.wd, ""))
            if p is None or p.wd != event.wd:
                continue
            if event.mask & watch.SELF_EVENTS:
                if event.mask & watch.IN_IGNORED:  # the kernel dropped the watch
                    self._by_wd.pop(event.wd, None)
                    p.wd, p.mode = None, "new"
                p.sizes_due = p.poll_due = now  # still there? (inaccessible)
                continue
            if not event.name:
                continue
            due = now
            if not event.mask & watch.LISTING_EVENTS:  # written: rate-limited per volume
                due = max(now, p.read_at.get(event.name, -MODIFY_INTERVAL) + MODIFY_INTERVAL)
            p.names[event.name] = min(p.names.get(event.name, due), due)

    def _tend(self, p: _Pool, force: bool) -> None:
        now = time.monotonic()
        try:
            driver = self._driver_for(p.name)
            if p.gone:
                if not (force or now >= p.poll_due):
                    return
                driver.change_token()  # raises while still inaccessible
                p.gone, p.full = False, True
            if p.mode == "new":
                self._setup(p, driver)
            if p.listing:
                if self._cache.listing(p.name):
                    return  # a read now could be overwritten by the listing's older one
                p.listing = False
                if not self._cache.complete(p.name):  # the listing failed: read it all
                    p.full = True
            self._check(p, driver, now, force)
            if force or now >= p.retry_due:
                if p.full:
                    self._full_scan(p, driver)
                elif p.names:
                    self._read_names(p, driver, now, force)
        except (_Dropped, Busy):
            p.retry_due = time.monotonic() + RETRY
        except (PoolkeeperError, OSError):
            self._lost(p, now)
        except Exception:  # a bug: the other pools are still tended
            log().exception("live monitor: pool '%s'", p.name)
            p.retry_due = p.poll_due = p.sizes_due = now + self.interval
        for name in [n for n, t in p.read_at.items() if now - t >= MODIFY_INTERVAL]:
            del p.read_at[name]

    def _lost(self, p: _Pool, now: float) -> None:
        """The pool's storage cannot be read (directory removed, unmounted): say so once."""
        p.poll_due = now + self.interval
        if p.gone:
            return
        p.gone = True
        self._unwatch(p)
        p.names.clear()
        p.token = None
        self.bus.publish(PoolChanged(p.name, "inaccessible"))

    def _setup(self, p: _Pool, driver: PoolDriver) -> None:
        """Watch a file pool's directory (then read it all: what changed before the watch
        was not told); any other pool, or a watch that cannot be added, is polled."""
        p.full = True
        p.step = self.interval
        watcher = self._watcher_or_none()
        watched = driver.watched_dir() if driver.features().volumes_are_files else None
        if watcher is None or watched is None:
            p.mode = "polled"
            return
        with watched as fd:
            p.remote = watch.remote_fs(fd)
            try:
                p.wd = watcher.add(fd)
            except OSError:  # no watch left (fs.inotify.max_user_watches): poll it
                p.mode = "polled"
                return
        p.mode = "watched"
        self._by_wd[p.wd] = p.name

    def _watcher_or_none(self) -> watch.Watcher | None:
        if self._watcher is None and not self._no_inotify:
            try:
                self._watcher = watch.Watcher()
            except OSError:  # no inotify (fs.inotify.max_user_instances reached)
                self._no_inotify = True
        return self._watcher

    def _check(self, p: _Pool, driver: PoolDriver, now: float, force: bool) -> None:
        """The cheap checks that are due: a polled pool's token, a watched pool's sizes."""
        if (p.mode == "polled" or p.remote) and (force or now >= p.poll_due):
            token = driver.change_token()
            changed = p.token is not None and token != p.token
            if changed and _space_only(p.token, token):
                self.bus.publish(PoolChanged(p.name, "sizes"))  # cheap: no rescan, no reset
                changed = False
            elif changed:
                p.full = True
            p.token = token
            p.step = self.interval if changed else min(max(p.step, self.interval) * 2,
                                                       POLL_MAX)
            p.poll_due = now + p.step
        if p.mode == "watched" and not p.remote and (force or now >= p.sizes_due):
            sizes = driver.sizes()  # of the directory checked: a swapped target raises
            if p.sizes is not None and sizes != p.sizes:
                self.bus.publish(PoolChanged(p.name, "sizes"))
            p.sizes = sizes
            p.sizes_due = now + self.interval

    # == scans =========================================================================
    @contextlib.contextmanager
    def _hold(self, p: _Pool) -> Iterator[None]:
        """A shared hold of the pool for one slice of a scan, unless a verb waits for it
        or the monitor stops; the pool must still be the run it was (no stop or start)."""
        if self._stopping() or self.locks.writer_waiting(p.name):
            raise _Dropped
        with self.locks.pool(p.name, exclusive=False, what="monitoring", wait=0):
            if self._generation(p.name) != p.generation:
                raise _Dropped
            yield

    def _full_scan(self, p: _Pool, driver: PoolDriver) -> None:
        token = driver.change_token() if p.mode == "polled" or p.remote else None
        had = self._cache.listed(p.name)
        p.names.clear()  # read below, as they are now
        names = driver.volume_names()
        if names is None:  # listed by refresh() alone (block pools: quick)
            with self._hold(p):
                _sizes, volumes = driver.refresh()
        else:
            volumes = []
            for start in range(0, len(names), SLICE):
                with self._hold(p):
                    found = driver.refresh_volumes(names[start:start + SLICE])
                volumes += [v for v in found if v is not None]
        self.full_scans += 1
        self.volumes_read += len(volumes)
        if self._generation(p.name) != p.generation:
            raise _Dropped  # stopped or restarted after the last slice
        self._cache.replace(p.name, self._records.apply(p.name, volumes))
        p.full = False
        if token is not None:
            p.token = token
        if had and p.scanned:
            self.bus.publish(PoolChanged(p.name, "sizes"))
        p.scanned = True

    def _read_names(self, p: _Pool, driver: PoolDriver, now: float, force: bool) -> None:
        due = [n for n, t in p.names.items() if force or t <= now]
        for start in range(0, len(due), SLICE):
            part = due[start:start + SLICE]
            with self._hold(p):
                found = driver.refresh_volumes(part)
            for name in part:
                del p.names[name]
                p.read_at[name] = now
            self.volumes_read += len(part)
            present = self._records.apply(p.name, [v for v in found if v is not None])
            infos: dict[str, VolumeInfo | None] = dict.fromkeys(part)
            infos.update((v.name, v) for v in present)
            self._cache.update(p.name, infos)


class _Wake:
    """The pipe that wakes the monitor's thread from its select(). Written and closed
    under one lock: a write after the close would reach whatever file took the number."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._closed = False

    def poke(self) -> None:
        with self._lock:
            if not self._closed:
                with contextlib.suppress(OSError):  # full: it is awake already
                    os.write(self._write_fd, b"x")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                for fd in (self.read_fd, self._write_fd):
                    os.close(fd)


def _space_only(seen: object, token: object) -> bool:
    """Did only the free space change between two change tokens (SpaceToken)?"""
    return isinstance(seen, SpaceToken) and isinstance(token, SpaceToken) and \
        seen.listing == token.listing
