"""The CLI's verbs: one handler per command, each a StorageController call and its report.

A handler takes the controller, the parsed arguments and the output stream and returns the
exit status; errors are raised (PoolkeeperError, UsageError) and cli.main reports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

from backends import model, xmlio
from backends.controller import StorageController
from backends.errors import PoolkeeperError
from backends.units import human, parse_size

from . import virsh_text, xpath
from .inputs import read_input, volume_of
from .output import dump_json, dump_json_lines, printable, printable_xml, wait_job

Handler = Callable[[StorageController, argparse.Namespace, TextIO], int]


class UsageError(PoolkeeperError):
    pass


def pool_json(p: model.PoolStatus) -> dict[str, Any]:
    return {
        "name": p.name, "type": p.type, "uuid": p.uuid, "state": p.state,
        "autostart": p.autostart, "persistent": p.persistent, "capacity": p.capacity,
        "allocation": p.allocation, "available": p.available,
        "largest_free_extent": p.largest_free, "target": p.target,
        "source": p.source, "detail": p.detail, "volume_limit": p.volume_limit,
    }


def volume_json(v: model.VolumeInfo) -> dict[str, Any]:
    return {
        "name": v.name, "path": v.path, "key": v.key, "type": v.type, "format": v.format,
        "capacity": v.capacity, "allocation": v.allocation, "physical": v.physical,
        "backing": v.backing.path if v.backing else None,
        "backing_format": v.backing.format if v.backing else None,
        "probed_format": v.probed_format, "symlink": v.symlink, "error": v.error,
        "encryption": v.encryption,
    }


def volume_json_line(v: model.VolumeInfo) -> str:
    """json.dumps(volume_json(v)), the same text, made without the dict (a third of the
    time of a 10,000-volume vol-list --json); tests/cli/test_cli.py holds the two equal.
    No helper call per field: the str fields (never None) and the sizes (ints: a None
    raises) are written as they are, the optional ones tested here."""
    b, pf, sl, er, en = v.backing, v.probed_format, v.symlink, v.error, v.encryption
    path = _enc(v.path)
    key = path if v.key is v.path else _enc(v.key)  # a file's key is its path
    return (f'{{"name": {_enc(v.name)}, "path": {path}, "key": {key}, '
            f'"type": {_enc(v.type)}, "format": {_enc(v.format)}, '
            f'"capacity": {_int(v.capacity)}, "allocation": {_int(v.allocation)}, '
            f'"physical": {_int(v.physical)}, '
            f'"backing": {"null" if b is None else _enc(b.path)}, '
            f'"backing_format": {"null" if b is None else _js(b.format)}, '
            f'"probed_format": {"null" if pf is None else _enc(pf)}, '
            f'"symlink": {"null" if sl is None else _enc(sl)}, '
            f'"error": {"null" if er is None else _enc(er)}, '
            f'"encryption": {"null" if en is None else _enc(en)}}}')


_enc = encode_basestring_ascii
_int = int.__repr__


def _js(text: str | None) -> str:
    return "null" if text is None else _enc(text)


# == volume references ==================================================================
# == pool verbs =========================================================================
def _filtered_pools(ctl: StorageController, args: argparse.Namespace
                    ) -> list[model.PoolStatus]:
    """virsh's filters: each given group narrows (active/inactive, persistent/transient,
    autostart or not, types); both of a group, or neither, keeps all of it."""
    pools = ctl.list_pools()
    if args.type:
        wanted = set(args.type.split(","))
        pools = [p for p in pools if p.type in wanted]
    if args.inactive and not args.all:
        pools = [p for p in pools if not p.started]  # virsh: inaccessible is active
    elif not args.all:
        pools = [p for p in pools if p.started]
    if args.persistent != args.transient:
        pools = [p for p in pools if p.persistent == args.persistent]
    if args.autostart != args.no_autostart:
        pools = [p for p in pools if p.autostart == args.autostart]
    return sorted(pools, key=virsh_text.by_name)  # virsh's order


def cmd_pool_list(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pools = _filtered_pools(ctl, args)
    if args.uuid or args.name:  # one pool a line, as virsh: UUID, then the name
        for p in pools:
            fields = ([p.uuid] if args.uuid else []) + ([f"{p.name:<20}"] if args.name else [])
            out.write(printable(" ".join(fields), out) + "\n")
        out.write("\n")
        return 0
    if args.json:
        dump_json(out, [pool_json(p) for p in pools])
        return 0
    virsh_text.pool_list(out, pools, args.details)
    return 0


def cmd_pool_info(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    p = ctl.pool_info(args.pool)
    if args.json:
        dump_json(out, pool_json(p))
        return 0
    virsh_text.pool_info(out, p, args.bytes)
    return 0


def write_xml(out: TextIO, xml: str, args: argparse.Namespace) -> None:
    """A dumpxml's document, or what its --xpath selects (cli.xpath)."""
    if args.xpath:
        xml = xpath.select(xml, args.xpath, wrap=args.wrap)
    elif args.wrap:
        raise UsageError("--wrap wraps what --xpath selects: give --xpath EXPR too")
    out.write(printable_xml(xml, out))


