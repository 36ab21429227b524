"""StorageController: every verb of the product, for the TUI and the CLI alike.

It owns locking (flock, so it holds across processes), jobs (a bounded thread pool),
events and the live monitor. Drivers do the storage work; the controller decides
whether a verb may run, records what it did, and tells subscribers.

The rules it applies each live in a module of their own: what a definition may claim
(pool_claims), the format each volume was created with (format_records), the volume cache
and the monitor (monitor), what qemu opens for an image (backing_chain), who else uses a
volume (volume_users), what a download may not write to (download_targets), whether a
request gets what it asks (volume_requests), leftovers of killed jobs (partials), and what
the read-only verbs report (reports).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace

from . import (
    fileops,
    pathsafety,
    pool_claims,
    reports,
    startup,
    volume_encryption,
    volume_requests,
    xmlio,
)
from .backing_chain import BackingChains
from .download_targets import DownloadTargets
from .drivers import driver_class, features
from .drivers.base import PoolDriver, refused
from .errors import (
    AlreadyExists,
    PoolkeeperError,
    PoolNotFound,
    StateError,
    Unsupported,
    ValidationError,
    VolumeNotFound,
)
from .event_journal import EventJournal
from .events import CommandRun, EventBus, PoolChanged, Subscriber
from .format_records import FormatRecords
from .host_queries import HostQueries
from .job_locks import check_or_release, hold, hold_new_volume
from .jobs import Job, JobManager
from .locks import LockManager
from .model import (
    WIPE_ALGORITHMS,
    DeviceLayout,
    PoolDef,
    PoolStatus,
    VolumeDef,
    VolumeInfo,
)
from .monitor import MONITOR_INTERVAL, PoolMonitor, VolumeCache
from .names import check_name
from .oserror import os_errors
from .partials import PartialSweeper
from .pool_contents import directory_entries, refuse_changed, refuse_held
from .progress import shielded
from .reports import volume_def_from_info
from .runner import COMMAND_LOG, routine_read
from .secret_verbs import SecretVerbs
from .store import Store, check_pool_name, resolve_paths
from .streamed_listing import HeaderProber, list_streamed
from .units import human
from .volume_users import VolumeUsers, open_paths, refuse_in_use


class StorageController(SecretVerbs, HostQueries):  # secret_verbs, host_queries
    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        autostart: bool = True,
        create_default: bool = True,
        max_jobs: int = 4,
        probe_later: bool = False,  # a first listing leaves headers to a thread (the TUI)
        # False: a short process (the CLI), whose listings set up no watch for a monitor
        # (~7 ms with closing it); one started after all reads each pool in full first
        watch_listings: bool = True,
    ) -> None:
        self.paths = resolve_paths(root)
        self.store = Store(self.paths)
        self.locks = LockManager(self.store.locks_dir)
        self.bus = EventBus()
        self.jobs = JobManager(self.bus, max_jobs)
        self.startup_errors: list[str] = []
        self._partials = PartialSweeper(self.locks)
        self._records = FormatRecords(
            self.store, self.locks,
            lambda pool, name: self._driver(self.pool_def(pool)).volume_path(name))
        self._cache = VolumeCache(self.bus)
        self._headers = not probe_later
        self._watch_listings = watch_listings
        self._prober = HeaderProber(self._cache, self._records, self.locks, self._active_driver)
        self._chains = BackingChains(self, self._active_driver)
        self._download_targets = DownloadTargets(self)
        self._users = VolumeUsers(self, self._records, self._driver)
        self._monitor = PoolMonitor(self.store, self.locks, self.bus, self._cache,
                                    self._records,
                                    lambda name: self._driver(self.pool_def(name)))
        self._unhook_log = COMMAND_LOG.add_listener(lambda c: self.bus.publish(CommandRun(c)))
        self.bus.subscribe(EventJournal(self.store.run_dir).record)  # for other processes
        if create_default:
            startup.ensure_default_pool(self)
        if autostart:
            startup.autostart(self)

    @property
    def _prepare(self) -> Callable[[str], None] | None:  # before a first listing's reads
        return self._monitor.prepare if self._watch_listings else None

    def close(self) -> None:
        self._prober.stop()
        self.stop_monitor()
        self.jobs.shutdown(cancel=True)
        self._unhook_log()

    def startup_problems(self) -> list[str]:
        return list(self.startup_errors)

    def __enter__(self) -> StorageController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        return self.bus.subscribe(fn)

    # == pool lookup ===================================================================
    def pool_def(self, name: str) -> PoolDef:
        check_name(name, "pool name")
        xml = self.store.read_definition(name)
        if xml is None:
            raise PoolNotFound(f"no pool named '{name}'; `pool-list --all` shows the pools")
        return xmlio.parse_pool(xml, schema=False)  # checked against it when defined

    def _driver(self, pdef: PoolDef) -> PoolDriver:
        return driver_class(pdef.type)(pdef, self.store.read_extras(pdef.name),
                                       config_dir=self.paths.config_dir,
                                       runtime_dir=self.paths.runtime_dir)

    def _active_driver(self, name: str, sweep: bool = True) -> PoolDriver:
        pdef = self.pool_def(name)
        if not self.store.is_active(name):
            raise StateError(f"pool '{name}' is not active; start it first (pool-start {name})")
        driver = self._driver(pdef)
        if sweep:
            self._partials.sweep_once(name, driver)
        return driver

    def _require_inactive(self, name: str, verb: str) -> None:
        if self.store.is_active(name):
            raise StateError(
                f"pool '{name}' is active; stop it before you {verb} it (pool-destroy {name})"
            )

    def pool_names(self) -> list[str]:
        return self.store.definition_names()

    def _other_defs(self, name: str) -> Iterator[tuple[str, PoolDef]]:
        """The definitions of the pools but `name` (those that can be read)."""
        for other_name in self.store.definition_names():
            if other_name == name:
                continue
            try:
                other = self.pool_def(other_name)
            except PoolkeeperError:
                continue
            yield other_name, other

    # == pool verbs ====================================================================
    def define_pool(self, xml: str | bytes) -> PoolStatus:
        return self.define_pool_def(xmlio.parse_pool(xml))

    def check_pool_def(self, pdef: PoolDef, new: bool = True
                       ) -> volume_requests.Refusal | None:
        """What define_pool_def would refuse, storing nothing; `new`: a pool of that name
        too (the define form makes pools, it does not redefine them)."""
        def check() -> None:
            self._check_definition(pdef)
            if new and self.store.read_definition(pdef.name) is not None:
                raise refused(AlreadyExists(f"a pool named '{pdef.name}' already exists; "
                                            "choose another name"), "name")
            pool_claims.refuse_claimed(pdef, self._other_defs(pdef.name))
        return volume_requests.refusal_of_check(check)

    def _check_definition(self, pdef: PoolDef) -> None:
        xmlio.validate_pool(pdef)
        check_pool_name(pdef.name)
        driver_class(pdef.type).validate(pdef)  # the type, mount options, hosts, paths
        self._refuse_unsafe_target(pdef)

    def define_pool_def(self, pdef: PoolDef) -> PoolStatus:
        self._check_definition(pdef)
        with self.locks.store():
            self._define_locked(pdef)
        self.bus.publish(PoolChanged(pdef.name, "defined"))
        return self.pool_info(pdef.name)

    def _define_locked(self, pdef: PoolDef) -> None:
        existing_xml = self.store.read_definition(pdef.name)
        pool_claims.refuse_claimed(pdef, self._other_defs(pdef.name))
        if existing_xml is not None:
            pdef = pool_claims.redefined(pdef, xmlio.parse_pool(existing_xml),
                                         lambda: self.store.is_active(pdef.name))
        if not pdef.uuid:
            import uuid  # only here: it costs every command ~2 ms to import

            pdef = replace(pdef, uuid=str(uuid.uuid4()))
        stored = replace(pdef, capacity=None, allocation=None, available=None,
                         source=replace(pdef.source, devices=[
                             replace(d, free_extents=[]) for d in pdef.source.devices]))
        self.store.write_definition(pdef.name, xmlio.format_pool(stored))
        self._records.retry_adoption(pdef.name)  # new storage: every set is worth a look
        self._records.adopt_undefined(pdef)

    def undefine_pool(self, name: str) -> None:
        check_pool_name(name)
        if self.store.read_definition(name) is None:  # a broken definition can still go
            raise PoolNotFound(f"no pool named '{name}'; `pool-list --all` shows the pools")
        self._require_inactive(name, "undefine")
        with self.locks.pool(name, exclusive=True, what="undefining") as held, \
                self.locks.store():
            self._require_inactive(name, "undefine")
            self.store.remove_definition(name)
            self._records.retry_adoption(name)
            self.locks.forget_pool(name)  # its lock files, where nobody holds them
            held.release(remove=True)
        self._monitor.forget(name)
        self.bus.publish(PoolChanged(name, "undefined"))

    def build_pool(self, name: str, overwrite: bool | None = None, *,
                   journal: bool = True) -> Job:  # False: a start's (libvirt: no Created)
        pdef = self.pool_def(name)
        self._require_inactive(name, "build")
        self._refuse_unsafe_target(pdef)  # again: a link on the way may have changed
        driver = self._driver(pdef)
        if not driver.can_build:
            raise Unsupported(f"a '{pdef.type}' pool has nothing to build")
        driver.refuse_linked_target()  # before an fs pool's mkfs, not after it
        job = self.jobs.create("build", f"build pool {name}", name)
        hold(job, lambda: self.locks.pool(name, exclusive=True, what="building"))

        def work(job: Job) -> None:
            driver.build(overwrite, job)
            self.bus.publish(PoolChanged(name, "built", journal=journal))

        return self.jobs.start(job, work)

    def start_pool(self, name: str, *, quick: bool = False) -> PoolStatus:
        """quick (a CLI start: its process ends then): the directory is read, not listed;
        the next listing reads the headers, and applies the format records then."""
        pdef = self.pool_def(name)
        with self.locks.pool(name, exclusive=True, what="starting"), \
                os_errors(f"start pool '{name}'"):
            if self.store.is_active(name):
                raise StateError(f"pool '{name}' is already active")
            driver = self._driver(pdef)
            self._refuse_unsafe_target(pdef)  # again: a link on the way may have changed
            driver.refuse_linked_target()  # before anything is mounted on it
            driver.start()
            try:
                driver.remember_target()  # after the mount: what every later verb must find
                self._partials.sweep(driver)
                if driver.streams_listing:
                    self._start_streamed(name, pdef, driver, quick)
                else:
                    sizes, volumes = driver.refresh()
                    self.store.write_extras(name, driver.extras)
                    self.store.write_run_state(
                        name, xmlio.format_pool(reports.live_def(pdef, sizes)))
                    self._cache.replace(name, self._records.apply(name, volumes))
            except BaseException:
                with contextlib.suppress(PoolkeeperError, OSError):
                    driver.stop()
                raise
        self._prober.start(name)  # the headers a quick listing left (needs the pool lock)
        self.bus.publish(PoolChanged(name, "started"))
        return self.pool_info(name)

    def _start_streamed(self, name: str, pdef: PoolDef, driver: PoolDriver,
                        quick: bool) -> None:
        """The pool is active before its volumes are all read (its sizes need no listing),
        so a view shows the first volumes while the scan goes on; a failed scan leaves it
        stopped as it was."""
        self.store.write_extras(name, driver.extras)
        self.store.write_run_state(name, xmlio.format_pool(reports.live_def(pdef, driver.sizes())))
        try:
            if quick:  # readable, or it stays stopped
                driver.volume_names()
            else:
                list_streamed(self._cache, self._records, name, driver,
                              self._prepare, headers=self._headers)
        except BaseException:
            self._cache.drop(name)
            with contextlib.suppress(OSError):
                self.store.clear_run_state(name)
                self.store.write_extras(name, {})
            self.bus.publish(PoolChanged(name, "stopped", journal=False))  # never started
            raise

    def stop_pool(self, name: str) -> None:
        pdef = self.pool_def(name)
        if not self.store.is_active(name):
            raise StateError(f"pool '{name}' is not active")
        if self.jobs.running(name):
            raise StateError(
                f"pool '{name}' has jobs running; wait for them or cancel them first"
            )
        with self.locks.pool(name, exclusive=True, what="stopping"), \
                os_errors(f"stop pool '{name}'"):
            driver = self._driver(pdef)
            driver.stop()
            self.store.clear_run_state(name)
            self.store.write_extras(name, {})
            self.store.remove_transient_definition(name)  # a transient pool is gone now
            self.locks.sweep_volume_locks()  # of volumes deleted or never made, if free
        self._monitor.forget(name)
        self.bus.publish(PoolChanged(name, "stopped"))
        if self.store.read_definition(name) is None:  # transient: gone with its run
            self.bus.publish(PoolChanged(name, "undefined", journal=False))

    def delete_pool(self, name: str, force: bool = False,
                    expected: Sequence[str] | None = None) -> None:
        """Destroy the pool's underlying storage (dir: remove the empty directory). Storage
        that still holds volumes (fs: files on its filesystem, disk: partitions, logical:
        LVs) is refused unless `force`; dir and netfs pools remove only an empty directory,
        forced or not. `expected`: the volumes the caller showed before asking (the TUI
        lists stored_volumes): under the exclusive lock the storage must still hold
        exactly those, or nothing is erased and the error says what changed, so a volume
        made after the list was shown is never erased unseen (pool_contents)."""
        pdef = self.pool_def(name)
        self._require_inactive(name, "delete")
        with self.locks.pool(name, exclusive=True, what="deleting"), \
                os_errors(f"delete pool '{name}'"):
            driver = self._driver(pdef)
            self._partials.sweep(driver)  # a killed create's file must not keep it non-empty
            held = driver.stored_volumes() if expected is not None or not force else None
            if held is not None:  # the pool types whose delete erases volumes
                if expected is not None:
                    refuse_changed(name, held, expected)
                if not force:
                    refuse_held(name, held)
            driver.delete()
        self.bus.publish(PoolChanged(name, "deleted"))

    def _refuse_unsafe_target(self, pdef: PoolDef) -> None:
        """System directories and the state root are never a pool's target, however the
        path is spelled (pathsafety); the default pool's directory is allowed."""
        state = [self.paths.config_dir, self.paths.runtime_dir]
        if self.paths.private_parent is not None:
            state.append(self.paths.private_parent)
        pathsafety.refuse_unsafe_target(
            pdef.target.path, state, allowed=[self.paths.images_dir],
            device_nodes=features(pdef.type).volumes_are_devices)

    def stored_volumes(self, name: str) -> list[str] | None:
        """What an inactive pool's storage still holds, for pool-delete to name first:
        fs, disk and logical pools: the volumes it would erase (see delete_pool); dir and
        netfs pools: the entries of the directory, which make it refuse, forced or not
        (it removes only an empty directory); None for pool types whose delete touches
        no storage (iscsi). Looking changes nothing."""
        pdef = self.pool_def(name)
        self._require_inactive(name, "look inside")
        driver = self._driver(pdef)
        if not driver.features().can_delete_storage:
            return None
        with self.locks.pool(name, exclusive=True, what="looking inside"), \
                os_errors(f"look inside pool '{name}'"):
            held = driver.stored_volumes()
            if held is None and driver.features().delete_needs_empty:
                held = directory_entries(driver)  # what makes its delete refuse
            return held

    def set_autostart(self, name: str, enabled: bool = True) -> None:
        self.pool_def(name)
        self.store.set_autostart(name, enabled)
        self.bus.publish(PoolChanged(name, "autostart"))

    def refresh_pool(self, name: str) -> list[VolumeInfo]:
        """pool-refresh: a fresh listing, and pool-event's refresh event."""
        volumes = self.list_volumes(name)
        self.bus.publish(PoolChanged(name, "refreshed"))
        return volumes

    @routine_read
    def list_volumes(self, pool: str) -> list[VolumeInfo]:
        """A fresh listing (the pool refreshed, with no refresh event: a view's own). The
        leftovers of killed creates are swept after it, from the names it read."""
        driver = self._active_driver(pool, sweep=False)
        with self.locks.pool(pool, exclusive=False, what="refreshing", wait=2.0), \
                os_errors(f"refresh pool '{pool}'"):
            # listed for the first time in this process: shown as it comes
            if driver.streams_listing and list_streamed(
                    self._cache, self._records, pool, driver, self._prepare,
                    first=True, headers=self._headers):
                self._prober.start(pool)
                volumes = self._cache.volumes(pool)
            else:
                volumes = self._records.apply(pool, driver.refresh()[1])
                self._cache.replace(pool, volumes)
        self._partials.sweep_once(pool, driver)
        return volumes

    @routine_read
    def list_pools(self) -> list[PoolStatus]:
        result = []
        for name in self.store.definition_names():
            try:
                result.append(self.pool_info(name))
            except PoolkeeperError as exc:
                result.append(PoolStatus(name=name, type="?", uuid="", state="inaccessible",
                                         autostart=self.store.autostart(name), persistent=True,
                                         source=f"bad definition: {exc}"))
        return result

    @routine_read
    def pool_info(self, name: str) -> PoolStatus:
        pdef = self.pool_def(name)
        autostart = self.store.autostart(name)
        driver = self._driver(pdef) if self.store.is_active(name) else None
        return reports.pool_status(name, pdef, autostart, driver,
                                   persistent=self.store.is_persistent(name))

    @routine_read
    def pool_layout(self, name: str) -> list[DeviceLayout]:
        """Partitions/segments and free extents of each device, for the extent bar."""
        driver = self._active_driver(name)
        with self.locks.pool(name, exclusive=False, what="reading the layout"):
            return driver.layout()

    def build_warning(self, name: str) -> str | None:
        """What building the pool would destroy, in words (None: nothing found)."""
        found = self._driver(self.pool_def(name)).existing_content()
        return "; ".join(found) if found else None

    def pool_xml(self, name: str, inactive: bool = False) -> str:
        pdef = self.pool_def(name)
        if inactive or not self.store.is_active(name):
            return xmlio.format_pool(pdef)
        driver = self._driver(pdef)
        return xmlio.format_pool(reports.live_def(pdef, driver.sizes(), driver))

    # == volume lookup =================================================================
    def volume_info(self, pool: str, name: str) -> VolumeInfo:
        check_name(name, "volume name")
        driver = self._active_driver(pool)
        info = driver.refresh_volume(name)
        if info is None:
            self.locks.check_volume_writer(pool, name)  # being created: say so
            raise VolumeNotFound(f"no volume named '{name}' in pool '{pool}'")
        return self._records.apply(pool, [info])[0]

    def cached_volumes(self, pool: str, names: Iterable[str] | None = None
                       ) -> list[VolumeInfo]:
        """Volumes as of the last refresh (memory only: safe on a UI thread); a quick
        listing's may be pending (VolumeInfo.pending: their headers are being read)."""
        return self._cache.volumes(pool, names)

    def probed_volumes(self, pool: str) -> list[VolumeInfo]:
        """Every volume of the active pool with its header read, for a check to rely on:
        the cache when it holds the whole pool (what is pending is read now), else the
        pool read now (a first listing or scan still coming in is part of the pool)."""
        self._prober.finish(pool)
        if self._cache.complete(pool) and not self._cache.listing(pool):
            volumes = self._cache.volumes(pool)
            if not any(v.pending for v in volumes):
                return volumes
        return self._records.apply(pool, self._active_driver(pool).refresh()[1])

    def probe_first(self, pool: str, names: Iterable[str]) -> None:
        """Read these pending volumes' headers first (the rows on screen; memory only)."""
        self._prober.prefer(pool, names)

    @routine_read
    def volume_users(self, pool: str) -> dict[str, str]:
        """name -> 'process (pid N), ...' for the pool's volumes that processes hold open."""
        driver = self._active_driver(pool)  # (a file's path as listed: no 100,000 new ones)
        by_path = {v.path if driver.volumes_are_files else driver.volume_path(v.name): v.name
                   for v in self.cached_volumes(pool) if v.symlink is None and v.error is None}
        return {by_path[path]: ", ".join(users) for path, users in open_paths(by_path).items()}

    def volume_xml(self, pool: str, name: str) -> str:
        info = self.volume_info(pool, name)
        vdef = volume_def_from_info(info)
        vdef.target.encryption = volume_encryption.described(self.paths.config_dir, info)
        if not features(self.pool_def(pool).type).volume_formats:
            vdef.target.format = None  # as libvirt: these pools have no volume formats
        return xmlio.format_volume(vdef)

    def find_volume(self, ref: str) -> tuple[str, str]:
        """(pool, volume) for a volume path or key, searched in active pools."""
        for pool in self.store.definition_names():
            if not self.store.is_active(pool):
                continue
            try:
                driver = self._driver(self.pool_def(pool))
                base = os.path.basename(ref)
                if base and driver.volume_path(base) == os.path.normpath(ref):
                    return pool, base
            except PoolkeeperError:
                continue
        raise VolumeNotFound(f"no volume with path or key '{ref}' in any active pool")

    # == volume verbs ==================================================================
    def create_volume(self, pool: str, xml: str | bytes) -> Job:
        pdef = self.pool_def(pool)
        return self.create_volume_def(pool, xmlio.parse_volume(xml, pdef.type))

    def check_volume_def(self, pool: str, vdef: VolumeDef) -> volume_requests.Refusal | None:
        """What create_volume_def would refuse before its job; nothing is created."""
        return volume_requests.refusal_of_check(lambda: self._volume_request(pool, vdef),
                                                allocation_asked=bool(vdef.allocation))

    def volume_name_for(self, pool: str, vdef: VolumeDef) -> str | None:
        """The name the storage requires (a disk pool's next partition), or None."""
        return self._active_driver(pool).next_volume_name(vdef)

    def _volume_request(self, pool: str, vdef: VolumeDef
                        ) -> tuple[PoolDriver, VolumeDef, str, list[str]]:
        """create_volume_def's checks: the driver, the definition as it will be made (its
        format and backing resolved), its format and the space warnings."""
        driver = self._active_driver(pool)
        if not driver.can_create_volumes:
            raise Unsupported(f"volumes of a '{driver.type}' pool cannot be created")
        xmlio.validate_volume(vdef, driver.type)
        name = check_name(vdef.name, "volume name")
        fmt = vdef.target.format or driver.default_volume_format or "raw"
        vdef = replace(vdef, target=replace(vdef.target, format=fmt))
        xmlio.refuse_unhonoured(vdef, driver.type)
        volume_requests.refuse_unhonoured_flags(vdef, driver)
        if vdef.target.encryption is not None:  # its secret defined, with a value
            volume_encryption.request_secret(
                volume_encryption.store_for(self.paths.config_dir), vdef)
        if vdef.backing is not None:
            vdef = replace(vdef, backing=self._chains.resolve_backing(
                vdef.backing, block_snapshot=driver.backing_is_snapshot, for_name=name))
            if not vdef.capacity:
                base_pool, base_name = self.find_volume(vdef.backing.path)
                vdef.capacity = self.volume_info(base_pool, base_name).capacity
        if vdef.capacity is None:  # 0 is valid: an empty file, as in libvirt
            raise ValidationError("a volume needs a capacity", element="capacity")
        xmlio.check_allocation_fits(vdef)
        if os.path.lexists(driver.volume_path(name)):
            raise AlreadyExists(f"volume '{name}' already exists in pool '{pool}'")
        warnings = volume_requests.space_check(driver, vdef, fmt)
        driver.check_new_volume(vdef)  # the type's own rules: a partition's name, thin pool
        return driver, vdef, fmt, warnings

    def create_volume_def(self, pool: str, vdef: VolumeDef) -> Job:
        requested_backing = vdef.backing
        driver, vdef, fmt, warnings = self._volume_request(pool, vdef)
        name = vdef.name
        job = self.jobs.create("create", f"create {name} in {pool}", pool, name)
        job.warnings.extend(warnings)
        hold(job, lambda: self.locks.pool(pool, exclusive=False, what="creating a volume"))
        hold_new_volume(job, self.locks, pool, name)

        def work(job: Job) -> VolumeInfo:
            made = vdef
            if requested_backing is not None:  # again: the base may have changed meanwhile
                made = replace(vdef, backing=self._chains.resolve_backing(
                    requested_backing, block_snapshot=driver.backing_is_snapshot, for_name=name))
            driver.create_volume(made, job)
            with shielded():  # made: a cancel from here on changes nothing
                if driver.volume_formats:  # pools without formats have nothing to record
                    self._records.record(pool, name, fmt, job, encryption=(
                        vdef.target.encryption and vdef.target.encryption.format))
                return self._after_change(pool, name, added=True)

        return self.jobs.start(job, work)

    def check_clone(self, pool: str, source: str, new_name: str, *,
                    target_pool: str | None = None, xml: str | bytes | None = None
                    ) -> volume_requests.Refusal | None:
        """What clone_volume would refuse before its job; nothing is copied."""
        return volume_requests.refusal_of_check(
            lambda: self._clone_request(pool, source, new_name, target_pool, xml))

    def _clone_request(self, pool: str, source: str, new_name: str, target_pool: str | None,
                       xml: str | bytes | None) -> tuple[PoolDriver, PoolDriver, VolumeDef]:
        if new_name:  # refused before the source is even looked at
            check_name(new_name, "volume name")
        dst_pool = target_pool or pool
        src_driver, dst_driver = self._active_driver(pool), self._active_driver(dst_pool)
        src = self.volume_info(pool, source)
        if src.error:
            raise StateError(f"volume '{source}' cannot be read: {src.error}")
        vdef = volume_requests.clone_def(src, dst_driver, new_name, xml)
        if os.path.lexists(dst_driver.volume_path(vdef.name)):
            raise AlreadyExists(f"volume '{vdef.name}' already exists in pool '{dst_pool}'")
        self._chains.check_chain(src)
        volume_requests.clone_space_check(src, source, dst_driver, dst_pool)
        volume_requests.check_clone_target(dst_driver, vdef, src)
        return src_driver, dst_driver, vdef

    def clone_volume(self, pool: str, source: str, new_name: str, *,
                     target_pool: str | None = None, xml: str | bytes | None = None,
                     reflink: bool = False, prealloc_metadata: bool = False) -> Job:
        dst_pool = target_pool or pool
        src_driver, dst_driver, vdef = self._clone_request(pool, source, new_name,
                                                           target_pool, xml)
        vdef = volume_requests.with_flags(vdef, src_driver, dst_driver, reflink=reflink,
                                          prealloc_metadata=prealloc_metadata,
                                          src=self.volume_info(pool, source))
        job = self.jobs.create("clone", f"clone {source} to {vdef.name}", dst_pool, vdef.name)
        hold(job, lambda: self.locks.pool(pool, exclusive=False, what="cloning"))
        if dst_pool != pool:
            hold(job, lambda: self.locks.pool(dst_pool, exclusive=False, what="cloning"))
        hold(job, lambda: self.locks.volume(pool, source, exclusive=False,
                                            what="being cloned"))
        hold_new_volume(job, self.locks, dst_pool, vdef.name)

        def work(job: Job) -> str:
            # again, as it is now: the job may have waited in the queue (see recheck_volume)
            now = self.volume_info(pool, source)
            if now.error:
                raise StateError(f"volume '{source}' cannot be read: {now.error}")
            self._chains.check_chain(now)
            volume_requests.refuse_unhonoured_in_clone(now, vdef, dst_driver.type)
            # one a failed clean-up left under this name: its lock is ours now, so it is stale
            if vdef.name in dst_driver.partial_volumes():
                dst_driver.remove_partial(vdef.name)
            method = dst_driver.clone_volume(now, src_driver, vdef, job)
            with shielded():  # made: a cancel from here on changes nothing
                if dst_driver.volume_formats:
                    self._records.record(dst_pool, vdef.name, vdef.target.format or now.format,
                                         job, encryption=now.encryption)
                self._after_change(dst_pool, vdef.name, added=True)
            return method

        return self.jobs.start(job, work)

    def delete_volume(self, pool: str, name: str, delete_snapshots: bool = False) -> None:
        driver = self._active_driver(pool)
        if not driver.can_delete_volumes:
            raise Unsupported(f"volumes of a '{driver.type}' pool cannot be deleted")
        volume_requests.refuse_delete_flags(driver, delete_snapshots)
        info = self.volume_info(pool, name)
        with self.locks.pool(pool, exclusive=False, what="deleting a volume"), \
                self.locks.volume(pool, name, exclusive=True, what="being deleted") as held, \
                os_errors(f"delete volume '{name}'"):
            if info.symlink is None:
                refuse_in_use(info)
                self._users.refuse_backing_of_others(pool, info, spare_snapshots=delete_snapshots)
                self._users.refuse_target_of_others(pool, info)
            delete = (driver.delete_volume_with_snapshots if delete_snapshots
                      else driver.delete_volume)
            delete(info)
            # The record goes while the lock is held: a create of the same name, which
            # can start once it is released, records its new volume after this.
            self._records.forget(pool, name)
            held.release(remove=True)  # the volume is gone: so is its lock file
        self._cache.remove(pool, name)

    def wipe_volume(self, pool: str, name: str, algorithm: str = "zero") -> Job:
        if algorithm not in WIPE_ALGORITHMS:
            raise ValidationError(
                f"unknown wipe algorithm '{algorithm}'; choose one of: "
                + ", ".join(WIPE_ALGORITHMS)
            )
        driver = self._active_driver(pool)
        info = self.volume_info(pool, name)
        job = self.jobs.create("wipe", f"wipe {name} ({algorithm})", pool, name)
        hold(job, lambda: self.locks.pool(pool, exclusive=False, what="wiping"))
        hold(job, lambda: self.locks.volume(pool, name, exclusive=True,
                                            what="being wiped"))
        check_or_release(job, lambda: refuse_in_use(info))

        def work(job: Job) -> None:
            now = self._users.recheck_volume(pool, name)
            driver.wipe_volume(now, algorithm, job)
            with shielded():  # done: a cancel from here on changes nothing
                if driver.volumes_are_files and (now.format not in ("raw", "dir")
                                                 or now.encryption):
                    # The bytes are no longer an image of that format.
                    self._records.record(pool, name, "raw", job)
                    was = now.format + (f", {now.encryption}-encrypted" if now.encryption else "")
                    job.warnings.append(f"'{name}' was {was}; after the wipe it is raw")
                self._after_change(pool, name)

        return self.jobs.start(job, work)

    def check_resize(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                     shrink: bool = False, allocate: bool = False
                     ) -> volume_requests.Refusal | None:
        """What resize_volume would refuse before its job, or of its start (a user of the
        volume); nothing is changed."""
        def check() -> None:
            info = self.volume_info(pool, name)
            volume_requests.resize_request(
                self._active_driver(pool), info, pool, capacity, delta=delta, shrink=shrink,
                allocate=allocate, check_chain=self._chains.check_chain)
            refuse_in_use(info, writers_only=not shrink)
        return volume_requests.refusal_of_check(check, allocation_asked=allocate)

    def resize_volume(self, pool: str, name: str, capacity: int, *, delta: bool = False,
                      shrink: bool = False, allocate: bool = False) -> Job:
        driver = self._active_driver(pool)
        info = self.volume_info(pool, name)
        new, warnings = volume_requests.resize_request(
            driver, info, pool, capacity, delta=delta, shrink=shrink, allocate=allocate,
            check_chain=self._chains.check_chain)
        job = self.jobs.create("resize", f"resize {name} to {human(new)}", pool, name)
        job.warnings.extend(warnings)
        hold(job, lambda: self.locks.pool(pool, exclusive=False, what="resizing"))
        hold(job, lambda: self.locks.volume(pool, name, exclusive=True,
                                            what="being resized"))
        # A guest writing the volume sees its disk change size under it (qemu-img resize of
        # an image in use corrupts it); cutting off the end is refused to any other user.
        check_or_release(job, lambda: refuse_in_use(info, writers_only=not shrink))

        def work(job: Job) -> VolumeInfo:
            now = self._users.recheck_volume(pool, name, writers_only=not shrink)
            if now.format != "raw":  # as above: qemu-img resize opens its files
                self._chains.check_chain(now)
            volume_requests.refuse_unasked_shrink(now, new, shrink)
            driver.resize_volume(now, new, allocate=allocate, shrink=shrink, ctx=job)
            with shielded():  # done: a cancel from here on changes nothing
                return self._after_change(pool, name)

        return self.jobs.start(job, work)

    def upload_volume(self, pool: str, name: str, src_path: str, *, offset: int = 0,
                      length: int | None = None, sparse: bool = False) -> Job:
        driver = self._active_driver(pool)
        info = self.volume_info(pool, name)
        job = self.jobs.create("upload", f"upload {os.path.basename(src_path)} to {name}",
                               pool, name)
        hold(job, lambda: self.locks.pool(pool, exclusive=False, what="uploading"))
        hold(job, lambda: self.locks.volume(pool, name, exclusive=True,
                                            what="being uploaded to"))
        check_or_release(job, lambda: refuse_in_use(info))

        def work(job: Job) -> int:
            now = self._users.recheck_volume(pool, name)
            written = driver.upload_volume(now, src_path, offset, length, job, sparse=sparse)
            with shielded():  # done: a cancel from here on changes nothing
                self._after_change(pool, name)
            return written

        return self.jobs.start(job, work)

    def download_volume(self, pool: str, name: str, dst_path: str, *, offset: int = 0,
                        length: int | None = None, sparse: bool = False) -> Job:
        driver = self._active_driver(pool)
        info = self.volume_info(pool, name)
        self._download_targets.refuse_volume_as_target(dst_path, info)
        job = self.jobs.create("download", f"download {name}", pool, name)
        hold(job, lambda: self.locks.pool(pool, exclusive=False, what="downloading"))
        hold(job, lambda: self.locks.volume(pool, name, exclusive=False,
                                            what="being downloaded"))

        def refuse(st: os.stat_result, path: str) -> None:
            self._download_targets.refuse_pool_object(st, path, info)

        def work(job: Job) -> int:
            # Looked at again on the file the download opened, before it is written.
            with fileops.checking_download_targets(refuse):
                return driver.download_volume(info, dst_path, offset, length, sparse, job)

        return self.jobs.start(job, work)

    def cancel_job(self, job_id: int) -> None:
        job = self.jobs.get(job_id)
        if job is None:
            raise PoolkeeperError(f"no job {job_id}")
        job.cancel()

    # == after a change ================================================================
    def _after_change(self, pool: str, name: str, added: bool = False) -> VolumeInfo:
        info = self.volume_info(pool, name)
        self._cache.put(pool, name, info, added)
        return info

    # == live monitor ==================================================================
    def start_monitor(self, interval: float = MONITOR_INTERVAL) -> None:
        self._monitor.start(interval)

    def stop_monitor(self) -> None:
        self._monitor.stop()

    def poll(self) -> None:
        """One monitor round: cheap token per active pool, rescan only what changed."""
        self._monitor.poll()
