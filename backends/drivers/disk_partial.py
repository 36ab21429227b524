"""Partitions being filled by a clone: how a disk pool marks them so that a kill -9
mid-copy never leaves a half-copied partition listed as a volume.

  * gpt: the partition is made with the name PARTIAL_NAME (parted's mkpart takes the name
    as its first word on gpt) and renamed to 'primary', what every other create gets, when
    the copy is complete. The mark is in the table itself, so it survives anything.
  * every other label (dos above all) has no partition names: a record is written under
    the state root's CONFIG dir (CONFIG/storage/partitions-being-filled/) BEFORE parted
    makes the partition, and removed when the copy is complete. The config dir, not the
    runtime dir: a partition outlives a reboot (a power cut mid-copy is a crash too),
    and a record in /run would not. A record names the pool that made it and the disk:
    what backs it (an image file by its st_dev and st_ino; a block device by its
    /dev/disk/by-id names where udev made any, else by its device number), its label,
    its dos disk identifier (MBR bytes 440-443) and its size; and the partition by its
    start and end. So it is found again whatever node the disk has next time (a loop
    device's number changes with every attach), and never on another disk that looks
    the same: a copy of a disk image (`cp a.img b.img`) has the same identifier and
    size, and a pool on the copy must neither hide nor remove its own partition in the
    same slot, nor remove the record of the pool being filled. A pool only ever sees,
    acts on and removes its own records.

A marked partition is not listed; the controller removes one whose volume lock is free
(a live clone holds it, and keeps the partition open O_EXCL, which remove_partial checks
too), when the pool is started or first used, as with logical pools' tagged LVs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import blockprobe, pathsafety
from ..store import atomic_write, json_records
from .parted_table import Partition

PARTIAL_NAME = "poolkeeper-partial"  # gpt partition name while a clone fills it
COMPLETE_NAME = "primary"  # what parted names every other gpt partition poolkeeper makes
RECORDS_DIR = ("storage", "partitions-being-filled")  # under the config dir
_DOS_ID_OFFSET = 440


BY_ID_DIR = "/dev/disk/by-id"


@dataclass(frozen=True)
class FillRecord:
    path: Path
    disk: dict  # see disk_identity
    start: int
    end: int  # exclusive
    number: int  # the partition number it was made with


def image_backing(image: str) -> dict:
    """An image file, by the file itself (a copy is another file)."""
    st = os.stat(image)
    return {"kind": "image", "st_dev": st.st_dev, "st_ino": st.st_ino}


def block_backing(device: str) -> dict:
    """A whole-disk block device: its device number, and its stable by-id names (the
    number of /dev/sdb may go to another disk after a reboot; a by-id name does not)."""
    rdev = os.stat(device).st_rdev
    names = []
    with contextlib.suppress(OSError):
        for entry in sorted(os.listdir(BY_ID_DIR)):
            with contextlib.suppress(OSError):
                if os.stat(os.path.join(BY_ID_DIR, entry)).st_rdev == rdev:
                    names.append(entry)
    return {"kind": "block", "rdev": rdev, "by_id": names}


def source_backing(disk: str, *, image: bool) -> dict:
    """What backs `disk`: for an image source, the file the loop device it is attached to
    has (or the image itself, not attached); else the whole-disk block device."""
    if image:
        loop = blockprobe.loop_identity(disk)  # attached: the file the kernel has
        return image_backing(disk) if loop is None else {
            "kind": "image", "st_dev": loop.st_dev, "st_ino": loop.st_ino}
    return block_backing(disk)


def _same_backing(recorded: object, now: dict) -> bool:
    if not isinstance(recorded, dict) or recorded.get("kind") != now["kind"]:
        return False
    if now["kind"] == "image":
        return (recorded.get("st_dev"), recorded.get("st_ino")) == (now["st_dev"],
                                                                     now["st_ino"])
    names = recorded.get("by_id")
    if isinstance(names, list) and names and now["by_id"]:
        return bool(set(names) & set(now["by_id"]))
    return recorded.get("rdev") == now["rdev"]


def disk_identity(device: str, label: str | None, size: int, *, pool: str,
                  backing: dict) -> dict:
    """What a record says of the disk: the pool, what backs the disk (image_backing or
    block_backing), and the table as it was (label, dos identifier, size)."""
    ident = None
    if label == "dos":
        with contextlib.suppress(OSError):
            fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
            try:
                raw = os.pread(fd, 4, _DOS_ID_OFFSET)
            finally:
                os.close(fd)
            if len(raw) == 4:
                ident = f"0x{int.from_bytes(raw, 'little'):08x}"
    return {"pool": pool, "backing": backing, "label": label, "id": ident, "size": size}


def same_disk(recorded: dict, now: dict) -> bool:
    """Is a record's disk this one: same pool, same backing, same table? A record from
    before records named their pool (no "pool") matches nothing: it cannot be told from
    another pool's."""
    return (recorded.get("pool") == now["pool"]
            and _same_backing(recorded.get("backing"), now["backing"])
            and all(recorded.get(key) == now[key] for key in ("label", "id", "size")))


class FillRecords:
    """The records of one state root (config_dir None: a bare driver, no records)."""

    def __init__(self, config_dir: Path | None) -> None:
        self.dir = Path(config_dir).joinpath(*RECORDS_DIR) if config_dir is not None else None

    @property
    def usable(self) -> bool:
        return self.dir is not None

    def add(self, disk: dict, start: int, end: int, number: int) -> Path | None:
        """Record a partition about to be made (durably, before parted runs)."""
        if self.dir is None:
            return None
        pathsafety.ensure_state_dir(self.dir, "the partition records dir", 0o700,
                                    private=True)
        path = self.dir / f"{os.urandom(8).hex()}.json"
        data = {"disk": disk, "start": start, "end": end, "number": number}
        atomic_write(path, json.dumps(data, sort_keys=True).encode(), 0o600)
        return path

    def of_disk(self, disk: dict) -> list[FillRecord]:
        """The records of this pool's disk (see same_disk); every other one is left as
        it is, for its own pool to judge."""
        found = []
        for path, data in json_records(self.dir):
            try:
                record = FillRecord(path, data["disk"], int(data["start"]), int(data["end"]),
                                    int(data["number"]))
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(record.disk, dict) and same_disk(record.disk, disk):
                found.append(record)
        return found

    @staticmethod
    def remove(path: Path | None) -> None:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def match_records(partitions: Sequence[Partition], records: list[FillRecord]
                  ) -> tuple[dict[int, FillRecord | None], list[FillRecord]]:
    """The partitions the records of a disk mark (number -> record), and the records whose
    partition is not in the table (a clone killed before parted made it, or one still
    about to)."""
    marked: dict[int, FillRecord | None] = {}
    orphans = []
    for record in records:
        part = next((p for p in partitions
                     if (p.start, p.end) == (record.start, record.end)), None)
        if part is None:
            orphans.append(record)
        else:
            marked[part.number] = record
    return marked, orphans