def cmd_pool_dumpxml(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    write_xml(out, ctl.pool_xml(args.pool, inactive=args.inactive), args)
    return 0


def cmd_pool_define(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    status = ctl.define_pool(read_input(args.file))
    out.write(f"Pool {printable(status.name, out)} defined from {printable(args.file, out)}\n")
    return 0


def read_secret_set_value(usage: str) -> str | bytes:
    """secret-set's value: from stdin (asked without echo on a terminal), never from
    argv, where every user could read it in /proc."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"Value of secret '{printable(usage)}': ")
    # bytes: the store checks them (UTF-8 included) as secret-set-value's are
    return sys.stdin.buffer.read(64 * 1024).removesuffix(b"\n").removesuffix(b"\r")


def cmd_secret_set(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    ctl.set_secret(args.usage, read_secret_set_value(args.usage))
    out.write(f"Secret {printable(args.usage, out)} set\n")
    return 0


def cmd_secret_undefine(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    if not ctl.delete_secret(args.usage, force=args.force):
        raise PoolkeeperError(f"no secret '{args.usage}' is stored")
    out.write(f"Secret {printable(args.usage, out)} deleted\n")
    return 0


def _port(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise UsageError(f"--source-port takes a port number (1-65535), not '{text}'")
    return int(text)


ADAPTER_OPTIONS = ("adapter-name", "adapter-wwnn", "adapter-wwpn", "adapter-parent",
                   "adapter-parent-wwnn", "adapter-parent-wwpn", "adapter-parent-fabric-wwn")


def pool_def_from_args(args: argparse.Namespace) -> model.PoolDef:
    """pool-define-as / pool-create-as: the definition the arguments describe."""
    for option in ADAPTER_OPTIONS:
        if getattr(args, option.replace("-", "_"), None):
            raise UsageError(f"--{option} describes a SCSI host adapter (scsi pools), which "
                             "poolkeeper does not manage")
    auth = None
    if args.auth_type or args.auth_username or args.secret_usage or args.secret_uuid:
        if args.secret_usage and args.secret_uuid:
            raise UsageError("--secret-usage and --secret-uuid name the same secret: give "
                             "one of them")
        if not (args.auth_username and (args.secret_usage or args.secret_uuid)):
            raise UsageError("authentication needs --auth-username and --secret-usage (or "
                             "--secret-uuid)")
        auth = model.SourceAuth(type=args.auth_type or "chap", username=args.auth_username,
                                secret=model.AuthSecret(usage=args.secret_usage,
                                                        uuid=args.secret_uuid))
    source = model.PoolSource(
        hosts=[model.SourceHost(args.source_host, _port(args.source_port))]
        if args.source_host else [],
        devices=[model.SourceDevice(d) for d in args.source_dev or []],
        dir=args.source_path,
        name=args.source_name,
        format=args.source_format,
        initiator_iqn=args.source_initiator,
        auth=auth,
        protocol_ver=args.source_protocol_ver,
    )
    return model.PoolDef(type=args.type, name=args.name, source=source,
                   target=model.PoolTarget(path=args.target))


def cmd_pool_define_as(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pdef = pool_def_from_args(args)
    if args.print_xml:
        xmlio.validate_pool(pdef)
        out.write(printable_xml(xmlio.format_pool(pdef), out))
        return 0
    status = ctl.define_pool_def(pdef)
    out.write(f"Pool {printable(status.name, out)} defined\n")
    return 0


def _overwrite(args: argparse.Namespace) -> bool | None:
    """--overwrite / --no-overwrite (exclusive: cli.argspec refuses both)."""
    if args.overwrite:
        return True
    if args.no_overwrite:
        return False
    return None


def cmd_pool_build(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    wait_job(ctl.build_pool(args.pool, _overwrite(args)), sys.stderr)
    out.write(f"Pool {printable(args.pool, out)} built\n")
    return 0


def cmd_pool_start(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    """quick: the volumes' headers would be read only to be thrown away as the process
    ends (the directory is still listed: a pool whose target cannot be read stays stopped);
    vol-list and every verb read them, and apply the format records, when they run."""
    overwrite = _overwrite(args)
    if args.build:
        wait_job(ctl.build_pool(args.pool, overwrite, journal=False), sys.stderr)
        try:
            ctl.start_pool(args.pool, quick=True)
        except PoolkeeperError as exc:  # half done: say which half
            raise PoolkeeperError(f"pool '{args.pool}' was built, but could not be started: "
                                  f"{exc}") from None
    else:
        ctl.start_pool(args.pool, quick=True)
    out.write(f"Pool {printable(args.pool, out)} started\n")
    return 0


def simple_handler(verb: Callable[[Any, str], object], message: str) -> Handler:
    """A handler that runs `verb` on the pool argument and says `message` (the native
    controller's or a libvirt connection's: cli.connect_verbs uses it too)."""
    def handler(ctl: Any, args: argparse.Namespace, out: TextIO) -> int:
        verb(ctl, args.pool)
        out.write(message.format(pool=printable(args.pool, out)) + "\n")
        return 0

    return handler


def cmd_pool_delete(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    ctl.delete_pool(args.pool, force=args.force)
    out.write(f"Pool {printable(args.pool, out)} deleted\n")
    return 0


def cmd_pool_autostart(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    ctl.set_autostart(args.pool, not args.disable)
    state = "unmarked as autostarted" if args.disable else "marked as autostarted"
    out.write(f"Pool {printable(args.pool, out)} {state}\n")
    return 0


def cmd_pool_capabilities(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable_xml(ctl.capabilities(), out))
    return 0


# == volume verbs =======================================================================
def cmd_vol_list(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    vols = sorted(ctl.list_volumes(args.pool), key=virsh_text.by_name)
    if args.json:
        dump_json_lines(out, map(volume_json_line, vols))
        return 0
    virsh_text.vol_list(out, vols, args.details)
    for v in vols:
        if v.error:
            sys.stderr.write(f"warning: {printable(v.name, sys.stderr)}: "
                             f"{printable(v.error, sys.stderr)}\n")
    return 0


def cmd_vol_info(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    v = ctl.volume_info(pool, name)
    if args.json:
        dump_json(out, volume_json(v))
        return 0
    virsh_text.vol_info(out, v, args.bytes, args.physical)
    return 0


def cmd_vol_dumpxml(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    write_xml(out, ctl.volume_xml(pool, name), args)
    return 0


def cmd_vol_path(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    out.write(printable(ctl.volume_info(pool, name).path, out) + "\n")
    return 0


def cmd_vol_create(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    vdef = xmlio.parse_volume(read_input(args.file), ctl.pool_def(args.pool).type)
    vdef.prealloc_metadata = args.prealloc_metadata
    info = wait_job(ctl.create_volume_def(args.pool, vdef), sys.stderr)
    out.write(f"Vol {printable(info.name, out)} created from {printable(args.file, out)}\n")
    return 0


def cmd_vol_create_as(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    capacity = parse_size(args.capacity, "capacity")
    allocation = parse_size(args.allocation, "allocation") if args.allocation else None
    backing = None
    if args.backing_vol:
        path = args.backing_vol
        if not path.startswith("/"):
            path = ctl.volume_info(args.pool, path).path
        backing = model.BackingStore(path=path, format=args.backing_vol_format)
    vdef = model.VolumeDef(name=args.name, capacity=capacity, allocation=allocation,
                     target=model.VolumeTarget(format=args.format), backing=backing,
                     prealloc_metadata=args.prealloc_metadata)
    if args.print_xml:
        out.write(printable_xml(xmlio.format_volume(vdef), out))
        return 0
    wait_job(ctl.create_volume_def(args.pool, vdef), sys.stderr)
    out.write(f"Vol {printable(args.name, out)} created\n")
    return 0


def cmd_vol_clone(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    if args.print_xml:
        from .volume_verbs import print_clone_xml

        return print_clone_xml(ctl, pool, name, args.newname, out)
    method = wait_job(ctl.clone_volume(pool, name, args.newname, target_pool=args.newpool,
                                       reflink=args.reflink,
                                       prealloc_metadata=args.prealloc_metadata), sys.stderr)
    out.write(f"Vol {printable(args.newname, out)} cloned from {printable(name, out)} "
              f"({printable(str(method), out)})\n")
    return 0


def cmd_vol_delete(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    ctl.delete_volume(pool, name, delete_snapshots=args.delete_snapshots)
    out.write(f"Vol {printable(name, out)} deleted\n")
    return 0


def cmd_vol_wipe(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    wait_job(ctl.wipe_volume(pool, name, args.algorithm), sys.stderr)
    out.write(f"Vol {printable(name, out)} wiped\n")
    return 0


def cmd_vol_resize(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    text = args.capacity
    delta = args.delta
    if text.startswith("-"):
        if not args.shrink:
            raise UsageError("a negative size needs --shrink")
        text, delta = text[1:], True
    size = parse_size(text, "capacity")
    info = wait_job(ctl.resize_volume(pool, name, size, delta=delta, shrink=args.shrink,
                                      allocate=args.allocate), sys.stderr)
    out.write(f"Size of volume '{printable(name, out)}' successfully changed to "
              f"{human(info.capacity)}\n")
    return 0


def _byte_count(value: int | None, option: str) -> int | None:
    """--offset/--length: virsh's numbers arrive as int (cli.argspec); 0 for --length
    means to the end, as in virsh."""
    if value is not None and value < 0:
        raise UsageError(f"--{option} takes a number of bytes (0 or more), not {value}")
    return value


def cmd_vol_upload(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    written = wait_job(ctl.upload_volume(pool, name, args.file,
                                         offset=_byte_count(args.offset, "offset") or 0,
                                         length=_byte_count(args.length, "length") or None,
                                         sparse=args.sparse), sys.stderr)
    out.write(f"Uploaded {written} bytes to {printable(name, out)}\n")
    return 0


def cmd_vol_download(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = volume_of(ctl, args)
    count = wait_job(ctl.download_volume(pool, name, args.file,
                                         offset=_byte_count(args.offset, "offset") or 0,
                                         length=_byte_count(args.length, "length") or None,
                                         sparse=args.sparse), sys.stderr)
    out.write(f"Downloaded {count} bytes of {printable(name, out)} to "
              f"{printable(args.file, out)}\n")
    return 0
