"""`poolkeeper -c URI` pool verbs beyond define/start/list: transient pools (pool-create,
pool-create-as: libvirt's createXML), pool-edit (the inactive definition in $EDITOR,
defined again, never over a change made meanwhile), pool-capabilities and source
discovery (find-storage-pool-sources[-as]), printing what the native verbs print.
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from typing import TextIO

from lxml import etree

from backends import xmlio
from backends.drivers import pool_types
from backends.errors import PoolkeeperError
from backends.libvirt_controller import LibvirtController

from .inputs import read_text
from .output import printable, printable_xml
from .pool_verbs import event_request, events_ended, write_event
from .verbs import UsageError, _overwrite, pool_def_from_args

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def pool_as_xml(args: argparse.Namespace, verb: str) -> str:
    """pool-define-as / pool-create-as: poolkeeper's checks and defaults for its own
    types, as without -c; other types (rbd, zfs, scsi, ...) as given, for libvirt to
    judge."""
    pdef = pool_def_from_args(args)
    if pdef.type in pool_types():
        xmlio.validate_pool(pdef)
    elif not pdef.type or not pdef.name:
        raise UsageError(f"{verb} needs a NAME and a TYPE")
    return xmlio.format_pool(pdef)


def pool_create(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    if args.validate:
        raise UsageError("libvirt's pool-create has no --validate; check the file with "
                         "pool-define --validate, or leave it out")
    overwrite = _overwrite(args)  # either one asks for a build, as in virsh
    name = lc.create_pool_xml(read_text(args.file), build=args.build or overwrite is not None,
                              overwrite=overwrite)
    out.write(f"Pool {printable(name, out)} created from {printable(args.file, out)}\n")
    return 0


def pool_create_as(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    xml = pool_as_xml(args, "pool-create-as")
    if args.print_xml:
        out.write(printable_xml(xml, out))
        return 0
    overwrite = _overwrite(args)
    name = lc.create_pool_xml(xml, build=args.build or overwrite is not None,
                              overwrite=overwrite)
    out.write(f"Pool {printable(name, out)} created\n")
    return 0


def pool_edit(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    """virsh pool-edit over a connection (dumpxml --inactive, the editor, define): the
    native loop (pool_verbs.edit_pool_xml), saving through libvirt."""
    from .pool_verbs import edit_pool_xml  # (its imports cost every other verb)

    def save(text: str) -> list[str]:
        _check_name(text, args.pool)
        lc.define_pool_xml(text)
        return []

    return edit_pool_xml(args.pool, lambda: lc.pool_xml(args.pool, inactive=True), save, out)


def _check_name(text: str, pool: str) -> None:
    """The edited XML still names this pool (defining another name would add a pool)."""
    try:
        name = etree.fromstring(text.encode("utf-8"), _PARSER).findtext("name")
    except etree.XMLSyntaxError as exc:
        raise PoolkeeperError(f"the edited XML is not well-formed: {exc}") from None
    if name != pool:
        raise PoolkeeperError(f"the edited XML names the pool '{name}', not '{pool}'; "
                              "pool-edit changes a pool, it does not rename one")


def pool_capabilities(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable_xml(lc.capabilities(), out))
    return 0


def _source_spec(host: str | None, port: str | None = None, initiator: str | None = None,
                 device: str | None = None) -> str | None:
    """A <source> to search from, as virsh builds it (None when nothing narrows it)."""
    if not (host or device):
        return None
    source = etree.Element("source")
    if host:
        node = etree.SubElement(source, "host", name=host)
        if port:
            node.set("port", port)
    if device:
        etree.SubElement(source, "device", path=device)
    if initiator and host:
        etree.SubElement(etree.SubElement(source, "initiator"), "iqn", name=initiator)
    return etree.tostring(source, encoding="unicode")


def find_sources_as(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    spec = _source_spec(args.host, args.port, args.initiator)
    out.write(printable_xml(lc.find_pool_sources(args.type, spec), out))
    return 0


def find_sources(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    if args.srcSpec:  # libvirt reads the file's <source> itself
        if args.host or args.device:
            raise UsageError("give --srcSpec or --host/--device, not both")
        spec: str | None = read_text(args.srcSpec)
    else:
        spec = _source_spec(args.host, device=args.device)
    out.write(printable_xml(lc.find_pool_sources(args.type, spec), out))
    return 0


# virStoragePoolEventLifecycleType, as virsh names them
LIFECYCLE = ("Defined", "Undefined", "Started", "Stopped", "Created", "Deleted")


def pool_event(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    """virsh pool-event over the connection: libvirt's own storage pool events (its
    event loop runs for -c verbs that are not only short calls), printed as the native
    pool-event prints its journal's."""
    if not event_request(args, out):
        return 0
    lv, conn = lc.libvirt, lc.connection.conn
    heard: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()

    def lifecycle(_conn: object, pool: object, event: int, _detail: int,
                  _opaque: object) -> None:
        heard.put((pool.name(), LIFECYCLE[event] if 0 <= event < len(LIFECYCLE)  # type: ignore[attr-defined]
                   else f"event {event}"))

    def refresh(_conn: object, pool: object, _opaque: object) -> None:
        heard.put((pool.name(), ""))  # type: ignore[attr-defined]

    refreshing = args.event == "refresh"
    kind = lv.VIR_STORAGE_POOL_EVENT_ID_REFRESH if refreshing else \
        lv.VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE

    def register() -> int:
        pool = lc._pool(args.pool) if args.pool else None
        return int(conn.storagePoolEventRegisterAny(pool, kind,
                                                    refresh if refreshing else lifecycle,
                                                    None))

    callback = lc._call(register, "cannot watch the pools' events")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    count, how = 0, "timed out"
    try:
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                break
            try:  # a second at most: a connection gone is seen within it, as virsh sees it
                pool, detail = heard.get(timeout=min(wait, 1.0) if wait is not None else 1.0)
            except queue.Empty:
                if lc.connection.conn is not None and not lc.connection.conn.isAlive():
                    sys.stderr.write(f"error: Disconnected from {printable(lc.uri)} due to "
                                     "end of file\n")
                    out.write(f"events received: {count}\n\n")
                    return 1
                continue
            write_event(args, out, args.event, pool, detail)
            count += 1
            if not args.loop:
                how = ""
                break
    except KeyboardInterrupt:
        how = "interrupted"
    finally:
        try:
            lc._call(lambda: conn.storagePoolEventDeregisterAny(callback),
                     "cannot stop watching the pools' events")
        except PoolkeeperError:
            pass
    return events_ended(out, count, how)


POOL_VERBS = {
    "pool-event": pool_event,
    "pool-create": pool_create, "pool-create-as": pool_create_as, "pool-edit": pool_edit,
    "pool-capabilities": pool_capabilities, "find-storage-pool-sources-as": find_sources_as,
    "find-storage-pool-sources": find_sources,
}
