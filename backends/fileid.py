"""Which file a volume is, beyond its inode number: what format records are matched on.

A format record says "poolkeeper created this file as FORMAT". Filesystems reuse inode
numbers (ext4 hands a freed one to the next file made in the directory), so a file deleted
behind poolkeeper's back and recreated under the same name can carry the old inode and
inherit a record that is not its own. A record therefore keeps, with the inode:

  * the birth time (statx STATX_BTIME; Python 3.11 has no os.statx, so libc's statx is
    called through ctypes), on ext4, xfs, btrfs, tmpfs and most local filesystems. Kernel
    timestamps are coarse (a clock tick, e.g. 4 ms): a file recreated within the tick its
    predecessor was born in would share its birth time, which needs the original deleted
    within a few ms of being made, before poolkeeper recorded it;
  * else the inode generation (FS_IOC_GETVERSION), which filesystems that have one change
    each time an inode number is handed out again;
  * else (NFS, vfat) the inode number alone, as before: the last fallback.

A record matches a file when the inodes are equal and so is each of birth time and
generation that both sides have: a field one side lacks (the record was made before the
kernel gave birth times, or the file is now read where it gives none) is not compared.

Size and ctime are NOT used: a guest writes its raw disk all the time, which changes the
ctime (and a resize changes the size), so a record keyed on them would stop matching its
own raw disk after the first write; the volume would then count as "not created here" and
the qcow2/vmdk header the guest wrote would be believed: the very attack the records exist
to stop. Failing that way is worse than the rare inode reuse.

One statx per file (about a microsecond): this runs for every volume of every refresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import stat
import struct
import threading

__all__ = ["FileId", "Stat", "identifies", "of_fd", "of_path", "record_fields", "same_file",
           "stat_fd"]

FileId = tuple[int, int | None, int | None]  # inode, birth time ns, generation
# mode, uid, gid, inode, size, blocks, atime ns, mtime ns, ctime ns (os.fstat's fields)
Stat = tuple[int, int, int, int, int, int, int, int, int]

_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_EMPTY_PATH = 0x1000
_STATX_INO = 0x100
_STATX_BTIME = 0x800
_STATX_SIZE = 256  # struct statx
# FS_IOC_GETVERSION = _IOR('v', 1, long); the kernel writes an int at the start
_FS_IOC_GETVERSION = (2 << 30) | (ctypes.sizeof(ctypes.c_long) << 16) | (ord("v") << 8) | 1

_libc = ctypes.CDLL(None, use_errno=True)
_statx = getattr(_libc, "statx", None)  # glibc >= 2.28; ints and bytes pass as they are
_STATX_FIELDS = struct.Struct("<I28xQ40xqI")  # mask @0, ino @32, btime sec @80, nsec @88
_STATX_BASIC = 0x7FF  # STATX_BASIC_STATS; all of it but STATX_NLINK (4) must come back:
_STATX_NEEDED = 0x7FB
# mask @0, uid @20, gid @24, mode @28, ino @32, size @40, blocks @48, then (sec, nsec) of
# atime @64, btime @80, ctime @96, mtime @112
_STATX_ALL = struct.Struct("<I16xIIH2xQQQ8xqI4xqI4xqI4xqI4x")
_buffers = threading.local()  # one statx buffer per thread: refreshes run in several


def _birth(dir_fd: int, path: bytes, flags: int) -> tuple[int, int | None] | None:
    """(inode, birth time ns or None) from statx, or None when statx is missing."""
    if _statx is None:
        return None
    buf = getattr(_buffers, "statx", None)
    if buf is None:
        buf = _buffers.statx = ctypes.create_string_buffer(_STATX_SIZE)
    if _statx(dir_fd, path, flags, _STATX_INO | _STATX_BTIME, buf) != 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            return None
        raise OSError(err, os.strerror(err))
    mask, ino, sec, nsec = _STATX_FIELDS.unpack_from(buf)
    return ino, sec * 1_000_000_000 + nsec if mask & _STATX_BTIME else None


def _generation(fd: int) -> int | None:
    try:
        out = fcntl.ioctl(fd, _FS_IOC_GETVERSION, bytes(8))
    except OSError:
        return None  # ENOTTY and friends: this filesystem keeps none
    return struct.unpack_from("=I", out)[0]


def of_fd(fd: int, st: os.stat_result | None = None) -> FileId:
    """The identity of the open file `fd`: a generation only where there is no birth time,
    and only for a regular file (an ioctl on a device node would reach its driver)."""
    st = st if st is not None else os.fstat(fd)
    birth = _birth(fd, b"", _AT_EMPTY_PATH)
    ino, btime = birth if birth is not None else (st.st_ino, None)
    gen = _generation(fd) if btime is None and stat.S_ISREG(st.st_mode) else None
    return ino, btime, gen


def stat_fd(fd: int) -> tuple[Stat, FileId]:
    """What os.fstat and of_fd say of the open file `fd`, from one statx where the kernel
    gives every field (a listing does this for each volume: one system call fewer)."""
    if _statx is not None:
        buf = getattr(_buffers, "statx", None)
        if buf is None:
            buf = _buffers.statx = ctypes.create_string_buffer(_STATX_SIZE)
        if _statx(fd, b"", _AT_EMPTY_PATH, _STATX_BASIC | _STATX_BTIME, buf) != 0:
            err = ctypes.get_errno()
            if err != errno.ENOSYS:
                raise OSError(err, os.strerror(err))
        else:
            (mask, uid, gid, mode, ino, size, blocks, a_s, a_ns, b_s, b_ns, c_s, c_ns, m_s,
             m_ns) = _STATX_ALL.unpack_from(buf)
            if mask & _STATX_NEEDED == _STATX_NEEDED:
                btime = b_s * 1_000_000_000 + b_ns if mask & _STATX_BTIME else None
                gen = _generation(fd) if btime is None and stat.S_ISREG(mode) else None
                return (mode, uid, gid, ino, size, blocks, a_s * 1_000_000_000 + a_ns,
                        m_s * 1_000_000_000 + m_ns, c_s * 1_000_000_000 + c_ns), (ino, btime, gen)
    st = os.fstat(fd)
    return (st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_size, st.st_blocks,
            st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns), of_fd(fd, st)


def of_path(path: str) -> FileId:
    """The identity of `path` itself (a symlink is not followed; a device is not opened)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        birth = _birth(_AT_FDCWD, os.fsencode(path), _AT_SYMLINK_NOFOLLOW)
        return (birth[0], birth[1], None) if birth is not None else (st.st_ino, None, None)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        return of_fd(fd)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def record_fields(file_id: FileId) -> dict[str, int | None]:
    """What a format record keeps of a file's identity."""
    ino, btime, gen = file_id
    return {"ino": ino, "btime": btime, "gen": gen}


def same_file(record: dict, file_id: FileId) -> bool:
    """Is the file `file_id` the one the record was made for? The inode must match, and so
    must each of birth time and generation that both the record and the file have. A field
    only one side has says nothing: a record made where the kernel or filesystem gave no
    birth time (None, or no key in a record older than these fields) still matches its file
    once one is given (a kernel upgrade), and the other way round; failing there would make
    every raw disk "not created here" and its guest-written header believed."""
    ino, btime, gen = file_id
    if record.get("ino") != ino:
        return False
    return all(record.get(key) == now for key, now in (("btime", btime), ("gen", gen))
               if record.get(key) is not None and now is not None)


def identifies(record: dict, file_id: FileId) -> bool:
    """same_file, with a birth time or generation compared too (both sides have one): the
    inode number alone names a file only within one filesystem, and two filesystems made
    alike hand out the same numbers, so a record that matches on it alone may be another
    filesystem's file of the same name."""
    _ino, btime, gen = file_id
    return same_file(record, file_id) and (
        (record.get("btime") is not None and btime is not None)
        or (record.get("gen") is not None and gen is not None))
