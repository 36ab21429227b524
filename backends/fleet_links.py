"""The libvirt connections of a Fleet (backends.fleet): each one's state, its controller,
and its life: opened on a thread, retried with a growing delay, lost, edited, removed.

Every change to the set of connections is saved first (CONFIG/connections.json) and made
in memory only once saved, so a refused or failed change leaves both as they were. One
change at a time (`_change`); the lock over the links is never held across I/O, so the
UI thread, which asks for their states, never waits for a disk or a host.

A link's `generation` is bumped at every (re)connect, loss and removal, in the same lock
section that swaps its controller out: a thread or timer of an older generation finds it
changed and does nothing (two reports of one loss make one reconnect, not two). A
controller taken out is closed on a thread of its own and only then unsubscribed, so the
end of its jobs still reaches the TUI; until they end it stays among `retired`, whose jobs
FleetJobs still lists. A host with running jobs is not reconnected, edited or removed
(that would cancel them halfway): the refusal says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .api import Controller
from .connection_store import ConnectionStore, SavedConnection, check_connection
from .errors import AlreadyExists, Busy, NotFound, PoolkeeperError
from .events import ConnectionChanged, Event, PoolChanged
from .jobs import Job
from .model import PoolStatus

THIS_HOST = ""  # the native engine's connection name
RELIST_AFTER = 5.0  # seconds a connection's pool listing is answered from memory
RETRY_DELAYS = (2.0, 4.0, 8.0, 15.0, 30.0, 60.0)  # seconds before each reconnect attempt
CLOSE_WAIT = 4.0  # seconds the fleet's close waits for its connections' closes in all


class Member(Controller, Protocol):
    """A libvirt connection's controller, as the fleet uses it (libvirt_host)."""

    def lost(self) -> str | None: ...


# (uri, name, on_lost) -> an open member; raises PoolkeeperError when it cannot connect
MemberFactory = Callable[[str, str, Callable[[str], None]], Member]


def libvirt_member(uri: str, name: str, on_lost: Callable[[str], None]) -> Member:
    from .libvirt_host import LibvirtHostController  # only with a connection: libvirt-python

    return LibvirtHostController(uri, name, on_lost=on_lost)


@dataclass(frozen=True)
class ConnectionStatus:
    """A connection as the tree shows it."""

    name: str  # THIS_HOST for the native engine
    uri: str | None  # None for the native engine
    state: str  # connecting, connected, lost, failed
    detail: str = ""  # why it failed or was lost
    retry_at: float | None = None  # time.monotonic() of the next attempt

    @property
    def label(self) -> str:
        return "this host" if self.name == THIS_HOST else self.name

    def state_text(self, now: float | None = None) -> str:
        """'connected', 'lost: reconnecting in 4 s', 'failed: why (retry in 8 s)'."""
        wait = ""
        if self.retry_at is not None:
            seconds = max(0, round(self.retry_at - (time.monotonic() if now is None else now)))
            wait = f"reconnecting in {seconds} s" if self.state == "lost" else \
                f"retry in {seconds} s"
        if self.state == "lost":
            return f"lost: {wait or 'reconnecting now'}"
        if self.state == "failed":
            return f"failed: {self.detail}" + (f" ({wait})" if wait else "")
        return self.state


class Link:
    """One libvirt connection's state (guarded by Links.lock)."""

    def __init__(self, saved: SavedConnection) -> None:
        self.saved = saved
        self.member: Member | None = None
        self.state = "connecting"
        self.detail = ""
        self.was_connected = False  # then a failed reconnect is still 'lost', not 'failed'
        self.retry_at: float | None = None
        self.attempts = 0
        self.timer: threading.Timer | None = None
        self.pools: list[PoolStatus] = []  # the last listing (kept while lost)
        self.unsubscribe: Callable[[], None] | None = None
        self.generation = 0
        self.listing = False  # a background pool listing is running
        self.listed_at = 0.0  # time.monotonic() of the last listing (0: stale)

    @property
    def name(self) -> str:
        return self.saved.name

    @property
    def suffix(self) -> str:
        return f"@{self.saved.name}"

    def status(self) -> ConnectionStatus:
        return ConnectionStatus(self.saved.name, self.saved.uri, self.state, self.detail,
                                self.retry_at)


