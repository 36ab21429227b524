"""Several hosts behind one controller: this host's native engine and libvirt connections.

The TUI talks to one Controller (backends.api); a Fleet is one, routing each call to the
host that owns the pool. Pools of a libvirt connection named `kvm2` are known as
`POOL@kvm2` (the connection's controller, backends.libvirt_host, names them so: in
listings, events and jobs alike); this host's pools keep their plain names. Calls that
name no pool (define, the pool types, secrets, find sources, block devices) go to the
connection the user works in (`use`), which the TUI sets as the cursor moves.

A host that is slow or gone never blocks the others: connections open on their own
threads, listing the pools answers from each connection's last listing (refreshed in the
background, ConnectionChanged when it is in), and a lost connection is retried with a
growing delay (RETRY_DELAYS) while its pools stay in the tree as inaccessible. States:
connecting, connected, lost (reconnecting in N s), failed (why; retried as well).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from .api import Controller
from .connection_store import ConnectionStore, SavedConnection, check_connection
from .errors import AlreadyExists, NotFound, PoolkeeperError, StateError
from .events import ConnectionChanged, Event, EventBus, PoolChanged, Subscriber
from .jobs import Job, JobManager
from .model import DeviceLayout, PoolDef, PoolFeatures, PoolStatus, VolumeDef, VolumeInfo
from .secret_defs import SecretDef
from .volume_requests import Refusal

THIS_HOST = ""  # the native engine's connection name
RELIST_AFTER = 5.0  # seconds a connection's pool listing is answered from memory
RETRY_DELAYS = (2.0, 4.0, 8.0, 15.0, 30.0, 60.0)  # seconds before each reconnect attempt


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


class _Link:
    """One libvirt connection's state (guarded by the fleet's lock)."""

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
        self.generation = 0  # bumped at every (re)connect and removal: stale threads stop
        self.listing = False  # a background pool listing is running
        self.listed_at = 0.0  # time.monotonic() of the last listing (0: stale)

    @property
    def suffix(self) -> str:
        return f"@{self.saved.name}"

    def status(self) -> ConnectionStatus:
        return ConnectionStatus(self.saved.name, self.saved.uri, self.state, self.detail,
                                self.retry_at)


class FleetJobs(JobManager):
    """Every host's jobs as one JobManager (the TUI asks which still run at quit)."""

    def __init__(self, fleet: Fleet) -> None:
        super().__init__(fleet.bus)
        self._fleet = fleet

    def _managers(self) -> list[JobManager]:
        return [ctl.jobs for ctl in self._fleet.controllers()]

    def list(self) -> list[Job]:
        return [job for manager in self._managers() for job in manager.list()]

    def get(self, job_id: int) -> Job | None:
        for manager in self._managers():
            job = manager.get(job_id)
            if job is not None:
                return job
        return None

    def forget_finished(self) -> None:
        for manager in self._managers():
            manager.forget_finished()

    def shutdown(self, cancel: bool = True) -> None:
        for manager in self._managers():
            manager.shutdown(cancel)


