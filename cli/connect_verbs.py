"""`poolkeeper -c URI VERB`: the verbs over a libvirt connection (backends.libvirt_controller),
with the native engine's output text and --json shapes (cli.virsh_text, cli.verbs).

Only the verbs in CONNECT_VERBS work over a connection so far; every other one is refused
before anything is opened, so it can never act on the native engine by mistake.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TextIO

from backends import model, xmlio
from backends.libvirt_controller import LibvirtController
from backends.units import parse_size

from . import virsh_text
from .commands import POOL_REFS
from .connect_pool_verbs import POOL_VERBS, pool_as_xml
from .connect_secret_verbs import SECRET_VERBS
from .connect_volume_verbs import VOLUME_VERBS
from .inputs import read_text
from .output import dump_json, dump_json_lines, printable, printable_xml
from .verbs import (
    UsageError,
    _overwrite,
    cmd_pool_list,
    pool_json,
    simple_handler,
    volume_json,
    volume_json_line,
    write_xml,
)

ConnectHandler = Callable[[LibvirtController, argparse.Namespace, TextIO], int]


def resolve_uri(uri: str) -> str:
    """`-c default` is $LIBVIRT_DEFAULT_URI (given explicitly, never implied)."""
    if not uri:  # never libvirt's guess: a script's -c "$URI" with URI unset
        raise UsageError("-c needs a URI (qemu:///system, qemu+ssh://root@HOST/system, "
                         "test:///default), or -c default for $LIBVIRT_DEFAULT_URI")
    if uri != "default":
        return uri
    chosen = os.environ.get("LIBVIRT_DEFAULT_URI", "")
    if not chosen:
        raise UsageError("-c default means $LIBVIRT_DEFAULT_URI, which is not set: set it, "
                         "or give a URI (-c qemu:///system, -c qemu+ssh://root@HOST/system)")
    return chosen


# == pools ==============================================================================
def pool_list(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    return cmd_pool_list(lc, args, out)  # type: ignore[arg-type]  # it only lists


def pool_info(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    p = lc.pool_info(args.pool)
    if args.json:
        dump_json(out, pool_json(p))
    else:
        virsh_text.pool_info(out, p, args.bytes)
    return 0


def pool_dumpxml(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    write_xml(out, lc.pool_xml(args.pool, inactive=args.inactive), args)
    return 0


def pool_name(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable(lc.pool_info(args.pool).name, out) + "\n")
    return 0


def pool_uuid(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable(lc.pool_info(args.pool).uuid, out) + "\n")
    return 0


def pool_define(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    name = lc.define_pool_xml(read_text(args.file), args.validate)
    out.write(f"Pool {printable(name, out)} defined from {printable(args.file, out)}\n")
    return 0


def pool_define_as(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    xml = pool_as_xml(args, "pool-define-as")
    if args.print_xml:
        out.write(printable_xml(xml, out))
        return 0
    name = lc.define_pool_xml(xml)
    out.write(f"Pool {printable(name, out)} defined\n")
    return 0


def pool_build(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    lc.build_pool(args.pool, _overwrite(args))
    out.write(f"Pool {printable(args.pool, out)} built\n")
    return 0


def pool_start(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    lc.start_pool(args.pool, build=args.build, overwrite=_overwrite(args))
    out.write(f"Pool {printable(args.pool, out)} started\n")
    return 0


def pool_delete(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    lc.refuse_pool_delete(args.pool, args.force)
    lc.delete_pool(args.pool)
    out.write(f"Pool {printable(args.pool, out)} deleted\n")
    return 0


def pool_autostart(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    lc.set_autostart(args.pool, not args.disable)
    state = "unmarked as autostarted" if args.disable else "marked as autostarted"
    out.write(f"Pool {printable(args.pool, out)} {state}\n")
    return 0


# == volumes ============================================================================
def vol_list(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    if not args.json and not args.details:  # names and paths: as virsh asks for them
        paths = sorted(lc.list_volume_paths(args.pool),
                       key=lambda item: virsh_text.name_order(item[0]))
        virsh_text.table(out, ["Name", "Path"], [list(item) for item in paths])
        virsh_text.end(out)
        return 0
    vols = sorted(lc.list_volumes(args.pool), key=virsh_text.by_name)
    if args.json:
        dump_json_lines(out, map(volume_json_line, vols))
    else:
        virsh_text.vol_list(out, vols, args.details)
    return 0


def vol_info(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    v = lc.volume_info(pool, name, physical=args.physical and not args.json)
    if args.json:
        dump_json(out, volume_json(v))
    else:
        virsh_text.vol_info(out, v, args.bytes, args.physical)
    return 0


def vol_dumpxml(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    write_xml(out, lc.volume_xml(pool, name), args)
    return 0


def vol_path(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    out.write(printable(lc.volume_info(pool, name).path, out) + "\n")
    return 0


def vol_key(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    out.write(printable(lc.volume_info(pool, name).key, out) + "\n")
    return 0


def vol_name(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    _pool, name = lc.volume_ref(args.vol, None)
    out.write(printable(name, out) + "\n")
    return 0


def vol_create(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    xml = read_text(args.file)
    name = lc.create_volume_xml(args.pool, xml, args.prealloc_metadata, args.validate)
    out.write(f"Vol {printable(name, out)} created from {printable(args.file, out)}\n")
    return 0


def vol_create_as(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    capacity = parse_size(args.capacity, "capacity")
    allocation = parse_size(args.allocation, "allocation") if args.allocation else None
    backing = None
    if args.backing_vol:  # a name in the pool, a key or a path, as virsh looks it up
        pool, name = lc.volume_ref(args.backing_vol, args.pool)
        backing = model.BackingStore(path=lc.volume_info(pool, name).path,
                                     format=args.backing_vol_format)
    vdef = model.VolumeDef(name=args.name, capacity=capacity, allocation=allocation,
                           target=model.VolumeTarget(format=args.format), backing=backing,
                           prealloc_metadata=args.prealloc_metadata)
    xml = xmlio.format_volume(vdef)
    if args.print_xml:
        out.write(printable_xml(xml, out))
        return 0
    lc.create_volume_xml(args.pool, xml, args.prealloc_metadata)
    out.write(f"Vol {printable(args.name, out)} created\n")
    return 0


def vol_delete(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = lc.volume_ref(args.vol, args.pool)
    lc.refuse_volume_delete(pool, name)
    lc.delete_volume(pool, name, delete_snapshots=args.delete_snapshots)
    out.write(f"Vol {printable(name, out)} deleted\n")
    return 0


CONNECT_VERBS: dict[str, ConnectHandler] = {
    "pool-list": pool_list, "pool-info": pool_info, "pool-dumpxml": pool_dumpxml,
    "pool-name": pool_name, "pool-uuid": pool_uuid, "pool-define": pool_define,
    "pool-define-as": pool_define_as, "pool-build": pool_build, "pool-start": pool_start,
    "pool-destroy": simple_handler(LibvirtController.stop_pool, "Pool {pool} destroyed"),
    "pool-undefine": simple_handler(LibvirtController.undefine_pool,
                                    "Pool {pool} has been undefined"),
    "pool-refresh": simple_handler(LibvirtController.refresh_pool, "Pool {pool} refreshed"),
    "pool-delete": pool_delete, "pool-autostart": pool_autostart,
    "vol-list": vol_list, "vol-info": vol_info, "vol-dumpxml": vol_dumpxml,
    "vol-path": vol_path, "vol-key": vol_key, "vol-name": vol_name,
    "vol-create": vol_create, "vol-create-as": vol_create_as, "vol-delete": vol_delete,
    **POOL_VERBS, **VOLUME_VERBS, **SECRET_VERBS,
}


# Verbs made of short calls (reads): no keepalive, so no event loop thread (Connection)
SHORT_VERBS = frozenset({
    "pool-list", "pool-info", "pool-dumpxml", "pool-name", "pool-uuid", "vol-list",
    "vol-info", "vol-dumpxml", "vol-path", "vol-key", "vol-name", "vol-pool",
    "secret-list", "secret-dumpxml", "pool-capabilities"})


def run_connected(uri: str, verb: str, args: argparse.Namespace, out: TextIO) -> int:
    """Run `verb` over the connection to `uri`; its exit status. Errors are raised
    (PoolkeeperError) for cli.main to report."""
    handler = CONNECT_VERBS.get(verb)
    if handler is None:
        raise UsageError(f"{verb} is not available over a libvirt connection yet")
    uri = resolve_uri(uri)
    lc = LibvirtController(uri, events=verb not in SHORT_VERBS)
    try:
        for dest in POOL_REFS:  # a pool given by UUID is named by its name from here on
            value = getattr(args, dest, None)
            if value:
                setattr(args, dest, lc.pool_name(value))
        return handler(lc, args, out)
    finally:
        lc.close()

