"""dir pools: a directory of image files. fs and netfs pools reuse all of it on a mount point.

Every file act goes through a descriptor of the pool directory and openat(name, O_NOFOLLOW)
with a validated name, so nothing outside the directory is ever written, wiped or deleted.
The directory itself is opened O_NOFOLLOW|O_DIRECTORY, and its (device, inode) must be the
one recorded when the pool started (after the mount, for fs and netfs): a target, or a
directory above it, swapped for a link or another directory makes the pool inaccessible
until it is stopped and started again; sizes come from that descriptor too (fstatvfs).
A volume written, copied or handed to qemu-img is the very file the controller checked
(checked_image.py).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar

from .. import blockprobe, fileops, imageprobe, runner
from .. import volume_encryption as crypt
from ..checks import require_local_backing
from ..errors import (
    Cancelled,
    PoolkeeperError,
    StateError,
    UnsafePath,
    Unsupported,
    ValidationError,
    VolumeNotFound,
)
from ..model import (
    CREATABLE_FILE_FORMATS,
    FILE_VOLUME_FORMATS,
    Permissions,
    PoolDef,
    PoolSizes,
    VolumeDef,
    VolumeInfo,
)
from ..names import PARTIAL_PREFIX, check_name
from ..progress import JobContext, shielded
from ..textsafe import describe, first_unsafe
from .base import Claim, PoolDriver, SpaceToken
from .checked_image import image_spec, open_checked, refuse_unchecked_header
from .dir_listing import (
    LINK,
    REGULAR,
    SPECIAL,
    UNKNOWN,
    beside,
    entry_kind,
    fill,
    gc_paused,
    quick_file,
    stamp,
)
from .fddata import FdDataVerbs
from .probe_cache import ProbeCache

DEFAULT_POOL_MODE = 0o711
DEFAULT_VOLUME_MODE = 0o600
QEMU_IMG_TIMEOUT = 600.0  # seconds for qemu-img create/resize (convert has no limit: a job)
_PERCENT_RE = re.compile(r"\(([\d.]+)/100%\)")
_REBASE_FORMATS = ("qcow2", "qed")  # qemu can rewrite their backing name (not qcow, vmdk)
LISTING_BATCH = 512  # volumes per batch of a streamed listing (refresh_batches)


class DirDriver(FdDataVerbs, PoolDriver):
    # FdDataVerbs: download through the volume's fd; wipe and upload are dir's own (below)
    type = "dir"
    volume_formats = FILE_VOLUME_FORMATS
    creatable_formats = CREATABLE_FILE_FORMATS
    default_volume_format = "raw"
    can_create_volumes = True
    can_delete_volumes = True
    can_resize_volumes = True
    can_build = True
    volumes_are_files = True
    supports_cow = True
    delete_needs_empty = True
    target_hint = "the directory that holds the volumes"
    build_does = "creates the target directory {target}"
    delete_does = "removes the directory {target}, which must be empty"
    target_placeholder = "/var/lib/libvirt/images"
    # Directories at the top of the target that are not volumes (a filesystem's own).
    not_volumes: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        """The target directory, however it is spelled (a symlink, "//", "/./", ".." or a
        trailing slash)."""
        path = pool.target.path
        if not path:
            return []
        return [Claim("directory", key, f"target path '{path}'")
                for key in blockprobe.directory_keys(path)]

    @property
    def target(self) -> str:
        path = self.pool.target.path
        if not path:
            raise StateError(f"pool '{self.name}' has no target path")
        return path

    @contextlib.contextmanager
    def dir_fd(self) -> Iterator[int]:
        """A descriptor of the pool directory; all volume acts are relative to it. The
        target is opened without following a link at it, and must be the directory that
        was there when the pool started (same device and inode): a target or a parent
        swapped since then is refused, never followed."""
        fd = self._open_target()
        try:
            self._check_identity(fd)
            yield fd
        finally:
            os.close(fd)

    def watched_dir(self) -> contextlib.AbstractContextManager[int]:
        return self.dir_fd()

    def _open_target(self) -> int:
        """The target opened O_NOFOLLOW|O_DIRECTORY (no identity check: see dir_fd)."""
        try:
            return os.open(self.target,
                           os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise StateError(f"the directory '{self.target}' of pool '{self.name}' does not "
                             f"exist; build the pool (pool-build {self.name})") from None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            if os.path.islink(self.target):
                raise self._link_error() from None
            raise StateError(f"'{self.target}' of pool '{self.name}' is not a directory "
                             f"({exc.strerror})") from None

    def _link_error(self) -> PoolkeeperError:
        try:
            points_to = f" (to '{os.readlink(self.target)}')"
        except OSError:
            points_to = ""
        if self._recorded_identity() is not None:
            return StateError(self._changed(f"'{self.target}' is now a symbolic link{points_to}"))
        return UnsafePath(
            f"the target '{self.target}' of pool '{self.name}' is a symbolic link{points_to}; "
            "poolkeeper does not follow it (whoever can change the link could point the pool "
            "anywhere): define the pool on the real directory"
            + (f" ('{os.path.realpath(self.target)}')" if points_to else "")
        )

    def refuse_linked_target(self) -> None:
        """Before a start mounts or opens anything: a link at the target is refused."""
        if os.path.islink(self.target):
            raise self._link_error()

    # The (device, inode) of the target when the pool started, in extras.
    _IDENTITY_KEY = "target_identity"

    def _recorded_identity(self) -> tuple[int, int] | None:
        rec = self.extras.get(self._IDENTITY_KEY)
        if (isinstance(rec, list) and len(rec) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in rec)):
            return rec[0], rec[1]
        return None

    def _check_identity(self, fd: int) -> None:
        recorded = self._recorded_identity()
        if recorded is None:
            return  # not started by this version (or inactive): O_NOFOLLOW only
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != recorded:
            raise StateError(self._changed(
                f"'{self.target}' is now another directory: device {st.st_dev}, inode "
                f"{st.st_ino}; at start: device {recorded[0]}, inode {recorded[1]}"))

    def _changed(self, what: str) -> str:
        return (f"the target of pool '{self.name}' changed since it started ({what}); "
                f"stop and start the pool (pool-destroy {self.name}; pool-start {self.name})")

    def remember_target(self) -> None:
        """Record which directory the target is now (after the mount, for fs and netfs):
        the controller calls it when the pool starts and keeps it in the pool's extras."""
        self.extras.pop(self._IDENTITY_KEY, None)
        fd = self._open_target()
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self.extras[self._IDENTITY_KEY] = [st.st_dev, st.st_ino]

    # -- pool --------------------------------------------------------------------------
    def check(self) -> bool:
        """The directory is there (a changed target raises, to say how)."""
        try:
            with self.dir_fd():
                return True
        except StateError:
            if not os.path.lexists(self.target):
                return False
            raise

    def build(self, overwrite: bool | None, ctx: JobContext) -> None:
        perms = self.pool.target.permissions or Permissions()
        mode = perms.mode if perms.mode is not None else DEFAULT_POOL_MODE
        target = self.target
        parent = os.path.dirname(target)
        if parent:
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(target, mode)
            created = True
        except FileExistsError:
            if os.path.islink(target):
                raise self._link_error() from None
            if not os.path.isdir(target):
                raise StateError(
                    f"'{target}' exists and is not a directory; choose another target path"
                ) from None
            created = False
        # Mode and owner go through the directory opened without following a link, so a
        # target swapped for a link after the mkdir cannot redirect the chmod/chown.
        fd = self._open_target()
        try:
            # An existing directory keeps its mode unless the definition asks for one
            # (pool-build on /srv must not change /srv's permissions).
            if created or perms.mode is not None:
                os.fchmod(fd, mode)  # mkdir's mode went through the umask
            if perms.owner is not None or perms.group is not None:
                os.fchown(fd, -1 if perms.owner is None else perms.owner,
                          -1 if perms.group is None else perms.group)
        finally:
            os.close(fd)

    def start(self) -> None:
        self.extras.pop(self._IDENTITY_KEY, None)  # a stale one of a killed stop
        try:
            os.close(self._open_target())  # a link at the target is refused, never followed
        except StateError:
            if os.path.lexists(self.target):
                raise
            raise StateError(f"the directory '{self.target}' does not exist; build the pool "
                             f"first (pool-build {self.name})") from None

    def stop(self) -> None:
        self.extras.pop(self._IDENTITY_KEY, None)

    def delete(self) -> None:
        """Remove the empty directory: the one the target names without following a link
        at it, checked empty through its descriptor and removed by name from its parent
        only while that name is still the directory checked."""
        try:
            fd = self._open_target()
        except StateError:
            if os.path.lexists(self.target):
                raise
            return  # already gone
        try:
            count = len(os.listdir(fd))
            mine = os.fstat(fd)
        finally:
            os.close(fd)
        if count:
            raise StateError(
                f"the directory '{self.target}' is not empty ({count} entries); delete its "
                "volumes first — poolkeeper never removes files it was not asked to"
            )
        parent, base = os.path.split(self.target)
        pfd = os.open(parent or "/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            there = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if (there.st_dev, there.st_ino) != (mine.st_dev, mine.st_ino):
                raise StateError(f"'{self.target}' changed while pool '{self.name}' was being "
                                 "deleted; look at it and try again")
            os.rmdir(base, dir_fd=pfd)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise StateError(
                    f"the directory '{self.target}' is not empty; delete its volumes first — "
                    "poolkeeper never removes files it was not asked to"
                ) from None
            raise
        finally:
            os.close(pfd)

    def sizes(self) -> PoolSizes:
        with self.dir_fd() as fd:
            st = os.fstatvfs(fd)  # of the directory checked, not of whatever the path is now
        capacity = st.f_frsize * st.f_blocks
        available = st.f_frsize * st.f_bfree
        return PoolSizes(capacity, capacity - available, available)

    def change_token(self) -> object:
        with self.dir_fd() as fd:
            st = os.fstat(fd)
            vfs = os.fstatvfs(fd)
        return SpaceToken((st.st_mtime_ns, st.st_ino), (vfs.f_bfree, vfs.f_blocks))

    def volume_path(self, name: str) -> str:
        return os.path.join(self.target, check_name(name, "volume name"))

    # -- refresh -----------------------------------------------------------------------
    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        """Every header read now: what the checks before a delete list (see probe_cache)."""
        return self.sizes(), [v for batch in self.refresh_batches(cached=False)
                              for v in batch]

    streams_listing = True

    def refresh_batches(self, batch: int = LISTING_BATCH, *, headers: bool = True,
                        cached: bool = True) -> Iterator[list[VolumeInfo]]:
        """The volumes, `batch` at a time as the scan finds them (directory order), so a
        caller can show the first while the rest are read (see StorageController's
        streamed listing). headers=False: regular files from one lstat, headers unread.
        cached=False: no header from the probe cache (nor kept in it)."""
        prefix = sys.intern(self.target.rstrip("/") + "/")
        with self.dir_fd() as dfd, os.scandir(dfd) as entries:
            # What unchanged files' headers said last time (probe_cache.py): not reread.
            # A quick listing takes what it can from it (those rows come whole, not
            # pending) and leaves it as it is: it knows nothing new.
            cache = ProbeCache.open(self.runtime_dir, self.name, self.target, dfd) \
                if cached else None
            # The entry type comes from the directory itself (d_type): no stat needed to
            # tell a regular file from a link or a FIFO. Read as scanned: the first batch
            # comes before the rest of a big directory is read.
            listing: list[tuple[str, int]] = []
            partials: list[str] = []  # volumes being built (or left half-built)
            for e in entries:
                if e.name.startswith(PARTIAL_PREFIX):
                    partials.append(e.name)
                else:
                    listing.append((e.name, entry_kind(e)))
                if len(listing) >= batch:
                    yield self._scan_batch(dfd, listing, prefix, headers, cache)
                    listing = []
            yield self._scan_batch(dfd, listing, prefix, headers, cache)
            self.listed_partials = partials  # the directory read whole: remove_partials
            if cache is not None and headers:  # once every file was read: names gone go
                cache.save()

    def _scan_batch(self, dfd: int, listing: list[tuple[str, int]], prefix: str,
                    headers: bool = True, cache: ProbeCache | None = None
                    ) -> list[VolumeInfo]:
        volumes: list[VolumeInfo] = []
        learning = cache if headers else None
        recall = None if cache is None else cache.recall
        not_volumes = self.not_volumes
        with gc_paused():
            for name, kind in listing:
                plain = kind == REGULAR and name not in not_volumes
                # (a name first_unsafe refuses is never recalled: _scan says what is wrong)
                info = recall(dfd, name, prefix + name) if plain and recall else None
                if info is None and plain and not headers:
                    info = quick_file(dfd, name, prefix)
                if info is None:
                    info = self._scan(dfd, name, kind, prefix, headers)
                    if learning is not None and info is not None:
                        learning.learn(name, info)
                if info is not None:
                    volumes.append(info)
        return volumes

    def refresh_volume(self, name: str) -> VolumeInfo | None:
        """Re-read one volume (None if it is gone or not a volume)."""
        with self.dir_fd() as dfd:
            return self._scan(dfd, name, UNKNOWN, self.target.rstrip("/") + "/")

    # -- the live monitor's slices (backends/monitor.py) --------------------------------
    def volume_names(self) -> list[str] | None:
        with self.dir_fd() as dfd:
            return [n for n in os.listdir(dfd) if not n.startswith(PARTIAL_PREFIX)]

    def refresh_volumes(self, names: list[str]) -> list[VolumeInfo | None]:
        """refresh_volume of each name through one descriptor (closed on return: nothing
        is held open between slices, so a stop can unmount)."""
        prefix = self.target.rstrip("/") + "/"
        with self.dir_fd() as dfd, gc_paused():
            return [None if not n or n.startswith(PARTIAL_PREFIX) or "/" in n
                    else self._scan(dfd, n, UNKNOWN, prefix) for n in names]

    def _scan(self, dfd: int, name: str, kind: int, prefix: str,
              headers: bool = True) -> VolumeInfo | None:
        if name in self.not_volumes:
            with contextlib.suppress(OSError):
                if stat.S_ISDIR(os.lstat(name, dir_fd=dfd).st_mode):
                    return None  # the filesystem's own directory (lost+found)
        path = prefix + name
        info = VolumeInfo(name=name, key=path, path=path)
        if kind == UNKNOWN:
            try:
                mode = os.lstat(name, dir_fd=dfd).st_mode
            except FileNotFoundError:
                return None  # deleted behind our back while we listed
            kind = LINK if stat.S_ISLNK(mode) else REGULAR if (
                stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISBLK(mode)) else SPECIAL
        if kind == SPECIAL:
            return None  # FIFO, socket, character device: not a volume, never opened
        bad = first_unsafe(name)  # the characters check_name refuses in a new name
        if bad is not None:
            info.error = f"the file name holds {describe(bad)}; rename it to manage it"
            return info
        if kind == REGULAR and not headers:  # a quick listing: format, capacity unknown
            with contextlib.suppress(FileNotFoundError):  # (gone: the open below says so)
                st = os.lstat(name, dir_fd=dfd)
                if stat.S_ISREG(st.st_mode):  # (a directory is opened, below)
                    info.format, info.pending = "", True
                    info.physical, info.allocation = stamp(info, st)
                    return info
        if kind == LINK:
            with contextlib.suppress(OSError):
                info.symlink = os.readlink(name, dir_fd=dfd)
            try:
                target_mode = os.stat(name, dir_fd=dfd).st_mode  # follows the link
            except FileNotFoundError:
                info.error = f"dangling symlink to '{info.symlink}'"
                return info
            except OSError as exc:
                info.error = f"cannot follow the link: {exc.strerror}"
                return info
            if not (stat.S_ISREG(target_mode) or stat.S_ISBLK(target_mode)
                    or stat.S_ISDIR(target_mode)):
                return None  # a link to a FIFO or a character device: never opened
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                         dir_fd=dfd)
        except FileNotFoundError:
            if info.symlink is None:
                return None
            info.error = f"dangling symlink to '{info.symlink}'"
            return info
        except OSError as exc:
            info.error = f"cannot open: {exc.strerror}"
            return info
        try:
            return fill(info, fd)
        except OSError as exc:
            info.error = f"cannot read: {exc.strerror}"
            return info
        finally:
            os.close(fd)

    # -- volumes -----------------------------------------------------------------------
    def open_volume_read(self, vol: VolumeInfo) -> int:
        with self.dir_fd() as dfd:
            return fileops.open_volume(dfd, check_name(vol.name, "volume name"), os.O_RDONLY)

    listed_partials: list[str] | None = None  # what this driver's last whole listing met

    def remove_partials(self) -> list[str]:
        """Remove the files of creates and clones a killed process left half-made (the
        controller calls it when it starts the pool or first uses it; after a listing,
        from the names it read: not the whole directory again, ~4 ms of a vol-list)."""
        names, self.listed_partials = self.listed_partials, None
        with self.dir_fd() as dfd:
            return fileops.remove_partials(dfd, names)

    def _building(self, dfd: int, name: str,
                  vol: VolumeDef) -> contextlib.AbstractContextManager[fileops.Partial]:
        perms = vol.target.permissions or Permissions()
        return fileops.building(dfd, name, mode=self._mode(vol), owner=perms.owner,
                                group=perms.group)

    def _apply_permissions(self, fd: int, vol: VolumeDef) -> None:
        """Mode and owner the XML asks for, again after a tool wrote the file."""
        perms = vol.target.permissions or Permissions()
        os.fchmod(fd, self._mode(vol))
        if perms.owner is not None or perms.group is not None:
            os.fchown(fd, -1 if perms.owner is None else perms.owner,
                      -1 if perms.group is None else perms.group)

    def create_volume(self, vol: VolumeDef, ctx: JobContext) -> None:
        name = check_name(vol.name, "volume name")
        fmt = vol.target.format or self.default_volume_format or "raw"
        if fmt not in self.creatable_formats:
            raise Unsupported(
                f"poolkeeper cannot create '{fmt}' volumes; choose one of: "
                + ", ".join(self.creatable_formats)
            )
        capacity = vol.capacity or 0
        if fmt == "raw" and vol.backing is not None:
            raise ValidationError("a raw volume cannot have a backing store; use qcow2",
                                  element="backingStore")
        with self.dir_fd() as dfd:
            if fmt == "raw" and vol.target.encryption is None:  # else qemu-img's luks
                allocation = capacity if vol.allocation is None else min(vol.allocation, capacity)
                perms = vol.target.permissions or Permissions()
                fileops.create_raw(
                    dfd, name, capacity, allocation, mode=self._mode(vol), owner=perms.owner,
                    group=perms.group, nocow=vol.target.nocow, ctx=ctx,
                )
                return
            with self._building(dfd, name, vol) as part:
                # the file we created, by its fd: a name swapped for a link cannot redirect it
                argv = self._qemu_img_create_argv(vol, fmt, capacity, f"/dev/fd/{part.fd}")
                (crypt.run_create if vol.target.encryption else runner.run)(
                    argv, pass_fds=(part.fd,), timeout=QEMU_IMG_TIMEOUT)
                self._apply_permissions(part.fd, vol)
                ctx.update(capacity, capacity)
            crypt.remember_created(self.config_dir, vol, self.volume_path(name), ctx)

    def _qemu_img_create_argv(self, vol: VolumeDef, fmt: str, capacity: int,
                              path: str) -> list[str]:
        objects, qemu_fmt, crypt_opts = crypt.create_args(
            self.config_dir, vol, fmt, self.volume_path(vol.name))
        argv = ["qemu-img", "create", *objects, "-f", qemu_fmt]
        if vol.backing is not None:
            if fmt not in ("qcow2", "qcow", "qed", "vmdk"):
                raise ValidationError(f"'{fmt}' volumes cannot have a backing store",
                                      element="backingStore")
            if not vol.backing.format:
                raise ValidationError(
                    "the backing store needs its format (<format type=.../> or "
                    "--backing-vol-format): poolkeeper never guesses a backing file's format",
                    element="backingStore",
                )
            require_local_backing(vol.backing.path)  # qemu-img would open json:/nbd: itself
            # -u: qemu-img does not open the backing file at all (it would follow that
            # file's own header); the controller checked its chain, the size is given
            argv += ["-u", "-b", vol.backing.path, "-F", vol.backing.format]
        opts = (_qcow2_options(vol) if fmt == "qcow2" else []) + crypt_opts
        if opts:
            argv += ["-o", ",".join(opts)]
        argv.append(path)
        if capacity < 0:  # "-5K" would be read as an option
            raise ValidationError(f"capacity {capacity} must not be negative", element="capacity")
        argv.append(f"{-(-capacity // 1024)}K")  # whole KiB, rounded up; no float (0: empty)
        return argv

    def clone_volume(self, src: VolumeInfo, src_driver: PoolDriver, vol: VolumeDef,
                     ctx: JobContext) -> str:
        """A copy of `src` (its chain checked by the controller). Same format: byte for byte,
        unless the copy would not name the same files as the source: a vmdk descriptor's
        extents would be shared (so it is converted), and a backing file named relative to
        the source's directory would be looked up in ours (so the copy names it by its full
        path, or is flattened where the format cannot be rebased). The result says which."""
        name = check_name(vol.name, "volume name")
        fmt = vol.target.format or src.format
        capacity = max(vol.capacity or 0, src.capacity)
        if src.type == "dir":
            raise Unsupported(f"'{src.name}' is a directory; only image files can be cloned")
        if not isinstance(src_driver, DirDriver):
            return self._clone_from_device(src, src_driver, vol, ctx)
        if fmt != src.format and fmt not in self.creatable_formats:
            raise Unsupported(f"cannot convert to '{fmt}'")
        crypt.check_clone(src, vol, fmt, capacity, self.config_dir, self.volume_path(name))
        with self.dir_fd() as dfd, src_driver.dir_fd() as sfd, \
                self._building(dfd, name, vol) as part:
            # the file the controller checked (identity, header), copied and handed to
            # qemu-img from this fd only
            src_fd = open_checked(sfd, src, os.O_RDONLY)
            try:
                refuse_unchecked_header(src, src_fd)
                relink = self._backing_to_relink(src, src_fd, name)
                flatten = relink and fmt not in _REBASE_FORMATS
                note = ""
                byte_copy = fmt == src.format and not src.extent_files and not flatten
                if vol.reflink and not byte_copy:  # qemu-img convert writes a new image
                    raise Unsupported(f"--reflink copies byte for byte; '{src.name}' needs a "
                                      "conversion: leave --reflink out")
                if vol.prealloc_metadata and src.backing is not None:  # convert flattens
                    raise Unsupported(f"--prealloc-metadata writes a new image, and '{src.name}'"
                                      " has a backing file the copy would lose")
                if byte_copy and not vol.prealloc_metadata:
                    size = os.lseek(src_fd, 0, os.SEEK_END)
                    method = fileops.clone_fd(src_fd, part.fd, size, sparse=True, ctx=ctx,
                                              reflink_only=vol.reflink)
                    if fmt == "raw" and capacity > size:
                        os.ftruncate(part.fd, capacity)
                    copy = replace(src, format=fmt)
                    if relink:
                        note = self._relink_backing(copy, part.fd)
                else:
                    self._qemu_img_convert(src, src_fd, fmt, part.fd, ctx,
                                           _qcow2_options(vol) if fmt == "qcow2" else [])
                    method = "qemu-img convert"
                    # a new image of its own: no backing file, data file or extents
                    copy = replace(src, format=fmt, backing=None, backing_chain=[],
                                   data_file=None, extent_files=[])
                    if flatten:
                        note = ("; flattened: the source names its backing file relative to "
                                f"its own directory, and {fmt} images cannot be rebased")
            finally:
                os.close(src_fd)
            if capacity > src.capacity and (fmt != "raw" or method == "qemu-img convert"):
                self._qemu_img_grow(copy, part.fd, capacity)
            self._apply_permissions(part.fd, vol)
            ctx.update(src.capacity, src.capacity)
        crypt.remember_clone(self.config_dir, src, self.volume_path(name), ctx)
        return method + note

    def _backing_to_relink(self, src: VolumeInfo, src_fd: int, new_name: str) -> bool:
        """Would the copy's header name another backing file than the source's? (A relative
        name is looked up beside the image, and the copy lives in this pool's directory.)"""
        if src.backing is None:
            return False
        written = imageprobe.probe_fd(src_fd, os.fstat(src_fd).st_size).backing
        return bool(written) and beside(self.volume_path(new_name), written) != src.backing.path

    @staticmethod
    def _relink_backing(copy: VolumeInfo, fd: int) -> str:
        """Name the backing file of the copy open as `fd` by its full path, with its format
        (qemu-img rebase -u changes only the header; "backing": null keeps it from opening
        the old name)."""
        assert copy.backing is not None and copy.backing.format
        spec = image_spec(replace(copy, backing=None), fd)
        runner.run(["qemu-img", "rebase", "-u", "-b", copy.backing.path, "-F",
                    copy.backing.format, spec], pass_fds=(fd,), timeout=QEMU_IMG_TIMEOUT)
        return (f"; its backing file is now named by its full path {copy.backing.path} "
                f"({copy.backing.format})")

    def _clone_from_device(self, src: VolumeInfo, src_driver: PoolDriver, vol: VolumeDef,
                           ctx: JobContext) -> str:
        """An LV, partition or LUN into a file: its bytes are the image (a partition's
        "format" is its type in the table, not its content), read from the fd its driver
        opened; zero blocks stay holes in a raw file, qemu-img converts to the rest."""
        name = check_name(vol.name, "volume name")
        fmt = vol.target.format or "raw"
        if fmt not in self.creatable_formats:
            raise Unsupported(f"cannot convert to '{fmt}'")
        capacity = max(vol.capacity or 0, src.capacity)
        as_raw = replace(src, format="raw", backing=None)
        src_fd = src_driver.open_volume_read(src)
        try:
            with self.dir_fd() as dfd, self._building(dfd, name, vol) as part:
                if fmt == "raw":
                    method = fileops.clone_fd(src_fd, part.fd, capacity, sparse=True, ctx=ctx)
                else:
                    self._qemu_img_convert(as_raw, src_fd, fmt, part.fd, ctx,
                                           _qcow2_options(vol) if fmt == "qcow2" else [])
                    method = "qemu-img convert"
                    if capacity > src.capacity:
                        self._qemu_img_grow(replace(as_raw, format=fmt), part.fd, capacity)
                self._apply_permissions(part.fd, vol)
                ctx.update(src.capacity, src.capacity)
        finally:
            os.close(src_fd)
        return method

    def _qemu_img_convert(self, src: VolumeInfo, src_fd: int, fmt: str, dst_fd: int,
                          ctx: JobContext, options: list[str] | None = None) -> None:
        """qemu-img convert with its progress meter (-p) feeding the job; cancel kills it.
        Source and destination are the files we opened, by fd, never their names."""
        total = src.capacity
        ctx.update(0, total)

        def progress(line: str) -> None:
            match = _PERCENT_RE.search(line)
            if match:
                ctx.done = int(total * float(match.group(1)) / 100)
                with contextlib.suppress(Cancelled):  # the stop watcher kills the tool
                    ctx.update(ctx.done, total)

        runner.run_with_progress(
            ["qemu-img", "convert", "-p", image_spec(src, src_fd), "-O", fmt,
             *(["-o", ",".join(options)] if options else []), f"/dev/fd/{dst_fd}"],
            progress, lambda: ctx.cancelled, pass_fds=(src_fd, dst_fd),
        )
        ctx.check()

    @staticmethod
    def _mode(vol: VolumeDef) -> int:
        perms = vol.target.permissions
        return perms.mode if perms and perms.mode is not None else DEFAULT_VOLUME_MODE

    @staticmethod
    def _qemu_img_grow(image: VolumeInfo, fd: int, capacity: int) -> None:
        """Grow the image being built (open as `fd`, described by `image`) to `capacity`;
        by image_spec, so a backing name in the new header is never looked up by qemu."""
        size = (capacity + 511) // 512 * 512
        runner.run(["qemu-img", "resize", image_spec(image, fd), str(size)],
                   pass_fds=(fd,), timeout=QEMU_IMG_TIMEOUT)

    def delete_volume(self, vol: VolumeInfo) -> None:
        name = check_name(vol.name, "volume name")
        with self.dir_fd() as dfd:
            try:
                st = os.lstat(name, dir_fd=dfd)
            except FileNotFoundError:
                raise VolumeNotFound(
                    f"volume '{name}' is already gone from pool '{self.name}'"
                ) from None
            if stat.S_ISDIR(st.st_mode):
                try:
                    os.rmdir(name, dir_fd=dfd)
                except OSError as exc:
                    if exc.errno == errno.ENOTEMPTY:
                        raise StateError(f"directory volume '{name}' is not empty") from None
                    raise
            else:
                os.unlink(name, dir_fd=dfd)  # a symlink goes as a link; its target stays
                crypt.forget(self.config_dir, self.volume_path(name))

    def _open_rw(self, vol: VolumeInfo) -> int:
        """The volume opened for writing: the very file the controller checked."""
        with self.dir_fd() as dfd:
            return open_checked(dfd, vol, os.O_RDWR)

    def wipe_volume(self, vol: VolumeInfo, algorithm: str, ctx: JobContext) -> None:
        if vol.symlink is not None:
            raise UnsafePath(f"'{vol.name}' is a symlink; poolkeeper does not wipe through links")
        fd = self._open_rw(vol)
        try:
            fileops.wipe_fd(fd, algorithm, ctx=ctx)
        finally:
            os.close(fd)

    def check_resize(self, vol: VolumeInfo, capacity: int, *, allocate: bool,
                     shrink: bool) -> None:
        if vol.type == "dir":
            raise Unsupported(f"'{vol.name}' is a directory; it has no size to change")
        if vol.symlink is not None:
            raise UnsafePath(f"'{vol.name}' is a symlink; resize the file it points to instead")
        if (vol.format != "raw" or vol.encryption) and allocate:
            raise Unsupported("--allocate is only supported for unencrypted raw volumes")

    def resize_volume(self, vol: VolumeInfo, capacity: int, *, allocate: bool, shrink: bool,
                      ctx: JobContext) -> None:
        self.check_resize(vol, capacity, allocate=allocate, shrink=shrink)
        fd = self._open_rw(vol)  # O_NOFOLLOW: the file checked is the file resized
        try:
            if vol.format != "raw" or vol.encryption:  # a LUKS raw one: qemu-img, the key
                ctx.check()  # cancelled while queued: not started
                # qemu-img resize is one step a cancel never cuts short (runner): once it
                # has run the resize is made, so the job ends done, not "cancelled"
                with shielded():
                    self._resize_image_fd(vol, fd, capacity, shrink)
            else:
                fileops.resize_raw_fd(fd, capacity, allocate=allocate, ctx=ctx)
        finally:
            os.close(fd)

    def _resize_image_fd(self, vol: VolumeInfo, fd: int, capacity: int, shrink: bool) -> None:
        """qemu-img resize of the image open as `fd` (see image_spec), with its key."""
        objects, spec = crypt.opened_image(self.config_dir, vol, fd)
        argv = ["qemu-img", "resize", *objects, *(["--shrink"] if shrink else []),
                spec, str((capacity + 511) // 512 * 512)]
        runner.run(argv, pass_fds=(fd,), timeout=QEMU_IMG_TIMEOUT)

    def upload_volume(self, vol: VolumeInfo, src_path: str, offset: int, length: int | None,
                      ctx: JobContext, sparse: bool = False) -> int:
        if vol.symlink is not None:
            raise UnsafePath(f"'{vol.name}' is a symlink; poolkeeper does not write through links")
        fileops.check_range(offset, length)
        whole_image = vol.format != "raw" and offset == 0 and length is None
        # A raw volume keeps its size: data past its end is refused, never appended.
        fixed_size = vol.type == "block" or (vol.format == "raw" and not whole_image)
        fd = self._open_rw(vol)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)  # as it is now, not as it was listed
            if fixed_size:
                fileops.refuse_upload_past_end(vol.name, fileops.upload_amount(src_path, length),
                                               offset, size, self.fit_hint)
            written = fileops.upload_fd(fd, src_path, offset=offset, length=length,
                                        limit=size if fixed_size else None, sparse=sparse,
                                        ctx=ctx)
            if whole_image and stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, written)  # the volume is now exactly the uploaded image
            return written
        finally:
            os.close(fd)


def _qcow2_options(vol: VolumeDef) -> list[str]:
    """-o options for a new qcow2 image from the XML's target (compat defaults to 1.1) and
    --prealloc-metadata."""
    target = vol.target
    compat = target.compat or "1.1"
    if not re.fullmatch(r"[0-9]+\.[0-9]+", compat):  # a ',' would add -o options
        raise ValidationError(f"compat '{compat}' must look like 1.1 or 0.10", element="compat")
    opts = [f"compat={compat}"]
    if target.cluster_size:
        opts.append(f"cluster_size={target.cluster_size}")
    for feature in target.features or []:
        if feature in ("lazy_refcounts", "extended_l2"):
            opts.append(f"{feature}=on")
    if target.nocow:
        opts.append("nocow=on")
    if vol.prealloc_metadata:
        opts.append("preallocation=metadata")
    return opts
