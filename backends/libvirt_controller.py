"""The storage verbs over a libvirt connection (libvirt-python), in the native engine's
terms: pools as model.PoolStatus, volumes as model.VolumeInfo, XML as libvirt prints it.

libvirt does the work (its own storage driver on its own host); this module looks things
up as virsh does (a pool by name, then UUID; a volume by name in its pool, then key, then
path), turns libvirt's answers into the model the CLI prints, and its errors into
poolkeeper's. Every call has a deadline (backends.libvirt_conn). The pool and volume
verbs the CLI offers over `-c URI` (cli/connect_verbs.py); clone, resize and wipe are in
backends.libvirt_volumes, upload and download in backends.libvirt_streams, secrets in
backends.libvirt_secrets; the rest of the TUI's controller contract (events, jobs) is not
here yet.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from lxml import etree

from . import libvirt_checks, model
from .errors import PoolkeeperError, PoolNotFound, VolumeNotFound
from .libvirt_conn import Connection
from .volume_encryption import CREATE_TRIES, PBKDF_CLOCK

# virStoragePoolState and virStorageVolType, in libvirt's order
_POOL_STATES = ("inactive", "building", "running", "degraded", "inaccessible")
_VOL_TYPES = ("file", "block", "dir", "network", "netdir", "ploop")
T = TypeVar("T")
_END = object()  # the end of a volume listing's items
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _doc(xml: str) -> Any:
    return etree.fromstring(xml.encode("utf-8"), _PARSER)


def _int(node: Any, path: str) -> int | None:
    text = node.findtext(path)
    text = text.strip() if text else ""
    return int(text) if text.isascii() and text.isdigit() else None  # (not "²")


def _source_summary(src: Any) -> str:
    """The storage a pool's <source> claims, in words (as backends.pool_claims says it)."""
    if src is None:
        return ""
    parts = []
    hosts = [h.get("name", "") + (f":{h.get('port')}" if h.get("port") else "")
             for h in src.findall("host")]
    if hosts:
        parts.append(",".join(hosts))
    if src.find("dir") is not None:
        parts.append(src.find("dir").get("path", ""))
    devices = [d.get("path", "") for d in src.findall("device")]
    if devices:
        parts.append(",".join(devices))
    name = src.findtext("name")
    if name:
        parts.append(name)
    return " ".join(parts)


def volume_from_xml(xml: str) -> model.VolumeInfo:
    """A volume as libvirt describes it (<volume>: its sizes, format, backing store)."""
    doc = _doc(xml)
    target = doc.find("target")
    path = target.findtext("path", "") if target is not None else ""
    fmt_node = target.find("format") if target is not None else None
    backing = None
    back = doc.find("backingStore")
    if back is not None and back.findtext("path"):
        back_fmt = back.find("format")
        backing = model.BackingStore(path=back.findtext("path"),
                                     format=back_fmt.get("type") if back_fmt is not None
                                     else None)
    encryption = target.find("encryption") if target is not None else None
    capacity = _int(doc, "capacity") or 0
    allocation = _int(doc, "allocation") or 0
    physical = _int(doc, "physical")
    return model.VolumeInfo(
        name=doc.findtext("name", ""), key=doc.findtext("key", ""), path=path,
        type=doc.get("type", "file"),
        format=fmt_node.get("type", "raw") if fmt_node is not None else "raw",
        capacity=capacity, allocation=allocation,
        physical=allocation if physical is None else physical, backing=backing,
        encryption=encryption.get("format") if encryption is not None else None)


