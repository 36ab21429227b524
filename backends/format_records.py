"""Format records: the format each volume was created with.

Every action uses the format recorded when poolkeeper created the volume, not what its
header claims now (a guest can write any header into a raw disk). A record applies only to
the very file it was made for (fileid: inode, birth time, generation); any other file under
that name was not created here. An undefined pool's records are set aside with its
definition (store: `.undefined-*`) and taken over by the next pool defined on the same
storage (pool_claims), or by one that lists the very files they were made for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from . import fileid, xmlio
from .errors import PoolkeeperError
from .jobs import Job
from .locks import LockManager
from .model import PoolDef, VolumeInfo
from .pool_claims import source_conflict
from .store import Store


class FormatRecords:
    """The format records of every pool, and the sets undefined pools left aside."""

    def __init__(self, store: Store, locks: LockManager,
                 volume_path: Callable[[str, str], str]) -> None:
        self.store = store
        self.locks = locks
        self._volume_path = volume_path  # (pool, volume name) -> the volume's path
        # pool -> the set-aside record sets this process already matched its volumes against
        self._adoption_tried: dict[str, set[str]] = {}

    def retry_adoption(self, pool: str) -> None:
        """The pool was defined anew or undefined: every set-aside set is worth a look
        again at its next listing."""
        self._adoption_tried.pop(pool, None)

    @contextlib.contextmanager
    def editing(self, pool: str) -> Iterator[dict[str, dict]]:
        """The pool's records to change, written back when the block ends (under the
        pool's records lock, which serialises writers across processes)."""
        held = self.locks.records(pool)
        try:
            records = self.store.volume_records(pool)
            yield records
            self.store.write_volume_records(pool, records)
        finally:
            held.release()

    def record(self, pool: str, name: str, fmt: str, job: Job | None = None, *,
               encryption: str | None = None) -> None:
        """Remember the format of a volume we made (and its encryption: only then is a
        raw volume's LUKS header believed). The storage work is done by now, so a
        failure here is a warning, never a failed job."""
        try:
            identity = fileid.of_path(self._volume_path(pool, name))
            extra = {"encryption": encryption} if encryption else {}
            with self.editing(pool) as records:
                records[name] = {"format": fmt, **extra, **fileid.record_fields(identity)}
        except (PoolkeeperError, OSError) as exc:
            if job is not None:
                job.warnings.append(f"could not record the format of '{name}': {exc}")

    def forget(self, pool: str, name: str) -> None:
        """The volume is gone: so is its record."""
        if name in self.store.volume_records(pool):
            with contextlib.suppress(PoolkeeperError, OSError), self.editing(pool) as records:
                records.pop(name, None)

    def apply(self, pool: str, volumes: list[VolumeInfo]) -> list[VolumeInfo]:
        """The format an action uses is the one recorded when poolkeeper created the volume,
        not what the header claims now (a guest can write any header into a raw disk). A
        record applies only to the very file it was made for (fileid: inode, birth time,
        generation); any other file under that name was not created here."""
        records = self.store.volume_records(pool)
        unrecorded = _apply_to(records, volumes)
        if unrecorded:  # files no record is for: an undefined pool's records may be
            adopted = self._adopt_by_identity(pool, unrecorded, records)
            if adopted is not records:
                _apply_to(adopted, list(unrecorded.values()))
        return volumes

    def _adopt_by_identity(self, pool: str, unrecorded: dict[str, VolumeInfo],
                           records: dict[str, dict]) -> dict[str, dict]:
        """Take over the set-aside records of an undefined pool that were made for files
        this pool lists (same name, same file identity): its directory was moved, renamed
        or bind-mounted elsewhere before it was defined again, which the path-based
        adoption at define time cannot see. Each set is read once per pool and process
        (the monitor lists pools every few seconds); a listing whose files all have their
        records looks at none. Returns the pool's records, with what was adopted."""
        tried = self._adoption_tried.setdefault(pool, set())
        try:
            keys = [key for key in self.store.set_aside_keys() if key not in tried]
        except OSError:
            return records
        for key in keys:
            tried.add(key)
            kept = self.store.set_aside_records(key)
            if kept and _matches_any(kept, unrecorded):
                try:
                    records = self._take_set_aside(pool, key, unrecorded)
                except (PoolkeeperError, OSError):
                    tried.discard(key)  # busy: the next listing tries again
        return records

    def _take_set_aside(self, pool: str, key: str,
                        listed: dict[str, VolumeInfo]) -> dict[str, dict]:
        """Move the set-aside set `key` into the pool's records (once: another process may
        have taken it meanwhile). The pool's own record of a name wins unless it is not the
        listed file's and the adopted one is. Written before the set is dropped: a kill in
        between leaves a copy, which is harmless."""
        with self.locks.store():
            kept = self.store.set_aside_records(key)
            with self.editing(pool) as records:
                for name, rec in (kept or {}).items():
                    if not isinstance(rec, dict):
                        continue
                    own = records.get(name)
                    vol = listed.get(name)
                    if own is None or (vol is not None and not _made_here(own, vol)
                                       and _made_here(rec, vol)):
                        records[name] = rec
                taken = dict(records)
            if kept is not None:
                self.store.drop_undefined_volume_records(key)
        return taken

    def adopt_undefined(self, pdef: PoolDef) -> None:
        """Take over the format records an undefined pool on the same storage left (however
        its path was spelled): a redefined pool must not believe the headers guests wrote
        into the raw disks poolkeeper made there. Each record still applies only to the file
        it was made for. Newer records win; the pool's own (if redefined) win over all."""
        adopted: dict[str, dict] = {}
        taken = []
        for key, definition, records in self.store.undefined_volume_records():
            try:
                old = xmlio.parse_pool(definition)
            except PoolkeeperError:
                continue
            if source_conflict(pdef, old) is None:
                continue  # other storage
            adopted.update(records)
            taken.append(key)
        if not taken:
            return
        with self.editing(pdef.name) as records:
            merged = {**adopted, **records}
            records.clear()
            records.update(merged)
        for key in taken:
            self.store.drop_undefined_volume_records(key)


