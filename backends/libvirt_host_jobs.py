"""The volume verbs and checks of backends.libvirt_host's controller, as jobs.

Each job opens a connection of its own to the host (a LibvirtController on the job's
thread, closed when it ends): a clone or an upload is one long call on a connection's
worker, and on the controller's own connection it would hold up every listing, and make
their deadlines run out, for as long as it lasts. The work is the existing modules'
(backends.libvirt_volumes: clone, wipe, resize; backends.libvirt_streams: upload and
download), whose own jobs are followed here (progress copied, a cancel passed on).

Progress: uploads and downloads in bytes, cancel aborting the stream. A clone's by the
new volume's allocation, asked every POLL seconds on the controller's connection, out of
the source's allocation. A wipe, a build, a create and a resize are single libvirt calls
with no progress and no cancel (libvirt has none): a cancel asked meanwhile is answered
with a warning on the finished job.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, Protocol

from . import libvirt_streams, libvirt_volumes, volume_requests, xmlio
from .drivers import pool_types
from .errors import (
    AlreadyExists,
    Cancelled,
    InsufficientSpace,
    PoolkeeperError,
    StateError,
    ValidationError,
    VolumeNotFound,
)
from .jobs import Job
from .libvirt_conn import ConnectionLost
from .libvirt_controller import LibvirtController
from .libvirt_host_listing import VolumeListing, read_row
from .model import WIPE_ALGORITHMS, PoolSizes, PoolStatus, VolumeDef, VolumeInfo
from .names import check_name
from .units import human
from .volume_requests import Refusal


class JobsHost(Protocol):
    """What the volume verbs use of their controller (libvirt_host's, which imports this
    module: a Protocol rather than an import back)."""

    uri: str
    timeout: float
    lc: LibvirtController
    listing: VolumeListing
    local_target_check: Callable[[os.stat_result, str], None] | None

    def plain(self, pool: str) -> str: ...

    def qualify(self, pool: str) -> str: ...

POLL = 1.0  # seconds between looks at a clone's new volume


def _exists(lc: LibvirtController, plain: str, name: str) -> bool:
    def look() -> bool:
        lv = lc.libvirt
        try:
            lc._pool(plain).storageVolLookupByName(name)
        except lv.libvirtError as exc:
            if exc.get_error_code() == lv.VIR_ERR_NO_STORAGE_VOL:
                return False
            raise
        return True
    return bool(lc._call(look, f"cannot look for volume '{name}' in pool '{plain}'"))


def checked(check: Callable[[], object], allocation_asked: bool = False) -> Refusal | None:
    """volume_requests.refusal_of_check, but a lost connection is raised, not shown as a
    refusal: the controller's owner must hear of it (on_lost)."""
    lost: list[ConnectionLost] = []

    def run() -> None:
        try:
            check()
        except ConnectionLost as exc:
            lost.append(exc)
    refusal = volume_requests.refusal_of_check(run, allocation_asked)
    if lost:
        raise lost[0]
    return refusal


def follow(job: Job, inner: Job, cancellable: bool,
           poll: Callable[[], tuple[int, int] | None] | None = None) -> Any:
    """Wait for `inner` (a job of libvirt_volumes or libvirt_streams) as `job`: its
    progress copied (or, with `poll`, (done, total) asked every POLL seconds), a cancel
    passed on where libvirt can stop (`cancellable`); its result, or its error."""
    step = 0.1
    waited = 0.0
    while not inner.join(step):
        waited += step
        if job.cancelled:
            if cancellable:
                inner.cancel()
            continue  # (else the job's end says libvirt could not: HostVolumeVerbs.run)
        done, total = inner.done, inner.total
        if poll is not None and waited >= POLL:
            waited = 0.0
            found = poll()
            if found is not None:
                done, total = found
        try:
            job.update(done, total)
        except Cancelled:
            pass  # seen at the next turn
    if inner.state == "cancelled":
        raise Cancelled()
    result = inner.wait()
    # the last of it (a short one may end between two looks)
    last = poll() if poll is not None else (inner.done, inner.total)
    if last is not None and last[1]:
        with contextlib.suppress(Cancelled):
            job.update(*last)
    return result


