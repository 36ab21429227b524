"""What the headers of a dir pool's files said, kept between processes: a listing (a
`vol-list` in a shell loop, the TUI opening a big pool) reads the header of a file only
when the file changed since it was last read.

A header is a function of the file's bytes, and a write to a file moves its ctime (the
kernel stamps it; no call lets a user set it back: utime sets it to now). An entry is
kept under the file's name with its (device, inode, size, mtime, ctime), and trusted
only where that reasoning holds:
  * on local filesystems that stamp writes through a shared mapping too (fstatfs: ext2/3/
    4, xfs, btrfs, f2fs, zfs). Over NFS, CIFS or FUSE a stat may return a client's cached
    attributes while an open would read fresh bytes; tmpfs never stamps a write made
    through a mapping: there every header is read, as before;
  * for a regular file, on the pool directory's own device;
  * when the file's ctime is older than the listing by more than the racy window. Writes
    are stamped when they start, and a write through a shared mapping only when a clean
    page is first dirtied: stores to a page already dirty change the bytes with no new
    stamp until writeback has cleaned the page (then the next store is stamped again).
    So an entry is made only for a file whose last stamp is older than twice the kernel's
    writeback horizon (vm.dirty_expire_centisecs + vm.dirty_writeback_centisecs, 35 s by
    default), and at least a minute: by then the page stamped last has been written back,
    and any later change is stamped. Files changed more recently are read each time.
Left to this reasoning: bytes changed under the filesystem (the block device written
while unmounted), or a clock stepped back onto an earlier stamp.

Only views' listings use it (StorageController.list_volumes, the TUI's): vol-info,
vol-dumpxml, refresh() (what the delete checks list) and every verb that acts on a
volume read the header afresh from the file they opened, and the checks of what qemu
would open are made on those reads. A change of the code that makes the entries (the
probe, the name checks, Python's Unicode tables) makes a new cache.

The file, RUNTIME/probes/POOL: a marshal of (fingerprint, target, dir device, dir inode,
{name: entry}) behind a CRC-32 of it, written whole (a temp file, then rename) when a
listing found something changed. It is read only if it is a regular file owned by this
user that nobody else can write (marshal is not meant for bytes from others), and only
if its CRC holds (a damaged file is never handed to marshal); a missing, foreign,
damaged or other-directory file counts as empty.
"""

from __future__ import annotations

import contextlib
import ctypes
import marshal
import os
import stat
import struct
import sys
import time
import unicodedata
import zlib
from pathlib import Path
from stat import S_ISREG

from .. import imageprobe, model, textsafe
from ..model import NO_ITEMS, BackingStore, VolumeInfo, shared_size
from ..textsafe import first_unsafe
from . import dir_listing
from .dir_listing import listed_file, shared_permissions

VERSION = 2
MAX_BYTES = 256 << 20  # a cache past this is not read (millions of volumes)
CACHE_DIR = "probes"
MIN_RACY_NS = 60 * 1_000_000_000
RACY_NS: int | None = None  # None: from the kernel's writeback settings (racy_ns)
_FRAME = struct.Struct("<4sIQ")  # magic, CRC-32 and length of the marshal that follows
_MAGIC = b"PKpc"

# f_type of the filesystems whose ctime a local kernel keeps (linux/magic.h)
LOCAL_FILESYSTEMS = frozenset({
    0xEF53,  # ext2, ext3, ext4
    0x58465342,  # xfs
    0x9123683E,  # btrfs
    0xF2F52010,  # f2fs
    0x2FC12FC1,  # zfs
})

_libc = ctypes.CDLL(None, use_errno=True)
_STATFS_BYTES = 256  # struct statfs is 120 bytes on 64-bit Linux; f_type is its first word


def filesystem_type(fd: int) -> int | None:
    """f_type of the filesystem holding the open file `fd` (None: fstatfs failed)."""
    buf = ctypes.create_string_buffer(_STATFS_BYTES)
    if _libc.fstatfs(fd, buf) != 0:
        return None
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def racy_ns() -> int:
    """How old a file's last stamp must be for its entry to be made (see the docstring)."""
    if RACY_NS is not None:
        return RACY_NS
    horizon = 0
    for knob in ("dirty_expire_centisecs", "dirty_writeback_centisecs"):
        try:
            with open(f"/proc/sys/vm/{knob}", "rb") as fh:
                horizon += int(fh.read()) * 10_000_000
        except (OSError, ValueError):
            horizon += 30 * 1_000_000_000  # unknown: as if a long default
    return max(MIN_RACY_NS, 2 * horizon)


def fingerprint() -> tuple:
    """What the entries depend on besides the files: the layout, Python and its Unicode
    tables (first_unsafe), and the modules that read and shape a header (their size and
    mtime change when poolkeeper is upgraded or edited)."""
    sources = []
    for module in (imageprobe, dir_listing, textsafe, model, sys.modules[__name__]):
        st = os.stat(module.__file__ or "")
        sources.append((st.st_size, st.st_mtime_ns))
    return (VERSION, sys.version_info[:2], unicodedata.unidata_version, tuple(sources))


Entry = tuple  # (dev, ino, size, mtime, ctime, file_id, header fields...): see _entry


