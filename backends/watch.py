"""inotify through libc (ctypes): what the live monitor is told about a pool directory.

One Watcher (one inotify instance) holds a watch per watched directory; read() drains
the queued events without blocking. An event names the directory entry that changed, so
the monitor rescans that entry only. The kernel's queue is bounded: IN_Q_OVERFLOW means
events were lost, and the monitor then rescans every watched pool in full.

`remote_fs(fd)` tells a network filesystem (NFS, CIFS, ...), where inotify sees only the
changes made through this host: such a pool is polled as well.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import NamedTuple

IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_UNMOUNT = 0x2000
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

# What a pool directory's watch asks for: entries made, removed, renamed, written, changed
# in mode or owner; the directory itself removed or moved. (Opens, reads and atime are
# not asked for: the monitor's own scans must not wake it.)
ENTRY_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB
DIR_MASK = ENTRY_EVENTS | IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR
# The directory itself went away or was moved (the pool may be inaccessible now).
SELF_EVENTS = IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED
# The entry list changed: rescanned at once, never held back by the modify rate limit.
LISTING_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO

_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len
_READ_SIZE = 1 << 16

# statfs f_type of filesystems whose files other hosts change (linux/magic.h)
_REMOTE_MAGIC = {
    0x6969,  # NFS
    0x517B,  # SMB
    0xFF534D42,  # CIFS
    0xFE534D42,  # SMB2
    0x65735546,  # FUSE (glusterfs, sshfs, ...)
    0x00C36400,  # Ceph
    0x5346414F,  # AFS
    0x01021997,  # 9p
    0x73757245,  # Coda
    0x564C,  # NCP
    0x7461636F,  # OCFS2
    0x01161970,  # GFS2
}


class Event(NamedTuple):
    wd: int
    mask: int
    name: str  # "" for an event of the directory itself


class _Libc:
    def __init__(self) -> None:
        try:  # glibc's soname first: find_library runs `ldconfig -p`, ~5 ms a command
            lib = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:
            from ctypes.util import find_library  # only here: it imports tempfile (~1.5 ms)

            lib = ctypes.CDLL(find_library("c") or "libc.so.6", use_errno=True)
        self.init1 = lib.inotify_init1
        self.init1.argtypes = [ctypes.c_int]
        self.init1.restype = ctypes.c_int
        self.add_watch = lib.inotify_add_watch
        self.add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.add_watch.restype = ctypes.c_int
        self.rm_watch = lib.inotify_rm_watch
        self.rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        self.rm_watch.restype = ctypes.c_int
        self.fstatfs = lib.fstatfs
        self.fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
        self.fstatfs.restype = ctypes.c_int


_libc: _Libc | None = None


def _lib() -> _Libc:
    global _libc
    if _libc is None:
        _libc = _Libc()
    return _libc


def _oserror(what: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{what}: {os.strerror(err)}")


class Watcher:
    """One inotify instance; fileno() is readable when events are queued."""

    def __init__(self) -> None:
        fd = _lib().init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise _oserror("inotify_init1")
        self._fd: int | None = fd

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("the watcher is closed")
        return self._fd

    def add(self, dir_fd: int, mask: int = DIR_MASK) -> int:
        """Watch the directory open as `dir_fd` (the very one checked, whatever its path
        names now); the watch descriptor."""
        path = f"/proc/self/fd/{dir_fd}".encode()
        wd = _lib().add_watch(self.fileno(), path, mask)
        if wd < 0:
            raise _oserror("inotify_add_watch")
        return wd

    def remove(self, wd: int) -> None:
        """Drop a watch (one the kernel dropped already, after IN_IGNORED, is fine)."""
        if self._fd is not None:
            _lib().rm_watch(self._fd, wd)

    def read(self) -> list[Event]:
        """Every event queued now (none: an empty list); never blocks."""
        events: list[Event] = []
        while self._fd is not None:
            try:
                data = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            pos = 0
            while pos + _HEADER.size <= len(data):
                wd, mask, _cookie, length = _HEADER.unpack_from(data, pos)
                pos += _HEADER.size
                raw = data[pos:pos + length].split(b"\0", 1)[0]
                pos += length
                events.append(Event(wd, mask, os.fsdecode(raw)))
        return events

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def remote_fs(fd: int) -> bool:
    """Is the directory open as `fd` on a network filesystem (inotify sees only the changes
    made through this host there)? False when it cannot be told."""
    buf = ctypes.create_string_buffer(256)  # struct statfs is 120 bytes on 64-bit Linux
    if _lib().fstatfs(fd, buf) != 0:
        return False
    f_type = ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF
    return f_type in _REMOTE_MAGIC
