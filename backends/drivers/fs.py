"""fs and netfs pools: a dir pool on a mount point (DirDriver does every volume act).

What these add is the mount: mkfs on build, mount on start, umount on stop, wipefs on
delete, and the safety around them:
  * mount options from <fs:mount_opts> pass an allow-list; `nodev,nosuid,noexec` always come
    last (mount's last option wins), so no option from XML can turn them off;
  * build refuses a device that carries a signature (unless overwrite=True), an uncertain
    probe (unless overwrite=True), and a device that is mounted or open (always);
  * an image file as an fs source is attached to a loop device on start and detached on
    stop; its identity (loop node, image inode, diskseq) lives in `extras`, so a restarted
    poolkeeper finds it and never detaches a loop device that someone else reattached;
  * every attach is claimed under the runtime dir before it is made (loops.py), so what a
    poolkeeper killed mid-build or mid-start left attached is released on the next use,
    and the image file itself is flocked while it is checked, attached, built or wiped, so
    two poolkeepers, even with separate state roots, never both run mkfs on it;
  * delete looks inside first (stored_volumes: a read-only loop device, a ro mount at a
    private directory): a filesystem that still holds volumes, or that cannot be read
    without a journal replay, is erased only when the controller is told to force it;
  * every host, path and option is checked again here before it reaches an argv.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from collections.abc import Iterator
from typing import ClassVar

from .. import blockprobe, runner
from ..checks import require_device_path, require_host_name, require_path
from ..errors import (
    InUse,
    PoolkeeperError,
    StateError,
    ToolFailed,
    Unsupported,
    ValidationError,
)
from ..model import (
    FS_POOL_FORMATS,
    NETFS_POOL_FORMATS,
    PoolDef,
    PoolSizes,
    PoolSource,
    SourceDevice,
    SourceHost,
    SourceRule,
)
from ..names import PARTIAL_PREFIX
from ..progress import NULL_CONTEXT, JobContext
from ..textsafe import quoted
from .base import Claim, device_claims
from .dir import DirDriver
from .loopsource import LoopImageSource

# == mount options =====================================================================
SAFE_DEFAULTS = ("nodev", "nosuid", "noexec")  # always appended, always last
_FLAG_OPTIONS = frozenset({
    # generic (mount(8))
    "ro", "rw", "sync", "async", "dirsync", "atime", "noatime", "diratime", "nodiratime",
    "relatime", "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime",
    "iversion", "noiversion", "mand", "nomand", "silent", "loud", "nofail",
    "nodev", "nosuid", "noexec",
    # filesystems
    "discard", "nodiscard", "acl", "noacl", "user_xattr", "nouser_xattr", "barrier",
    "inode64", "inode32", "largeio", "nolargeio", "noquota", "ssd", "nossd", "autodefrag",
    "noautodefrag", "flushoncommit", "showexec", "quiet", "utf8", "shortname=mixed",
    "journal_checksum", "nojournal_checksum", "delalloc", "nodelalloc", "dax",
    # NFS / CIFS
    "soft", "hard", "softreval", "nosoftreval", "intr", "nointr", "lock", "nolock", "ac", "noac",
    "cto", "nocto", "fsc", "nofsc", "resvport", "noresvport", "sharecache", "nosharecache",
    "rdirplus", "nordirplus", "bg", "fg", "tcp", "udp", "posix", "noposix", "nounix",
    "serverino", "noserverino", "nobrl", "cache=strict", "cache=none", "cache=loose",
    "seal", "nocase", "nosharesock", "noperm", "guest", "direct-io-mode=1",
})
_NUM = re.compile(r"[0-9]{1,10}")
_VERSION = re.compile(r"[0-9]{1,2}(\.[0-9]{1,2})?")
_SELINUX = re.compile(r"[A-Za-z0-9_.:-]{1,255}")
_VALUE_OPTIONS: dict[str, re.Pattern[str]] = {
    "nfsvers": _VERSION, "vers": _VERSION, "minorversion": _NUM, "mountvers": _NUM,
    "proto": re.compile(r"tcp6?|udp6?|rdma6?"), "mountproto": re.compile(r"tcp6?|udp6?"),
    "port": _NUM, "mountport": _NUM, "timeo": _NUM, "retrans": _NUM, "retry": _NUM,
    "rsize": _NUM, "wsize": _NUM, "bsize": _NUM, "nconnect": _NUM, "actimeo": _NUM,
    "acregmin": _NUM, "acregmax": _NUM, "acdirmin": _NUM, "acdirmax": _NUM,
    "sec": re.compile(r"sys|none|krb5[ip]?|ntlmv2i?|ntlmsspi?"),
    "lookupcache": re.compile(r"all|none|pos|positive"),
    "local_lock": re.compile(r"none|all|flock|posix"),
    "context": _SELINUX, "fscontext": _SELINUX, "defcontext": _SELINUX, "rootcontext": _SELINUX,
    "commit": _NUM, "data": re.compile(r"ordered|writeback|journal"),
    "errors": re.compile(r"remount-ro|continue"), "stripe": _NUM, "max_batch_time": _NUM,
    "compress": re.compile(r"(zlib|lzo|zstd)(:[0-9]{1,2})?"),
    "compress-force": re.compile(r"(zlib|lzo|zstd)(:[0-9]{1,2})?"),
    "space_cache": re.compile(r"v[12]"), "subvolid": _NUM,
    "subvol": re.compile(r"/?[A-Za-z0-9_.@+-]{1,255}(/[A-Za-z0-9_.@+-]{1,255})*"),
    "uid": _NUM, "gid": _NUM, "umask": re.compile(r"[0-7]{1,4}"),
    "dmask": re.compile(r"[0-7]{1,4}"), "fmask": re.compile(r"[0-7]{1,4}"),
    "codepage": _NUM, "iocharset": re.compile(r"[A-Za-z0-9-]{1,32}"),
    "logbsize": re.compile(r"[0-9]{1,6}[kK]?"), "logbufs": _NUM, "allocsize": re.compile(
        r"[0-9]{1,10}[kKmMgG]?"),
}
_WHY_REFUSED = {
    "exec": "it would let programs on the pool run on the host",
    "suid": "it would honour set-uid bits of files a guest can write",
    "dev": "it would honour device nodes a guest can create",
    "defaults": "it means rw,suid,dev,exec,auto,nouser,async",
    "user": "it is for fstab entries, not for pools",
    "users": "it is for fstab entries, not for pools",
    "owner": "it is for fstab entries, not for pools",
    "group": "it is for fstab entries, not for pools",
    "loop": "poolkeeper attaches image files itself",
    "remount": "poolkeeper mounts the pool itself",
    "bind": "poolkeeper mounts the pool's source itself",
    "rbind": "poolkeeper mounts the pool's source itself",
    "move": "poolkeeper mounts the pool's source itself",
    "password": "a secret on the mount command line is visible to every user",
    "credentials": "poolkeeper does not pass credential files to mount",
    "username": "poolkeeper mounts CIFS shares as guest",
}
_OPTION_CHARS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_=.:+/@-]*")


def check_mount_option(opt: object) -> str:
    """Return `opt` if it is on the allow-list, else raise ValidationError saying why."""
    if not isinstance(opt, str) or not opt:
        raise ValidationError(f"mount option {quoted(opt)} must be a non-empty word", "fs:option")
    if "," in opt or len(opt) > 255 or not _OPTION_CHARS.fullmatch(opt):
        raise ValidationError(
            f"mount option {quoted(opt)} is not valid: one option per <fs:option>, letters, digits "
            "and _ = . : + / @ - only (no commas, spaces or control characters)", "fs:option")
    key, sep, value = opt.partition("=")
    if key in _WHY_REFUSED:
        raise ValidationError(
            f"mount option '{opt}' is refused: {_WHY_REFUSED[key]}; pools are always "
            "mounted nodev,nosuid,noexec", "fs:option")
    if opt in _FLAG_OPTIONS:
        return opt
    pattern = _VALUE_OPTIONS.get(key)
    if sep and pattern is not None:
        if pattern.fullmatch(value):
            return opt
        raise ValidationError(f"mount option '{opt}': '{value}' is not a valid value for "
                              f"{key}=", "fs:option")
    raise ValidationError(
        f"mount option '{opt}' is not on poolkeeper's allow-list of harmless options (e.g. "
        "noatime, relatime, discard, ro, nfsvers=N, proto=tcp, timeo=N, rsize=N, soft, acl); "
        "ask for it to be added if it is safe", "fs:option")


def mount_options(per_type: list[str], user: list[str]) -> str:
    """The -o list: per-type options, then the checked user options, then the safe
    defaults LAST (mount's last option wins, so nothing can undo them)."""
    opts: list[str] = []
    for opt in [*per_type, *(check_mount_option(o) for o in user)]:
        if opt not in opts and opt not in SAFE_DEFAULTS:
            opts.append(opt)
    return ",".join([*opts, *SAFE_DEFAULTS])


# == the mounted-dir base ==============================================================
class MountedDirDriver(DirDriver):
    """A dir pool whose directory is a mount point. Subclasses say what is mounted."""

    pool_formats: ClassVar[tuple[str, ...]] = ()
    default_pool_format = "auto"  # mount finds the type
    mount_options = True

    # -- what subclasses provide ---------------------------------------------------------
    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        """Every value that reaches an argv, checked without touching the system."""
        require_path(pool.target.path, "target path", "path")
        fmt = pool.source.format or "auto"
        if fmt not in cls.pool_formats:
            raise ValidationError(f"'{fmt}' is not a format of {cls.type} pools; use one of: "
                                  + ", ".join(cls.pool_formats), "format")
        for opt in pool.mount_opts:
            check_mount_option(opt)

    def _is_ours(self, mount: blockprobe.Mount) -> bool:
        raise NotImplementedError

    @property
    def format(self) -> str:
        return self.pool.source.format or "auto"

    # -- mount state ---------------------------------------------------------------------
    def _our_mount(self, table: list[blockprobe.Mount] | None = None) -> blockprobe.Mount | None:
        mount = blockprobe.mount_at(self.target, table)
        return mount if mount is not None and self._is_ours(mount) else None

    def describe(self) -> str | None:
        mount = self._our_mount()
        if mount is None:
            return f"not mounted at {self.target}"
        return f"{mount.source} ({mount.fstype}) mounted at {self.target}"

    def _require_mounted(self) -> None:
        if self._our_mount() is None:
            raise StateError(
                f"the filesystem of pool '{self.name}' is not mounted at {self.target} any more; "
                f"stop and start the pool (pool-destroy {self.name}; pool-start {self.name})"
            )

    def _check_target_free(self) -> None:
        """The mount point must not have something else mounted on it."""
        mount = blockprobe.mount_at(self.target)
        if mount is not None and not self._is_ours(mount):
            raise StateError(
                f"{self.target} is already a mount point ({mount.source}, {mount.fstype}); "
                "choose another target path or unmount it first"
            )

    def _prepare_target(self) -> None:
        if not os.path.isdir(self.target):
            DirDriver.build(self, None, NULL_CONTEXT)  # mkdir with the pool's permissions
        self._check_target_free()

    def _apply_root_permissions(self) -> None:
        """Explicit <target><permissions> apply to the mounted filesystem's root too."""
        perms = self.pool.target.permissions
        if perms is None or perms.is_empty():
            return
        with contextlib.suppress(OSError):  # a read-only or foreign-owned mount: leave it
            if perms.mode is not None:
                os.chmod(self.target, perms.mode)
            if perms.owner is not None or perms.group is not None:
                os.chown(self.target, -1 if perms.owner is None else perms.owner,
                         -1 if perms.group is None else perms.group)

    def _mount(self, argv: list[str]) -> None:
        done = runner.run(argv, check=False, timeout=180)
        if done.returncode != 0:
            # mount ends with a "dmesg(1) may have more information" hint; keep the reason.
            lines = [ln for ln in done.stderr.splitlines() if ln.strip() and "dmesg(1)" not in ln]
            raise ToolFailed(done.shown, done.returncode, "\n".join(lines))
        self._apply_root_permissions()

    def _umount(self) -> None:
        done = runner.run(["umount", self.target], check=False, timeout=120)
        if done.returncode == 0:
            return
        if "busy" in done.stderr.lower():
            raise InUse(self._busy_message())
        raise ToolFailed(done.shown, done.returncode, done.stderr)

    def _busy_message(self) -> str:
        holders = blockprobe.processes_using_tree(self.target)
        inner = [m.target for m in blockprobe.mounts_below(self.target)]
        why = []
        if holders:
            shown = ", ".join(holders[:5])
            more = f" and {len(holders) - 5} more" if len(holders) > 5 else ""
            why.append(f"open by {shown}{more}")
        if inner:
            why.append("other filesystems are mounted inside it: " + ", ".join(inner))
        detail = "; ".join(why) or "something still uses it (fuser -vm shows what)"
        return (f"cannot stop pool '{self.name}': its filesystem at {self.target} is busy "
                f"({detail}); close those first")

    # -- pool ----------------------------------------------------------------------------
    def check(self) -> bool:
        try:
            return self._our_mount() is not None
        except (OSError, PoolkeeperError):
            return False

    def build(self, overwrite: bool | None, ctx: JobContext) -> None:
        """Make the mount point (as a dir pool would), never over a mounted filesystem."""
        self.validate(self.pool)
        self._check_target_free()
        if self._our_mount() is not None:
            raise StateError(f"pool '{self.name}' is mounted at {self.target}; stop it first")
        DirDriver.build(self, overwrite, ctx)

    def delete(self) -> None:
        """Remove the empty mount point (as libvirt does); never while something is mounted."""
        if blockprobe.mount_at(self.target) is not None:
            raise InUse(f"{self.target} is a mount point; unmount it before deleting pool "
                        f"'{self.name}'")
        DirDriver.delete(self)

    def stop(self) -> None:
        self._check_target_free()  # never unmount what someone else mounted there
        if self._our_mount() is not None:
            self._umount()

    # -- everything DirDriver does happens only on the mounted filesystem ------------------
    @contextlib.contextmanager
    def dir_fd(self) -> Iterator[int]:
        self._require_mounted()  # else volumes would land on the filesystem below
        with super().dir_fd() as fd:
            yield fd

    def sizes(self) -> PoolSizes:
        self._require_mounted()  # statvfs of a bare mount point would report its parent
        return super().sizes()


# == fs ================================================================================
MKFS: dict[str, list[str]] = {
    "ext2": ["mkfs.ext2", "-F"],
    "ext3": ["mkfs.ext3", "-F"],
    "ext4": ["mkfs.ext4", "-F"],
    "xfs": ["mkfs.xfs", "-f"],
    "btrfs": ["mkfs.btrfs", "-f"],
    "vfat": ["mkfs.vfat", "-I"],
    "udf": ["mkfs.udf"],
    "hfs+": ["mkfs.hfsplus"],
    "gfs2": ["mkfs.gfs2", "-O", "-p", "lock_nolock"],  # single host; clusters make their own
}
_KERNEL_FSTYPE = {"hfs+": "hfsplus"}  # pool format -> mount -t name
_FORMAT_OF_FSTYPE = {"hfsplus": "hfs+"}
_NOT_VOLUMES = ("lost+found",)  # made by mkfs.ext*; not a volume
# xfs refuses a second filesystem with a UUID already mounted (a copied image) unless told
_LOOK_OPTIONS = {"xfs": ("nouuid",)}


def _volume_entries(path: str) -> list[str]:
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries
                      if not e.name.startswith(PARTIAL_PREFIX)
                      and not (e.name in _NOT_VOLUMES and e.is_dir(follow_symlinks=False)))


