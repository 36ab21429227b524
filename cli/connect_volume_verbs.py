"""`poolkeeper -c URI` volume verbs that move or change bytes: vol-clone, vol-create-from,
vol-resize, vol-wipe, vol-pool, vol-upload and vol-download (backends.libvirt_volumes and
backends.libvirt_streams), printing what the native verbs print.

Uploads and downloads draw the native progress bar on a terminal and stop on Ctrl-C
(cli.output.wait_job). A clone or wipe is one libvirt call that libvirt cannot cancel:
Ctrl-C says so and keeps waiting; a second one stops waiting (the host carries on).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from backends import libvirt_streams, libvirt_volumes
from backends.errors import PoolkeeperError
from backends.jobs import Job
from backends.libvirt_controller import LibvirtController
from backends.units import human, parse_size

from .inputs import read_text
from .output import printable, printable_xml, wait_job
from .verbs import UsageError, _byte_count
from .volume_verbs import clone_xml


def wait_uncancellable(job: Job, err: TextIO, what: str) -> Any:
    """Wait for a job libvirt cannot cancel; its result. The first Ctrl-C says so and
    waits on; the second stops waiting with an error saying the host goes on."""
    try:
        while not job.join(0.2):
            pass
    except KeyboardInterrupt:
        err.write(f"libvirt cannot cancel {what} once it has begun: waiting for it to end "
                  "(Ctrl-C again stops waiting; the host then carries on with it)\n")
        err.flush()
        try:
            while not job.join(0.2):
                pass
        except KeyboardInterrupt:
            raise PoolkeeperError(f"stopped waiting: {what} goes on on the host (see "
                                  "vol-list when it has ended)") from None
    return job.wait()


def vol_clone(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    xml = clone_xml(lc, pool, name, args.newname)
    if args.print_xml:
        out.write(printable_xml(xml, out))
        return 0
    job = libvirt_volumes.create_from(lc, args.newpool or pool, xml, pool, name,
                                      prealloc_metadata=args.prealloc_metadata,
                                      reflink=args.reflink)
    wait_uncancellable(job, sys.stderr, "a clone")
    out.write(f"Vol {printable(args.newname, out)} cloned from {printable(name, out)}\n")
    return 0


def vol_create_from(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    xml = read_text(args.file)
    src_pool, src = lc.volume_ref(args.vol, args.inputpool)
    job = libvirt_volumes.create_from(lc, args.pool, xml, src_pool, src,
                                      prealloc_metadata=args.prealloc_metadata,
                                      reflink=args.reflink, validate=args.validate)
    info = wait_uncancellable(job, sys.stderr, "a copy")
    out.write(f"Vol {printable(info.name, out)} created from input vol "
              f"{printable(src, out)}\n")
    return 0


def vol_resize(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    text, delta = args.capacity, args.delta
    if text.startswith("-"):  # as virsh: a negative size needs --shrink and is a delta
        if not args.shrink:
            raise UsageError("a negative size needs --shrink")
        text, delta = text[1:], True
    size = parse_size(text, "capacity")
    flags = libvirt_volumes.resize_flags(lc, delta, args.shrink, args.allocate)
    lc.refuse_in_use(pool, name, "resize")
    info = libvirt_volumes.resize(lc, pool, name, size, flags)
    out.write(f"Size of volume '{printable(name, out)}' successfully changed to "
              f"{human(info.capacity)}\n")
    return 0


def vol_wipe(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    lc.refuse_in_use(pool, name, "wipe")
    wait_uncancellable(libvirt_volumes.wipe(lc, pool, name, args.algorithm), sys.stderr,
                       "a wipe")
    out.write(f"Vol {printable(name, out)} wiped\n")
    return 0


def vol_pool(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    name, uuid = libvirt_volumes.pool_of(lc, args.vol)
    out.write(printable(uuid if args.uuid else name, out) + "\n")
    return 0


def vol_upload(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    lc.refuse_in_use(pool, name, "upload into")
    job = libvirt_streams.upload(lc, pool, name, args.file,
                                 offset=_byte_count(args.offset, "offset") or 0,
                                 length=_byte_count(args.length, "length") or None,
                                 sparse=args.sparse)
    written = wait_job(job, sys.stderr)
    out.write(f"Uploaded {written} bytes to {printable(name, out)}\n")
    return 0


def vol_download(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    job = libvirt_streams.download(lc, pool, name, args.file,
                                   offset=_byte_count(args.offset, "offset") or 0,
                                   length=_byte_count(args.length, "length") or None,
                                   sparse=args.sparse)
    count = wait_job(job, sys.stderr)
    out.write(f"Downloaded {count} bytes of {printable(name, out)} to "
              f"{printable(args.file, out)}\n")
    return 0


VOLUME_VERBS = {
    "vol-clone": vol_clone, "vol-create-from": vol_create_from, "vol-resize": vol_resize,
    "vol-wipe": vol_wipe, "vol-pool": vol_pool, "vol-upload": vol_upload,
    "vol-download": vol_download,
}
