"""The volumes of a libvirt connection's pools, listed at once and filled in behind
(backends.libvirt_host's cache, its fill thread and its monitor).

libvirt has no bulk call for volume sizes: each volume's XML is one RPC. So a listing is
one listAllVolumes call, whose answer carries each volume's name and key (no RPC each):
the rows go into the cache at once as pending volumes (VolumeInfo.pending: format "",
capacity 0; the key as the path where the key is one), and a thread reads their XML in
batches of BATCH volumes, one connection call per batch, so the TUI's own calls get the
connection between batches (the next batch is asked for while the last one's XML is
read, so the daemon and this process work at once). Each batch is put INTO the pending
infos (VolumeCache.probed) and published as VolumesChanged(changed=...). probe_first
moves names to the front.

A volume listed before and still there (same key) keeps its row in a new listing and is
read again after the pending ones ("stale"): what differs is published as changed.

libvirt has pool events (backends.libvirt_host subscribes to them) but no volume events,
and another client's vol-create or vol-delete raises none. So the monitor (start_monitor)
asks, every `interval` seconds, for the names of each pool this controller has listed
(one listAllVolumes call per pool, no RPC per volume) and publishes the difference; the
new volumes are filled in as above. A pool-refresh (libvirt's refresh event) lists the
pool the same way and also reads every volume again. All of it runs on this module's
threads, never on a caller's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import Any

from .errors import PoolkeeperError
from .events import EventBus, VolumesChanged
from .libvirt_conn import ConnectionLost
from .libvirt_controller import LibvirtController, volume_from_xml
from .model import VolumeInfo
from .monitor import VolumeCache

BATCH = 256  # volume XMLs read per connection call (~50 ms on a local daemon)


def pending_row(name: str, key: str) -> VolumeInfo:
    """A volume known by name and key only (dir, fs, disk pools: the key is the path)."""
    return VolumeInfo(name=name, key=key, path=key if key.startswith("/") else "",
                      format="", pending=True)


def read_row(xml: str) -> VolumeInfo:
    """A volume as its XML gives it, with a signature that changes with its sizes, format
    and backing store (what VolumeCache compares)."""
    info = volume_from_xml(xml)
    info.signature = (info.capacity, info.allocation, info.physical, info.format,
                      info.backing.path if info.backing else None, info.encryption)
    return info


class VolumeListing:
    """Each listed pool's volumes in `cache` (keyed by pool id), filled in by a thread.
    `lost(exc)` is told when a call finds the connection gone."""

    def __init__(self, lc: LibvirtController, bus: EventBus,
                 lost: Callable[[ConnectionLost], None]) -> None:
        self.lc = lc
        self.cache = VolumeCache(bus)
        self._bus = bus
        self._lost = lost
        self._guard = threading.Lock()
        self._plain: dict[str, str] = {}  # pool id -> libvirt name, of the listed pools
        self._vols: dict[str, dict[str, Any]] = {}  # pool id -> name -> virStorageVol
        self._stale: dict[str, dict[str, None]] = {}  # pool id -> names to read again
        self._first: dict[str, list[str]] = {}  # pool id -> names to read first
        self._calls: set[Future[Any]] = set()  # batches on their way
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._filler: threading.Thread | None = None
        self._monitor: threading.Thread | None = None
        self.interval: float | None = None

    # == listing ========================================================================
    def _names(self, plain: str) -> dict[str, Any]:
        """name -> virStorageVol of the pool (one RPC; on the connection's worker)."""
        return {str(v.name()): v for v in self.lc._pool(plain).listAllVolumes(0)}

    def list(self, pid: str, plain: str) -> list[VolumeInfo]:
        """The pool's volumes now: rows at once, sizes to come (see the module docstring)."""
        vols = self.lc._call(lambda: self._names(plain),
                             f"cannot list the volumes of pool '{plain}'")
        old = {v.name: v for v in self.cache.volumes(pid)}
        rows: list[VolumeInfo] = []
        stale: dict[str, None] = {}
        for name, vol in vols.items():
            key = str(vol.key())
            prev = old.get(name)
            if prev is not None and prev.key == key and not prev.pending:
                rows.append(prev)
                stale[name] = None
            else:
                rows.append(pending_row(name, key))
        with self._guard:
            self._plain[pid] = plain
            self._vols[pid] = vols
            self._stale[pid] = stale
        self.cache.replace(pid, rows)
        self._kick()
        return rows

    def relist(self, pid: str, reread: bool = False) -> None:
        """What changed in a listed pool's names, published (the monitor's look; a
        refresh event's, which also reads every volume again with `reread`)."""
        with self._guard:
            plain = self._plain.get(pid)
        if plain is None or self._stop.is_set():
            return  # not listed (or forgotten): its next listing shows it
        vols = self.lc._call(lambda: self._names(plain),
                             f"cannot list the volumes of pool '{plain}'")
        cached = {v.name: v for v in self.cache.volumes(pid)}
        added = [pending_row(n, str(v.key())) for n, v in vols.items() if n not in cached]
        removed: dict[str, VolumeInfo | None] = {n: None for n in cached if n not in vols}
        again = {n: None for n, v in vols.items() if n in cached and not cached[n].pending
                 and (reread or cached[n].key != str(v.key()))}
        with self._guard:
            if pid not in self._plain:
                return  # forgotten meanwhile (the pool stopped)
            self._vols[pid] = vols
            self._stale.setdefault(pid, {}).update(again)
        if removed:
            self.cache.update(pid, removed)
        self.cache.add_listed(pid, added)
        if added or again:
            self._kick()

    def forget(self, pid: str) -> None:
        """The pool stopped or went: its rows and work are dropped."""
        with self._guard:
            for table in (self._plain, self._vols, self._stale, self._first):
                table.pop(pid, None)
        self.cache.drop(pid)

    def listed(self) -> list[str]:
        with self._guard:
            return list(self._plain)

    def prefer(self, pid: str, names: Iterable[str]) -> None:
        """Read these first (memory only); the latest wish replaces the last."""
        with self._guard:
            self._first[pid] = list(names)
        self._wake.set()

    # == the fill thread ================================================================
    def _kick(self) -> None:
        with self._guard:
            if self._stop.is_set():
                return
            if self._filler is None or not self._filler.is_alive():
                self._filler = threading.Thread(target=self._fill, daemon=True,
                                                name=f"pk-fill {self.lc.uri}")
                self._filler.start()
        self._wake.set()

    def _next(self, busy: frozenset[str] = frozenset()
              ) -> tuple[str, list[VolumeInfo], list[str]] | None:
        """(pool id, pending infos, stale names) of the next batch: a pool someone asked
        to go first, else pending rows, else rows to read again; none of `busy` (being
        read already)."""
        with self._guard:
            order = list(self._first) + [p for p in self._vols if p not in self._first]
            first = {p: self._first.pop(p, []) for p in order}
        for pid in order:
            if pid not in self._vols:
                continue
            pending = [v for v in self.cache.pending(pid, first.get(pid, ()),
                                                     BATCH + len(busy))
                       if v.name not in busy][:BATCH]
            if pending:
                return pid, pending, []
        with self._guard:
            for pid, stale in self._stale.items():
                if stale:
                    names = list(stale)[:BATCH]
                    for name in names:
                        del stale[name]
                    return pid, [], names
        return None

    def _fetch(self, pid: str, names: list[str]) -> Future[dict[str, str | None]]:
        """The volumes' XML (None: gone), one connection call for them all, on a thread
        of its own: the fill reads what the last batch brought while this one comes."""
        with self._guard:
            table = self._vols.get(pid, {})
            vols = [(name, table.get(name)) for name in names]
        lv = self.lc.libvirt

        def run() -> dict[str, str | None]:
            found: dict[str, str | None] = {}
            for name, vol in vols:
                try:
                    found[name] = None if vol is None else str(vol.XMLDesc(0))
                except lv.libvirtError as exc:
                    if exc.get_error_code() != lv.VIR_ERR_NO_STORAGE_VOL:
                        raise
                    found[name] = None  # deleted meanwhile
                self.lc.connection.alive()
            return found

        future: Future[dict[str, str | None]] = Future()

        def call() -> None:
            try:
                if self._stop.is_set():
                    raise PoolkeeperError("the listing was stopped")
                future.set_result(self.lc._call(
                    run, f"cannot read the volumes of pool '{self._plain.get(pid, pid)}'"))
            except BaseException as exc:  # handed to the fill thread
                future.set_exception(exc)
            finally:
                with self._guard:
                    self._calls.discard(future)
        with self._guard:
            self._calls.add(future)
        threading.Thread(target=call, daemon=True, name="pk-fill-call").start()
        return future

    def _fill(self) -> None:
        ahead: tuple[tuple[str, list[VolumeInfo], list[str]], Future[Any]] | None = None
        while not self._stop.is_set():
            if ahead is None:
                work = self._next()
                if work is None:
                    self._wake.wait(1.0)
                    self._wake.clear()
                    continue
                ahead = (work, self._fetch(work[0], [v.name for v in work[1]] or work[2]))
            (pid, pending, stale), future = ahead
            names = [v.name for v in pending] or stale
            following = self._next(frozenset(names))  # asked for before this is read
            ahead = None if following is None else (following, self._fetch(
                following[0], [v.name for v in following[1]] or following[2]))
            try:
                found = {n: None if xml is None else read_row(xml)
                         for n, xml in future.result().items()}
            except ConnectionLost as exc:
                self._lost(exc)
                return
            except PoolkeeperError:
                # the pool stopped or went (its event drops it): stop reading it until
                # it is listed again
                with self._guard:
                    self._vols.pop(pid, None)
                    self._stale.pop(pid, None)
                continue
            if pending:
                changed, removed = self.cache.probed(
                    pid, [(v, found.get(v.name)) for v in pending])
                if changed or removed:
                    self._bus.publish(VolumesChanged(pid, removed=tuple(removed),
                                                     changed=tuple(changed)))
            else:
                self.cache.update(pid, found)

    # == the monitor ====================================================================
    def start_monitor(self, interval: float) -> None:
        """Look at each listed pool's names every `interval` seconds (a thread)."""
        self.interval = interval
        with self._guard:
            if self._monitor is not None or self._stop.is_set():
                return
            self._monitor = threading.Thread(target=self._watch, daemon=True,
                                             name=f"pk-monitor {self.lc.uri}")
        self._monitor.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval or 3.0):
            for pid in self.listed():
                try:
                    self.relist(pid)
                except ConnectionLost as exc:
                    self._lost(exc)
                    return
                except PoolkeeperError:
                    continue  # stopped meanwhile: its event says so

    def stop(self) -> None:
        """No more reading or watching (the threads end after their current call). The
        volume objects go: each holds the connection open."""
        self._stop.set()
        self._wake.set()
        with self._guard:
            self._vols.clear()

    def settle(self, timeout: float) -> None:
        """After stop(): wait up to `timeout` seconds for the calls on their way (so the
        connection is free to be closed; a dead peer's are not waited for longer)."""
        with self._guard:
            calls = list(self._calls)
        wait(calls, timeout)