def _made_here(record: dict, vol: VolumeInfo) -> bool:
    """Is `vol` the file the format record was made for? (Drivers that report no file
    identity, such as disk pools, are matched on the inode of the node, as before.)"""
    if vol.file_id is not None:
        return fileid.same_file(record, vol.file_id)
    return bool(vol.signature) and record.get("ino") == vol.signature[0]


def _apply_to(records: dict[str, dict], volumes: list[VolumeInfo]) -> dict[str, VolumeInfo]:
    """Give each volume the format of its record, if it has one made for its very file;
    returns name -> volume for the files no record is for (those that could have been made
    here: files, not links or directories)."""
    unrecorded = {}
    for vol in volumes:
        rec = records.get(vol.name)
        if rec and _made_here(rec, vol):
            vol.format = rec.get("format", vol.format)
            vol.format_recorded = True
            if vol.format == "raw":
                if not (vol.encryption == "luks" and rec.get("encryption") == "luks"):
                    # a LUKS header a guest wrote into a plain raw disk is the guest's
                    vol.capacity, vol.encryption = vol.physical, None
                vol.backing = vol.data_file = None
                vol.extent_files = []
        elif (vol.file_id is not None and vol.type != "dir" and vol.symlink is None
              and not vol.error):
            unrecorded[vol.name] = vol
    return unrecorded


def _matches_any(records: dict, listed: dict[str, VolumeInfo]) -> bool:
    """Does any of `records` name a listed file and identify it (inode and birth time or
    generation: a set from another filesystem could match on the inode number alone)?"""
    for name, rec in records.items():
        vol = listed.get(name)
        if (vol is not None and vol.file_id is not None and isinstance(rec, dict)
                and fileid.identifies(rec, vol.file_id)):
            return True
    return False