def _unmount_private(path: str) -> None:
    for _ in range(10):
        if runner.run(["umount", path], check=False, timeout=120).returncode == 0:
            return
        if blockprobe.mount_at(path) is None:
            return
        time.sleep(0.2)
    runner.run(["umount", "-l", path], check=False, timeout=120)  # never leave it mounted


_NOT_FILESYSTEMS = ("swap", "LVM2_member", "LVM1_member", "zfs_member", "crypto_LUKS",
                    "BitLocker", "ceph", "bcache", "drbd", "VMFS_volume_member")


class FsDriver(LoopImageSource, MountedDirDriver):
    """A block device (or an image file on a loop device) with a filesystem, mounted."""

    type = "fs"
    article = "an"
    pool_formats = FS_POOL_FORMATS
    source_rule = SourceRule(
        devices=(1, 1),
        needs={"device": "exactly one <device path='/dev/...'/>: the block device to mount"},
    )
    delete_needs_empty = False
    not_volumes = _NOT_VOLUMES
    target_hint = "the mount point"
    build_does = "makes a filesystem on the source device {source} (mkfs)"
    delete_does = "wipes the filesystem signature on {source}: every file on it is lost"
    form_fields = ("name", "target", "device", "format")
    target_placeholder = "/mnt/pool (the mount point)"
    discover_hint = "look for filesystems on local devices"
    tools = {"mkfs": "util-linux", "mkfs.ext2": "e2fsprogs", "mkfs.ext3": "e2fsprogs",
             "mkfs.ext4": "e2fsprogs", "mkfs.xfs": "xfsprogs", "mkfs.btrfs": "btrfs-progs",
             "mkfs.vfat": "dosfstools"}
    optional_tools = {"mkfs.udf": "udftools", "mkfs.hfsplus": "hfsprogs",
                      "mkfs.gfs2": "gfs2-utils"}

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        return super().source_claims(pool) + device_claims(pool)

    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        super().validate(pool)
        if len(pool.source.devices) != 1:
            raise ValidationError("an fs pool needs exactly one <device path='...'/>", "source")
        require_device_path(pool.source.devices[0].path)

    # -- the source ----------------------------------------------------------------------
    @property
    def source_path(self) -> str:
        return self.pool.source.devices[0].path

    def existing_content(self) -> list[str]:
        try:
            return blockprobe.signatures(self.source_path)
        except (PoolkeeperError, OSError) as exc:
            return [f"unknown content ({exc})"]

    def _source_kind(self) -> str:
        """'block' or 'image'; a clear error for anything else."""
        return blockprobe.source_kind(self.source_path, self.name)

    def _loop_record(self) -> dict | None:
        rec = self.extras.get("loop")
        return rec if isinstance(rec, dict) and isinstance(rec.get("device"), str) else None

    def _device_numbers(self, device: str) -> tuple[int, int] | None:
        try:
            st = os.stat(device)
        except OSError:
            return None
        return (os.major(st.st_rdev), os.minor(st.st_rdev)) if stat.S_ISBLK(st.st_mode) else None

    def _mounted_device(self) -> str | None:
        """The block device that is ours to find mounted at the target."""
        try:
            if stat.S_ISBLK(os.stat(self.source_path).st_mode):
                return self.source_path
        except OSError:
            return None
        loop = self._current_loop()
        return loop.device if loop is not None else None

    def _is_ours(self, mount: blockprobe.Mount) -> bool:
        device = self._mounted_device()
        if device is None:
            return False
        if (mount.major, mount.minor) == self._device_numbers(device):
            return True
        return mount.source.startswith("/") and os.path.realpath(mount.source) == \
            os.path.realpath(device)

    # -- start / stop --------------------------------------------------------------------
    def _current_loop(self) -> blockprobe.LoopIdentity | None:
        """The loop device behind an image pool: the recorded one if it is still ours, else
        (state lost) a loop of our image that is mounted at our target."""
        if self._loop_record() is not None:
            return self._recorded_loop()
        mount = blockprobe.mount_at(self.target)
        if mount is None or not os.path.isfile(self.source_path):
            return None
        for ident in blockprobe.loops_backed_by(os.path.realpath(self.source_path)):
            if mount.source == ident.device:
                return ident
        return None

    def start(self) -> None:
        self.validate(self.pool)
        kind = self._source_kind()
        self._prepare_target()
        if self._our_mount() is not None:
            if kind == "image" and self._loop_record() is None:
                ident = self._current_loop()  # adopt the one left by a run that lost its state
                if ident is not None:
                    self.extras["loop"] = ident.record()
            return  # already mounted at the target: started
        attached = self._attach_image_for_start() if kind == "image" else None
        device = attached.device if attached else self.source_path
        try:
            self._refuse_mounted_elsewhere(device)
            self._mount(self._mount_argv(device))
        except ToolFailed as exc:
            self._undo_attach(attached)
            self._explain_mount_failure(exc)
            raise
        except BaseException:
            self._undo_attach(attached)
            raise

    def _mount_argv(self, device: str) -> list[str]:
        argv = ["mount", "-o", mount_options([], self.pool.mount_opts)]
        if self.format != "auto":
            argv += ["-t", _KERNEL_FSTYPE.get(self.format, self.format)]
        return [*argv, device, self.target]

    def _refuse_mounted_elsewhere(self, device: str) -> None:
        elsewhere = [m.target for m in blockprobe.mounts_of(device)]
        if elsewhere:
            raise InUse(f"{device} is already mounted at {', '.join(elsewhere)}; unmount it "
                        f"first (pool '{self.name}' mounts it only at {self.target})")

    def _explain_mount_failure(self, exc: ToolFailed) -> None:
        """A blank device fails with 'wrong fs type'; say what to do instead."""
        try:
            blank = blockprobe.probe(self.source_path).blank  # the image itself, if one
        except (PoolkeeperError, OSError):
            return
        if blank:
            raise StateError(f"{self.source_path} holds no filesystem; build the pool first "
                             f"(pool-build {self.name})") from exc

    def _undo_attach(self, attached: blockprobe.LoopIdentity | None) -> None:
        if attached is not None:
            with contextlib.suppress(PoolkeeperError):
                self._loops.detach(attached)
            self.extras.pop("loop", None)

    def stop(self) -> None:
        loop = self._current_loop()  # before the umount: an unrecorded one is found by it
        super().stop()  # umount if our device is mounted at the target
        if loop is not None:
            self._loops.detach(loop)
        self.extras.pop("loop", None)

    # -- build / delete ------------------------------------------------------------------
    def build(self, overwrite: bool | None, ctx: JobContext) -> None:
        self.validate(self.pool)
        fmt = self.format
        if fmt == "auto":
            raise ValidationError(
                f"pool '{self.name}' has format 'auto', which poolkeeper cannot build: set the "
                "filesystem to make, e.g. <format type='ext4'/> (--source-format ext4)", "format")
        if fmt not in MKFS:
            raise Unsupported(f"poolkeeper cannot make {fmt} filesystems; make it yourself and "
                              "start the pool without building it")
        runner.tool_path(MKFS[fmt][0])  # before anything is touched
        self._check_target_free()
        kind = self._source_kind()
        with self._build_device(kind) as (device, shown), blockprobe.disk_lock(device):
            self._refuse_in_use(device, shown)
            blockprobe.refuse_unless_overwrite(blockprobe.probe(device), overwrite, shown)
            ctx.check()
            if overwrite:
                runner.run(["wipefs", "--all", "--", device], timeout=120)  # no stale signatures
            runner.run([*MKFS[fmt], device], timeout=3600)
        DirDriver.build(self, overwrite, ctx)  # the mount point

    @contextlib.contextmanager
    def _build_device(self, kind: str) -> Iterator[tuple[str, str]]:
        """(device to mkfs, how to name it): an image is attached for the build only."""
        if kind == "block":
            yield self.source_path, self.source_path
            return
        image = os.path.realpath(self.source_path)
        with blockprobe.image_lock(image):  # held until mkfs is done: one build at a time
            self._release_and_refuse_attached(image, "attached as {device}; poolkeeper will "
                                              "not build over it, even with --overwrite")
            attached = self._loops.attach(image, self.name)
            try:
                yield attached.device, f"{image} (attached as {attached.device})"
            finally:
                self._loops.detach(attached)

    def _refuse_in_use(self, device: str, shown: str) -> None:
        users = blockprobe.device_users(device)
        if users:
            raise InUse(f"{shown} is in use ({'; '.join(users)}); poolkeeper will not make a "
                        "filesystem on it, even with --overwrite")

    def delete(self) -> None:
        """Wipe the filesystem signature of the source (the pool is inactive). Whether it
        still holds volumes is the controller's question first (stored_volumes)."""
        self.validate(self.pool)
        if self._source_kind() == "image":
            image = os.path.realpath(self.source_path)
            with blockprobe.image_lock(image):
                self._release_and_refuse_attached(image, "attached as {device}; detach it "
                                                  "first")
                # --force: without it wipefs skips a partition table in a regular file
                runner.run(["wipefs", "--all", "--force", "--", image], timeout=120)
        else:
            device = self.source_path
            with blockprobe.disk_lock(device):
                self._release_and_refuse_attached(  # a look inside a kill interrupted
                    os.path.realpath(device), "attached as {device}; detach it first")
                self._refuse_in_use(device, device)
                runner.run(["wipefs", "--all", "--", device], timeout=120)
        if blockprobe.mount_at(self.target) is None:
            with contextlib.suppress(OSError):
                os.rmdir(self.target)  # the empty mount point; a non-empty one stays

    # -- what an inactive pool holds -----------------------------------------------------
    def stored_volumes(self) -> list[str]:
        """The volumes on the inactive pool's filesystem: every entry of its root but
        lost+found and poolkeeper's hidden partial files (see _look_inside)."""
        self.validate(self.pool)
        kind = self._source_kind()
        source = os.path.realpath(self.source_path)
        lock = blockprobe.image_lock(source) if kind == "image" else \
            blockprobe.disk_lock(source)
        with lock:
            self._release_and_refuse_attached(source, "attached as {device}; detach it first")
            if kind == "block":
                users = blockprobe.device_users(source)
                if users:
                    raise InUse(f"{source} is in use ({'; '.join(users)}); poolkeeper cannot "
                                f"look inside pool '{self.name}' or delete it now")
            fstype = self._filesystem_type(source)
            if fstype is None:
                return []
            attached = self._loops.attach(source, self.name, read_only=True)
            try:
                return self._look_inside(attached.device, source, fstype)
            finally:
                with contextlib.suppress(PoolkeeperError):
                    self._loops.detach(attached)

    def _cannot_tell(self, why: str) -> StateError:
        return StateError(f"cannot tell whether pool '{self.name}' still holds volumes "
                          f"({why}); pool-delete {self.name} --force erases it anyway")

    def _filesystem_type(self, source: str) -> str | None:
        """The filesystem blkid finds on `source` (None: nothing at all, so no volumes);
        anything else, or an uncertain probe, cannot be looked into."""
        found = blockprobe.probe(source)
        if found.problem:
            raise self._cannot_tell(found.problem)
        if not found.signatures:
            return None
        kinds = [s for s in found.signatures if s.kind == "filesystem"]
        if len(kinds) != 1 or len(found.signatures) != 1:
            raise self._cannot_tell(f"{source} holds {found.describe()}")
        if not re.fullmatch(r"[a-z0-9_+]{1,32}", kinds[0].type):
            raise self._cannot_tell(f"blkid names its filesystem '{kinds[0].type}'")
        return kinds[0].type

    def _look_inside(self, device: str, source: str, fstype: str) -> list[str]:
        """Mount `device`, a READ-ONLY loop device over the source, with ro,nodev,nosuid,
        noexec at a private directory under the runtime dir, list its root, unmount.

        The kernel cannot write through a read-only loop device, whatever the filesystem
        would like to. A filesystem that was not cleanly unmounted (its journal or log
        needs a replay) refuses such a mount, and that is reported as "cannot tell": the
        options that skip the replay (ext4 noload, xfs norecovery, btrfs nologreplay)
        would show the state before the crash, where files whose creation is only in the
        journal do not exist yet, and an empty-looking pool would be erased. A mount is
        one code path for every filesystem the kernel reads; per-filesystem tools
        (debugfs, xfs_db, ...) would each need their own parsing."""
        options = ",".join(["ro", *_LOOK_OPTIONS.get(fstype, ()), *SAFE_DEFAULTS])
        with self._loops.peek_dir() as path:
            done = runner.run(["mount", "-t", fstype, "-o", options, device, path],
                              check=False, timeout=180)
            if done.returncode != 0:
                lines = [ln.strip() for ln in done.stderr.splitlines()
                         if ln.strip() and "dmesg(1)" not in ln]
                raise self._cannot_tell(
                    f"a read-only mount of the {fstype} filesystem on {source} failed ("
                    + (" ".join(lines) or f"exit {done.returncode}") + "); a filesystem that "
                    "was not cleanly unmounted cannot be read without replaying its journal, "
                    "which would change it: start and stop the pool once to replay it")
            try:
                return _volume_entries(path)
            finally:
                _unmount_private(path)

    # -- discovery -----------------------------------------------------------------------
    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None) -> list[PoolSource]:
        if host is not None:
            raise ValidationError("fs pool sources are local block devices: give a device, "
                                  "not a host", "host")
        if device is not None:
            device = require_device_path(device)
        rows = blockprobe.lsblk("NAME,PATH,TYPE,FSTYPE,SIZE,MOUNTPOINT,LABEL", device)
        blockprobe.fill_from_blkid(rows, "fstype", "TYPE")
        sources = []
        for row in rows:
            fstype = row.get("fstype")
            if not fstype or fstype in _NOT_FILESYSTEMS or fstype.endswith("_raid_member"):
                continue
            fmt = _FORMAT_OF_FSTYPE.get(fstype, fstype)
            sources.append(PoolSource(devices=[SourceDevice(row["path"])],
                                      format=fmt if fmt in FS_POOL_FORMATS else "auto"))
        return sources


