"""The checks the native engine makes before it destroys data, made over a libvirt
connection (libvirt itself deletes a volume a guest is using, or one another image is
built on, without a word):

  * a volume a running guest has as a disk, or in a disk's backing chain (its live domain
    XML names the volume by pool and name, or its path; on a connection to this host, any
    path that is the same file or device) is not deleted, wiped, resized or uploaded into;
  * a volume that another volume of the connection names as its backing store is not
    deleted (the overlay would lose its base);
  * a pool whose libvirt delete erases what it holds (anything but a dir, fs or netfs
    pool, whose delete only removes an empty directory) is deleted only with --force;
  * on a connection to this host, a download never writes into a pool's directory, onto
    a volume (its own source included) or onto a device a pool is built on.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from .errors import InUse, PoolkeeperError, UnsafePath

# libvirt's deletePool of these removes the (empty) target directory and nothing else
DELETE_REMOVES_ONLY_AN_EMPTY_DIR = frozenset({"dir", "fs", "netfs"})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def is_local(uri: str) -> bool:
    """Does the connection's host share this machine's files (no host, or a loopback one)?
    Then its paths can be compared with ours by identity (device, inode)."""
    return urlsplit(uri).hostname in (None, "", "localhost", "127.0.0.1", "::1")


def disk_sources(xml: str) -> list[tuple[str | None, str | None, list[str]]]:
    """(pool, volume, paths) of each disk a domain's XML has: the paths of its source and
    of every image of its backing chain (qemu holds them all open)."""
    doc = etree.fromstring(xml.encode("utf-8"), _PARSER)
    found = []
    for disk in doc.iterfind("devices/disk"):
        source = disk.find("source")
        paths = [p for node in [source, *disk.iterfind(".//backingStore/source")]
                 if node is not None
                 for p in [node.get("file") or node.get("dev") or node.get("dir")] if p]
        found.append((source.get("pool") if source is not None else None,
                      source.get("volume") if source is not None else None, paths))
    return found


def _identity(path: str) -> tuple[int, int] | None:
    """What a path opens, by identity: (device, inode), or a block device's number."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (-1, st.st_rdev) if stat.S_ISBLK(st.st_mode) else (st.st_dev, st.st_ino)


def running_guests_using(conn: Any, libvirt: Any, pool: str, name: str, path: str,
                         local: bool = False) -> list[str]:
    """The running guests with the volume (pool `pool`, name `name`, at `path`) as a disk
    or in a disk's backing chain: named by pool and volume, or by its path (spelt the same
    once normalised; on a `local` connection, any path that is the same file or device)."""
    want = os.path.normpath(path) if path else None
    ident = _identity(path) if local and path else None
    users = []
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        for src_pool, src_vol, paths in disk_sources(dom.XMLDesc(0)):
            if (src_pool == pool and src_vol == name) or any(
                    os.path.normpath(p) == want or (ident is not None and _identity(p) == ident)
                    for p in paths):
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
            back = doc.findtext("backingStore/path")
            if path and back and os.path.normpath(back) == os.path.normpath(path):
                found.append((pool.name(), vol.name()))
    return found


def refuse_in_use(conn: Any, libvirt: Any, pool: str, name: str, path: str,
                  verb: str = "delete", local: bool = False) -> None:
    """InUse when the volume is a running guest's disk (or in one's backing chain): it is
    not deleted, wiped, resized or written under the guest (as natively)."""
    users = running_guests_using(conn, libvirt, pool, name, path, local)
    if users:
        live = " (or resize it live: virsh blockresize)" if verb == "resize" else ""
        raise InUse(f"volume '{name}' is a disk of the running guest "
                    f"{', '.join(repr(u) for u in users)}; shut the guest down (or detach "
                    f"the disk) before you {verb} it{live}")


def refuse_volume_delete(conn: Any, libvirt: Any, pool: str, name: str, path: str,
                         local: bool = False) -> None:
    """InUse when deleting the volume would take a running guest's disk or an overlay's
    base away (as the native vol-delete refuses)."""
    refuse_in_use(conn, libvirt, pool, name, path, local=local)
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


def download_check(conn: Any, libvirt: Any) -> Callable[[os.stat_result, str], None]:
    """The check a download's local file gets (fileops.checking_download_targets) on a
    connection to this host: never a file in a pool's directory, a volume, or a device a
    pool is built on (libvirt's pools are this host's files then), as natively."""
    dirs: list[tuple[str, str]] = []
    files: dict[tuple[int, int], str] = {}
    for pool in conn.listAllStoragePools(0):
        doc = etree.fromstring(pool.XMLDesc(0).encode("utf-8"), _PARSER)
        name = pool.name()
        target = doc.findtext("target/path")
        if target and doc.get("type") in DELETE_REMOVES_ONLY_AN_EMPTY_DIR:
            dirs.append((os.path.realpath(target), name))
        paths = [(d.get("path"), f"a device pool '{name}' is built on")
                 for d in doc.iterfind("source/device")]
        if pool.isActive():
            paths += [(v.path(), f"volume '{v.name()}' of pool '{name}'")
                      for v in pool.listAllVolumes(0)]
        for path, role in paths:
            ident = _identity(path) if path else None
            if ident is not None:
                files.setdefault(ident, role)

    def check(st: os.stat_result, path: str) -> None:
        ident = (-1, st.st_rdev) if stat.S_ISBLK(st.st_mode) else (st.st_dev, st.st_ino)
        role = files.get(ident)
        parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        for where, name in dirs:
            if role is None and (parent == where or parent.startswith(where.rstrip("/") + "/")):
                role = f"inside pool '{name}'"
        if role is not None:
            raise UnsafePath(f"'{path}' is {role}; a download never writes into a pool: "
                             "download to a file outside the pools (to copy a volume into a "
                             "pool, use vol-clone)")

    return check
