"""Partitions being filled by a clone: how a disk pool marks them so that a kill -9
mid-copy never leaves a half-copied partition listed as a volume.

  * gpt: the partition is made with the name PARTIAL_NAME (parted's mkpart takes the name
    as its first word on gpt) and renamed to 'primary', what every other create gets, when
    the copy is complete. The mark is in the table itself, so it survives anything.
  * every other label (dos above all) has no partition names: a record is written under
    the state root's CONFIG dir (CONFIG/storage/partitions-being-filled/) BEFORE parted
    makes the partition, and removed when the copy is complete. The config dir, not the
    runtime dir: a partition outlives a reboot (a power cut mid-copy is a crash too),
    and a record in /run would not. A record names the disk by its label, its dos disk
    identifier (MBR bytes 440-443) and its size, and the partition by its start and end,
    so it is found again whatever node the disk has next time (a loop device's number
    changes with every attach).

A marked partition is not listed; the controller removes one whose volume lock is free
(a live clone holds it, and keeps the partition open O_EXCL, which remove_partial checks
too), when the pool is started or first used, as with logical pools' tagged LVs.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import pathsafety
from ..store import atomic_write, remove_abandoned

PARTIAL_NAME = "poolkeeper-partial"  # gpt partition name while a clone fills it
COMPLETE_NAME = "primary"  # what parted names every other gpt partition poolkeeper makes
RECORDS_DIR = ("storage", "partitions-being-filled")  # under the config dir
_DOS_ID_OFFSET = 440


@dataclass(frozen=True)
class FillRecord:
    path: Path
    disk: dict  # {"label", "id", "size"}
    start: int
    end: int  # exclusive
    number: int  # the partition number it was made with


def disk_identity(device: str, label: str | None, size: int) -> dict:
    """What names a disk across reboots and re-attaches: label, dos identifier, size."""
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
    return {"label": label, "id": ident, "size": size}


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
        if self.dir is None or not self.dir.is_dir():
            return []
        with contextlib.suppress(OSError):
            dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                remove_abandoned(dfd)  # temp files of a writer killed mid-save
            finally:
                os.close(dfd)
        found = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                data = json.loads(path.read_bytes())
                record = FillRecord(path, data["disk"], int(data["start"]), int(data["end"]),
                                    int(data["number"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if record.disk == disk:
                found.append(record)
        return found

    @staticmethod
    def remove(path: Path | None) -> None:
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
