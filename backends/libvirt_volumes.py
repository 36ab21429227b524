"""The volume verbs that change a volume's bytes over a libvirt connection: clone and
create-from (virStorageVolCreateXMLFrom), resize (virStorageVolResize's flags), wipe
(virStorageVolWipePattern) and the pool a volume is in. libvirt does the work on its
host; its refusals are passed on as its own messages (backends.libvirt_conn.translate).

Clone and wipe are one RPC each, which libvirt cannot cancel: they run as a job with no
progress total (the CLI says so on Ctrl-C and keeps waiting). Streams (upload, download)
are backends.libvirt_streams.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from lxml import etree

from .errors import PoolkeeperError, XMLError
from .events import EventBus
from .jobs import Job
from .libvirt_controller import LibvirtController, volume_from_xml
from .model import WIPE_ALGORITHMS, VolumeInfo

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _volume_doc(xml: str) -> Any:
    try:
        return etree.fromstring(xml.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XMLError(f"the volume XML is not well-formed: {exc}") from None


def renamed_xml(xml: str, new_name: str) -> str:
    """A volume's XML with only <name> replaced (vol-clone's XML, as virsh builds it from
    the source's, so a sparse source gives a sparse clone)."""
    doc = _volume_doc(xml)
    found = doc.find("name")
    if found is None:
        found = etree.SubElement(doc, "name")
    found.text = new_name
    return etree.tostring(doc, encoding="unicode") + "\n"


def xml_name(xml: str) -> str:
    """The <name> a volume's XML gives ("" without one)."""
    return str(_volume_doc(xml).findtext("name") or "")


def start_job(kind: str, description: str, fn: Callable[[Job], Any]) -> Job:
    """`fn(job)` as a job on its own thread (cli.output.wait_job draws and cancels it)."""
    job = Job(kind, description, None, None, EventBus())
    threading.Thread(target=job._run, args=(fn,), daemon=True, name=f"pk-{kind}").start()
    return job


def _create_flags(lc: LibvirtController, prealloc_metadata: bool, reflink: bool,
                  validate: bool = False) -> int:
    lv = lc.libvirt
    flags = lv.VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA if prealloc_metadata else 0
    if validate:
        flags |= lv.VIR_STORAGE_VOL_CREATE_VALIDATE
    if reflink:
        if not hasattr(lv, "VIR_STORAGE_VOL_CREATE_REFLINK"):
            raise PoolkeeperError("--reflink needs libvirt 1.2.13 or later (this binding "
                                  "has no VIR_STORAGE_VOL_CREATE_REFLINK)")
        flags |= lv.VIR_STORAGE_VOL_CREATE_REFLINK
    return int(flags)


def create_from(lc: LibvirtController, pool: str, xml: str, src_pool: str, src: str, *,
                prealloc_metadata: bool = False, reflink: bool = False,
                validate: bool = False) -> Job:
    """A job making the volume `xml` describes in `pool` with the bytes of `src` (in
    `src_pool`), libvirt's virStorageVolCreateXMLFrom; its result is the new VolumeInfo.
    On failure libvirt deletes what it had made."""
    flags = _create_flags(lc, prealloc_metadata, reflink, validate)

    def run() -> VolumeInfo:
        source = lc._volume(src, src_pool)
        new = lc._pool(pool).createXMLFrom(xml, source, flags)
        return volume_from_xml(new.XMLDesc(0))

    return start_job("clone", f"clone {src}",
                     lambda job: lc._call(run, f"cannot create the volume from '{src}'",
                                          long=True))


def resize_flags(lc: LibvirtController, delta: bool, shrink: bool, allocate: bool) -> int:
    """virsh's mapping: --allocate, --delta and --shrink are libvirt's three flags."""
    lv = lc.libvirt
    return int((lv.VIR_STORAGE_VOL_RESIZE_ALLOCATE if allocate else 0)
               | (lv.VIR_STORAGE_VOL_RESIZE_DELTA if delta else 0)
               | (lv.VIR_STORAGE_VOL_RESIZE_SHRINK if shrink else 0))


def resize(lc: LibvirtController, pool: str, name: str, size: int, flags: int) -> VolumeInfo:
    """Resize (libvirt judges: shrinking below the allocation, --allocate on qcow2, ...);
    the volume as it is afterwards."""
    def run() -> VolumeInfo:
        vol = lc._volume(name, pool)
        vol.resize(size, flags)
        return volume_from_xml(vol.XMLDesc(0))

    info: VolumeInfo = lc._call(run, f"cannot resize volume '{name}'", long=True)
    return info


def wipe(lc: LibvirtController, pool: str, name: str, algorithm: str = "zero") -> Job:
    """A job wiping the volume with libvirt's algorithm of virsh's name (scrub's, on the
    host, for all but zero and trim)."""
    if algorithm not in WIPE_ALGORITHMS:
        raise PoolkeeperError(f"unknown wipe algorithm '{algorithm}' (choose "
                              + ", ".join(WIPE_ALGORITHMS) + ")")
    alg = int(getattr(lc.libvirt, f"VIR_STORAGE_VOL_WIPE_ALG_{algorithm.upper()}"))
    return start_job("wipe", f"wipe {name}", lambda job: lc._call(
        lambda: lc._volume(name, pool).wipePattern(alg, 0), f"cannot wipe volume '{name}'",
        long=True))


def pool_of(lc: LibvirtController, ref: str) -> tuple[str, str]:
    """(name, UUID) of the pool holding the volume with key or path `ref`."""
    def run() -> tuple[str, str]:
        pool = lc._volume(ref, None).storagePoolLookupByVolume()
        return str(pool.name()), str(pool.UUIDString())

    found: tuple[str, str] = lc._call(run, f"cannot find the pool of volume '{ref}'")
    return found
