"""LibvirtHostController: the TUI's controller contract (backends.api.Controller) over one
libvirt connection, so a libvirt host's pools stand behind the same screens as the
native engine's (backends.fleet puts several of them, and the native engine, in one tree).

It is built on backends.libvirt_controller.LibvirtController (lookups, reads, pool verbs,
volume create and delete on a connection whose every call has a deadline) and the
libvirt_* modules beside it; the volume verbs and checks are in libvirt_host_jobs, the
listing, its fill thread and the monitor in libvirt_host_listing.

Pool ids: with a connection `name`, every pool this controller shows or takes is
`POOL@NAME` (PoolStatus.name, events' pool fields, Job.pool, every pool argument), so pools
of several hosts can share one tree; exactly the suffix `@NAME` is stripped, so a libvirt
pool name holding '@' still works. Definitions are libvirt's own and name pools plainly:
pool_def and pool_xml give the plain name, define_pool and define_pool_def take it.

Live refresh comes from libvirt's pool events (lifecycle and refresh, on libvirt's event
loop thread, backends.libvirt_conn.load): defined, undefined, started, stopped, built
(libvirt's Created), deleted and refreshed, each a PoolChanged; a refresh also lists the
pool again and publishes the difference. libvirt has no volume events: see
libvirt_host_listing for the monitor's cheap look at the names.

The connection's end: libvirt's close callback (the daemon gone, keepalive timed out) or a
call that finds it lost (ConnectionLost) tells `on_lost(why)` once, from whatever thread;
from then on every call fails at once with ConnectionLost. The owner closes this
controller and makes a new one to reconnect.

What a remote host cannot say, or says only at a price, is left out: block_devices is []
(a remote host's disks are not listed), build_warning is None, stored_volumes is None for
pool types whose libvirt delete removes only an empty directory and an error otherwise
(libvirt cannot look into an inactive pool: the delete dialog then says so and forces),
and startup_problems is [].
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from lxml import etree

from . import libvirt_checks, xmlio
from .drivers import features, pool_types
from .drivers.parted_table import partition_name, partition_number
from .errors import AlreadyExists, PoolkeeperError, PoolNotFound, StateError, Unsupported
from .events import EventBus, PoolChanged, Subscriber
from .jobs import Job, JobManager
from .libvirt_conn import ConnectionLost
from .libvirt_controller import LibvirtController
from .libvirt_host_jobs import HostVolumeVerbs, checked
from .libvirt_host_listing import VolumeListing
from .libvirt_secrets import LibvirtSecrets
from .model import (
    DeviceLayout,
    FreeExtent,
    PoolDef,
    PoolFeatures,
    PoolStatus,
    VolumeDef,
    VolumeInfo,
)
from .monitor import MONITOR_INTERVAL
from .secret_defs import SecretDef
from .volume_requests import Refusal

F = TypeVar("F", bound=Callable[..., Any])
CLOSE_GRACE = 3.0  # seconds close() gives cancelled jobs to clean up
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
# libvirt's pool lifecycle events (VIR_STORAGE_POOL_EVENT_*), as PoolChanged reasons
LIFECYCLE = ("defined", "undefined", "started", "stopped", "built", "deleted")


def _doc(xml: str) -> Any:
    return etree.fromstring(xml.encode("utf-8"), _PARSER)


def _int(text: str | None) -> int:
    text = text.strip() if text else ""
    return int(text) if text.isascii() and text.isdigit() else 0  # (not "²": ValueError)


def device_layouts(pool_xml: str, volume_xmls: Iterable[str]) -> list[DeviceLayout]:
    """The extent bar's devices from libvirt's XML: a disk pool's <freeExtent>s per
    <source><device>, and each volume's <source><device><extent>s (partitions, LV
    segments), ends exclusive as libvirt gives them. A device's size is the pool's capacity
    when it has one device (libvirt's disk pools: the disk's size; a VG: its PV's, less
    LVM's metadata), else as far as its last extent; a logical pool has no <freeExtent>:
    its free ranges are the gaps between the LVs' extents up to that size."""
    pool = _doc(pool_xml)
    devices = pool.findall("source/device")
    layouts = {d.get("path", ""): DeviceLayout(path=d.get("path", ""), size=0)
               for d in devices if d.get("path")}
    has_free = False
    for dev in devices:
        for ext in dev.findall("freeExtent"):
            has_free = True
            layouts[dev.get("path", "")].free.append(
                FreeExtent(_int(ext.get("start")), _int(ext.get("end"))))
    for xml in volume_xmls:
        vol = _doc(xml)
        name = vol.findtext("name", "")
        for dev in vol.findall("source/device"):
            layout = layouts.setdefault(dev.get("path", ""),
                                        DeviceLayout(path=dev.get("path", ""), size=0))
            for ext in dev.findall("extent"):
                layout.used.append((_int(ext.get("start")), _int(ext.get("end")), name))
    capacity = _int(pool.findtext("capacity"))
    for layout in layouts.values():
        layout.used.sort()
        ends = [e for _, e, _ in layout.used] + [f.end for f in layout.free]
        layout.size = max([capacity if len(layouts) == 1 else 0, *ends])
        if not has_free and layout.used:  # LVs: the gaps between them are free
            pos = layout.used[0][0]
            for start, end, _ in layout.used:
                if start > pos:
                    layout.free.append(FreeExtent(pos, start))
                pos = max(pos, end)
            if layout.size > pos:
                layout.free.append(FreeExtent(pos, layout.size))
        layout.free.sort(key=lambda f: f.start)
    return list(layouts.values())


def _guarded(method: F) -> F:
    """A ConnectionLost out of `method` tells the owner (once) before it is raised."""
    @functools.wraps(method)
    def run(self: LibvirtHostController, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ConnectionLost as exc:
            self._gone(str(exc))
            raise
    return run  # type: ignore[return-value]


class LibvirtHostController:
    """Pools, volumes and jobs of the libvirt host at `uri` (see the module docstring).
    Opening blocks (call it from a thread): PoolkeeperError, LibvirtMissing or
    ConnectionLost say why it failed."""

    def __init__(self, uri: str, name: str | None = None, *, timeout: float | None = None,
                 on_lost: Callable[[str], None] | None = None, max_jobs: int = 4) -> None:
        self.uri = uri
        self.name = name
        self._suffix = f"@{name}" if name else ""
        self._on_lost = on_lost
        self._lost: str | None = None
        self._lost_lock = threading.Lock()
        self._closing = False
        self.bus = EventBus()
        # A download's destination is on this machine: the Fleet sets what this host's own
        # engine refuses as one (its pools' volumes), checked on the file the job opens
        self.local_target_check: Callable[[os.stat_result, str], None] | None = None
        self._jobs = JobManager(self.bus, max_jobs, daemon=True)  # (q never waits on a host)
        self.lc = LibvirtController(uri, timeout)
        self.timeout = self.lc.connection.timeout
        self.lv = self.lc.libvirt
        self.listing = VolumeListing(self.lc, self.bus, lambda exc: self._gone(str(exc)))
        self.volumes = HostVolumeVerbs(self)
        self.secrets = LibvirtSecrets(self.lc)
        self._types: dict[str, PoolFeatures] | None = None
        self._events: list[int] = []
        try:
            self.lc._call(self._register, f"cannot watch the pools of '{uri}'")
        except BaseException:
            self.lc.close()
            raise

    # == identity =======================================================================
    def qualify(self, pool: str) -> str:
        """The id of the libvirt pool `pool` (POOL@NAME, or POOL without a name)."""
        return pool + self._suffix

    def plain(self, pool_id: str) -> str:
        """The libvirt name of the pool `pool_id` names (PoolNotFound: not this host's)."""
        if not self._suffix:
            return pool_id
        if pool_id.endswith(self._suffix) and len(pool_id) > len(self._suffix):
            return pool_id[:-len(self._suffix)]
        raise PoolNotFound(f"'{pool_id}' is no pool of connection '{self.name}' (its pools "
                           f"are named POOL{self._suffix})")

    def _status(self, status: PoolStatus) -> PoolStatus:
        status.name = self.qualify(status.name)
        try:
            status.features = features(status.type)
        except PoolkeeperError:
            status.features = None  # a type poolkeeper does not know (rbd, zfs, ...)
        return status

    # == lifetime and events ============================================================
    @property
    def jobs(self) -> JobManager:
        return self._jobs

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    def lost(self) -> str | None:
        """Why the connection is gone (None while it is alive)."""
        return self._lost

    def _gone(self, why: str) -> None:
        """The connection is lost: later calls fail at once; on_lost hears it once."""
        with self._lost_lock:
            if self._lost is not None or self._closing:
                return
            self._lost = why
        if self.lc.connection.lost is None:
            self.lc.connection.lost = why
        self.listing.stop()
        if self._on_lost is not None:
            try:
                self._on_lost(why)
            except Exception:  # the owner's bug must not hide the loss from the caller
                import logging

                logging.getLogger(__name__).exception("on_lost failed")

    def _register(self) -> None:
        """The close callback and the pool events (on the connection's worker)."""
        conn, lv = self.lc.connection.conn, self.lv
        try:
            conn.registerCloseCallback(self._closed, None)
        except lv.libvirtError as exc:  # drivers in this process (test:///) may lack it
            if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:
                raise
        self._events = [
            conn.storagePoolEventRegisterAny(None, lv.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE,
                                             self._lifecycle, None),
            conn.storagePoolEventRegisterAny(None, lv.VIR_STORAGE_POOL_EVENT_ID_REFRESH,
                                             self._refreshed, None)]

    def _closed(self, _conn: Any, reason: int, _opaque: Any) -> None:
        """libvirt's close callback (its event loop thread)."""
        if reason == self.lv.VIR_CONNECT_CLOSE_REASON_CLIENT:
            return  # our own close()
        words = {self.lv.VIR_CONNECT_CLOSE_REASON_EOF: "the daemon closed it",
                 self.lv.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "the host stopped answering "
                 "(keepalive)"}.get(reason, "an error on the connection")
        self._gone(f"the connection to '{self.uri}' was closed: {words}")

    def _lifecycle(self, _conn: Any, pool: Any, event: int, _detail: int, _opaque: Any
                   ) -> None:
        """A pool lifecycle event (libvirt's event loop thread: no RPC here)."""
        if not 0 <= event < len(LIFECYCLE) or self._closing:
            return
        pid = self.qualify(str(pool.name()))
        reason = LIFECYCLE[event]
        if reason in ("stopped", "undefined", "deleted"):
            self.listing.forget(pid)
        self.bus.publish(PoolChanged(pid, reason))

    def _refreshed(self, _conn: Any, pool: Any, _opaque: Any) -> None:
        """A pool refresh event: said at once, the pool listed again on a thread."""
        if self._closing:
            return  # (a connection close() could not close still hears libvirt)
        pid = self.qualify(str(pool.name()))
        self.bus.publish(PoolChanged(pid, "refreshed"))

        def relist() -> None:
            try:
                self.listing.relist(pid, reread=True)
            except ConnectionLost as exc:
                self._gone(str(exc))
            except PoolkeeperError:
                pass  # stopped meanwhile: its event says so
        threading.Thread(target=relist, daemon=True, name="pk-relist").start()

    def start_monitor(self, interval: float = MONITOR_INTERVAL) -> None:
        """Pool changes come as libvirt's events; volume changes by other clients (no
        libvirt event) are looked for every `interval` seconds, one names call per listed
        pool (libvirt_host_listing)."""
        self.listing.start_monitor(interval)

    def close(self) -> None:
        """Stop listening, cancel the jobs (not waited for: a call libvirt cannot stop, on
        a dead host, ends alone) and close the connection (not waited for once lost)."""
        with self._lost_lock:
            self._closing = True
        self.listing.stop()
        # cancelled transfers stop within a chunk and remove a file they made; a call
        # libvirt cannot stop is not waited for past the grace
        self._jobs.shutdown(cancel=True, wait=False, grace=CLOSE_GRACE)
        conn = self.lc.connection
        if self._lost is None and conn.lost is None:
            self.listing.settle(1.0)  # a batch on its way would keep it from closing
        if self._lost is None and conn.lost is None and not conn.busy:
            def unregister() -> None:
                for event_id in self._events:
                    conn.conn.storagePoolEventDeregisterAny(event_id)
                try:
                    conn.conn.unregisterCloseCallback()
                except self.lv.libvirtError:
                    pass  # none registered (test:///)
            try:
                self.lc._call(unregister, "cannot stop watching the pools")
            except PoolkeeperError:
                pass
        self.lc.close()

    def startup_problems(self) -> list[str]:
        return []

    # == reading ========================================================================
    @_guarded
    def list_pools(self) -> list[PoolStatus]:
        return [self._status(s) for s in self.lc.list_pools()]

    @_guarded
    def pool_info(self, name: str) -> PoolStatus:
        return self._status(self.lc.pool_info(self.plain(name)))

    @_guarded
    def pool_def(self, name: str) -> PoolDef:
        """The definition as libvirt holds it (its plain name), as poolkeeper reads XML."""
        plain = self.plain(name)
        try:
            xml = self.lc.pool_xml(plain, inactive=True)
        except ConnectionLost:
            raise
        except PoolkeeperError:  # a driver without the flag (test:///): the live XML
            xml = self.lc.pool_xml(plain)
        return xmlio.parse_pool(xml, schema=False)

    @_guarded
    def pool_xml(self, name: str, inactive: bool = False) -> str:
        return self.lc.pool_xml(self.plain(name), inactive)

    @_guarded
    def pool_types(self) -> dict[str, PoolFeatures]:
        """The pool types poolkeeper knows that the host's libvirt supports (its storage
        pool capabilities; a host too old to say: every type poolkeeper knows)."""
        if self._types is None:
            try:
                doc = _doc(self.lc.capabilities())
                host = {p.get("type") for p in doc.iterfind("pool")
                        if p.get("supported") == "yes"}
            except ConnectionLost:
                raise
            except PoolkeeperError:
                host = set(pool_types())
            self._types = {t: features(t) for t in pool_types() if t in host}
        return dict(self._types)

    def pool_features(self, pool_type: str) -> PoolFeatures:
        """What a pool type is and can do (the native drivers' declaration)."""
        return features(pool_type)

    @_guarded
    def pool_layout(self, name: str) -> list[DeviceLayout]:
        """Devices of a disk or logical pool with their free extents (see device_layouts):
        the pool's XML and each volume's, in one call."""
        plain = self.plain(name)

        def run() -> tuple[str, list[str]]:
            pool = self.lc._pool(plain)
            xmls = []
            for vol in pool.listAllVolumes(0):
                try:
                    xmls.append(str(vol.XMLDesc(0)))
                except self.lv.libvirtError as exc:
                    if exc.get_error_code() != self.lv.VIR_ERR_NO_STORAGE_VOL:
                        raise
                self.lc.connection.alive()
            return str(pool.XMLDesc(0)), xmls
        pool_xml, volume_xmls = self.lc._call(run, f"cannot read the layout of pool '{plain}'",
                                              long=True)
        return device_layouts(pool_xml, volume_xmls)

    @_guarded
    def list_volumes(self, pool: str) -> list[VolumeInfo]:
        """The volumes libvirt knows (as of its last refresh of the pool, as virsh vol-list
        lists them): every row at once, pending until its XML is read behind
        (libvirt_host_listing)."""
        return self.listing.list(pool, self.plain(pool))

    def cached_volumes(self, pool: str, names: Iterable[str] | None = None
                       ) -> list[VolumeInfo]:
        return self.listing.cache.volumes(pool, names)

    def probe_first(self, pool: str, names: Iterable[str]) -> None:
        self.listing.prefer(pool, names)

    @_guarded
    def volume_xml(self, pool: str, name: str) -> str:
        return self.lc.volume_xml(self.plain(pool), name)

    @_guarded
    def volume_users(self, pool: str) -> dict[str, str]:
        """name -> 'guest NAME (running)' / 'guest NAME (defined)' for the pool's volumes
        that domains' disks (or their backing chains) use: by <source pool volume>, or by
        a path that is a volume of this pool (libvirt_checks.disk_sources)."""
        plain = self.plain(pool)
        known = {v.path: v.name for v in self.cached_volumes(pool) if v.path}
        conn, lv = self.lc.connection, self.lv

        def volume_at(path: str, seen: dict[str, str | None]) -> str | None:
            if path in known:
                return known[path]
            if path not in seen:
                try:
                    vol = conn.conn.storageVolLookupByPath(path)
                    seen[path] = (str(vol.name()) if vol.storagePoolLookupByVolume().name()
                                  == plain else None)
                except lv.libvirtError:
                    seen[path] = None  # not a volume libvirt knows
            return seen[path]

        def run() -> dict[str, list[str]]:
            users: dict[str, list[str]] = {}
            seen: dict[str, str | None] = {}
            for dom in conn.conn.listAllDomains(0):
                state = "running" if dom.isActive() else "defined"
                names = set()
                for src_pool, src_vol, paths in libvirt_checks.disk_sources(dom.XMLDesc(0)):
                    if src_pool == plain and src_vol:
                        names.add(src_vol)
                    names.update(n for p in paths if (n := volume_at(p, seen)))
                for name in sorted(names):
                    users.setdefault(name, []).append(f"guest {dom.name()} ({state})")
                conn.alive()
            return users
        found: dict[str, list[str]] = self.lc._call(
            run, f"cannot read which guests use pool '{plain}'", long=True)
        return {name: ", ".join(who) for name, who in found.items()}

    def block_devices(self) -> list[tuple[str, int, str]]:
        """None: a libvirt host's disks are not listed (a remote host's cannot be)."""
        return []

    @_guarded
    def find_pool_sources(self, pool_type: str, host: str | None = None,
                          device: str | None = None) -> str:
        spec = None
        if host or device:
            source = etree.Element("source")
            if host:
                etree.SubElement(source, "host", name=host)
            if device:
                etree.SubElement(source, "device", path=device)
            spec = etree.tostring(source, encoding="unicode")
        return self.lc.find_pool_sources(pool_type, spec)

    def build_warning(self, name: str) -> str | None:
        """None: what a build would destroy is on the host, which libvirt does not say."""
        return None

    @_guarded
    def stored_volumes(self, name: str) -> list[str] | None:
        """None for a type whose libvirt delete only removes an empty directory (libvirt
        refuses a full one); else an error: libvirt cannot look into an inactive pool."""
        status = self.pool_info(name)
        if status.type in libvirt_checks.DELETE_REMOVES_ONLY_AN_EMPTY_DIR:
            return None
        raise PoolkeeperError(f"libvirt cannot look into the storage of the inactive "
                              f"{status.type} pool '{name}'")

    # == checks =========================================================================
    @_guarded
    def check_pool_def(self, pdef: PoolDef, new: bool = True) -> Refusal | None:
        """poolkeeper's checks of the definition, and a name libvirt has already."""
        def check() -> None:
            xmlio.validate_pool(pdef)
            if pdef.type not in self.pool_types():
                raise Unsupported(f"'{self.uri}' cannot define {pdef.type} pools")
            if new:
                try:
                    self.lc.pool_info(pdef.name)
                except PoolNotFound:
                    return
                raise AlreadyExists(f"a pool named '{pdef.name}' already exists on "
                                    f"'{self.uri}'; choose another name")
        return checked(check)

    @_guarded
    def check_volume_def(self, pool: str, vdef: VolumeDef) -> Refusal | None:
        return self.volumes.check_volume_def(pool, vdef)

    @_guarded
    def check_clone(self, pool: str, source: str, new_name: str, *,
                    target_pool: str | None = None, xml: str | bytes | None = None
                    ) -> Refusal | None:
        return self.volumes.check_clone(pool, source, new_name, target_pool=target_pool,
                                        xml=xml)

    @_guarded
    def check_resize(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                     shrink: bool = False, allocate: bool = False) -> Refusal | None:
        return self.volumes.check_resize(pool, name, capacity, delta=delta, shrink=shrink,
                                         allocate=allocate)

    @_guarded
    def volume_name_for(self, pool: str, vdef: VolumeDef) -> str | None:
        """A disk pool's next partition name, which libvirt requires (the disk's name, a
        'p' where the kernel puts one, the lowest number no partition has: gpt's rule; a
        dos label's logical partitions are not worked out); None for other types."""
        plain = self.plain(pool)

        def run() -> tuple[str, list[str]]:
            found = self.lc._pool(plain)
            return str(found.XMLDesc(0)), [str(v.name()) for v in found.listAllVolumes(0)]
        xml, names = self.lc._call(run, f"cannot read pool '{plain}'")
        doc = _doc(xml)
        device = doc.find("source/device")
        if doc.get("type") != "disk" or device is None or not device.get("path"):
            return None
        disk = device.get("path", "")
        separator = {"yes": True, "no": False}.get(device.get("part_separator", ""))
        used = {partition_number(disk, name, separator) for name in names}
        number = next(n for n in range(1, len(used) + 2) if n not in used)
        return partition_name(disk, number, separator)

    # == pool verbs =====================================================================
    @_guarded
    def define_pool(self, xml: str | bytes) -> PoolStatus:
        """Define (or redefine) the pool `xml` describes, as libvirt reads it."""
        text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
        return self.pool_info(self.qualify(self.lc.define_pool_xml(text)))

    @_guarded
    def define_pool_def(self, pdef: PoolDef) -> PoolStatus:
        xmlio.validate_pool(pdef)
        return self.define_pool(xmlio.format_pool(pdef))

    @_guarded
    def undefine_pool(self, name: str) -> None:
        self.lc.undefine_pool(self.plain(name))

    @_guarded
    def build_pool(self, name: str, overwrite: bool | None = None) -> Job:
        status = self.pool_info(name)
        if status.started:
            raise StateError(f"pool '{name}' is active; stop it before you build it")
        return self.volumes.build_pool(name, overwrite)

    @_guarded
    def start_pool(self, name: str) -> PoolStatus:
        self.lc.start_pool(self.plain(name))
        return self.pool_info(name)

    @_guarded
    def stop_pool(self, name: str) -> None:
        if self._jobs.running(name):
            raise StateError(f"pool '{name}' has jobs running; wait for them or cancel "
                             "them first")
        self.lc.stop_pool(self.plain(name))

    @_guarded
    def delete_pool(self, name: str, force: bool = False,
                    expected: Sequence[str] | None = None) -> None:
        """Destroy the pool's storage: refused for a type whose delete erases volumes
        unless forced (libvirt_checks.refuse_pool_delete; `expected` cannot be compared,
        as libvirt cannot list an inactive pool)."""
        plain = self.plain(name)
        self.lc.refuse_pool_delete(plain, force)
        self.lc.delete_pool(plain)

    @_guarded
    def refresh_pool(self, name: str) -> None:
        """libvirt's pool-refresh (not in the TUI's protocol: list_volumes does not, as
        the daemon then reads every volume again before the first row): what was made
        behind libvirt's back appears, through the refresh event (_refreshed)."""
        self.lc.refresh_pool(self.plain(name))

    @_guarded
    def set_autostart(self, name: str, enabled: bool = True) -> None:
        self.lc.set_autostart(self.plain(name), enabled)
        self.bus.publish(PoolChanged(name, "autostart"))  # libvirt has no event for it

    # == volume verbs (libvirt_host_jobs) ==============================================
    @_guarded
    def create_volume_def(self, pool: str, vdef: VolumeDef) -> Job:
        return self.volumes.create_volume_def(pool, vdef)

    @_guarded
    def clone_volume(self, pool: str, source: str, new_name: str, *,
                     target_pool: str | None = None, xml: str | bytes | None = None) -> Job:
        return self.volumes.clone_volume(pool, source, new_name, target_pool=target_pool,
                                         xml=xml)

    @_guarded
    def delete_volume(self, pool: str, name: str) -> None:
        self.volumes.delete_volume(pool, name)

    @_guarded
    def wipe_volume(self, pool: str, name: str, algorithm: str = "zero") -> Job:
        return self.volumes.wipe_volume(pool, name, algorithm)

    @_guarded
    def resize_volume(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                      shrink: bool = False, allocate: bool = False) -> Job:
        return self.volumes.resize_volume(pool, name, capacity, delta=delta, shrink=shrink,
                                          allocate=allocate)

    @_guarded
    def upload_volume(self, pool: str, name: str, src_path: str, *, offset: int = 0,
                      length: int | None = None) -> Job:
        return self.volumes.upload_volume(pool, name, src_path, offset, length)

    @_guarded
    def download_volume(self, pool: str, name: str, dst_path: str, *, offset: int = 0,
                        length: int | None = None, sparse: bool = False) -> Job:
        return self.volumes.download_volume(pool, name, dst_path, offset, length, sparse)

    # == secrets (libvirt_secrets) ======================================================
    def _by_usage(self, usage: str) -> Any:
        """The iSCSI RemoteSecret whose usage is `usage` (what CHAP names), or None."""
        return self.secrets.iscsi_by_usage(usage)

    @_guarded
    def has_secret(self, usage: str) -> bool:
        """A secret with that usage is defined and has a value (a private one's value
        cannot be read back: defined counts as set)."""
        secret = self._by_usage(usage)
        return secret is not None and self._has_value(secret.uuid, secret.private)

    @_guarded
    def set_secret(self, usage: str, value: str | bytes) -> None:
        """Set the value of the secret with that usage; none defined: a private iSCSI one
        is defined for it first (what a pool's <auth><secret usage=...> names)."""
        data = value.encode("utf-8") if isinstance(value, str) else value
        self.secrets.set_by_usage(usage, data)

    @_guarded
    def list_secrets(self) -> list[tuple[SecretDef, bool]]:
        found = []
        for s in self.secrets.list():
            sdef = SecretDef(uuid=s.uuid, usage_type=s.usage_type, usage_id=s.usage_id,
                             description=s.description, private=s.private,
                             ephemeral=s.ephemeral)
            found.append((sdef, self._has_value(s.uuid, s.private)))
        return found

    def _has_value(self, uuid: str, private: bool) -> bool:
        """Has the secret a value? (libvirt gives none back for a private one: True.)"""
        if private:
            return True
        try:
            self.secrets.value(uuid)
        except ConnectionLost:
            raise
        except PoolkeeperError:
            return False
        return True