class Fleet:
    """This host's controller and the saved libvirt connections, as one Controller."""

    def __init__(self, native: Controller, config_dir: Path,
                 factory: MemberFactory = libvirt_member) -> None:
        self.native = native
        self.bus = EventBus()
        self.store = ConnectionStore(config_dir)
        self._factory = factory
        self._lock = threading.RLock()
        self._links: dict[str, _Link] = {}
        self._current = THIS_HOST
        self._monitor_interval: float | None = None
        self._closed = False
        self._native_names: set[str] = set()  # this host's pools, as last listed
        self._jobs = FleetJobs(self)
        self.problems: list[str] = []
        native.subscribe(self.bus.publish)
        try:
            saved = self.store.load()
        except PoolkeeperError as exc:
            saved = []
            self.problems.append(str(exc))
        for item in saved:
            self._links[item.name] = _Link(item)

    # == connections ===================================================================
    def open(self) -> None:
        """Connect every saved connection, each on its own thread."""
        with self._lock:
            links = list(self._links.values())
        for link in links:
            self._connect_later(link, 0.0)

    def connections(self) -> list[ConnectionStatus]:
        """This host first, then the saved connections in the order they were added."""
        with self._lock:
            return [ConnectionStatus(THIS_HOST, None, "connected")] + [
                link.status() for link in self._links.values()]

    def connection_of(self, pool: str) -> str:
        """The connection that owns the pool `pool` (THIS_HOST: the native engine)."""
        link = self._link_of(pool)
        return THIS_HOST if link is None or self._ambiguous(pool, link) else link.saved.name

    def use(self, name: str) -> None:
        """Calls that name no pool go to this connection from now on (the tree's cursor)."""
        with self._lock:
            self._current = name if name in self._links else THIS_HOST

    @property
    def current(self) -> str:
        return self._current

    def add_connection(self, name: str, uri: str) -> None:
        saved = check_connection(name, uri)
        with self._lock:
            if name in self._links:
                raise AlreadyExists(f"a connection named '{name}' exists: choose another "
                                    "name, or edit that one")
            clash = [p.name for p in self.native.list_pools() if p.name.endswith(f"@{name}")]
            if clash:
                raise AlreadyExists(f"this host has a pool named '{clash[0]}', which would "
                                    f"read as pool '{clash[0][: -len(name) - 1]}' of "
                                    f"'{name}': choose another connection name")
            link = _Link(saved)
            self._links[name] = link
            self._save()
        self._changed(name)
        self._connect_later(link, 0.0)

    def edit_connection(self, old: str, name: str, uri: str) -> None:
        """Rename and/or point a connection elsewhere: closed and opened again."""
        check_connection(name, uri)
        with self._lock:
            if old not in self._links:
                raise NotFound(f"no connection named '{old}'")
            if name != old and name in self._links:
                raise AlreadyExists(f"a connection named '{name}' exists")
        self.remove_connection(old, save=False)
        try:
            self.add_connection(name, uri)
        except PoolkeeperError:
            self._save()
            raise

    def remove_connection(self, name: str, save: bool = True) -> None:
        with self._lock:
            link = self._links.pop(name, None)
            if link is None:
                raise NotFound(f"no connection named '{name}'")
            if self._current == name:
                self._current = THIS_HOST
            if save:
                self._save()
        self._drop(link)
        self._changed(name)

    def reconnect(self, name: str) -> None:
        """Try again now (a failed or lost connection; a connected one is reopened)."""
        with self._lock:
            link = self._links.get(name)
            if link is None:
                raise NotFound(f"no connection named '{name}'")
        self._drop(link, keep_pools=True)
        link.attempts = 0
        self._connect_later(link, 0.0)

    def _save(self) -> None:
        self.store.save([link.saved for link in self._links.values()])

    def _changed(self, name: str) -> None:
        self.bus.publish(ConnectionChanged(name))

    def _drop(self, link: _Link, keep_pools: bool = False) -> None:
        """Close the link's controller (on a thread: a dead host must not hold us)."""
        with self._lock:
            link.generation += 1
            if link.timer is not None:
                link.timer.cancel()
                link.timer = None
            member, link.member = link.member, None
            unsubscribe, link.unsubscribe = link.unsubscribe, None
            if not keep_pools:
                link.pools = []
        if unsubscribe is not None:
            unsubscribe()
        if member is not None:
            threading.Thread(target=_close_quietly, args=(member,), daemon=True,
                             name=f"close {link.saved.name}").start()

    def _connect_later(self, link: _Link, delay: float) -> None:
        with self._lock:
            if self._closed or self._links.get(link.saved.name) is not link:
                return
            generation = link.generation
            if delay <= 0:
                link.state = "lost" if link.was_connected else "connecting"
                link.retry_at = None
                link.timer = None
                threading.Thread(target=self._connect, args=(link, generation), daemon=True,
                                 name=f"connect {link.saved.name}").start()
            else:
                link.retry_at = time.monotonic() + delay
                link.timer = threading.Timer(delay, self._connect_later, (link, 0.0))
                link.timer.daemon = True
                link.timer.start()
        self._changed(link.saved.name)

    def _connect(self, link: _Link, generation: int) -> None:
        name = link.saved.name

        def on_lost(why: str) -> None:
            self._lost(link, generation, why)

        try:
            member = self._factory(link.saved.uri, name, on_lost)
        except PoolkeeperError as exc:
            self._failed(link, generation, str(exc))
            return
        with self._lock:
            stale = link.generation != generation or self._closed
            if not stale:
                link.member = member
                link.state, link.detail, link.attempts = "connected", "", 0
                link.was_connected = True
                link.unsubscribe = member.subscribe(
                    lambda event: self._from_member(link, event))
        if stale:
            _close_quietly(member)
            return
        if self._monitor_interval:
            member.start_monitor(self._monitor_interval)
        self._list_pools_of(link, generation, announce=True)

    def _from_member(self, link: _Link, event: Event) -> None:
        if isinstance(event, PoolChanged) and event.reason != "sizes":
            link.listed_at = 0.0  # the next list_pools asks the host again
        self.bus.publish(event)

    def _failed(self, link: _Link, generation: int, why: str, state: str = "failed") -> None:
        with self._lock:
            if link.generation != generation:
                return
            link.state = "lost" if link.was_connected else state
            link.detail = why
            delay = RETRY_DELAYS[min(link.attempts, len(RETRY_DELAYS) - 1)]
            link.attempts += 1
        self._connect_later(link, delay)

    def _lost(self, link: _Link, generation: int, why: str) -> None:
        with self._lock:
            if link.generation != generation or link.member is None:
                return
        self._drop(link, keep_pools=True)
        self._failed(link, link.generation, why, state="lost")

    def _list_pools_of(self, link: _Link, generation: int, announce: bool = False) -> None:
        """The connection's pools, on this thread; ConnectionChanged when they changed
        (`announce`: in any case, the connection's state did)."""
        member = link.member
        if member is None:
            link.listing = False
            return
        try:
            pools = member.list_pools()
        except PoolkeeperError as exc:
            if member.lost():
                self._lost(link, generation, member.lost() or str(exc))
            return
        finally:
            link.listing = False
        with self._lock:
            if link.generation != generation:
                return
            changed, link.pools = pools != link.pools, pools
            link.listed_at = time.monotonic()
        if changed or announce:
            self._changed(link.saved.name)

    # == routing =======================================================================
    def _link_of(self, pool: str) -> _Link | None:
        with self._lock:
            best = None
            for link in self._links.values():
                if pool.endswith(link.suffix) and len(pool) > len(link.suffix) and (
                        best is None or len(link.suffix) > len(best.suffix)):
                    best = link
            return best

    def _ambiguous(self, pool: str, link: _Link | None) -> bool:
        """`pool` is this host's pool's name and reads as a pool of `link` too ('x@kvm2'
        defined here after the connection kvm2 was added): acting on it could reach the
        wrong host, so nothing does."""
        return link is not None and pool in self._native_names

    def _refuse_ambiguous(self, pool: str, link: _Link) -> None:
        raise PoolkeeperError(
            f"'{pool}' is the name of a pool of this host and reads as pool "
            f"'{pool[: -len(link.suffix)]}' of the connection '{link.saved.name}' as well: "
            f"nothing is done to either; rename the connection (e on its line)")

    def _member(self, link: _Link) -> Controller:
        member = link.member
        if member is None:
            status = link.status()
            why = f" ({status.detail})" if status.state == "lost" and status.detail else ""
            raise StateError(f"host '{link.saved.name}' ({link.saved.uri}) is not connected: "
                             f"{status.state_text()}{why}; r tries again now")
        return member

    def _for(self, pool: str) -> Controller:
        link = self._link_of(pool)
        if link is None:
            return self.native
        if self._ambiguous(pool, link):
            self._refuse_ambiguous(pool, link)
        return self._member(link)

    def _here(self) -> Controller:
        """The connection the user works in (use)."""
        with self._lock:
            link = self._links.get(self._current)
        return self.native if link is None else self._member(link)

    def controllers(self) -> list[Controller]:
        with self._lock:
            return [self.native] + [link.member for link in self._links.values()
                                    if link.member is not None]

    # == the Controller protocol: lifetime and events ================================
    @property
    def jobs(self) -> JobManager:
        return self._jobs

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def start_monitor(self, interval: float = 3.0) -> None:
        self._monitor_interval = interval
        for ctl in self.controllers():
            ctl.start_monitor(interval)

    def close(self) -> None:
        self.close_connections()
        self.native.close()

    def close_connections(self) -> None:
        """Close the libvirt connections (each on a thread: a dead host is not waited
        for); this host's controller stays open."""
        with self._lock:
            self._closed = True
            links = list(self._links.values())
        for link in links:
            self._drop(link)

    def startup_problems(self) -> list[str]:
        return self.problems + self.native.startup_problems()

    # == reading =======================================================================
    def list_pools(self) -> list[PoolStatus]:
        """This host's pools, fresh; each connection's from its last listing (a new one
        starts in the background: ConnectionChanged when it is in). A lost connection's
        pools are shown as inaccessible, saying why."""
        pools = list(self.native.list_pools())
        native = {p.name for p in pools}
        with self._lock:
            self._native_names = native
            links = list(self._links.values())
        for link in links:
            with self._lock:
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
            pools.extend(p for p in known if p.name not in native)  # (_ambiguous)
            if start:
                threading.Thread(target=self._list_pools_of, args=(link, generation),
                                 daemon=True, name=f"pools of {link.saved.name}").start()
        return pools

    def pool_info(self, name: str) -> PoolStatus:
        return self._for(name).pool_info(name)

    def pool_def(self, name: str) -> PoolDef:
        return self._for(name).pool_def(name)

    def pool_xml(self, name: str, inactive: bool = False) -> str:
        return self._for(name).pool_xml(name, inactive)

    def pool_features(self, pool_type: str) -> PoolFeatures:
        return self.native.pool_features(pool_type)

    def pool_types(self) -> dict[str, PoolFeatures]:
        return self._here().pool_types()

    def pool_layout(self, name: str) -> list[DeviceLayout]:
        return self._for(name).pool_layout(name)

    def list_volumes(self, pool: str) -> list[VolumeInfo]:
        return self._for(pool).list_volumes(pool)

    def cached_volumes(self, pool: str, names: Iterable[str] | None = None
                       ) -> list[VolumeInfo]:
        link = self._link_of(pool)
        if self._ambiguous(pool, link):
            return []
        if link is None:
            return self.native.cached_volumes(pool, names)
        member = link.member
        return [] if member is None else member.cached_volumes(pool, names)

    def probe_first(self, pool: str, names: Iterable[str]) -> None:
        link = self._link_of(pool)
        if self._ambiguous(pool, link):
            return
        member = self.native if link is None else link.member
        if member is not None:
            member.probe_first(pool, names)

    def volume_xml(self, pool: str, name: str) -> str:
        return self._for(pool).volume_xml(pool, name)

    def volume_users(self, pool: str) -> dict[str, str]:
        return self._for(pool).volume_users(pool)

    def block_devices(self) -> list[tuple[str, int, str]]:
        return self._here().block_devices()

    def find_pool_sources(self, pool_type: str, host: str | None = None,
                          device: str | None = None) -> str:
        return self._here().find_pool_sources(pool_type, host, device)

    def build_warning(self, name: str) -> str | None:
        return self._for(name).build_warning(name)

    def stored_volumes(self, name: str) -> list[str] | None:
        return self._for(name).stored_volumes(name)

    # == checks ========================================================================
    def check_pool_def(self, pdef: PoolDef, new: bool = True) -> Refusal | None:
        here = self._here()
        if here is self.native:
            try:
                self._refuse_host_suffix(pdef.name)
            except PoolkeeperError as exc:
                return Refusal("name", str(exc))
        return here.check_pool_def(pdef, new)

    def check_volume_def(self, pool: str, vdef: VolumeDef) -> Refusal | None:
        return self._for(pool).check_volume_def(pool, vdef)

    def check_clone(self, pool: str, source: str, new_name: str, *,
                    target_pool: str | None = None, xml: str | bytes | None = None
                    ) -> Refusal | None:
        self._same_host(pool, target_pool)
        return self._for(pool).check_clone(pool, source, new_name, target_pool=target_pool,
                                           xml=xml)

    def check_resize(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                     shrink: bool = False, allocate: bool = False) -> Refusal | None:
        return self._for(pool).check_resize(pool, name, capacity, delta=delta, shrink=shrink,
                                            allocate=allocate)

    def volume_name_for(self, pool: str, vdef: VolumeDef) -> str | None:
        return self._for(pool).volume_name_for(pool, vdef)

    def _same_host(self, pool: str, target_pool: str | None) -> None:
        if target_pool is not None and self.connection_of(pool) != self.connection_of(
                target_pool):
            raise PoolkeeperError(f"cannot clone from '{pool}' into '{target_pool}': they "
                                  "are on different hosts; download the volume and upload "
                                  "it into a new one on the other host")

    # == pool verbs ====================================================================
    def define_pool(self, xml: str | bytes) -> PoolStatus:
        here = self._here()
        if here is self.native:
            from .xmlio import parse_pool

            self._refuse_host_suffix(parse_pool(xml, schema=False).name)
        return here.define_pool(xml)

    def define_pool_def(self, pdef: PoolDef) -> PoolStatus:
        here = self._here()
        if here is self.native:
            self._refuse_host_suffix(pdef.name)
        return here.define_pool_def(pdef)

    def _refuse_host_suffix(self, name: str) -> None:
        """A pool of this host may not be named as a connection's pool reads ('x@kvm2')."""
        link = self._link_of(name)
        if link is not None:
            raise PoolkeeperError(
                f"a pool of this host named '{name}' would read as pool "
                f"'{name[: -len(link.suffix)]}' of the connection '{link.saved.name}': "
                "choose a name that does not end in '@' and a connection's name")

    def undefine_pool(self, name: str) -> None:
        self._for(name).undefine_pool(name)

    def build_pool(self, name: str, overwrite: bool | None = None) -> Job:
        return self._for(name).build_pool(name, overwrite)

    def start_pool(self, name: str) -> PoolStatus:
        return self._for(name).start_pool(name)

    def stop_pool(self, name: str) -> None:
        self._for(name).stop_pool(name)

    def delete_pool(self, name: str, force: bool = False,
                    expected: Sequence[str] | None = None) -> None:
        self._for(name).delete_pool(name, force, expected)

    def set_autostart(self, name: str, enabled: bool = True) -> None:
        self._for(name).set_autostart(name, enabled)

    # == volume verbs ==================================================================
    def create_volume_def(self, pool: str, vdef: VolumeDef) -> Job:
        return self._for(pool).create_volume_def(pool, vdef)

    def clone_volume(self, pool: str, source: str, new_name: str, *,
                     target_pool: str | None = None, xml: str | bytes | None = None) -> Job:
        self._same_host(pool, target_pool)
        return self._for(pool).clone_volume(pool, source, new_name, target_pool=target_pool,
                                            xml=xml)

    def delete_volume(self, pool: str, name: str) -> None:
        self._for(pool).delete_volume(pool, name)

    def wipe_volume(self, pool: str, name: str, algorithm: str = "zero") -> Job:
        return self._for(pool).wipe_volume(pool, name, algorithm)

    def resize_volume(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                      shrink: bool = False, allocate: bool = False) -> Job:
        return self._for(pool).resize_volume(pool, name, capacity, delta=delta,
                                             shrink=shrink, allocate=allocate)

    def upload_volume(self, pool: str, name: str, src_path: str, *, offset: int = 0,
                      length: int | None = None) -> Job:
        return self._for(pool).upload_volume(pool, name, src_path, offset=offset,
                                             length=length)

    def download_volume(self, pool: str, name: str, dst_path: str, *, offset: int = 0,
                        length: int | None = None, sparse: bool = False) -> Job:
        return self._for(pool).download_volume(pool, name, dst_path, offset=offset,
                                               length=length, sparse=sparse)

    # == secrets (the connection the user works in) ====================================
    def has_secret(self, usage: str) -> bool:
        return self._here().has_secret(usage)

    def set_secret(self, usage: str, value: str | bytes) -> None:
        self._here().set_secret(usage, value)

    def list_secrets(self) -> list[tuple[SecretDef, bool]]:
        return self._here().list_secrets()


def _close_quietly(member: Any) -> None:
    try:
        member.close()
    except PoolkeeperError:
        pass