class LibvirtController:
    """The storage verbs on the libvirt connection to `uri` (close() when done)."""

    def __init__(self, uri: str, timeout: float | None = None,
                 keepalive: tuple[int, int] | None = None, events: bool = True) -> None:
        self.connection = Connection(uri, timeout, keepalive, events)
        self.libvirt = self.connection.libvirt
        self.uri = uri

    def close(self) -> None:
        self.connection.close()

    def _call(self, fn: Any, what: str, long: bool = False) -> Any:
        return self.connection.call(fn, what, long)

    # == lookups (virsh's order) ========================================================
    def _pool(self, ref: str) -> Any:
        """The virStoragePool `ref` names: by name, else by UUID (on the worker)."""
        conn = self.connection.conn
        try:
            return conn.storagePoolLookupByName(ref)
        except self.libvirt.libvirtError as exc:
            if exc.get_error_code() != self.libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
        try:
            return conn.storagePoolLookupByUUIDString(ref)
        except self.libvirt.libvirtError as exc:
            if exc.get_error_code() not in (self.libvirt.VIR_ERR_NO_STORAGE_POOL,
                                            self.libvirt.VIR_ERR_INVALID_ARG):
                raise
        raise PoolNotFound(f"no pool named (or with UUID) '{ref}' on '{self.uri}'")

    def pool_name(self, ref: str) -> str:
        """The name of the pool `ref` names by name or UUID (neither: `ref`, for the
        verb to say that no pool has that name)."""
        def find() -> str:
            try:
                return str(self._pool(ref).name())
            except PoolNotFound:
                return ref
        return str(self._call(find, f"cannot look up pool '{ref}'"))

    def _volume(self, ref: str, pool: str | None) -> Any:
        """The virStorageVol `ref` names: by name in `pool`, else by key, else by path."""
        conn, lv = self.connection.conn, self.libvirt
        if pool:
            try:
                return self._pool(pool).storageVolLookupByName(ref)
            except lv.libvirtError as exc:
                if exc.get_error_code() not in (lv.VIR_ERR_NO_STORAGE_VOL,
                                                lv.VIR_ERR_INVALID_ARG):
                    raise
        for lookup in (conn.storageVolLookupByKey, conn.storageVolLookupByPath):
            try:
                return lookup(ref)
            except lv.libvirtError as exc:
                if exc.get_error_code() not in (lv.VIR_ERR_NO_STORAGE_VOL,
                                                lv.VIR_ERR_INVALID_ARG):
                    raise
        if pool:
            raise VolumeNotFound(f"no volume named '{ref}' in pool '{pool}', and no volume "
                                 "with that key or path")
        raise VolumeNotFound(f"no volume with key or path '{ref}'; a volume's name needs its "
                             "pool (--pool POOL)")

    def volume_ref(self, ref: str, pool: str | None) -> tuple[str, str]:
        """(pool, volume name) of the volume `ref` names (with `pool`: a name there first)."""
        def find() -> tuple[str, str]:
            vol = self._volume(ref, pool)
            return str(vol.storagePoolLookupByVolume().name()), str(vol.name())
        return tuple(self._call(find, f"cannot find volume '{ref}'"))  # type: ignore[return-value]

    # == pools ==========================================================================
    def _status(self, pool: Any) -> model.PoolStatus:
        state, capacity, allocation, available = pool.info()
        doc = _doc(pool.XMLDesc(0))
        status = model.PoolStatus(
            name=pool.name(), type=doc.get("type", ""), uuid=pool.UUIDString(),
            state=_POOL_STATES[state] if 0 <= state < len(_POOL_STATES) else "inaccessible",
            autostart=bool(pool.autostart()), persistent=bool(pool.isPersistent()),
            target=doc.findtext("target/path"), source=_source_summary(doc.find("source")))
        if status.state in ("running", "degraded"):
            status.capacity, status.allocation, status.available = (
                capacity, allocation, available)
        return status

    def list_pools(self) -> list[model.PoolStatus]:
        def run() -> list[model.PoolStatus]:
            found = []
            for pool in self.connection.conn.listAllStoragePools(0):
                try:
                    found.append(self._status(pool))
                except self.libvirt.libvirtError as exc:
                    # gone between the listing and its info (another client undefined it)
                    if exc.get_error_code() != self.libvirt.VIR_ERR_NO_STORAGE_POOL:
                        raise
                self.connection.alive()
            return found
        return list(self._call(run, "cannot list pools"))

    def pool_info(self, ref: str) -> model.PoolStatus:
        status: model.PoolStatus = self._call(lambda: self._status(self._pool(ref)),
                                              f"cannot get pool '{ref}'")
        return status

    def pool_xml(self, ref: str, inactive: bool = False) -> str:
        flags = self.libvirt.VIR_STORAGE_XML_INACTIVE if inactive else 0
        return str(self._call(lambda: self._pool(ref).XMLDesc(flags),
                              f"cannot dump pool '{ref}'"))

    def define_pool_xml(self, xml: str, validate: bool = False) -> str:
        """Define (or redefine) the pool `xml` describes; its name."""
        flags = self.libvirt.VIR_STORAGE_POOL_DEFINE_VALIDATE if validate else 0
        return str(self._call(
            lambda: self.connection.conn.storagePoolDefineXML(xml, flags).name(),
            "cannot define the pool"))

    def create_pool_xml(self, xml: str, build: bool = False,
                        overwrite: bool | None = None) -> str:
        """Start a transient pool from `xml` (libvirt's createXML; built first when asked,
        as pool-start --build); its name."""
        flags = self._overwrite_flags(overwrite, "CREATE_WITH_BUILD")
        if build and not flags:
            flags = self.libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD
        return str(self._call(
            lambda: self.connection.conn.storagePoolCreateXML(xml, flags).name(),
            "cannot create the pool", long=True))

    def capabilities(self) -> str:
        """virConnectGetStoragePoolCapabilities: the pool types the host supports."""
        return str(self._call(lambda: self.connection.conn.getStoragePoolCapabilities(0),
                              "cannot get the storage pool capabilities"))

    def find_pool_sources(self, pool_type: str, spec: str | None) -> str:
        """virConnectFindStoragePoolSources: libvirt's <sources> document."""
        return str(self._call(
            lambda: self.connection.conn.findStoragePoolSources(pool_type, spec, 0),
            f"cannot find {pool_type} pool sources", long=True))

    def _overwrite_flags(self, overwrite: bool | None, build: str) -> int:
        lv = self.libvirt
        if overwrite is None:
            return 0
        name = "OVERWRITE" if overwrite else "NO_OVERWRITE"
        return int(getattr(lv, f"VIR_STORAGE_POOL_{build}_{name}"))

    def build_pool(self, ref: str, overwrite: bool | None = None) -> None:
        flags = self._overwrite_flags(overwrite, "BUILD")
        self._call(lambda: self._pool(ref).build(flags), f"cannot build pool '{ref}'", long=True)

    def start_pool(self, ref: str, build: bool = False, overwrite: bool | None = None) -> None:
        flags = self._overwrite_flags(overwrite, "CREATE_WITH_BUILD")
        if build and not flags:
            flags = self.libvirt.VIR_STORAGE_POOL_CREATE_WITH_BUILD
        self._call(lambda: self._pool(ref).create(flags), f"cannot start pool '{ref}'", long=True)

    def stop_pool(self, ref: str) -> None:
        self._call(lambda: self._pool(ref).destroy(), f"cannot stop pool '{ref}'")

    def undefine_pool(self, ref: str) -> None:
        self._call(lambda: self._pool(ref).undefine(), f"cannot undefine pool '{ref}'")

    def refresh_pool(self, ref: str) -> None:
        self._call(lambda: self._pool(ref).refresh(0), f"cannot refresh pool '{ref}'", long=True)

    def delete_pool(self, ref: str) -> None:
        self._call(lambda: self._pool(ref).delete(0), f"cannot delete pool '{ref}'", long=True)

    def set_autostart(self, ref: str, on: bool) -> None:
        self._call(lambda: self._pool(ref).setAutostart(int(on)),
                   f"cannot change autostart of pool '{ref}'")

    # == volumes ========================================================================
    def list_volumes(self, ref: str) -> list[model.VolumeInfo]:
        """Every volume of the pool, one XMLDesc each (libvirt has no bulk call). Each XML
        is parsed here while the connection's worker waits for the next one (the binding
        lets go of the GIL while it waits): the parse costs no wall time."""
        return [volume_from_xml(xml) for xml in self._each_volume(
            ref, lambda vol: vol.XMLDesc(0))]

    def list_volume_paths(self, ref: str) -> list[tuple[str, str]]:
        """(name, path) of every volume, as virsh's vol-list without --details asks: the
        path call reads no header (XMLDesc and info refresh the volume first). All on the
        worker: there is nothing to parse, and a hand-over per volume would cost more."""
        lv = self.libvirt

        def run() -> list[tuple[str, str]]:
            found = []
            for vol in self._pool(ref).listAllVolumes(0):
                try:
                    found.append((vol.name(), vol.path()))
                except lv.libvirtError as exc:
                    if exc.get_error_code() != lv.VIR_ERR_NO_STORAGE_VOL:
                        raise  # (one deleted meanwhile is left out, as virsh does)
                self.connection.alive()
            return found
        return list(self._call(run, f"cannot list the volumes of pool '{ref}'"))

    def _each_volume(self, ref: str, read: Callable[[Any], T]) -> Iterator[T]:
        """read(vol) of every volume of the pool, on the connection's worker, handed over
        one by one as they come (one deleted meanwhile is left out, as virsh does)."""
        lv, items = self.libvirt, queue.SimpleQueue()
        failed: list[BaseException] = []

        def run() -> None:
            for vol in self._pool(ref).listAllVolumes(0):
                try:
                    items.put(read(vol))
                except lv.libvirtError as exc:
                    if exc.get_error_code() != lv.VIR_ERR_NO_STORAGE_VOL:
                        raise
                self.connection.alive()

        def call() -> None:
            try:
                self._call(run, f"cannot list the volumes of pool '{ref}'")
            except BaseException as exc:  # the caller raises it
                failed.append(exc)
            finally:
                items.put(_END)

        threading.Thread(target=call, daemon=True, name="volume listing").start()
        while (item := items.get()) is not _END:
            yield item
        if failed:
            raise failed[0]

    def volume_info(self, pool: str, name: str, physical: bool = False) -> model.VolumeInfo:
        """The volume; with `physical`, its physical size from libvirt's info call (the
        XML has <physical> only for some volume types)."""
        def run() -> model.VolumeInfo:
            vol = self._volume(name, pool)
            info = volume_from_xml(vol.XMLDesc(0))
            if physical:
                flag = self.libvirt.VIR_STORAGE_VOL_GET_PHYSICAL
                info.physical = int(vol.infoFlags(flag)[2])
            return info
        info: model.VolumeInfo = self._call(run, f"cannot get volume '{name}'")
        return info

    def volume_xml(self, pool: str, name: str) -> str:
        return str(self._call(lambda: self._volume(name, pool).XMLDesc(0),
                              f"cannot dump volume '{name}'"))

    def create_volume_xml(self, pool: str, xml: str, prealloc_metadata: bool = False,
                          validate: bool = False) -> str:
        """Create the volume `xml` describes in `pool`; its name."""
        lv = self.libvirt
        flags = ((lv.VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA if prealloc_metadata else 0)
                 | (lv.VIR_STORAGE_VOL_CREATE_VALIDATE if validate else 0))
        what = f"cannot create the volume in pool '{pool}'"
        for attempt in range(CREATE_TRIES):
            try:
                return str(self._call(lambda: self._pool(pool).createXML(xml, flags).name(),
                                      what, long=True))
            except PoolkeeperError as exc:  # qemu's PBKDF timing (an encrypted volume):
                if attempt == CREATE_TRIES - 1 or PBKDF_CLOCK not in str(exc):
                    raise  # libvirt removed what failed; the same create works again
        raise AssertionError("unreachable")

    def refuse_volume_delete(self, pool: str, name: str) -> None:
        """InUse: a running guest's disk, or an overlay's base (libvirt_checks)."""
        self._call(lambda: libvirt_checks.refuse_volume_delete(
            self.connection.conn, self.libvirt, pool, name,
            self._volume(name, pool).path(), libvirt_checks.is_local(self.uri)),
            f"cannot check volume '{name}'", long=True)

    def refuse_in_use(self, pool: str, name: str, verb: str) -> None:
        """InUse: a running guest's disk (libvirt_checks); before a wipe, resize, upload."""
        self._call(lambda: libvirt_checks.refuse_in_use(
            self.connection.conn, self.libvirt, pool, name,
            self._volume(name, pool).path(), verb, libvirt_checks.is_local(self.uri)),
            f"cannot check volume '{name}'", long=True)

    def refuse_pool_delete(self, ref: str, force: bool) -> None:
        libvirt_checks.refuse_pool_delete(ref, self.pool_info(ref).type, force)

    def delete_volume(self, pool: str, name: str, delete_snapshots: bool = False) -> None:
        flags = self.libvirt.VIR_STORAGE_VOL_DELETE_WITH_SNAPSHOTS if delete_snapshots else 0
        self._call(lambda: self._volume(name, pool).delete(flags),
                   f"cannot delete volume '{name}'", long=True)
