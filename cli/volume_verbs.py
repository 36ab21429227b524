"""The volume verbs virsh has beyond create/list/delete: vol-create-from (a new volume
from XML, its bytes copied from another volume), the lookups vol-key, vol-name and
vol-pool, and vol-clone --print-xml."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from backends import refs, xmlio
from backends.controller import StorageController
from backends.libvirt_volumes import renamed_xml

from .inputs import read_input, volume_of
from .output import printable, printable_xml, wait_job


def cmd_vol_create_from(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    """The clone path with a new definition: the XML names the volume and may set its
    format, capacity and allocation; the bytes are the input volume's."""
    xml = read_input(args.file)
    src_pool, src = refs.volume(ctl, args.vol, args.inputpool, pool_option="--inputpool")
    name = xmlio.parse_volume(xml, ctl.pool_def(args.pool).type, size_from_source=True).name
    wait_job(ctl.clone_volume(src_pool, src, "", target_pool=args.pool, xml=xml,
                              reflink=args.reflink, prealloc_metadata=args.prealloc_metadata),
             sys.stderr)
    out.write(f"Vol {printable(name, out)} created from input vol {printable(src, out)}\n")
    return 0


def cmd_vol_key(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    out.write(printable(ctl.volume_info(pool, name).key, out) + "\n")
    return 0


def cmd_vol_name(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    _pool, name = refs.volume_by_key_or_path(ctl, args.vol)
    out.write(printable(name, out) + "\n")
    return 0


def cmd_vol_pool(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, _name = refs.volume_by_key_or_path(ctl, args.vol)
    shown = ctl.pool_info(pool).uuid if args.uuid else pool
    out.write(printable(shown, out) + "\n")
    return 0


def clone_xml(ctl: Any, pool: str, name: str, new_name: str) -> str:
    """vol-clone --print-xml (and the clone's XML over a connection): the source's XML
    with only <name> replaced, as virsh builds it (so a sparse source gives a sparse
    clone); `ctl`: the native controller or a LibvirtController."""
    return renamed_xml(ctl.volume_xml(pool, name), new_name)


def print_clone_xml(ctl: StorageController, pool: str, name: str, new_name: str,
                    out: TextIO) -> int:
    out.write(printable_xml(clone_xml(ctl, pool, name, new_name), out))
    return 0
