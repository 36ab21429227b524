"""disk pools: a partition table on a whole disk; the volumes are its partitions.

What the table says, and where a new partition goes, is parted_table.py's; the kernel's
partition nodes, and how one is opened, are partition_nodes.py's. Here are the pool and
volume verbs, which change the table with parted and then bring the nodes in line.

Decisions:
  * A create must use the name parted will give the partition, as the kernel names it
    (the error names it).
  * The default volume format is 'linux': 'none' asks for no type, and parted then writes
    the Linux type anyway, so 'none' would come back as 'linux' on the next refresh;
    'linux' is what a default create really makes. 'none' is accepted (libvirt XML).
  * I/O (wipe, upload, download, clone) goes through the partition node only (see
    partition_nodes.py), opened O_EXCL for writing. The extended partition is never
    written.
  * An image file as the source is attached to a loop device on start and detached on
    stop, with fs's loop identity handling and its claims (loops.py: what a killed start
    left attached is released on the next use); volume names then follow that loop
    device. The image file itself is flocked while it is checked, attached, labelled or
    wiped, so that poolkeepers with separate state roots meet on it.
  * A partition being filled by a clone is marked until the copy is complete (the gpt
    name 'poolkeeper-partial', or a record under the config dir for other labels; see
    disk_partial.py): it is not listed, and one a killed clone left is removed on the
    next use. Delete refuses a table that still has partitions unless forced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from pathlib import Path
from typing import ClassVar

from .. import blockprobe, fileops, runner
from ..checks import require_device_path
from ..errors import (
    InUse,
    PoolkeeperError,
    StateError,
    Unsupported,
    ValidationError,
    VolumeNotFound,
)
from ..model import (
    DISK_POOL_FORMATS,
    DISK_VOLUME_FORMATS,
    DeviceLayout,
    Extent,
    FreeExtent,
    Permissions,
    PoolDef,
    PoolSizes,
    PoolSource,
    SourceDevice,
    SourceRule,
    VolumeDef,
    VolumeInfo,
)
from ..progress import NULL_CONTEXT, JobContext, shielded
from ..units import human
from .base import Claim, PoolDriver, device_claims
from .disk_partial import (
    COMPLETE_NAME,
    PARTIAL_NAME,
    FillRecord,
    FillRecords,
    disk_identity,
    match_records,
    source_backing,
)
from .fddata import FdDataVerbs
from .loopsource import LoopImageSource
from .parted_table import (
    ALIGN,
    MKPART_ARGS,
    NO_PART_TYPE,
    PARTED_LABELS,
    DiskTable,
    Partition,
    Plan,
    parse_parted,
    partition_name,
    partition_number,
    plan_growth,
    plan_partition,
    read_table,
    volume_format,
)
from .partition_nodes import (
    KernelPartition,
    kernel_matches,
    kernel_partitions,
    open_node,
    refuse_node_in_use,
    sync_nodes,
)

# The table's names that callers know from here, with the driver's own.
__all__ = ["ALIGN", "MKPART_ARGS", "DiskDriver", "DiskTable", "Partition", "parse_parted",
           "partition_name", "partition_number", "volume_format"]

_TARGET = re.compile(r"/dev(/disk/by-[A-Za-z0-9_.-]+)?")


# == the driver ===========================================================================
def _check_device_path(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("a disk pool needs <device path='/dev/...'/>", "device")
    return require_device_path(value)


class DiskDriver(FdDataVerbs, LoopImageSource, PoolDriver):
    type = "disk"
    fit_hint = "grow the partition first (vol-resize)"
    volume_formats: ClassVar[tuple[str, ...]] = DISK_VOLUME_FORMATS
    creatable_formats: ClassVar[tuple[str, ...]] = DISK_VOLUME_FORMATS
    default_volume_format: ClassVar[str | None] = "linux"
    can_build = True
    can_create_volumes = True
    can_delete_volumes = True
    can_resize_volumes = True
    pool_formats = DISK_POOL_FORMATS
    source_rule = SourceRule(
        devices=(1, 1),
        part_separator=True,
        needs={"device": "exactly one <device path='/dev/...'/>: the disk to partition"},
    )
    volumes_fully_allocated = True  # a partition is never sparse
    volumes_are_devices = True
    target_hint = "the directory of the partition device nodes, usually /dev"
    build_does = "writes a new partition table on {source} (parted mklabel)"
    delete_does = "wipes the partition table of {source}: every partition on it is lost"
    form_fields = ("name", "target", "device", "format")
    target_placeholder = "/dev"
    default_target = "/dev"
    discover_hint = "look for local disks"
    tools = {"parted": "parted"}

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        return device_claims(pool)

    # -- definition --------------------------------------------------------------------------
    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        if len(pool.source.devices) != 1:
            raise ValidationError("a disk pool needs exactly one <device path='...'/>: the "
                                  "disk to partition", "source")
        _check_device_path(pool.source.devices[0].path)
        fmt = pool.source.format
        if fmt is not None and fmt not in DISK_POOL_FORMATS:
            raise ValidationError(f"'{fmt}' is not a partition table poolkeeper knows; use one "
                                  "of: " + ", ".join(DISK_POOL_FORMATS), "format")
        target = pool.target.path
        if not isinstance(target, str) or not _TARGET.fullmatch(target.rstrip("/") or "/"):
            raise ValidationError(
                f"a disk pool's target is where the partition nodes appear: /dev or a "
                f"/dev/disk/by-* directory, not {target!r}", "path")

    @property
    def source_path(self) -> str:
        return self.pool.source.devices[0].path

    @property
    def target(self) -> str:
        return (self.pool.target.path or "/dev").rstrip("/") or "/dev"

    @property
    def part_separator(self) -> bool | None:
        return self.pool.source.devices[0].part_separator

    def _source_kind(self) -> str:
        path = self.source_path
        kind = blockprobe.source_kind(path, self.name)
        if kind == "block":
            real = os.path.realpath(path)
            whole = blockprobe.whole_disk(real)
            if whole != real:
                raise ValidationError(f"{path} is a partition of {whole}; a disk pool needs the "
                                      "whole disk", "device")
        return kind

    def _disk(self) -> str:
        """The whole-disk node the table is on (/dev/sdb, /dev/loop3 for an image)."""
        if self._source_kind() == "image":
            loop = self._recorded_loop()
            if loop is None:
                raise StateError(f"the image {self.source_path} of pool '{self.name}' is not "
                                 f"attached any more; stop and start the pool")
            return loop.device
        return "/dev/" + os.path.basename(os.path.realpath(self.source_path))

    def _table(self, disk: str | None = None) -> DiskTable:
        table = read_table(disk or self._disk())
        if table.label is None:
            what = "a filesystem" if table.parted_label == "loop" else "no partition table"
            raise StateError(f"{self.source_path} holds {what}; build pool '{self.name}' first "
                             f"(pool-build {self.name})")
        return table

    # -- pool --------------------------------------------------------------------------------
    def check(self) -> bool:
        try:
            return stat.S_ISBLK(os.stat(self._disk()).st_mode)
        except (OSError, PoolkeeperError):
            return False

    def existing_content(self) -> list[str]:
        try:
            return blockprobe.signatures(self.source_path)
        except (PoolkeeperError, OSError) as exc:
            return [f"unknown content ({exc})"]

    def build(self, overwrite: bool | None, ctx: JobContext) -> None:
        self.validate(self.pool)
        fmt = self.pool.source.format or "dos"
        if fmt == "lvm2":
            raise Unsupported("parted cannot write an 'lvm2' label; an LVM physical volume on "
                              "the whole disk belongs in a logical pool")
        label = PARTED_LABELS[fmt]
        runner.tool_path("parted")  # before anything is touched
        kind = self._source_kind()
        if kind == "image":
            device = os.path.realpath(self.source_path)
            lock = blockprobe.image_lock(device)  # every state root meets on the image itself
        else:
            device = self._disk()
            lock = blockprobe.disk_lock(device)
        with lock:
            if kind == "image":
                self._release_and_refuse_attached(device, "attached as {device}; poolkeeper "
                                                  "will not write a partition table over it, "
                                                  "even with --overwrite")
            else:
                self._refuse_in_use(device, "write a partition table on it")
            blockprobe.refuse_unless_overwrite(blockprobe.probe(device), overwrite, device)
            (ctx or NULL_CONTEXT).check()
            # Begun, the change is made whole: a cancel from here on (which never kills
            # wipefs or parted, see runner) does not stop the job between the wipe, the
            # label and the kernel's nodes; the build ends done.
            with shielded():
                if overwrite:
                    _wipe_signatures(device, kind)
                runner.run(["parted", "-s", device, "mklabel", label], timeout=120)
                if kind == "block":
                    sync_nodes(device, read_table(device))  # drop the old partitions' nodes

    def _refuse_in_use(self, device: str, verb: str) -> None:
        users = blockprobe.device_users(device)
        if users:
            raise InUse(f"{device} is in use ({'; '.join(users)}); poolkeeper will not {verb}, "
                        "even with --overwrite")

    def start(self) -> None:
        self.validate(self.pool)
        kind = self._source_kind()
        attached = self._attach_image_for_start() if kind == "image" else None
        try:
            disk = self._disk()
            table = read_table(disk)
            self._check_label(table)
            sync_nodes(disk, table)  # problems show as volume errors, not a failed start
        except BaseException:
            if attached is not None:
                self._detach(attached)
            raise

    def _check_label(self, table: DiskTable) -> None:
        want = self.pool.source.format
        if table.label is None:
            what = ("a filesystem and no partition table" if table.parted_label == "loop"
                    else "no partition table")
            raise StateError(f"{self.source_path} holds {what}; build the pool first "
                             f"(pool-build {self.name})")
        if want not in (None, "unknown") and table.label != want:
            raise StateError(f"{self.source_path} has a {table.label} partition table, but pool "
                             f"'{self.name}' expects {want}; fix <format type=...> or rebuild "
                             "the pool with --overwrite")

    def _detach(self, loop: blockprobe.LoopIdentity) -> None:
        """Drop the partition nodes, then the loop device (only if it is still ours)."""
        now = blockprobe.loop_identity(loop.device)
        if now is None or not now.matches(loop.record()):
            return
        if kernel_partitions(loop.device):
            runner.run(["partx", "-d", loop.device], check=False, timeout=60)
        self._loops.detach(loop)
        self.extras.pop("loop", None)

    def stop(self) -> None:
        loop = self._recorded_loop()
        if loop is not None:
            users = blockprobe.device_users(loop.device)
            if users:
                raise InUse(f"cannot stop pool '{self.name}': {loop.device} (the image "
                            f"{self.source_path}) is in use ({'; '.join(users)})")
            self._detach(loop)
        self.extras.pop("loop", None)

    def delete(self) -> None:
        """Remove the partition table (wipefs), refused while anything on the disk is used.
        Whether it still holds partitions is the controller's question first
        (stored_volumes)."""
        self.validate(self.pool)
        if self._source_kind() == "image":
            image = os.path.realpath(self.source_path)
            with blockprobe.image_lock(image):
                self._release_and_refuse_attached(image, "attached as {device}; detach it "
                                                  "first")
                _wipe_signatures(image, "image")
            return
        device = self._disk()
        with blockprobe.disk_lock(device):
            self._refuse_in_use(device, "delete its partition table")
            _wipe_signatures(device, "block")
            sync_nodes(device, read_table(device))

    def stored_volumes(self) -> list[str]:
        """The partitions of the inactive pool's disk that are volumes (not the extended
        container, not label metadata, not one a clone left half-made), read from the
        table without changing anything. A source that holds something other than a
        partition table cannot be judged."""
        self.validate(self.pool)
        kind = self._source_kind()
        device = os.path.realpath(self.source_path) if kind == "image" else self._disk()
        table = read_table(device)
        if table.label is None:
            found = blockprobe.probe(device)
            if found.signatures or found.problem:
                why = found.problem or f"it holds {found.describe()}, not a partition table"
                raise StateError(f"cannot tell whether pool '{self.name}' still holds volumes "
                                 f"({why}); pool-delete {self.name} --force erases it anyway")
            return []
        marked, _orphans = self._partials(device, table)
        parts = [p for p in table.data_partitions if p.number not in marked]
        if kind == "image":  # no kernel names while the image is not attached
            return [f"partition {p.number} ({human(p.size)})" for p in parts]
        return [partition_name(device, p.number, self.part_separator) for p in parts]

    # -- reading -----------------------------------------------------------------------------
    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        disk = self._disk()
        table = self._table(disk)
        kernel = kernel_partitions(disk)
        marked, _orphans = self._partials(disk, table)
        return self._sizes(table), [self._info(disk, table, p, kernel)
                                    for p in table.partitions if p.number not in marked]

    def refresh_volume(self, name: str) -> VolumeInfo | None:
        disk = self._disk()
        number = partition_number(disk, name, self.part_separator)
        if number is None:
            return None
        table = self._table(disk)
        part = table.get(number)
        if part is None or number in self._partials(disk, table)[0]:
            return None  # being filled by a clone, or half-made by a killed one
        return self._info(disk, table, part, kernel_partitions(disk))

    # -- partitions being filled (see disk_partial.py) ---------------------------------------
    @property
    def _fill_records(self) -> FillRecords:
        return FillRecords(self.config_dir)

    def _record_identity(self, disk: str, table: DiskTable) -> dict:
        """What this pool's fill records say of `disk` (the image itself or the loop
        device it is attached to, or the whole-disk node): see disk_partial.py."""
        backing = source_backing(disk, image=self._source_kind() == "image")
        return disk_identity(disk, table.label, table.size, pool=self.name, backing=backing)

    def _partials(self, disk: str, table: DiskTable
                  ) -> tuple[dict[int, FillRecord | None], list[FillRecord]]:
        """Partitions a clone is filling or a killed one left (number -> its record; None
        for a gpt name), and records of this disk whose partition is not in the table (a
        clone killed before parted made it, or one still about to)."""
        if table.label == "gpt":
            return {p.number: None for p in table.partitions if p.label == PARTIAL_NAME}, []
        return match_records(table.partitions,
                             self._fill_records.of_disk(self._record_identity(disk, table)))

    def partial_volumes(self) -> list[str]:
        """Names of the partitions clones are filling or killed ones left (the controller
        tells them apart by the volume lock a live clone holds)."""
        disk = self._disk()
        table = self._table(disk)
        marked, orphans = self._partials(disk, table)
        numbers = set(marked) | {r.number for r in orphans}
        return sorted(partition_name(disk, n, self.part_separator) for n in numbers)

    def remove_partial(self, name: str) -> None:
        """Remove a half-made partition (never one in use: a live clone has it open O_EXCL)
        and its record."""
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = self._table(disk)
            number = self._number(disk, name)
            marked, orphans = self._partials(disk, table)
            for record in orphans:
                if record.number == number:
                    FillRecords.remove(record.path)
            part = table.get(number)
            if part is None or number not in marked:
                return
            problems = self._remove_partition(disk, table, part, name,
                                              f"remove the half-made partition {name}")
            if not problems:
                record = marked[number]
                FillRecords.remove(record.path if record is not None else None)

    def _mark_complete(self, part: Partition, record: Path | None) -> None:
        """The copy is done: drop the record of a non-gpt partition, or rename a gpt one to
        what every other create gets."""
        FillRecords.remove(record)
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = read_table(disk)
            if table.label != "gpt":
                return
            now = table.get(part.number)
            if now is None or now.start != part.start or now.label != PARTIAL_NAME:
                raise StateError(f"partition {part.number} of {disk} changed while it was "
                                 "being filled")
            runner.run(["parted", "-s", disk, "name", str(part.number), COMPLETE_NAME],
                       timeout=120)
            sync_nodes(disk, read_table(disk))

    def sizes(self) -> PoolSizes:
        return self._sizes(self._table())

    @staticmethod
    def _sizes(table: DiskTable) -> PoolSizes:
        return PoolSizes(capacity=table.size,
                         allocation=sum(p.size for p in table.data_partitions),
                         available=table.available, largest_free=table.largest_free)

    def change_token(self) -> object:
        disk = self._disk()
        done = runner.run(["parted", "-s", "-m", disk, "unit", "B", "print", "free"],
                          check=False, timeout=60)
        kernel = sorted((k.number, k.start, k.size) for k in kernel_partitions(disk).values())
        return hashlib.sha256(f"{done.stdout}{kernel}".encode()).hexdigest()

    def describe(self) -> str | None:
        try:
            table = self._table()
        except (PoolkeeperError, OSError):
            return None
        text = table.summary()
        if self._source_kind() == "image":
            text += f" (image attached as {table.device})"  # the source line names it
        return text

    def layout(self) -> list[DeviceLayout]:
        disk = self._disk()
        table = self._table(disk)
        return [DeviceLayout(
            path=self.source_path, size=table.size,
            used=[(p.start, p.end, partition_name(disk, p.number, self.part_separator))
                  for p in table.data_partitions],
            free=[FreeExtent(g.start, g.end) for g in table.free_extents()])]

    def volume_path(self, name: str) -> str:
        node = f"/dev/{name}"
        if self.target == "/dev":
            return node
        with contextlib.suppress(OSError):  # the stable link to it, as libvirt shows
            for entry in sorted(os.listdir(self.target)):
                link = os.path.join(self.target, entry)
                if os.path.islink(link) and os.path.realpath(link) == node:
                    return link
        return node

    def _info(self, disk: str, table: DiskTable, part: Partition,
              kernel: dict[int, KernelPartition]) -> VolumeInfo:
        name = partition_name(disk, part.number, self.part_separator)
        path = self.volume_path(name)
        info = VolumeInfo(name=name, key=path, path=path, type="block", format=part.format,
                          capacity=part.size, allocation=part.size, physical=part.size,
                          extents=[(self.source_path, [Extent(part.start, part.end)])],
                          attributes=", ".join(part.flags) or None)
        info.signature = ("partition", part.number, part.start, part.end, part.type_code,
                          part.flags)
        kp = kernel.get(part.number)
        if not kernel_matches(kp, part) or kp.name != name:
            info.error = (f"the kernel has no partition node {name} matching the table "
                          f"(partx -u {disk} updates it)")
            return info
        try:
            st = os.stat(f"/dev/{name}")
        except OSError as exc:
            info.error = f"/dev/{name}: {exc.strerror}"
            return info
        info.permissions = Permissions(st.st_mode & 0o777, st.st_uid, st.st_gid)
        info.times_ns = (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
        return info

    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None) -> list[PoolSource]:
        if host is not None:
            raise ValidationError("disk pool sources are local disks: give a device, not a "
                                  "host", "host")
        if device is not None:
            device = _check_device_path(device)
        rows = blockprobe.lsblk("NAME,PATH,TYPE,SIZE,PTTYPE", device)
        disks = [r for r in rows if r.get("type") in ("disk", "loop") and r.get("size")
                 and r.get("path")]
        blockprobe.fill_from_blkid(disks, "pttype", "PTTYPE")
        sources = []
        for row in disks:
            label = {"sgi": "dvh"}.get(row.get("pttype") or "", row.get("pttype"))
            if label in DISK_POOL_FORMATS and label != "unknown":
                sources.append(PoolSource(devices=[SourceDevice(row["path"])], format=label))
        return sources

    # -- volumes -----------------------------------------------------------------------------
    def _number(self, disk: str, name: str) -> int:
        number = partition_number(disk, name, self.part_separator)
        if number is None:
            raise VolumeNotFound(f"'{name}' is not a partition of {disk} (its partitions are "
                                 f"named {partition_name(disk, 1, self.part_separator)}, "
                                 f"{partition_name(disk, 2, self.part_separator)}, ...)")
        return number

    def _partition(self, disk: str, table: DiskTable, name: str) -> Partition:
        part = table.get(self._number(disk, name))
        if part is None:
            raise VolumeNotFound(f"{disk} has no partition {name}")
        return part

    @staticmethod
    def _refuse_metadata(part: Partition, name: str, verb: str) -> None:
        if part.kind == "metadata":
            raise Unsupported(f"{name} is part of the partition table itself; poolkeeper will "
                              f"not {verb} it")

    def _plan(self, disk: str, table: DiskTable, fmt: str, capacity: int,
              start: int | None) -> Plan:
        return plan_partition(disk, table, fmt, capacity, start, self.part_separator)

    def create_volume(self, vol: VolumeDef, ctx: JobContext) -> None:
        self._create(vol, ctx)

    def check_new_volume(self, vol: VolumeDef) -> None:
        disk = self._disk()
        self._checked_plan(vol, disk, self._table(disk))

    def next_volume_name(self, vol: VolumeDef) -> str | None:
        """The kernel's name of the partition a create of `vol` would make (loop0p3 after
        p1 and p2); None where none fits."""
        disk = self._disk()
        try:
            plan = self._plan(disk, self._table(disk), self._format(vol), vol.capacity or ALIGN,
                              self._start(vol))
        except PoolkeeperError:
            return None
        return partition_name(disk, plan.number, self.part_separator)

    def _format(self, vol: VolumeDef) -> str:
        return vol.target.format or self.default_volume_format or "linux"

    @staticmethod
    def _start(vol: VolumeDef) -> int | None:
        return vol.source_devices[0][1][0].start if vol.source_devices and \
            vol.source_devices[0][1] else None

    def _checked_plan(self, vol: VolumeDef, disk: str, table: DiskTable) -> tuple[Plan, str]:
        """Where the partition goes and its name, refused as the create would refuse it."""
        fmt = self._format(vol)
        if fmt not in DISK_VOLUME_FORMATS:
            raise ValidationError(f"'{fmt}' is not a partition type; use one of: "
                                  + ", ".join(DISK_VOLUME_FORMATS), "format")
        if not vol.capacity or vol.capacity <= 0:
            raise ValidationError("a partition needs a capacity greater than 0", "capacity")
        plan = self._plan(disk, table, fmt, vol.capacity, self._start(vol))
        expected = partition_name(disk, plan.number, self.part_separator)
        if vol.name != expected:
            raise ValidationError(
                f"the new partition on {disk} will be number {plan.number}, so the volume "
                f"must be named '{expected}' (partitions are named as the kernel names "
                "them)", "name")
        return plan, expected

    def _create(self, vol: VolumeDef, ctx: JobContext, *, partial: bool = False
                ) -> tuple[str, Partition, Path | None]:
        """Make the partition; `partial`: marked as being filled (see disk_partial.py),
        returning the record of a non-gpt one."""
        fmt = self._format(vol)
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = self._table(disk)
            plan, expected = self._checked_plan(vol, disk, table)
            (ctx or NULL_CONTEXT).check()
            fstype, flag = MKPART_ARGS[fmt]
            argv = ["parted", "-s", disk, "mkpart"]
            if table.label in NO_PART_TYPE:
                fstype = fstype or "ext2"
            elif partial and table.label == "gpt":
                argv.append(PARTIAL_NAME)  # on gpt this word is the partition's name
            else:
                argv.append(plan.part_type)
            if fstype:
                argv.append(fstype)
            record = None
            if partial and table.label != "gpt":  # recorded before the partition exists
                record = self._fill_records.add(self._record_identity(disk, table),
                                                plan.start, plan.end, plan.number)
            try:
                with shielded():  # parted is never stopped half-way (see runner)...
                    made = self._mkpart(disk, [*argv, f"{plan.start}B", f"{plan.end - 1}B"],
                                        plan)
            except BaseException:
                with contextlib.suppress(PoolkeeperError, OSError):
                    if not any(p.start == plan.start for p in read_table(disk).partitions):
                        FillRecords.remove(record)  # no partition came of it
                raise
            try:
                (ctx or NULL_CONTEXT).check()  # ...a cancel meanwhile removes what it made
                if made.number != plan.number or made.end != plan.end:
                    raise StateError(
                        f"parted made partition {made.number} ({made.start}-{made.end}) instead "
                        f"of {plan.number} ({plan.start}-{plan.end}); it was removed again")
                if flag:
                    runner.run(["parted", "-s", disk, "set", str(made.number), flag, "on"],
                               timeout=120)
                after = read_table(disk)
                problems = sync_nodes(disk, after)
                node = kernel_partitions(disk).get(made.number)
                if node is None or node.name != expected:
                    raise StateError(f"the kernel did not create /dev/{expected} for the new "
                                     f"partition ({'; '.join(problems) or 'partx failed'}); it "
                                     "was removed again")
            except BaseException:
                with contextlib.suppress(PoolkeeperError, OSError):
                    runner.run(["parted", "-s", disk, "rm", str(made.number)], timeout=120)
                    sync_nodes(disk, read_table(disk))
                    FillRecords.remove(record)  # only once the partition is gone
                raise
            return expected, made, record

    @staticmethod
    def _mkpart(disk: str, argv: list[str], plan: Plan) -> Partition:
        runner.run(argv, timeout=120)
        made = next((p for p in read_table(disk).partitions if p.start == plan.start), None)
        if made is None:
            raise StateError(f"parted reported success but {disk} has no partition at "
                             f"{plan.start}")
        return made

    def clone_target(self, src: VolumeInfo, vol: VolumeDef) -> VolumeDef:
        fmt = vol.target.format if vol.target.format in DISK_VOLUME_FORMATS else None
        if fmt == "extended":
            raise ValidationError("an extended partition cannot be a copy of a volume", "format")
        if src.format not in ("raw", *DISK_VOLUME_FORMATS) or src.format == "extended":
            raise Unsupported(f"'{src.name}' is a {src.format} image; a partition gets its bytes "
                              "as they are, so convert it to raw first (qemu-img convert)")
        new = VolumeDef(name=vol.name, capacity=max(vol.capacity or 0, src.capacity),
                        source_devices=vol.source_devices)
        new.target.format = fmt
        return new

    def clone_volume(self, src: VolumeInfo, src_driver: PoolDriver, vol: VolumeDef,
                     ctx: JobContext) -> str:
        new = self.clone_target(src, vol)
        src_fd = src_driver.open_volume_read(src)
        try:
            # marked as being filled until the copy is complete: a kill -9 meanwhile leaves
            # a partition that is not listed and is removed on the next use
            name, part, record = self._create(new, ctx, partial=True)
            try:
                dst_fd = self._open(name, os.O_RDWR | os.O_EXCL)
                try:
                    method = fileops.clone_fd(src_fd, dst_fd, min(src.capacity, part.size),
                                              sparse=False, ctx=ctx or NULL_CONTEXT)
                finally:
                    os.close(dst_fd)
                self._mark_complete(part, record)
                return method
            except BaseException:
                with contextlib.suppress(PoolkeeperError, OSError):
                    self._remove_made(part)
                    FillRecords.remove(record)  # only once the partition is gone
                raise
        finally:
            os.close(src_fd)

    def _remove_made(self, part: Partition) -> None:
        """Remove the partition a failed clone made, if it is still that one."""
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            now = read_table(disk).get(part.number)
            if now is not None and (now.start, now.end) == (part.start, part.end):
                runner.run(["parted", "-s", disk, "rm", str(part.number)], timeout=120)
                sync_nodes(disk, read_table(disk))

    def delete_volume(self, vol: VolumeInfo) -> None:
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            table = self._table(disk)
            part = self._partition(disk, table, vol.name)
            name = partition_name(disk, part.number, self.part_separator)
            problems = self._remove_partition(disk, table, part, name, f"delete {name}")
        if problems:
            raise StateError(f"{name} was removed from the table, but the kernel's partition "
                             f"nodes are not in line with it: {'; '.join(problems)}")

    def _remove_partition(self, disk: str, table: DiskTable, part: Partition, name: str,
                          verb: str) -> list[str]:
        """parted rm, refused for label metadata, a non-empty extended partition, and a
        partition in use (or a logical one after it, which would be renumbered). Returns
        what sync_nodes could not bring in line."""
        self._refuse_metadata(part, name, "delete")
        if part.kind == "extended":
            inside = [partition_name(disk, p.number, self.part_separator)
                      for p in table.partitions if p.kind == "logical"]
            if inside:
                raise StateError(f"the extended partition {name} still holds the logical "
                                 f"partitions {', '.join(inside)}; delete them first")
        kernel = kernel_partitions(disk)
        refuse_node_in_use(kernel.get(part.number), verb)
        if part.kind == "logical":  # the ones after it are renumbered: N+1 becomes N
            for later in (p for p in table.partitions
                          if p.kind == "logical" and p.number > part.number):
                refuse_node_in_use(kernel.get(later.number),
                                   f"{verb}, which renumbers the logical partitions after it")
        runner.run(["parted", "-s", disk, "rm", str(part.number)], timeout=120)
        return sync_nodes(disk, read_table(disk))

    def check_resize(self, vol: VolumeInfo, capacity: int, *, allocate: bool,
                     shrink: bool) -> None:
        self._resized(self._disk(), self._table(), vol.name, capacity)

    def _resized(self, disk: str, table: DiskTable, volume: str, capacity: int
                 ) -> tuple[Partition, str, int]:
        """The partition `volume`, its name and its end grown to `capacity` (or refused)."""
        part = self._partition(disk, table, volume)
        name = partition_name(disk, part.number, self.part_separator)
        self._refuse_metadata(part, name, "resize")
        return part, name, plan_growth(table, part, name, capacity)

    def resize_volume(self, vol: VolumeInfo, capacity: int, *, allocate: bool, shrink: bool,
                      ctx: JobContext) -> None:
        disk = self._disk()
        with blockprobe.disk_lock(disk):
            part, name, new_end = self._resized(disk, self._table(disk), vol.name, capacity)
            if new_end == part.end:
                return
            (ctx or NULL_CONTEXT).check()
            with shielded():  # begun, the table and the kernel's node change together
                runner.run(["parted", "-s", disk, "resizepart", str(part.number),
                            f"{new_end - 1}B"], timeout=120)
                problems = sync_nodes(disk, read_table(disk))
        if problems:
            raise StateError(f"{name} was resized in the table, but the kernel's partition "
                             f"nodes are not in line with it: {'; '.join(problems)}")

    def _open(self, name: str, flags: int) -> int:
        """An fd on the partition node /dev/NAME, after checking that the kernel's partition
        is exactly the one in the table. Never the whole disk."""
        disk = self._disk()
        table = self._table(disk)
        part = self._partition(disk, table, name)
        self._refuse_metadata(part, name, "read or write")
        if part.kind == "extended":
            raise Unsupported(f"{name} is an extended partition (a container for logical "
                              "partitions): it cannot be wiped, uploaded to or downloaded")
        return open_node(disk, part, name, flags)

    def open_volume_write(self, vol: VolumeInfo) -> int:
        disk = self._disk()
        number = self._number(disk, vol.name)
        refuse_node_in_use(kernel_partitions(disk).get(number), f"write to {vol.name}")
        return self._open(vol.name, os.O_RDWR | os.O_EXCL)

    def open_volume_read(self, vol: VolumeInfo) -> int:
        return self._open(vol.name, os.O_RDONLY)


def _wipe_signatures(device: str, kind: str) -> None:
    """wipefs --all, and make sure it did: wipefs skips a partition table in a regular file
    ("nested") without --force and still exits 0."""
    force = ["--force"] if kind == "image" else []
    runner.run(["wipefs", "--all", *force, "--", device], timeout=120)
    left = blockprobe.probe(device)
    if left.signatures:
        raise StateError(f"wipefs left {left.describe()} on {device}")