class ProbeCache:
    """One listing's view of a pool's cache: `recall` what a file's header said, `learn`
    what a fresh read said, `save` once the listing is complete."""

    def __init__(self, dir_fd: int, path: Path | None, target: str, entries: dict) -> None:
        st = os.fstat(dir_fd)
        self._dev, self._ino = st.st_dev, st.st_ino
        self._path, self._target = path, target
        self._old = entries
        self._new: dict[str, Entry] = {}
        self._changed = False
        self._before = time.time_ns() - racy_ns()
        self._fingerprint = fingerprint()

    @classmethod
    def open(cls, runtime_dir: Path | None, pool: str, target: str,
             dir_fd: int) -> ProbeCache | None:
        """The cache of `pool` (its directory open as `dir_fd`); None where it cannot be
        trusted (no runtime dir, a filesystem not known to be local)."""
        if runtime_dir is None or filesystem_type(dir_fd) not in LOCAL_FILESYSTEMS:
            return None
        path = Path(runtime_dir) / CACHE_DIR / pool
        cache = cls(dir_fd, path, target, {})
        cache._old = cache._load()
        return cache

    def _load(self) -> dict:
        assert self._path is not None
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()
                    or st.st_mode & 0o022 or st.st_size > MAX_BYTES):
                return {}
            with os.fdopen(os.dup(fd), "rb") as fh:
                raw = fh.read()
            magic, crc, length = _FRAME.unpack_from(raw)
            body = memoryview(raw)[_FRAME.size:]
            if magic != _MAGIC or length != len(body) or zlib.crc32(body) != crc:
                return {}
            data = marshal.loads(body)
        except Exception:  # noqa: BLE001 - whatever a damaged cache does, it is empty
            return {}
        finally:
            os.close(fd)
        if (not isinstance(data, tuple) or len(data) != 5
                or data[:4] != (self._fingerprint, self._target, self._dev, self._ino)
                or not isinstance(data[4], dict)):
            return {}
        return data[4]

    def __contains__(self, name: str) -> bool:
        return name in self._old

    def recall(self, dir_fd: int, name: str, path: str) -> VolumeInfo | None:
        """The volume `name` (at `path`) from its entry if the file is still what it was
        when its header was read; None: read it (as for a name first_unsafe refuses:
        _scan says what is wrong with it). One lstat, each of its fields read once."""
        entry = self._old.get(name)
        if entry is None or first_unsafe(name) is not None:
            return None
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except OSError:
            return None
        mode, ino, size, mtime, ctime = (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns,
                                         st.st_ctime_ns)
        try:
            (dev, e_ino, e_size, e_mtime, e_ctime, file_id, fmt, capacity, cluster, compat,
             features, encryption, backing, backing_format, data_file, extents) = entry
            if (e_ino != ino or e_mtime != mtime or e_ctime != ctime or e_size != size
                    or dev != st.st_dev or not S_ISREG(mode)):
                return None
            # The numbers just found equal are kept as the entry's ints: one object per
            # value where marshal kept the sharing the listing that wrote them had (an
            # inode with file_id's, an mtime with the ctime, a size with every file's)
            file_id, blocks = tuple(file_id), st.st_blocks
            info = listed_file(
                name, path, fmt, capacity, e_size, shared_size(blocks * 512),
                None if backing is None else BackingStore(backing, backing_format),
                data_file, NO_ITEMS if extents == () else [(n, p) for n, p in extents],
                cluster, compat,
                None if features is None else NO_ITEMS if features == () else list(features),
                encryption, shared_permissions(mode & 0o777, st.st_uid, st.st_gid),
                (e_ino, e_size, blocks, e_mtime), file_id,
                (st.st_atime_ns, e_mtime, e_mtime if ctime == mtime else e_ctime))
        except (TypeError, ValueError):  # not what this code writes: read the file
            return None
        self._new[name] = entry
        return info

    def learn(self, name: str, info: VolumeInfo) -> None:
        """Keep what a fresh read of `name` found, if it may be trusted next time."""
        entry = _entry(info, self._dev, self._before)
        if entry is None:
            if name in self._old:
                self._changed = True  # dropped: it changed, or its file is not plain now
            return
        self._new[name] = entry
        if self._old.get(name) != entry:
            self._changed = True

    def save(self) -> None:
        """Write the entries this listing recalled or learned, if any differ from the
        file's (names gone are dropped with it). Best effort: a cache never fails a
        listing. Unchanged, every name kept is one of the file's (a new one is a change),
        so a name is gone if there are fewer."""
        if self._path is None or not (self._changed or len(self._new) < len(self._old)):
            return
        with contextlib.suppress(OSError):
            body = marshal.dumps(
                (self._fingerprint, self._target, self._dev, self._ino, self._new))
            self._write(_FRAME.pack(_MAGIC, zlib.crc32(body), len(body)) + body)

    def _write(self, data: bytes) -> None:
        assert self._path is not None
        parent = self._path.parent
        with contextlib.suppress(FileExistsError):
            parent.mkdir(mode=0o700)
        dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            st = os.fstat(dfd)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return  # not our own private directory: keep nothing there
            temp = f".{self._path.name}.{os.getpid()}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(temp, self._path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dfd)
                raise
        finally:
            os.close(dfd)


def _entry(info: VolumeInfo, dev: int, before: int) -> Entry | None:
    """The cache entry of a freshly read file, or None: not a plain file read whole, or
    changed too recently to trust its ctime."""
    times = info.times_ns
    if (info.type != "file" or info.symlink is not None or info.error is not None
            or info.pending or times is None or times[2] >= before or not info.signature
            or info.format_recorded):
        return None
    ino, size, _blocks, mtime = info.signature
    b = info.backing
    return (dev, ino, size, mtime, times[2], info.file_id, info.probed_format,
            info.capacity, info.cluster_size, info.compat,
            None if info.features is None else tuple(info.features), info.encryption,
            b.path if b else None, b.format if b else None, info.data_file,
            tuple(info.extent_files))

