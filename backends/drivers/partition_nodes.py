"""The kernel's partition nodes of a disk: what sysfs says they are, brought in line with
the table after every change, and opened only when they match it.

Decisions:
  * After every table change, partition nodes are brought in line with the table with
    partx (add, delete or update per partition number), since this kernel does not read
    partition tables itself.
  * A partition's bytes are read and written through its node /dev/NAME only after the
    kernel's view of it (sysfs start and size) was checked against the table, and the
    node opened is that very partition (its device number and size); there is no
    fallback to the whole disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import blockprobe, fileops, runner
from ..errors import InUse, StateError
from .parted_table import DiskTable, Partition

SYSFS_SECTOR = 512  # sysfs start/size are always in 512-byte units


@dataclass(frozen=True)
class KernelPartition:
    name: str
    number: int
    start: int  # bytes
    size: int  # bytes
    dev: str  # "major:minor"


def kernel_partitions(disk: str) -> dict[int, KernelPartition]:
    """The partitions the kernel has for the whole disk node `disk` (from sysfs)."""
    base = Path("/sys/class/block") / os.path.basename(disk)
    found = {}
    with contextlib.suppress(OSError):
        for child in base.iterdir():
            try:
                number = int((child / "partition").read_text())
                start = int((child / "start").read_text()) * SYSFS_SECTOR
                size = int((child / "size").read_text()) * SYSFS_SECTOR
                dev = (child / "dev").read_text().strip()
            except (OSError, ValueError):
                continue
            found[number] = KernelPartition(child.name, number, start, size, dev)
    return found


def kernel_matches(kp: KernelPartition | None, part: Partition) -> bool:
    if kp is None or kp.start != part.start:
        return False
    return part.kind == "extended" or kp.size == part.size  # extended: a 1 KiB stub


def sync_nodes(disk: str, table: DiskTable) -> list[str]:
    """Make the kernel's partitions of `disk` match `table` (partx per partition number:
    delete what is gone or moved, add what is missing, resize what changed). Returns what
    still differs afterwards, in words (empty: all in line)."""
    want = {p.number: p for p in table.partitions}
    have = kernel_partitions(disk)
    for number, kp in sorted(have.items()):
        part = want.get(number)
        if part is None or kp.start != part.start:
            runner.run(["partx", "-d", "--nr", f"{number}:{number}", disk], check=False)
    have = kernel_partitions(disk)
    for number, part in sorted(want.items()):
        kp = have.get(number)
        if kp is None:
            runner.run(["partx", "-a", "--nr", f"{number}:{number}", disk], check=False)
        elif not kernel_matches(kp, part):
            runner.run(["partx", "-u", "--nr", f"{number}:{number}", disk], check=False)
    have = kernel_partitions(disk)
    problems = []
    for number, part in sorted(want.items()):
        if not kernel_matches(have.get(number), part):
            problems.append(f"partition {number} is not known to the kernel as in the table")
    problems += [f"the kernel still has {kp.name}, which is not in the table"
                 for n, kp in sorted(have.items()) if n not in want]
    return problems


def refuse_node_in_use(kp: KernelPartition | None, verb: str) -> None:
    if kp is None:
        return
    users = blockprobe.device_users(f"/dev/{kp.name}")
    if users:
        raise InUse(f"/dev/{kp.name} is in use ({'; '.join(users)}); poolkeeper will not "
                    f"{verb}")


def open_node(disk: str, part: Partition, name: str, flags: int) -> int:
    """An fd on the partition node /dev/NAME of `part`, after checking that the kernel's
    partition is exactly the one in the table. Never the whole disk."""
    kp = kernel_partitions(disk).get(part.number)
    fix = (f"poolkeeper will not fall back to the whole disk; partx -u {disk} brings the "
           "kernel in line with the table")
    if kp is None or kp.name != name:
        raise StateError(f"the partition node /dev/{name} does not exist; {fix}")
    if not kernel_matches(kp, part):
        raise StateError(
            f"the partition node /dev/{name} ({kp.start}-{kp.start + kp.size}) does not "
            f"match the table ({part.start}-{part.end}); {fix}")
    dfd = os.open("/dev", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = fileops.open_volume(dfd, name, flags)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise InUse(f"/dev/{name} is in use (mounted or claimed by the kernel)"
                            ) from None
            raise
    finally:
        os.close(dfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISBLK(st.st_mode) or \
                f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" != kp.dev:
            raise StateError(f"/dev/{name} is not the kernel's partition {kp.dev}")
        size = os.lseek(fd, 0, os.SEEK_END)
        if size != part.size:
            raise StateError(f"/dev/{name} has {size} bytes, the table says {part.size}")
    except BaseException:
        os.close(fd)
        raise
    return fd
