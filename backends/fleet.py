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

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from .api import Controller
from .connection_store import ConnectionStore
from .errors import PoolkeeperError, StateError
from .events import Event, EventBus, Subscriber
from .fleet_links import (
    RETRY_DELAYS,
    THIS_HOST,
    ConnectionStatus,
    Link,
    Links,
    MemberFactory,
    libvirt_member,
)
from .jobs import Job, JobManager
from .model import DeviceLayout, PoolDef, PoolFeatures, PoolStatus, VolumeDef, VolumeInfo
from .secret_defs import SecretDef
from .volume_requests import Refusal

__all__ = ["RETRY_DELAYS", "THIS_HOST", "ConnectionStatus", "Fleet", "HostCalls"]


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


class HostCalls:
    """The calls that name no pool (define, the pool types, find sources, block devices,
    secrets), bound to one host when a dialog opens (Fleet.on): what the dialog submits
    goes to that host, wherever the cursor is by then."""

    def __init__(self, fleet: Fleet, host: str) -> None:
        self.fleet, self.host = fleet, host

    def _ctl(self) -> Controller:
        return self.fleet.host_controller(self.host)

    def pool_types(self) -> dict[str, PoolFeatures]:
        return self._ctl().pool_types()

    def block_devices(self) -> list[tuple[str, int, str]]:
        return self._ctl().block_devices()

    def find_pool_sources(self, pool_type: str, host: str | None = None,
                          device: str | None = None) -> str:
        return self._ctl().find_pool_sources(pool_type, host, device)

    def check_pool_def(self, pdef: PoolDef, new: bool = True) -> Refusal | None:
        if self.host == THIS_HOST:
            try:
                self.fleet.refuse_host_suffix(pdef.name)
            except PoolkeeperError as exc:
                return Refusal("name", str(exc))
        return self._ctl().check_pool_def(pdef, new)

    def define_pool(self, xml: str | bytes) -> PoolStatus:
        if self.host == THIS_HOST:
            from .xmlio import parse_pool

            self.fleet.refuse_host_suffix(parse_pool(xml, schema=False).name)
        return self._ctl().define_pool(xml)

    def define_pool_def(self, pdef: PoolDef) -> PoolStatus:
        if self.host == THIS_HOST:
            self.fleet.refuse_host_suffix(pdef.name)
        return self._ctl().define_pool_def(pdef)

    def has_secret(self, usage: str) -> bool:
        return self._ctl().has_secret(usage)

    def set_secret(self, usage: str, value: str | bytes) -> None:
        self._ctl().set_secret(usage, value)

    def list_secrets(self) -> list[tuple[SecretDef, bool]]:
        return self._ctl().list_secrets()


