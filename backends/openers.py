"""Which other processes have a volume open, and whether they can write it.

The in-use refusals of the volume verbs rest on this: delete, wipe, upload and a shrinking
resize refuse a volume any other process has open; a growing resize refuses only one that
another process has open for writing (a running guest).

Every process's fds are looked at in /proc: `stat` of /proc/PID/fd/N is the open object
itself, so a file is matched by (st_dev, st_ino), whatever name it was opened by (a hard
link, a bind mount, a renamed file), and a block device by its device number (the volume,
or a partition of it). The access mode is the `flags:` line of /proc/PID/fdinfo/N (what
psutil reads too). Our own process is left out: its opens belong to jobs, which hold busy
marks. A process that mapped a file and closed the fd is not seen.

A file attached to a loop device is in use although no process may have it open (losetup
closes its fd; the kernel holds the file): the loop devices whose backing file has the
volume's device and inode count too, a read-write one as a writer, named with what uses
the loop device (its mounts, kernel holders and openers).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

from . import blockprobe
from .records import record
from .records import set_field as _set

K = TypeVar("K", bound=Hashable)


@record(frozen=True)
class Opener:
    """A process that has the object open, and whether for writing."""
    name: str
    pid: int
    writes: bool  # one of its fds on the object is open O_WRONLY or O_RDWR

    def __init__(self, name: str, pid: int, writes: bool) -> None:
        _set(self, "name", name)
        _set(self, "pid", pid)
        _set(self, "writes", writes)

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"

    def describe(self) -> str:
        """'open by NAME (pid N) for writing' / '... read-only' (the TUI looks for 'open by')."""
        return f"open by {self} {'for writing' if self.writes else 'read-only'}"


def _writes(pid: int, fd: str) -> bool:
    """Is /proc/PID/fd/FD open for writing? Unknown (the process is gone) counts as yes."""
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
            for line in fh:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE != os.O_RDONLY
    except (OSError, ValueError, IndexError):
        pass
    return True


def _name(pid: int) -> str:
    import psutil  # imported when used: it costs a listing ~10 ms
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def scan(match: Callable[[os.stat_result], K | None]) -> dict[K, list[Opener]]:
    """key -> the other processes with an fd on an object for which match(stat) gives key."""
    import psutil  # imported when used: it costs a listing ~10 ms
    found: dict[K, list[Opener]] = {}
    me = os.getpid()
    for pid in psutil.pids():
        if pid == me:
            continue
        base = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(base)
        except OSError:
            continue
        writes: dict[K, bool] = {}
        for fd in fds:
            try:
                key = match(os.stat(f"{base}/{fd}"))
            except OSError:
                continue
            if key is not None:
                writes[key] = writes.get(key, False) or _writes(pid, fd)
        if writes:
            name = _name(pid)
            for key, w in writes.items():
                found.setdefault(key, []).append(Opener(name, pid, w))
    return found


def file_openers(paths: Iterable[str]) -> dict[str, list[Opener]]:
    """path -> other processes holding that regular file open (by device and inode)."""
    wanted: dict[tuple[int, int], str] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            wanted[(st.st_dev, st.st_ino)] = path
    if not wanted:
        return {}
    return scan(lambda st: wanted.get((st.st_dev, st.st_ino)) if stat.S_ISREG(st.st_mode)
                else None)


def device_openers(device: str) -> list[Opener]:
    """Other processes holding the block device, or one of its partitions, open."""
    numbers = set()
    for node in (device, *blockprobe.partitions(device)):
        try:
            st = os.stat(node)
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode):
            numbers.add(st.st_rdev)
    if not numbers:
        return []
    found = scan(lambda st: True if stat.S_ISBLK(st.st_mode) and st.st_rdev in numbers
                 else None)
    return found.get(True, [])


def users(path: str, *, block: bool, writers_only: bool) -> list[str]:
    """Why the volume at `path` is in use, in words; empty if it is free for the act.

    writers_only: only what writes counts (processes with it open for writing; for a block
    device also a mount, a kernel holder such as device-mapper, or an exclusive claim; for
    a file a loop device attached to it read-write).
    """
    if block:
        reasons = [f"mounted at {m.target}" + (f" ({m.source})" if m.source != path else "")
                   for m in blockprobe.mounts_of(path)]
        reasons += [f"held by {name}" for name in blockprobe.kernel_holders(path)]
        openers = device_openers(path)
    else:
        reasons = loop_users(path, writers_only=writers_only)
        openers = file_openers([path]).get(path, [])
    reasons += [o.describe() for o in openers if o.writes or not writers_only]
    if block and not reasons and blockprobe.exclusively_claimed(path):
        reasons.append("claimed by the kernel (mounted in another namespace, swap, RAID, ...)")
    return reasons


def _loop_read_only(device: str) -> bool:
    """Was the loop device attached read-only (losetup -r)? sysfs `ro`; unknown: no."""
    try:
        with open(f"/sys/block/{os.path.basename(device)}/ro") as fh:
            return fh.read().strip() == "1"
    except OSError:
        return False


def loop_users(path: str, *, writers_only: bool) -> list[str]:
    """The loop devices attached to the regular file `path` (matched by device and inode,
    attached by anyone), in words with what uses them: no process has the file open, yet
    the kernel reads and writes it for the loop device's users (a mount, a guest on
    /dev/loopN). A read-write attachment counts as a writer; a read-only one does not."""
    reasons = []
    for ident in blockprobe.loops_backed_by(path):
        read_only = _loop_read_only(ident.device)
        if writers_only and read_only:
            continue
        uses = [f"mounted at {m.target}" for m in blockprobe.mounts_of(ident.device)]
        uses += [f"held by {name}" for name in blockprobe.kernel_holders(ident.device)]
        uses += [o.describe() for o in device_openers(ident.device)]
        reasons.append(f"attached as {ident.device}" + (" read-only" if read_only else "")
                       + (f" ({', '.join(uses)})" if uses else ""))
    return reasons
