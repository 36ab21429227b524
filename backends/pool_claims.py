"""What storage a pool definition claims, compared between definitions.

Two defined pools may not claim the same storage (libvirt's duplicate-source rule): the
same target directory however it is spelled, the same iSCSI target at the same portal,
the same device by any of its nodes, the same NFS export, the same volume group. The same
rule finds the pool an undefined pool's format records belong to (format_records). An
active pool's definition may not change what it claims (`identity`).
"""

from __future__ import annotations

from . import blockprobe, xmlio
from .model import PoolDef


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
