"""The checks the native engine makes before it destroys data, made over a libvirt
connection (libvirt itself deletes a volume a guest is using, or one another image is
built on, without a word):

  * a volume a running guest has as a disk (its live domain XML names the volume by
    pool and name, or its path) is not deleted, wiped, resized or uploaded into;
  * a volume that another volume of the connection names as its backing store is not
    deleted (the overlay would lose its base);
  * a pool whose libvirt delete erases what it holds (anything but a dir, fs or netfs
    pool, whose delete only removes an empty directory) is deleted only with --force.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from .errors import InUse, PoolkeeperError

# libvirt's deletePool of these removes the (empty) target directory and nothing else
DELETE_REMOVES_ONLY_AN_EMPTY_DIR = frozenset({"dir", "fs", "netfs"})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _disk_sources(xml: str) -> list[tuple[str | None, str | None, str | None]]:
    """(pool, volume, path) of each disk source a domain's XML names."""
    doc = etree.fromstring(xml.encode("utf-8"), _PARSER)
    found = []
    for source in doc.iterfind("devices/disk/source"):
        path = source.get("file") or source.get("dev") or source.get("dir")
        found.append((source.get("pool"), source.get("volume"), path))
    return found


def running_guests_using(conn: Any, libvirt: Any, pool: str, name: str,
                         path: str) -> list[str]:
    """The running guests with the volume (pool `pool`, name `name`, at `path`) as a disk."""
    users = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        for src_pool, src_vol, src_path in _disk_sources(dom.XMLDesc(0)):
            if (src_pool == pool and src_vol == name) or (path and src_path == path):
                users.append(dom.name())
                break
    return users


def overlays_of(conn: Any, libvirt: Any, path: str) -> list[tuple[str, str]]:
    """(pool, volume) of every volume in the connection's active pools whose backing
    store is the file at `path`."""
    found = []
    for pool in conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        for vol in pool.listAllVolumes(0):
            doc = etree.fromstring(vol.XMLDesc(0).encode("utf-8"), _PARSER)
            if path and doc.findtext("backingStore/path") == path:
                found.append((pool.name(), vol.name()))
    return found


def refuse_in_use(conn: Any, libvirt: Any, pool: str, name: str, path: str,
                  verb: str = "delete") -> None:
    """InUse when the volume is a running guest's disk: it is not deleted, wiped,
    resized or written under the guest (as natively)."""
    users = running_guests_using(conn, libvirt, pool, name, path)
    if users:
        live = " (or resize it live: virsh blockresize)" if verb == "resize" else ""
        raise InUse(f"volume '{name}' is a disk of the running guest "
                    f"{', '.join(repr(u) for u in users)}; shut the guest down (or detach "
                    f"the disk) before you {verb} it{live}")


def refuse_volume_delete(conn: Any, libvirt: Any, pool: str, name: str, path: str) -> None:
    """InUse when deleting the volume would take a running guest's disk or an overlay's
    base away (as the native vol-delete refuses)."""
    refuse_in_use(conn, libvirt, pool, name, path)
    overlays = [(p, v) for p, v in overlays_of(conn, libvirt, path) if (p, v) != (pool, name)]
    if overlays:
        named = ", ".join(f"'{v}' in pool '{p}'" for p, v in overlays)
        raise InUse(f"volume '{name}' is the backing store of {named}; delete "
                    f"{'that overlay' if len(overlays) == 1 else 'those overlays'} first")


def refuse_pool_delete(pool: str, pool_type: str, force: bool) -> None:
    """A pool whose libvirt delete erases its contents (a volume group, a zpool, a disk's
    partitions) is deleted only when forced: libvirt does not ask, and an inactive pool
    cannot be listed to see what it holds."""
    if pool_type not in DELETE_REMOVES_ONLY_AN_EMPTY_DIR and not force:
        raise PoolkeeperError(
            f"pool-delete of the {pool_type} pool '{pool}' over a libvirt connection erases "
            "everything in it (libvirt does not check for volumes); delete its volumes "
            f"first, then give --force (pool-delete {pool} --force)")
