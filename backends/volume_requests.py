"""Whether a create, clone or resize gets what it asks for.

The space it needs in the pool (refused when the allocation does not fit, a warning when
the capacity overcommits), the size a resize asks for (never 0, never beyond what the
tools take, never smaller unasked), and what a clone's XML asks for that a byte copy would
not give (the source's qcow2 header is copied as it is; a raw copy is sparse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from . import volume_encryption, xmlio
from .drivers import features
from .drivers.base import PoolDriver
from .errors import (
    AlreadyExists,
    InsufficientSpace,
    PoolkeeperError,
    Unsupported,
    ValidationError,
)
from .model import PoolSizes, VolumeDef, VolumeInfo, VolumeTarget
from .names import check_name
from .units import MAX_SIZE, human


class Refusal(NamedTuple):
    """Why a request would be refused, before it is made (Controller.check_volume_def,
    check_pool_def): `element` names the part of it refused ("name", "capacity",
    "allocation", "format", "path", "device", ...; "" for the request as a whole), so a
    form shows `message` beside the field that holds it."""

    element: str
    message: str


def refusal(exc: PoolkeeperError, allocation_asked: bool = False) -> Refusal:
    """The Refusal an error of a check is: its element (ValidationError and drivers.base
    `refused` name it), a name taken for an AlreadyExists without one, the capacity (or
    the allocation asked for) for a lack of space."""
    element = getattr(exc, "element", None)
    if not element and isinstance(exc, AlreadyExists):
        element = "name"
    if not element and isinstance(exc, InsufficientSpace):
        element = "allocation" if allocation_asked else "capacity"
    message = str(exc)
    if isinstance(exc, ValidationError) and exc.element:  # without its "<element>: "
        message = message.split(": ", 1)[-1]
    return Refusal(element or "", message)


def refusal_of_check(check: Callable[[], object], allocation_asked: bool = False
                     ) -> Refusal | None:
    """None when `check` passes, else the Refusal its error is (the controller's check_*
    verbs: what a verb would refuse, asked before it is run)."""
    try:
        check()
    except PoolkeeperError as exc:
        return refusal(exc, allocation_asked)
    except OSError as exc:
        return Refusal("", f"cannot read the storage to check this: {exc.strerror or exc}")
    return None


def space_check(driver: PoolDriver, vdef: VolumeDef, fmt: str) -> list[str]:
    """Refuse a new volume whose allocation the pool has no room for; warn of one whose
    capacity overcommits it."""
    if driver.volumes_fully_allocated:
        return []  # never sparse (a partition): the driver checks it fits an extent
    sizes = driver.sizes()
    capacity = vdef.capacity or 0
    allocation = capacity if vdef.allocation is None else min(vdef.allocation, capacity)
    if fmt != "raw":
        allocation = 0  # image formats are created sparse
    if allocation > sizes.available:
        raise InsufficientSpace(
            f"volume '{vdef.name}' needs {human(allocation)} allocated but pool "
            f"'{driver.name}' has {human(sizes.available)} available; make it smaller or "
            "sparse (a smaller --allocation)"
        )
    if capacity > sizes.available:
        return [
            f"volume '{vdef.name}' is sparse and overcommits pool '{driver.name}': capacity "
            f"{human(capacity)} > available {human(sizes.available)}"
        ]
    return []


def clone_def(src: VolumeInfo, dst_driver: PoolDriver, new_name: str,
              xml: str | bytes | None) -> VolumeDef:
    """The definition of a clone of `src` into the pool of `dst_driver`: named `new_name`
    (or as its XML says), in the source's format where that pool has it, refused if it
    asks for what a copy would not give."""
    # the source's format where the target pool has it (a partition's type does not
    # carry over into a file pool: its bytes are raw there)
    fmt = (src.format if src.format in dst_driver.volume_formats
           else dst_driver.default_volume_format)
    if xml is not None:
        vdef = xmlio.parse_volume(xml, dst_driver.type, size_from_source=True)
        if vdef.target.format is None:
            vdef = replace(vdef, target=replace(vdef.target, format=fmt))
    else:
        vdef = VolumeDef(name=new_name, target=VolumeTarget(format=fmt))
    vdef = replace(vdef, name=check_name(new_name or vdef.name, "volume name"))
    xmlio.validate_volume(replace(vdef, capacity=vdef.capacity or src.capacity),
                          dst_driver.type)
    xmlio.refuse_unhonoured(vdef, dst_driver.type, clone=True)
    new_path = dst_driver.volume_path(vdef.name) if dst_driver.volumes_are_files else None
    refuse_unhonoured_in_clone(src, vdef, dst_driver.type, dst_driver.config_dir, new_path)
    return vdef


def clone_space_check(src: VolumeInfo, source: str, dst_driver: PoolDriver,
                      dst_pool: str) -> None:
    """Refuse a clone of the volume `source` (read as `src`) that the pool `dst_pool`
    has no room for."""
    available = dst_driver.sizes().available
    if src.allocation > available:
        raise InsufficientSpace(
            f"cloning '{source}' needs up to {human(src.allocation)} but pool '{dst_pool}' "
            f"has {human(available)} available"
        )


def check_clone_target(dst_driver: PoolDriver, vdef: VolumeDef, src: VolumeInfo) -> None:
    """The target type's own rules for a clone's new volume, as its clone_volume makes it
    (clone_target: a partition's type, an LV's allocation). A half-made volume a failed
    clean-up left under the name is no refusal here: the clone, holding the name's lock,
    removes it first."""
    try:
        dst_driver.check_new_volume(dst_driver.clone_target(src, vdef))
    except AlreadyExists:
        if vdef.name not in dst_driver.partial_volumes():
            raise


def refuse_unhonoured_in_clone(src: VolumeInfo, vdef: VolumeDef, pool_type: str,
                               config_dir: Path | None = None,
                               new_path: str | None = None) -> None:
    """What a clone's XML asks for that the copy would not give: a byte copy keeps the
    source's qcow2 header as it is (compat, cluster size, features), and a raw copy is
    sparse (libvirt preallocates one whose allocation is at least the source's capacity).
    With `config_dir`, an encrypted source's secret too (the clone keeps it)."""
    files = features(pool_type).volumes_are_files
    target = vdef.target
    fmt = target.format or src.format
    if files:  # an encrypted source is copied byte for byte (same key); a plain one stays so
        volume_encryption.check_clone(src, vdef, fmt, max(vdef.capacity or 0, src.capacity),
                                      config_dir, new_path)
    if files and fmt == "qcow2" and src.format == "qcow2":
        have = {"compat": src.compat or "0.10", "clusterSize": src.cluster_size,
                "features": sorted(src.features or [])}
        want = {"compat": target.compat, "clusterSize": target.cluster_size,
                "features": None if target.features is None else sorted(target.features)}
        for element, value in want.items():
            if value is not None and value != have[element]:
                raise ValidationError(
                    f"a clone of '{src.name}' copies its qcow2 header as it is, so its "
                    f"<{element}> stays {have[element]!r}, not {value!r}; remove "
                    f"<{element}> (or clone to another format and convert back)",
                    element=element)
    if (fmt == "raw" and files and vdef.allocation is not None
            and vdef.allocation >= src.capacity):
        raise ValidationError(
            f"poolkeeper clones into a sparse file; an <allocation> of {vdef.allocation} "
            f"bytes asks for a preallocated one (at least the source's capacity, "
            f"{src.capacity} bytes); give a smaller allocation or leave it out "
            "(vol-resize --allocate preallocates afterwards)", element="allocation")


def resize_request(driver: PoolDriver, info: VolumeInfo, pool: str, capacity: int, *,
                   delta: bool, shrink: bool, allocate: bool,
                   check_chain: Callable[[VolumeInfo], None]) -> tuple[int, list[str]]:
    """A resize's checks before its job (Controller.resize_volume, check_resize): the new
    capacity and the space warnings, refused as the verb refuses it (the size asked for,
    the room, the type's own rules from its driver)."""
    if not driver.can_resize_volumes:
        raise Unsupported(f"volumes of a '{driver.type}' pool cannot be resized")
    if info.format != "raw":  # qemu-img resize opens the backing chain and data file
        check_chain(info)
    new = new_capacity(info, info.name, capacity, delta, shrink)
    warnings = resize_space_check(info, info.name, pool, new, driver.sizes(), allocate)
    driver.check_resize(info, new, allocate=allocate, shrink=shrink)
    return new, warnings


def new_capacity(info: VolumeInfo, name: str, capacity: int, delta: bool,
                 shrink: bool) -> int:
    """The capacity a resize of the volume `name` (read as `info`) asks for: `capacity`,
    or that much more or, to `shrink`, less than now; refused if it is 0, too large, or
    smaller than now unasked."""
    if delta:
        new = info.capacity - min(capacity, info.capacity) if shrink else \
            info.capacity + capacity
    else:
        new = capacity
    if new <= 0:
        raise ValidationError(f"volume '{name}' cannot be resized to 0 bytes")
    if new > MAX_SIZE:  # a delta can overflow what any tool or syscall takes
        raise ValidationError(f"resizing '{name}' to {new} bytes is too large; the limit "
                              f"is {MAX_SIZE} bytes", element="capacity")
    refuse_unasked_shrink(info, new, shrink)
    return new


def refuse_unasked_shrink(info: VolumeInfo, new: int, shrink: bool) -> None:
    """Refuse a resize to `new` bytes that cuts off the volume's end unless `shrink`."""
    if new < info.capacity and not shrink:
        raise ValidationError(
            f"resizing '{info.name}' from {human(info.capacity)} to {human(new)} would discard "
            "the data at its end; pass --shrink if that is what you want"
        )


def resize_space_check(info: VolumeInfo, name: str, pool: str, new: int, sizes: PoolSizes,
                       allocate: bool) -> list[str]:
    """Refuse a resize of the volume `name` to `new` bytes that allocates more than the
    pool has; warn of one that overcommits it."""
    if allocate:
        needed = max(0, new - info.allocation)
        if needed > sizes.available:
            raise InsufficientSpace(
                f"allocating {human(needed)} more for '{name}' needs more than the "
                f"{human(sizes.available)} available in pool '{pool}'"
            )
    elif new - info.capacity > sizes.available:
        return [
            f"'{name}' now overcommits pool '{pool}': {human(new)} > "
            f"{human(sizes.available)} available"
        ]
    return []


def refuse_unhonoured_flags(vdef: VolumeDef, driver: PoolDriver) -> None:
    """virsh's create flags where they cannot be honoured: metadata preallocation is for
    qcow2 (`qemu-img -o preallocation=metadata`), a reflink for files on one filesystem."""
    fmt = vdef.target.format or driver.default_volume_format or "raw"
    if vdef.prealloc_metadata and fmt != "qcow2":
        raise ValidationError(
            f"--prealloc-metadata preallocates qcow2 metadata; a '{fmt}' volume has none "
            "(give --format qcow2, or --allocation to preallocate a raw volume)",
            element="format")


def with_flags(vdef: VolumeDef, src_driver: PoolDriver, dst_driver: PoolDriver, *,
               reflink: bool, prealloc_metadata: bool,
               src: VolumeInfo | None = None) -> VolumeDef:
    """A clone's definition with virsh's flags, refused before the job where they cannot
    be honoured: --reflink shares a file's extents (no device, no other filesystem: the
    copy itself refuses then, rather than copy), --prealloc-metadata is for qcow2, and
    neither is for an encrypted `src` (a byte copy, never qemu-img convert)."""
    vdef = replace(vdef, reflink=reflink, prealloc_metadata=prealloc_metadata)
    if reflink and not (src_driver.volumes_are_files and dst_driver.volumes_are_files):
        raise Unsupported("--reflink shares the extents of a file in a file pool; a "
                          f"'{src_driver.type}' volume into a '{dst_driver.type}' pool is "
                          "copied: leave --reflink out to copy it")
    if reflink and prealloc_metadata:
        raise ValidationError("--reflink shares the source's extents as they are; it cannot "
                              "also preallocate metadata: give one of them")
    refuse_unhonoured_flags(vdef, dst_driver)
    if src is not None and prealloc_metadata:
        refuse_unhonoured_in_clone(src, vdef, dst_driver.type)
    return vdef


def refuse_delete_flags(driver: PoolDriver, delete_snapshots: bool) -> None:
    """vol-delete --delete-snapshots, where the storage has snapshots to delete (LVM)."""
    if delete_snapshots and not driver.deletes_snapshots:
        raise Unsupported(f"--delete-snapshots: volumes of a '{driver.type}' pool have no "
                          "snapshots of their own (LVM's are); leave it out")
