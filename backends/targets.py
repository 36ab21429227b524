"""What a file or block device is built from, to tell whether it belongs to a pool.

A download must never write into a pool (see download_targets): not through a hard link
to a volume or a bind mount of one, not into a partition or LV, not into a loop device
whose image is a volume. These helpers look without opening anything and without statting
a whole pool: a pool directory on the file's filesystem is scanned by the inode numbers
readdir gives (whatever the file's link count: a bind-mounted volume has one link), only a
name with the file's inode is statted, and devices are compared by number through
/sys/dev/block.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from . import blockprobe


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def hard_link_names(directory: str, st: os.stat_result) -> list[str]:
    """Names in `directory` that are the file `st` (its other hard links)."""
    names = []
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.inode() != st.st_ino:
                continue
            with contextlib.suppress(OSError):
                if same_file(entry.stat(follow_symlinks=False), st):
                    names.append(entry.name)
    return names


def _sys_dir(rdev: int) -> Path | None:
    path = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")
    with contextlib.suppress(OSError):
        return path.resolve(strict=True)
    return None


def _rdev_of(sys_dir: Path) -> int | None:
    try:
        major, minor = (sys_dir / "dev").read_text().strip().split(":")
        return os.makedev(int(major), int(minor))
    except (OSError, ValueError):
        return None


def _name(rdev: int, sys_dir: Path | None) -> str:
    return f"/dev/{sys_dir.name}" if sys_dir else f"device {os.major(rdev)}:{os.minor(rdev)}"


def block_family(rdev: int) -> list[tuple[int, str]]:
    """(device number, /dev name) of the block device `rdev` (first), the whole disk if it
    is a partition, and every device it is built on (sysfs slaves: the PVs under an LV),
    recursively, with their whole disks."""
    found: dict[int, str] = {}
    todo = [rdev]
    while todo:
        number = todo.pop(0)
        if number in found:
            continue
        sys_dir = _sys_dir(number)
        found[number] = _name(number, sys_dir)
        if sys_dir is None:
            continue
        if (sys_dir / "partition").exists():
            parent = _rdev_of(sys_dir.parent)
            if parent is not None:
                todo.append(parent)
        with contextlib.suppress(OSError):
            for slave in sorted((sys_dir / "slaves").iterdir()):
                number = _rdev_of(slave.resolve())
                if number is not None:
                    todo.append(number)
    return list(found.items())


def partitions_of(rdev: int) -> list[tuple[int, str]]:
    """(device number, /dev name) of the partitions of the whole disk `rdev`."""
    sys_dir = _sys_dir(rdev)
    if sys_dir is None:
        return []
    found = []
    with contextlib.suppress(OSError):
        for child in sorted(sys_dir.iterdir()):
            if (child / "partition").exists():
                number = _rdev_of(child)
                if number is not None:
                    found.append((number, f"/dev/{child.name}"))
    return found


def loop_backing(rdev: int) -> tuple[str, os.stat_result] | None:
    """(path, stat) of the image behind the loop device `rdev`, if that path still names
    the very file the kernel has (None for other devices, or a moved or deleted image)."""
    sys_dir = _sys_dir(rdev)
    if sys_dir is None or not (sys_dir / "loop").is_dir():
        return None
    ident = blockprobe.loop_identity(f"/dev/{sys_dir.name}")
    if ident is None:
        return None
    try:
        st = os.stat(ident.backing)
    except OSError:
        return None
    if (st.st_dev, st.st_ino) != (ident.st_dev, ident.st_ino):
        return None
    return ident.backing, st