class Fleet:
    """This host's controller and the saved libvirt connections, as one Controller."""

    def __init__(self, native: Controller, config_dir: Path,
                 factory: MemberFactory = libvirt_member) -> None:
        self.native = native
        self.bus = EventBus()
        self.store = ConnectionStore(config_dir)
        self.links = Links(self.store, self._made_by(factory), self.bus.publish)
        self._current = THIS_HOST
        self._native_names: set[str] = set()  # this host's pools, as last listed
        self._jobs = FleetJobs(self)
        native.subscribe(self.bus.publish)

    def _made_by(self, factory: MemberFactory) -> MemberFactory:
        """The factory, each member told what this host refuses as a download target."""
        def make(uri: str, name: str, on_lost: Callable[[str], None]) -> Any:
            member = factory(uri, name, on_lost)
            member.local_target_check = self._native_target_check  # type: ignore[attr-defined]
            return member
        return make

    def _native_target_check(self, st: os.stat_result, path: str) -> None:
        """On the file a download from another host opened: not a pool's of this host."""
        targets = getattr(self.native, "_download_targets", None)
        if targets is not None:
            targets.refuse_pool_object(st, path, VolumeInfo(name="", key="", path=""))

    # == connections ===================================================================
    def open(self) -> None:
        """Connect every saved connection, each on its own thread."""
        self.links.open()

    def connections(self) -> list[ConnectionStatus]:
        """This host first, then the saved connections in the order they were added
        (memory only)."""
        return [ConnectionStatus(THIS_HOST, None, "connected")] + self.links.statuses()

    def connection_of(self, pool: str) -> str:
        """The connection that owns the pool `pool` (THIS_HOST: the native engine)."""
        link = self.links.link_of(pool)
        return THIS_HOST if link is None or self._ambiguous(pool, link) else link.name

    def use(self, name: str) -> None:
        """Calls that name no pool go to this connection from now on (the tree's cursor)."""
        self._current = name if self.links.get(name) is not None else THIS_HOST

    @property
    def current(self) -> str:
        return self._current

    def on(self, host: str) -> HostCalls:
        """The calls that name no pool, bound to `host` (a dialog's: HostCalls)."""
        return HostCalls(self, host)

    def host_controller(self, host: str) -> Controller:
        """The controller of `host` now (StateError when it is not connected or gone)."""
        if host == THIS_HOST:
            return self.native
        link = self.links.get(host)
        if link is None:
            raise StateError(f"the connection '{host}' was removed meanwhile: nothing done")
        return self._member(link)

    def add_connection(self, name: str, uri: str) -> None:
        self.links.add(name, uri, self._native_pool_named_for)

    def edit_connection(self, old: str, name: str, uri: str) -> None:
        self.links.edit(old, name, uri, self._native_pool_named_for)

    def remove_connection(self, name: str) -> None:
        self.links.remove(name)

    def reconnect(self, name: str) -> None:
        self.links.reconnect(name)

    def _native_pool_named_for(self, name: str) -> str | None:
        """A pool of this host whose name reads as one of connection `name`'s (I/O)."""
        suffix = f"@{name}"
        return next((p.name for p in self.native.list_pools() if p.name.endswith(suffix)),
                    None)

    # == routing =======================================================================
    def _ambiguous(self, pool: str, link: Link | None) -> bool:
        """`pool` is this host's pool's name and reads as a pool of `link` too ('x@kvm2'
        defined here after the connection kvm2 was added): acting on it could reach the
        wrong host, so nothing does."""
        return link is not None and pool in self._native_names

    def _refuse_ambiguous(self, pool: str, link: Link) -> None:
        raise PoolkeeperError(
            f"'{pool}' is the name of a pool of this host and reads as pool "
            f"'{pool[: -len(link.suffix)]}' of the connection '{link.name}' as well: "
            f"nothing is done to either; rename the connection (e on its line)")

    def refuse_host_suffix(self, name: str) -> None:
        """A pool of this host may not be named as a connection's pool reads ('x@kvm2')."""
        link = self.links.link_of(name)
        if link is not None:
            raise PoolkeeperError(
                f"a pool of this host named '{name}' would read as pool "
                f"'{name[: -len(link.suffix)]}' of the connection '{link.name}': "
                "choose a name that does not end in '@' and a connection's name")

    def _member(self, link: Link) -> Controller:
        member = link.member
        if member is None:
            status = link.status()
            why = f" ({status.detail})" if status.state == "lost" and status.detail else ""
            raise StateError(f"host '{link.name}' ({link.saved.uri}) is not connected: "
                             f"{status.state_text()}{why}; r tries again now")
        return member

    def _for(self, pool: str) -> Controller:
        link = self.links.link_of(pool)
        if link is None:
            return self.native
        if self._ambiguous(pool, link):
            self._refuse_ambiguous(pool, link)
        return self._member(link)

    def refresh_pool(self, pool: str) -> bool:
        """Ask the pool's host to read the pool again (libvirt's pool-refresh: what was
        made behind its back appears, through its refresh event). False: this host's pool,
        which the live monitor already follows (a listing reads it)."""
        ctl = self._for(pool)
        refresh = getattr(ctl, "refresh_pool", None)
        if ctl is self.native or refresh is None:
            return False
        refresh(pool)
        return True

    def controllers(self) -> list[Controller]:
        return [self.native] + self.links.members()

    # == the Controller protocol: lifetime and events ================================
    @property
    def jobs(self) -> JobManager:
        return self._jobs

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def start_monitor(self, interval: float = 3.0) -> None:
        self.links.monitor_interval = interval
        for ctl in self.controllers():
            ctl.start_monitor(interval)

    def close(self) -> None:
        self.close_connections()
        self.native.close()

    def close_connections(self) -> None:
        """Close the libvirt connections (each on a thread: a dead host is not waited
        for); this host's controller stays open."""
        self.links.close()

    def startup_problems(self) -> list[str]:
        return self.links.problems + self.native.startup_problems()

    # == reading =======================================================================
    def list_pools(self) -> list[PoolStatus]:
        """This host's pools, fresh; each connection's from its last listing (a new one
        starts in the background: ConnectionChanged when it is in). A lost connection's
        pools are shown as inaccessible, saying why."""
        pools = list(self.native.list_pools())
        native = {p.name for p in pools}
        self._native_names = native
        return pools + self.links.known_pools(native)

    def pool_info(self, name: str) -> PoolStatus:
        return self._for(name).pool_info(name)

    def pool_def(self, name: str) -> PoolDef:
        return self._for(name).pool_def(name)

    def pool_xml(self, name: str, inactive: bool = False) -> str:
        return self._for(name).pool_xml(name, inactive)

    def pool_features(self, pool_type: str) -> PoolFeatures:
        return self.native.pool_features(pool_type)

    def pool_types(self) -> dict[str, PoolFeatures]:
        return self.on(self._current).pool_types()

    def pool_layout(self, name: str) -> list[DeviceLayout]:
        return self._for(name).pool_layout(name)

    def list_volumes(self, pool: str) -> list[VolumeInfo]:
        return self._for(pool).list_volumes(pool)

    def cached_volumes(self, pool: str, names: Iterable[str] | None = None
                       ) -> list[VolumeInfo]:
        link = self.links.link_of(pool)
        if self._ambiguous(pool, link):
            return []
        if link is None:
            return self.native.cached_volumes(pool, names)
        member = link.member
        return [] if member is None else member.cached_volumes(pool, names)

    def probe_first(self, pool: str, names: Iterable[str]) -> None:
        link = self.links.link_of(pool)
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
        return self.on(self._current).block_devices()

    def find_pool_sources(self, pool_type: str, host: str | None = None,
                          device: str | None = None) -> str:
        return self.on(self._current).find_pool_sources(pool_type, host, device)

    def build_warning(self, name: str) -> str | None:
        return self._for(name).build_warning(name)

    def stored_volumes(self, name: str) -> list[str] | None:
        return self._for(name).stored_volumes(name)

    # == checks ========================================================================
    def check_pool_def(self, pdef: PoolDef, new: bool = True) -> Refusal | None:
        return self.on(self._current).check_pool_def(pdef, new)

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
        return self.on(self._current).define_pool(xml)

    def define_pool_def(self, pdef: PoolDef) -> PoolStatus:
        return self.on(self._current).define_pool_def(pdef)

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
        ctl = self._for(pool)
        if ctl is not self.native:
            # A download from any host writes to this one: never into one of this host's
            # pools (what the native engine refuses of its own downloads)
            self._refuse_native_target(name, dst_path)
        return ctl.download_volume(pool, name, dst_path, offset=offset, length=length,
                                   sparse=sparse)

    def _refuse_native_target(self, name: str, dst_path: str) -> None:
        targets = getattr(self.native, "_download_targets", None)
        if targets is None:
            return
        # (the source is on the other host: no file here is it, whatever its path)
        targets.refuse_volume_as_target(os.path.abspath(dst_path), VolumeInfo(
            name=name, key="", path=""))

    # == secrets (the connection the user works in) ====================================
    def has_secret(self, usage: str) -> bool:
        return self.on(self._current).has_secret(usage)

    def set_secret(self, usage: str, value: str | bytes) -> None:
        self.on(self._current).set_secret(usage, value)

    def list_secrets(self) -> list[tuple[SecretDef, bool]]:
        return self.on(self._current).list_secrets()