class HostVolumeVerbs:
    """The volume verbs and checks on `host`'s connection (pool ids in, pool ids out)."""

    def __init__(self, host: JobsHost) -> None:
        self.host = host

    # == jobs ===========================================================================
    def run(self, kind: str, description: str, pid: str, volume: str | None,
            work: Callable[[Job, LibvirtController], Any], uncancellable: str | None = None
            ) -> Job:
        """`work(job, lc)` as a job, `lc` a connection of its own (see the docstring).
        `uncancellable`: what libvirt cannot stop, for the warning a cancel gets."""
        host = self.host
        job = host.jobs.create(kind, description, pid, volume)

        def run(job: Job) -> Any:
            lc = LibvirtController(host.uri, host.timeout)
            try:
                result = work(job, lc)
            finally:
                lc.close()
            if job.cancelled and uncancellable:
                job.warnings.append(f"libvirt cannot cancel {uncancellable} once it has "
                                    "begun: it ran to its end")
            return result

        return host.jobs.start(job, run)

    def build_pool(self, pid: str, overwrite: bool | None) -> Job:
        plain = self.host.plain(pid)
        return self.run("build", f"build pool {pid}", pid, None,
                        lambda job, lc: lc.build_pool(plain, overwrite), "a build")

    def _refreshed(self, pid: str, name: str, added: bool = False) -> VolumeInfo:
        """The volume read again on the controller's connection, put in its cache."""
        info = read_row(self.host.lc.volume_xml(self.host.plain(pid), name))
        self.host.listing.cache.put(pid, name, info, added)
        return info

    # == checks =========================================================================
    def _active(self, pid: str) -> PoolStatus:
        status = self.host.lc.pool_info(self.host.plain(pid))
        if not status.active:
            raise StateError(f"pool '{pid}' is not active; start it first")
        return status

    def _volume_request(self, pid: str, vdef: VolumeDef) -> str:
        """create_volume_def's checks; the volume XML to give libvirt."""
        status = self._active(pid)
        check_name(vdef.name, "volume name")
        if status.type in pool_types():  # poolkeeper's checks know this type
            xmlio.validate_volume(vdef, status.type)
        if vdef.capacity is None:
            raise ValidationError("a volume needs a capacity", element="capacity")
        xmlio.check_allocation_fits(vdef)
        if _exists(self.host.lc, status.name, vdef.name):
            raise AlreadyExists(f"volume '{vdef.name}' already exists in pool '{pid}'")
        fmt = vdef.target.format or "raw"
        allocation = vdef.capacity if vdef.allocation is None else vdef.allocation
        if fmt == "raw" and status.available is not None and allocation > status.available:
            raise InsufficientSpace(
                f"volume '{vdef.name}' needs {human(allocation)} allocated but pool '{pid}' "
                f"has {human(status.available)} available; make it smaller or sparse (a "
                "smaller allocation)")
        return xmlio.format_volume(vdef)

    def check_volume_def(self, pid: str, vdef: VolumeDef) -> Refusal | None:
        return checked(lambda: self._volume_request(pid, vdef),
                                                allocation_asked=bool(vdef.allocation))

    def _clone_request(self, pid: str, source: str, new_name: str, target_pool: str | None,
                       xml: str | bytes | None) -> tuple[str, VolumeInfo]:
        """clone_volume's checks; (the new volume's XML, the source)."""
        host = self.host
        dst = target_pool or pid
        if new_name:
            check_name(new_name, "volume name")
        status = self._active(dst)
        src = host.lc.volume_info(host.plain(pid), source)
        text = xml.decode("utf-8") if isinstance(xml, bytes) else xml
        if text is None:  # as virsh vol-clone: the source's XML, renamed
            text = libvirt_volumes.renamed_xml(host.lc.volume_xml(host.plain(pid), source),
                                               new_name)
        elif new_name:
            text = libvirt_volumes.renamed_xml(text, new_name)
        name = new_name or libvirt_volumes.xml_name(text)
        if _exists(host.lc, status.name, name):
            raise AlreadyExists(f"volume '{name}' already exists in pool '{dst}'")
        if status.available is not None and src.allocation > status.available:
            raise InsufficientSpace(
                f"cloning '{source}' needs up to {human(src.allocation)} but pool '{dst}' "
                f"has {human(status.available)} available")
        return text, src

    def check_clone(self, pid: str, source: str, new_name: str, *,
                    target_pool: str | None = None, xml: str | bytes | None = None
                    ) -> Refusal | None:
        return checked(
            lambda: self._clone_request(pid, source, new_name, target_pool, xml))

    def _resize_request(self, pid: str, name: str, capacity: int, delta: bool,
                        shrink: bool, allocate: bool) -> tuple[int, list[str]]:
        """resize_volume's checks (the size asked, the room, a running guest's disk);
        (the new capacity, warnings)."""
        host = self.host
        status = self._active(pid)
        info = host.lc.volume_info(status.name, name)
        new = volume_requests.new_capacity(info, name, capacity, delta, shrink)
        sizes = PoolSizes(capacity=status.capacity or 0, allocation=status.allocation or 0,
                          available=status.available or 0)
        warnings = volume_requests.resize_space_check(info, name, pid, new, sizes, allocate)
        host.lc.refuse_in_use(status.name, name, "resize")
        return new, warnings

    def check_resize(self, pid: str, name: str, capacity: int, *, delta: bool = False,
                     shrink: bool = False, allocate: bool = False) -> Refusal | None:
        return checked(
            lambda: self._resize_request(pid, name, capacity, delta, shrink, allocate),
            allocation_asked=allocate)

    # == verbs ==========================================================================
    def create_volume_def(self, pid: str, vdef: VolumeDef) -> Job:
        xml = self._volume_request(pid, vdef)
        plain = self.host.plain(pid)

        def work(job: Job, lc: LibvirtController) -> VolumeInfo:
            name = lc.create_volume_xml(plain, xml, prealloc_metadata=vdef.prealloc_metadata)
            return self._refreshed(pid, name, added=True)

        return self.run("create", f"create {vdef.name} in {pid}", pid, vdef.name, work,
                        "a create")

    def clone_volume(self, pid: str, source: str, new_name: str, *,
                     target_pool: str | None = None, xml: str | bytes | None = None,
                     reflink: bool = False, prealloc_metadata: bool = False) -> Job:
        host = self.host
        dst = target_pool or pid
        text, src = self._clone_request(pid, source, new_name, target_pool, xml)
        name = new_name or libvirt_volumes.xml_name(text)
        src_plain, dst_plain = host.plain(pid), host.plain(dst)

        def allocated() -> tuple[int, int] | None:
            try:  # on the controller's connection: the job's is busy with the clone
                done = host.lc.volume_info(dst_plain, name).allocation
                return min(done, src.allocation), src.allocation  # (a block more, at times)
            except PoolkeeperError:
                return None  # not made yet

        def work(job: Job, lc: LibvirtController) -> VolumeInfo:
            inner = libvirt_volumes.create_from(lc, dst_plain, text, src_plain, source,
                                                prealloc_metadata=prealloc_metadata,
                                                reflink=reflink)
            follow(job, inner, False, allocated)
            return self._refreshed(dst, name, added=True)

        return self.run("clone", f"clone {source} to {name}", dst, name, work, "a clone")

    def delete_volume(self, pid: str, name: str) -> None:
        lc, plain = self.host.lc, self.host.plain(pid)
        lc.refuse_volume_delete(plain, name)
        lc.delete_volume(plain, name)
        self.host.listing.cache.remove(pid, name)

    def wipe_volume(self, pid: str, name: str, algorithm: str) -> Job:
        if algorithm not in WIPE_ALGORITHMS:
            raise ValidationError(f"unknown wipe algorithm '{algorithm}'; choose one of: "
                                  + ", ".join(WIPE_ALGORITHMS))
        plain = self.host.plain(pid)
        self._active(pid)
        self.host.lc.refuse_in_use(plain, name, "wipe")

        def work(job: Job, lc: LibvirtController) -> VolumeInfo:
            follow(job, libvirt_volumes.wipe(lc, plain, name, algorithm), False)
            return self._refreshed(pid, name)

        return self.run("wipe", f"wipe {name} ({algorithm})", pid, name, work, "a wipe")

    def resize_volume(self, pid: str, name: str, capacity: int, *, delta: bool = False,
                      shrink: bool = False, allocate: bool = False) -> Job:
        plain = self.host.plain(pid)
        new, warnings = self._resize_request(pid, name, capacity, delta, shrink, allocate)

        def work(job: Job, lc: LibvirtController) -> VolumeInfo:
            # the absolute size checked above (not a delta of a size that changed since)
            flags = libvirt_volumes.resize_flags(lc, False, shrink, allocate)
            libvirt_volumes.resize(lc, plain, name, new, flags)
            return self._refreshed(pid, name)

        job = self.run("resize", f"resize {name} to {human(new)}", pid, name, work,
                       "a resize")
        job.warnings.extend(warnings)
        return job

    def upload_volume(self, pid: str, name: str, src_path: str, offset: int,
                      length: int | None) -> Job:
        plain = self.host.plain(pid)
        self._active(pid)
        self.host.lc.refuse_in_use(plain, name, "upload to")

        def work(job: Job, lc: LibvirtController) -> int:
            inner = libvirt_streams.upload(lc, plain, name, src_path, offset=offset,
                                           length=length)
            done = int(follow(job, inner, True))
            self._refreshed(pid, name)
            return done

        return self.run("upload", f"upload {src_path.rsplit('/', 1)[-1]} to {name}", pid,
                        name, work)

    def download_volume(self, pid: str, name: str, dst_path: str, offset: int,
                        length: int | None, sparse: bool) -> Job:
        plain = self.host.plain(pid)
        self._active(pid)
        if not _exists(self.host.lc, plain, name):
            raise VolumeNotFound(f"no volume named '{name}' in pool '{pid}'")

        local_check = self.host.local_target_check  # this host's pools (Fleet)

        def work(job: Job, lc: LibvirtController) -> int:
            inner = libvirt_streams.download(lc, plain, name, dst_path, offset=offset,
                                             length=length, sparse=sparse,
                                             also_check=local_check)
            return int(follow(job, inner, True))

        return self.run("download", f"download {name}", pid, name, work)