# == netfs =============================================================================
_SHOWMOUNT_LINE = re.compile(r"^(/.*\S) +\S+$")


class NetfsDriver(MountedDirDriver):
    """An NFS export (or CIFS share, GlusterFS volume) mounted on the target."""

    type = "netfs"
    pool_formats = NETFS_POOL_FORMATS
    source_rule = SourceRule(
        hosts=(1, 1),
        dir=True,
        protocol=True,
        needs={
            "host": "exactly one <host name='...'/>: the file server",
            "dir": "<dir path='/...'/>: the exported directory",
        },
    )
    supports_cow = False
    target_hint = "the mount point"
    build_does = "creates the mount point {target}"
    delete_does = "removes the mount point directory {target} (the export is not touched)"
    form_fields = ("name", "target", "host", "port", "srcdir", "format")
    target_placeholder = "/mnt/nfs (the mount point)"
    discover_hint = "list the exports of the host"
    tools = {"showmount": "nfs-common", "mount.nfs": "nfs-common"}
    test_packages = ("nfs-ganesha", "nfs-ganesha-vfs", "rpcbind")

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        src = pool.source
        exports = [] if not src.dir else [
            Claim("export", blockprobe.export_key(host.name, src.dir),
                  f"export {host.name}:{src.dir}") for host in src.hosts]
        return super().source_claims(pool) + exports

    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        super().validate(pool)
        src = pool.source
        if len(src.hosts) != 1:
            raise ValidationError("a netfs pool needs exactly one <host name='...'/>", "source")
        require_host_name(src.hosts[0].name)
        port = src.hosts[0].port
        if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
            raise ValidationError(f"port {port!r} is out of range (1-65535)", "host")
        fmt = src.format or "auto"
        if port is not None and fmt == "glusterfs":
            raise ValidationError("a port is not supported for glusterfs sources", "host")
        require_path(src.dir, "source directory", "dir", relative_ok=fmt in ("cifs", "glusterfs"))
        if src.protocol_ver is not None:
            if fmt not in ("auto", "nfs") or not _VERSION.fullmatch(src.protocol_ver):
                raise ValidationError(f"protocol version {quoted(src.protocol_ver)} applies to NFS "
                                      "only and must look like 3, 4 or 4.1", "protocol")
            if any(o.startswith(("nfsvers=", "vers=")) for o in pool.mount_opts):
                raise ValidationError("the NFS version is given twice (<protocol ver> and a "
                                      "mount option); keep one", "protocol")

    @property
    def _host(self) -> str:
        name = self.pool.source.hosts[0].name
        return f"[{name}]" if ":" in name else name  # IPv6 literal

    def mount_source(self) -> str:
        src_dir = self.pool.source.dir or ""
        if self.format == "cifs":
            return f"//{self._host}/{src_dir.lstrip('/')}"
        return f"{self._host}:{src_dir}"

    def _per_type_options(self) -> list[str]:
        src = self.pool.source
        port = src.hosts[0].port
        opts = []
        if self.format in ("auto", "nfs") and src.protocol_ver:
            opts.append(f"nfsvers={src.protocol_ver}")
        if self.format == "cifs":
            opts.append("guest")
        if self.format == "glusterfs":
            opts.append("direct-io-mode=1")
        if port is not None:
            opts.append(f"port={port}")
        return opts

    def mount_argv(self) -> list[str]:
        argv = ["mount", "-o", mount_options(self._per_type_options(), self.pool.mount_opts)]
        if self.format != "auto":  # mount -t auto does not detect nfs: leave -t out
            argv += ["-t", self.format]
        return [*argv, self.mount_source(), self.target]

    def _is_ours(self, mount: blockprobe.Mount) -> bool:
        def norm(source: str) -> str:
            return source.rstrip("/") if len(source) > 1 else source

        return norm(mount.source) == norm(self.mount_source())

    def start(self) -> None:
        self.validate(self.pool)
        argv = self.mount_argv()  # everything checked before anything happens
        self._prepare_target()
        if self._our_mount() is not None:
            return
        self._mount(argv)

    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None) -> list[PoolSource]:
        if not host:
            raise ValidationError("netfs source discovery needs a host (--host NAME)", "host")
        host = require_host_name(host)
        done = runner.run(["showmount", "--no-headers", "-e", host], timeout=60)
        sources = []
        for line in done.stdout.splitlines():
            match = _SHOWMOUNT_LINE.match(line)
            if match:
                sources.append(PoolSource(hosts=[SourceHost(host)], dir=match.group(1),
                                          format="nfs"))
        return sources
