"""What a pool definition claims (a UUID, storage), and whether a definition may claim it.

Two defined pools may not claim the same UUID, nor the same storage (libvirt's
duplicate-source rule): the same target directory however it is spelled, the same iSCSI
target at the same portal, the same device by any of its nodes, the same NFS export, the
same volume group. The same rule finds the pool an undefined pool's format records belong
to (format_records). A pool defined again keeps its UUID, and an active pool's definition
may not change what it claims (`identity`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from . import blockprobe, xmlio
from .errors import AlreadyExists, StateError
from .model import PoolDef


def refuse_claimed(pdef: PoolDef, others: Iterable[tuple[str, PoolDef]]) -> None:
    """Refuse a definition whose UUID or storage one of the `others` (name, definition)
    already claims."""
    for other_name, other in others:
        if pdef.uuid and other.uuid and pdef.uuid.lower() == other.uuid.lower():
            raise AlreadyExists(f"pool '{other_name}' already has UUID {pdef.uuid}")
        conflict = source_conflict(pdef, other)
        if conflict:
            raise AlreadyExists(
                f"storage source conflict with pool '{other_name}': both use {conflict}"
            )


def redefined(pdef: PoolDef, current: PoolDef, is_active: Callable[[], bool]) -> PoolDef:
    """`pdef` as it replaces the pool's `current` definition: with the pool's UUID, and
    refused if it changes what the pool claims while it is active."""
    if pdef.uuid and current.uuid and pdef.uuid.lower() != current.uuid.lower():
        raise AlreadyExists(
            f"pool '{pdef.name}' already exists with UUID {current.uuid}; "
            "undefine it first or use another name"
        )
    if is_active() and identity(current) != identity(pdef):
        raise StateError(
            f"pool '{pdef.name}' is active; stop it before changing its type, source "
            f"or target (pool-destroy {pdef.name})"
        )
    return replace(pdef, uuid=current.uuid)


def source_summary(pdef: PoolDef) -> str:
    """The storage the pool claims, in words (PoolStatus.source)."""
    src = pdef.source
    parts = []
    if src.hosts:
        parts.append(",".join(h.name + (f":{h.port}" if h.port else "") for h in src.hosts))
    if src.dir:
        parts.append(src.dir)
    if src.devices:
        parts.append(",".join(d.path for d in src.devices))
    if src.name:
        parts.append(src.name)
    return " ".join(parts)


def source_conflict(a: PoolDef, b: PoolDef) -> str | None:
    """What two pool definitions both claim, or None (libvirt's duplicate-source rule)."""
    if a.type in xmlio.FILE_POOLS and b.type in xmlio.FILE_POOLS:
        pa, pb = a.target.path, b.target.path
        # the same directory by a symlink, "//", "/./", ".." or a trailing slash
        if pa and pb and blockprobe.directory_keys(pa) & blockprobe.directory_keys(pb):
            return f"target path '{pb}'"
    iscsi_types = ("iscsi", "iscsi-direct")
    if a.type in iscsi_types and b.type in iscsi_types:
        # An IQN is a name, not a path; the same IQN on another portal is another target.
        portals_a = {(h.name, h.port or 3260) for h in a.source.hosts}
        portals_b = {(h.name, h.port or 3260) for h in b.source.hosts}
        shared = {d.path for d in a.source.devices} & {d.path for d in b.source.devices}
        if shared and portals_a & portals_b:
            host, port = sorted(portals_a & portals_b)[0]
            return f"target '{sorted(shared)[0]}' at {host}:{port}"
    # /dev/disk/by-id/X and /dev/sdb are the same disk, so are two nodes of one device
    device_types = ("fs", "logical", "disk")
    if a.type in device_types and b.type in device_types:
        keys_a = set().union(*(blockprobe.device_keys(d.path) for d in a.source.devices))
        for dev in b.source.devices:
            if blockprobe.device_keys(dev.path) & keys_a:
                return f"source device '{dev.path}'"
    if a.type == "netfs" and b.type == "netfs" and a.source.dir and b.source.dir:
        exports_a = {blockprobe.export_key(h.name, a.source.dir) for h in a.source.hosts}
        for host in b.source.hosts:
            if blockprobe.export_key(host.name, b.source.dir) in exports_a:
                return f"export {host.name}:{b.source.dir}"
    if (a.type == "logical" and b.type == "logical"
            and (a.source.name or a.name) == (b.source.name or b.name)):
            return f"volume group '{a.source.name or a.name}'"
    return None


def identity(pdef: PoolDef) -> tuple:
    """What an active pool's definition may not change under it (runtime values such as
    free extents do not count)."""
    src = pdef.source
    return (pdef.type, pdef.target.path, tuple((h.name, h.port) for h in src.hosts),
            tuple(d.path for d in src.devices), src.dir, src.name, src.format)