def _running(member: Controller | None) -> list[Job]:
    return member.jobs.running() if member is not None else []


class Links:
    """The saved connections and their controllers; `publish` hands their events (and
    ConnectionChanged) to the fleet."""

    def __init__(self, store: ConnectionStore, factory: MemberFactory,
                 publish: Callable[[Event], None]) -> None:
        self.store = store
        self._factory = factory
        self._publish = publish
        self.lock = threading.RLock()
        self._change = threading.Lock()  # one add/edit/remove at a time (saved first)
        self.links: dict[str, Link] = {}
        self.retired: list[Controller] = []  # closed members whose jobs may still run
        self._closing: list[threading.Thread] = []  # members being closed
        self.closed = False
        self.monitor_interval: float | None = None
        self.problems: list[str] = []
        try:
            saved = store.load()
        except PoolkeeperError as exc:
            saved = []
            self.problems.append(str(exc))
        for item in saved:
            self.links[item.name] = Link(item)

    # == reading (memory only: safe on the UI thread) ===================================
    def statuses(self) -> list[ConnectionStatus]:
        with self.lock:
            return [link.status() for link in self.links.values()]

    def get(self, name: str) -> Link | None:
        with self.lock:
            return self.links.get(name)

    def link_of(self, pool: str) -> Link | None:
        """The connection whose pool `pool` names (the longest suffix that matches)."""
        with self.lock:
            best = None
            for link in self.links.values():
                if pool.endswith(link.suffix) and len(pool) > len(link.suffix) and (
                        best is None or len(link.suffix) > len(best.suffix)):
                    best = link
            return best

    def members(self) -> list[Controller]:
        """The open controllers, and the closed ones whose jobs still run."""
        with self.lock:
            self.retired = [m for m in self.retired if _running(m)]
            return [link.member for link in self.links.values()
                    if link.member is not None] + list(self.retired)

    # == changes (from worker threads: they save, and may list this host's pools) =======
    def open(self) -> None:
        """Connect every saved connection, each on its own thread."""
        with self.lock:
            links = [(link, link.generation) for link in self.links.values()]
        for link, generation in links:
            self._connect_later(link, 0.0, generation)

    def add(self, name: str, uri: str, taken_by_pools: Callable[[str], str | None]) -> None:
        """`taken_by_pools(name)`: a pool of this host that reads as one of `name`."""
        saved = check_connection(name, uri)
        with self._change:
            with self.lock:
                self._refuse_taken(name)
                kept = [link.saved for link in self.links.values()]
            _refuse_clash(name, taken_by_pools)
            self.store.save(kept + [saved])  # first: a refused save changes nothing
            link = Link(saved)
            with self.lock:
                self.links[name] = link
                generation = link.generation
        self._changed(name)
        self._connect_later(link, 0.0, generation)

    def edit(self, old: str, name: str, uri: str,
             taken_by_pools: Callable[[str], str | None]) -> None:
        """Rename and/or point a connection elsewhere: closed, then opened anew. Every
        check comes first: a refused edit leaves the connection as it was."""
        saved = check_connection(name, uri)
        with self._change:
            with self.lock:
                link = self._existing(old)
                if name != old:
                    self._refuse_taken(name)
                self._refuse_busy(link, "changed")
                kept = [saved if other is link else other.saved
                        for other in self.links.values()]
            if name != old:
                _refuse_clash(name, taken_by_pools)
            self.store.save(kept)
            fresh = Link(saved)
            with self.lock:
                self.links = {(name if key == old else key): (fresh if key == old else other)
                              for key, other in self.links.items()}
                generation = fresh.generation
            self._drop(link)
        self._changed(old)
        self._changed(name)
        self._connect_later(fresh, 0.0, generation)

    def remove(self, name: str) -> None:
        with self._change:
            with self.lock:
                link = self._existing(name)
                self._refuse_busy(link, "removed")
                kept = [other.saved for other in self.links.values() if other is not link]
            self.store.save(kept)
            with self.lock:
                self.links.pop(name, None)
            self._drop(link)
        self._changed(name)

    def reconnect(self, name: str) -> None:
        """Try again now (a failed or lost connection; a connected one is reopened)."""
        with self.lock:
            link = self._existing(name)
            self._refuse_busy(link, "reconnected")
            link.attempts = 0
        generation = self._drop(link, keep_pools=True)
        self._connect_later(link, 0.0, generation)

    def close(self, wait: float = CLOSE_WAIT) -> None:
        """Close every connection, each on a thread, waiting at most `wait` seconds in
        all (cancelled transfers remove what they half made; a dead host is not waited
        for past it)."""
        with self.lock:
            self.closed = True
            links = list(self.links.values())
        for link in links:
            self._drop(link)
        deadline = time.monotonic() + wait
        with self.lock:
            closing = list(self._closing)
        for thread in closing:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _existing(self, name: str) -> Link:
        link = self.links.get(name)
        if link is None:
            raise NotFound(f"no connection named '{name}'")
        return link

    def _refuse_taken(self, name: str) -> None:
        if name in self.links:
            raise AlreadyExists(f"a connection named '{name}' exists: choose another name, "
                                "or edit that one (e on its line)")

    def _refuse_busy(self, link: Link, verb: str) -> None:
        jobs = _running(link.member)
        if jobs:
            what = ", ".join(job.description for job in jobs[:3])
            raise Busy(f"the connection '{link.name}' has {len(jobs)} job(s) running "
                       f"({what}): it would cancel them halfway; wait for them, or cancel "
                       f"them (j), then it can be {verb}")

    def _changed(self, name: str) -> None:
        self._publish(ConnectionChanged(name))

    # == the life of a link =============================================================
    def _drop(self, link: Link, keep_pools: bool = False) -> int:
        """Take the link's controller out (a new generation) and close it on a thread;
        returns the new generation."""
        with self.lock:
            link.generation += 1
            if link.timer is not None:
                link.timer.cancel()
                link.timer = None
            member, link.member = link.member, None
            unsubscribe, link.unsubscribe = link.unsubscribe, None
            if not keep_pools:
                link.pools = []
            if member is not None:
                self.retired.append(member)
            generation = link.generation
        if member is not None:
            closing = threading.Thread(target=_close_then, args=(member, unsubscribe),
                                       daemon=True, name=f"close {link.name}")
            closing.start()
            with self.lock:
                self._closing = [t for t in self._closing if t.is_alive()] + [closing]
        return generation

    def _connect_later(self, link: Link, delay: float, generation: int) -> None:
        with self.lock:
            if (self.closed or self.links.get(link.name) is not link
                    or link.generation != generation):
                return
            if link.timer is not None:
                link.timer.cancel()
                link.timer = None
            if delay <= 0:
                link.state = "lost" if link.was_connected else "connecting"
                link.retry_at = None
                threading.Thread(target=self._connect, args=(link, generation), daemon=True,
                                 name=f"connect {link.name}").start()
            else:
                link.retry_at = time.monotonic() + delay
                link.timer = threading.Timer(delay, self._connect_later,
                                             (link, 0.0, generation))
                link.timer.daemon = True
                link.timer.start()
        self._changed(link.name)

    def _connect(self, link: Link, generation: int) -> None:
        def on_lost(why: str) -> None:
            self.lost(link, generation, why)

        try:
            member = self._factory(link.saved.uri, link.name, on_lost)
        except Exception as exc:  # a bug or a hostile answer must not leave it 'connecting'
            why = str(exc) if isinstance(exc, PoolkeeperError) else \
                f"cannot connect to '{link.saved.uri}': {type(exc).__name__}: {exc}"
            self._failed(link, generation, why)
            return
        with self.lock:
            stale = link.generation != generation or self.closed
            if not stale:
                link.member = member
                link.state, link.detail, link.attempts = "connected", "", 0
                link.was_connected = True
                link.unsubscribe = member.subscribe(lambda event: self._from_member(link, event))
        if stale:
            _close_then(member, None)
            return
        if self.monitor_interval:
            member.start_monitor(self.monitor_interval)
        self.list_pools_of(link, generation, announce=True)

    def _from_member(self, link: Link, event: Event) -> None:
        if isinstance(event, PoolChanged) and event.reason != "sizes":
            link.listed_at = 0.0  # the next listing asks the host again
        self._publish(event)

    def _failed(self, link: Link, generation: int, why: str) -> None:
        with self.lock:
            if link.generation != generation:
                return
            link.state = "lost" if link.was_connected else "failed"
            link.detail = why
            delay = RETRY_DELAYS[min(link.attempts, len(RETRY_DELAYS) - 1)]
            link.attempts += 1
        self._connect_later(link, delay, generation)

    def lost(self, link: Link, generation: int, why: str) -> None:
        """The controller of `generation` lost its connection (told once per generation:
        the check and the swap are one lock section)."""
        with self.lock:  # (reentrant: the drop's new generation in the same section)
            if link.generation != generation or link.member is None:
                return
            link.state, link.detail = "lost", why
            generation = self._drop(link, keep_pools=True)
        self._failed(link, generation, why)

    def list_pools_of(self, link: Link, generation: int, announce: bool = False) -> None:
        """The connection's pools, on this thread; ConnectionChanged when they changed
        (`announce`: in any case, its state did)."""
        with self.lock:
            member = link.member if link.generation == generation else None
        try:
            if member is None:
                return
            pools = member.list_pools()
        except Exception as exc:  # (a hostile answer too: the listing is kept as it was)
            why = member.lost() if member is not None else None
            if why or not isinstance(exc, PoolkeeperError):
                self.lost(link, generation, why or f"{type(exc).__name__}: {exc}")
            return
        finally:
            link.listing = False
        with self.lock:
            if link.generation != generation:
                return
            changed, link.pools = pools != link.pools, pools
            link.listed_at = time.monotonic()
        if changed or announce:
            self._changed(link.name)

    def known_pools(self, native: set[str]) -> list[PoolStatus]:
        """Each connection's pools from its last listing (a lost one's as inaccessible,
        saying why; one whose id is a pool of this host's is left out: Fleet._ambiguous),
        and a new listing started in the background where the last is old."""
        from dataclasses import replace

        found: list[PoolStatus] = []
        with self.lock:
            links = list(self.links.values())
        for link in links:
            with self.lock:
                member, generation = link.member, link.generation
                start = member is not None and not link.listing and (
                    time.monotonic() - link.listed_at > RELIST_AFTER)
                if start:
                    link.listing = True
                known = list(link.pools)
                status = link.status()
            if member is None:
                why = status.state_text()
                known = [replace(p, state="inaccessible", detail=f"{status.uri}: {why}")
                         for p in known]
            found.extend(p for p in known if p.name not in native)
            if start:
                threading.Thread(target=self.list_pools_of, args=(link, generation),
                                 daemon=True, name=f"pools of {link.name}").start()
        return found


def _refuse_clash(name: str, taken_by_pools: Callable[[str], str | None]) -> None:
    clash = taken_by_pools(name)
    if clash:
        raise AlreadyExists(f"this host has a pool named '{clash}', which would read as "
                            f"pool '{clash[: -len(name) - 1]}' of '{name}': choose another "
                            "connection name")


def _close_then(member: Any, unsubscribe: Callable[[], None] | None) -> None:
    """Close a controller (its jobs cancelled: their end still reaches the fleet), then
    stop hearing from it."""
    try:
        member.close()
    except PoolkeeperError:
        pass
    finally:
        if unsubscribe is not None:
            unsubscribe()
