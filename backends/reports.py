"""What the read-only verbs report, built from what is live.

A pool's status (pool-info, pool-list) and its definition as it runs (pool-dumpxml: sizes,
free extents, target permissions), a volume's definition from what was read of it
(vol-dumpxml), the capabilities and found-sources documents, and the block devices a pool
can be built on, each with what is on it.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import replace

from lxml import etree

from . import blockprobe, pool_claims, runner, xmlio
from .drivers import available_drivers, features, pool_types
from .drivers.base import PoolDriver
from .errors import PoolkeeperError
from .model import (
    Encryption,
    Permissions,
    PoolDef,
    PoolSizes,
    PoolSource,
    PoolStatus,
    PoolTarget,
    VolumeDef,
    VolumeInfo,
    VolumeTarget,
)


def pool_status(name: str, pdef: PoolDef, autostart: bool,
                driver: PoolDriver | None, persistent: bool = True) -> PoolStatus:
    """What pool-info says of the pool `name` (`driver`: None when it is not active;
    `persistent`: False for a transient pool, made by pool-create)."""
    status = PoolStatus(
        name=name, type=pdef.type, uuid=pdef.uuid or "", state="inactive",
        autostart=autostart, persistent=persistent,
        target=pdef.target.path, source=pool_claims.source_summary(pdef),
        features=features(pdef.type),
    )
    if driver is not None:
        try:
            if driver.check():
                sizes = driver.sizes()
                status.state = "running"
                status.detail = driver.describe()
                status.volume_limit = driver.volume_limits()
                status.capacity, status.allocation, status.available = (
                    sizes.capacity, sizes.allocation, sizes.available
                )
                status.largest_free = sizes.largest_free
            else:
                status.state = "inaccessible"
        except (PoolkeeperError, OSError) as exc:
            status.state = "inaccessible"
            status.detail = str(exc)
    return status


def live_def(pdef: PoolDef, sizes: PoolSizes, driver: PoolDriver | None = None) -> PoolDef:
    """The pool's definition as it runs: its sizes, the free extents of its devices
    (given its driver) and its target directory's permissions, as libvirt reports them."""
    live = replace(pdef, capacity=sizes.capacity, allocation=sizes.allocation,
                   available=sizes.available)
    have = features(pdef.type)
    if driver is not None and have.has_layout:
        # <freeExtent> elements, as libvirt reports them for pools drawn to scale
        with contextlib.suppress(PoolkeeperError, OSError):
            free = {os.path.realpath(d.path): d.free for d in driver.layout()}
            live.source = replace(pdef.source, devices=[
                replace(dev, free_extents=list(free.get(os.path.realpath(dev.path), [])))
                for dev in pdef.source.devices])
    path = pdef.target.path
    if have.volumes_are_files and path and os.path.isdir(path):
        st = os.stat(path)
        live.target = PoolTarget(path=path, permissions=Permissions(
            st.st_mode & 0o777, st.st_uid, st.st_gid,
            pdef.target.permissions.label if pdef.target.permissions else None))
    return live


def volume_def_from_info(info: VolumeInfo) -> VolumeDef:
    """A volume's definition (vol-dumpxml) from what was read of it."""
    features = info.features
    return VolumeDef(
        name=info.name,
        type=info.type,
        key=info.key,
        capacity=info.capacity,
        allocation=info.allocation,
        physical=info.physical or None,
        target=VolumeTarget(
            path=info.path,
            format=info.format,
            permissions=info.permissions,
            timestamps=info.stamped(),
            compat=_qcow2_compat(info),
            cluster_size=info.cluster_size if info.format == "qcow2" else None,
            features=features if info.format == "qcow2" else None,
            encryption=Encryption(format=info.encryption) if info.encryption else None,
        ),
        source_devices=list(info.extents),
        backing=info.backing,
    )


def _qcow2_compat(info: VolumeInfo) -> str | None:
    """A qcow2's <compat>. libvirt prints none for a version 2 header, whose dump then
    re-creates a version 3 image; poolkeeper says 0.10 so that it round-trips."""
    if info.format != "qcow2":
        return None
    return info.compat or ("0.10" if info.probed_format == "qcow2" else None)


def sources_xml(pool_type: str, sources: list[PoolSource]) -> str:
    """The <sources> document of find-storage-pool-sources."""
    root = etree.Element("sources")
    for source in sources:
        doc = etree.fromstring(xmlio.format_pool(
            PoolDef(type=pool_type, name="x", source=source,
                    target=PoolTarget(path="/x"))).encode())
        root.append(doc.find("source"))
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def capabilities_xml() -> str:
    """The <storagepoolCapabilities> document: each pool type, and what its pools take."""
    root = etree.Element("storagepoolCapabilities")
    drivers = available_drivers()
    for pool_type in pool_types():
        cls = drivers.get(pool_type)
        el = etree.SubElement(root, "pool", type=pool_type,
                              supported="yes" if cls else "no")
        if not cls:
            continue
        if cls.pool_formats:
            opts = etree.SubElement(el, "poolOptions")
            enum = etree.SubElement(opts, "enum", name="sourceFormatType")
            for fmt in cls.pool_formats:
                etree.SubElement(enum, "value").text = fmt
        if cls.volume_formats:
            opts = etree.SubElement(el, "volOptions")
            if cls.default_volume_format:
                etree.SubElement(opts, "defaultFormat", type=cls.default_volume_format)
            enum = etree.SubElement(opts, "enum", name="targetFormatType")
            for fmt in cls.creatable_formats:
                etree.SubElement(enum, "value").text = fmt
    return etree.tostring(root, pretty_print=True, encoding="unicode")


def block_devices() -> list[tuple[str, int, str]]:
    """Every disk, partition and loop device: (path, size, what is on it in words)."""
    out = runner.run(["lsblk", "-J", "-b", "-p", "-o", "PATH,TYPE,SIZE"], timeout=60)
    rows: list[tuple[str, int, str]] = []

    def walk(devices: list[dict]) -> None:
        for dev in devices:
            if dev.get("type") in ("disk", "part", "loop") and int(dev.get("size") or 0):
                path = dev["path"]
                users = blockprobe.device_users(path)
                found = blockprobe.signatures(path)
                rows.append((path, int(dev["size"]),
                             "; ".join(users + found) if users or found else "empty"))
            walk(dev.get("children") or [])

    walk(json.loads(out.stdout or "{}").get("blockdevices", []))
    return rows
