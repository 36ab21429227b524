"""virsh-shaped command line over the StorageController.

Errors go to stderr as `error: ...` with exit status 1; every listing takes --json;
long jobs draw a progress bar when stderr is a terminal.

Every string bound for the terminal goes through backends.textsafe, exactly once, where it
is written: names, paths, errors, warnings and job descriptions with `printable` (control,
bidi and invisible characters, undecodable bytes and the backslash escaped, in what the
stream can encode; engine messages hold names as they are, so a message is escaped like a
name), XML with `printable_xml` (character references, so it stays valid XML). JSON is
ASCII (json's \\u escapes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, TextIO

from backends import textsafe, xmlio
from backends.controller import StorageController
from backends.errors import PoolkeeperError, XMLError
from backends.jobs import Job
from backends.model import (
    WIPE_ALGORITHMS,
    AuthSecret,
    BackingStore,
    PoolDef,
    PoolSource,
    PoolStatus,
    PoolTarget,
    SourceAuth,
    SourceDevice,
    SourceHost,
    VolumeDef,
    VolumeInfo,
    VolumeTarget,
)
from backends.units import human, parse_size

Handler = Callable[[StorageController, argparse.Namespace, TextIO], int]


class UsageError(PoolkeeperError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `poolkeeper {self.prog.split()[-1]} --help`)")


def _version() -> str:
    try:
        return metadata.version("poolkeeper")
    except metadata.PackageNotFoundError:
        return "unknown"


# == output helpers =====================================================================
def _encoding(stream: TextIO | None) -> str | None:
    return getattr(sys.stdout if stream is None else stream, "encoding", None)


def printable(text: str, stream: TextIO | None = None) -> str:
    """A name, path, message or other text, safe and unambiguous on the terminal and
    encodable by `stream` (stdout by default): textsafe.escape, once."""
    return textsafe.escape(text, _encoding(stream))


def printable_xml(xml: str, stream: TextIO | None = None) -> str:
    """XML with the characters printable would escape as character references (&#x9b;)."""
    try:
        return textsafe.escape_xml(xml, _encoding(stream))
    except ValueError as exc:  # xmlio never writes these; never print them raw
        raise PoolkeeperError(f"cannot show the XML: {exc}") from None


def table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    rows = [[printable(cell, out) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out.write(" " + line + "\n")
    out.write("-" * (sum(widths) + 2 * len(widths) + 1) + "\n")
    for row in rows:
        out.write(" " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                  + "\n")
    out.write("\n")


def dump_json(out: TextIO, data: Any) -> None:
    json.dump(data, out, indent=2)
    out.write("\n")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def pool_json(p: PoolStatus) -> dict[str, Any]:
    return {
        "name": p.name, "type": p.type, "uuid": p.uuid, "state": p.state,
        "autostart": p.autostart, "persistent": p.persistent, "capacity": p.capacity,
        "allocation": p.allocation, "available": p.available, "target": p.target,
        "source": p.source, "detail": p.detail,
    }


def volume_json(v: VolumeInfo) -> dict[str, Any]:
    return {
        "name": v.name, "path": v.path, "key": v.key, "type": v.type, "format": v.format,
        "capacity": v.capacity, "allocation": v.allocation, "physical": v.physical,
        "backing": v.backing.path if v.backing else None,
        "backing_format": v.backing.format if v.backing else None,
        "probed_format": v.probed_format, "symlink": v.symlink, "error": v.error,
    }


def _size(value: int | None, as_bytes: bool) -> str:
    if value is None:
        return "-"
    return f"{value} bytes" if as_bytes else human(value)


def wait_job(job: Job, err: TextIO) -> Any:
    """Wait for a job, drawing progress on a terminal; Ctrl-C cancels it."""
    show = err.isatty()
    try:
        while not job.finished:
            if show and job.total:
                frac = job.fraction or 0.0
                bar = "#" * int(frac * 30)
                eta = f" ETA {job.eta:.0f}s" if job.eta is not None else ""
                err.write(f"\r{printable(job.description, err)}: [{bar:<30}] "
                          f"{frac * 100:5.1f}% "
                          f"{human(int(job.rate))}/s{eta}   ")
                err.flush()
            job.join(0.2)
    except KeyboardInterrupt:
        job.cancel()
        job.join()
    if show and job.total:
        err.write("\r" + " " * 100 + "\r")
    result = job.wait()
    for warning in job.warnings:
        err.write(f"warning: {printable(warning, err)}\n")
    return result


# == volume references ==================================================================
def resolve_volume(ctl: StorageController, args: argparse.Namespace) -> tuple[str, str]:
    if args.pool:
        return args.pool, args.vol
    if args.vol.startswith("/"):
        return ctl.find_volume(args.vol)
    raise UsageError(
        f"give the pool with --pool POOL, or the volume's full path (not '{args.vol}')"
    )


# == pool verbs =========================================================================
def cmd_pool_list(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pools = ctl.list_pools()
    if args.type:
        wanted = set(args.type.split(","))
        pools = [p for p in pools if p.type in wanted]
    if args.inactive:
        pools = [p for p in pools if not p.active]
    elif not args.all:
        pools = [p for p in pools if p.active]
    if args.json:
        dump_json(out, [pool_json(p) for p in pools])
        return 0
    if args.details:
        rows = [[p.name, p.state, _yes(p.autostart), _yes(p.persistent), human(p.capacity),
                 human(p.allocation), human(p.available)] for p in pools]
        table(out, ["Name", "State", "Autostart", "Persistent", "Capacity", "Allocation",
                    "Available"], rows)
    else:
        rows = [[p.name, "active" if p.active else p.state, _yes(p.autostart)] for p in pools]
        table(out, ["Name", "State", "Autostart"], rows)
    return 0


def cmd_pool_info(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    p = ctl.pool_info(args.pool)
    if args.json:
        dump_json(out, pool_json(p))
        return 0
    lines = [("Name:", p.name), ("UUID:", p.uuid), ("Type:", p.type), ("State:", p.state),
             ("Persistent:", _yes(p.persistent)), ("Autostart:", _yes(p.autostart))]
    if p.active:
        lines += [("Capacity:", _size(p.capacity, args.bytes)),
                  ("Allocation:", _size(p.allocation, args.bytes)),
                  ("Available:", _size(p.available, args.bytes))]
    for key, value in lines:
        out.write(f"{key:<15} {printable(value, out)}\n")
    if p.state == "inaccessible" and p.detail:  # why, and what to do (virsh says nothing)
        out.write(f"{'Problem:':<15} {printable(p.detail, out)}\n")
    return 0


def cmd_pool_dumpxml(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable_xml(ctl.pool_xml(args.pool, inactive=args.inactive), out))
    return 0


def _read_input(path: str) -> bytes:
    """An XML file or stdin, read no further than one byte past the parser's cap."""
    limit = xmlio.MAX_XML_BYTES
    try:
        if path == "-":
            data = sys.stdin.buffer.read(limit + 1)
            size = None
        else:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
                size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise PoolkeeperError(f"cannot read '{path}': {exc.strerror}") from None
    if len(data) > limit:
        what = "standard input" if path == "-" else f"'{path}'"
        actual = f" ({human(size)})" if size else ""
        raise XMLError(f"{what}{actual} is larger than the {limit >> 20} MiB poolkeeper accepts "
                       "for a pool or volume definition; is it the right file?")
    return data


def cmd_pool_define(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    status = ctl.define_pool(_read_input(args.file))
    out.write(f"Pool {printable(status.name, out)} defined from {printable(args.file, out)}\n")
    return 0


def cmd_secret_set(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    """The value comes from stdin (asked without echo on a terminal), never from argv,
    where every user could read it in /proc."""
    if sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"Value of secret '{printable(args.usage)}': ")
    else:
        data = sys.stdin.buffer.read(64 * 1024)
        value = data.decode("utf-8", errors="strict") if data else ""
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
    ctl.set_secret(args.usage, value)
    out.write(f"Secret {printable(args.usage, out)} set\n")
    return 0


def cmd_secret_undefine(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    if not ctl.delete_secret(args.usage):
        raise PoolkeeperError(f"no secret '{args.usage}' is stored")
    out.write(f"Secret {printable(args.usage, out)} deleted\n")
    return 0


def pool_def_from_args(args: argparse.Namespace) -> PoolDef:
    auth = None
    if args.auth_type or args.auth_username or args.secret_usage:
        if not (args.auth_username and args.secret_usage):
            raise UsageError("CHAP needs --auth-username and --secret-usage")
        auth = SourceAuth(type=args.auth_type or "chap", username=args.auth_username,
                          secret=AuthSecret(usage=args.secret_usage))
    source = PoolSource(
        hosts=[SourceHost(args.source_host, args.source_port)] if args.source_host else [],
        devices=[SourceDevice(d) for d in args.source_dev or []],
        dir=args.source_path,
        name=args.source_name,
        format=args.source_format,
        initiator_iqn=args.source_initiator,
        auth=auth,
        protocol_ver=args.source_protocol_ver,
    )
    return PoolDef(type=args.type, name=args.name, source=source,
                   target=PoolTarget(path=args.target))


def cmd_pool_define_as(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    from backends import xmlio

    pdef = pool_def_from_args(args)
    if args.print_xml:
        xmlio.validate_pool(pdef)
        out.write(printable_xml(xmlio.format_pool(pdef), out))
        return 0
    status = ctl.define_pool_def(pdef)
    out.write(f"Pool {printable(status.name, out)} defined\n")
    return 0


def _overwrite(args: argparse.Namespace) -> bool | None:
    if args.overwrite and args.no_overwrite:
        raise UsageError("--overwrite and --no-overwrite are mutually exclusive")
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
    overwrite = _overwrite(args)
    if args.build:
        wait_job(ctl.build_pool(args.pool, overwrite), sys.stderr)
    ctl.start_pool(args.pool)
    out.write(f"Pool {printable(args.pool, out)} started\n")
    return 0


def _simple(verb: Callable[[StorageController, str], object], message: str) -> Handler:
    def handler(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
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


def cmd_find_sources(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable_xml(ctl.find_pool_sources(args.type, host=args.host, device=args.device),
                            out))
    return 0


# == volume verbs =======================================================================
def cmd_vol_list(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    vols = sorted(ctl.list_volumes(args.pool), key=lambda v: v.name)
    if args.json:
        dump_json(out, [volume_json(v) for v in vols])
        return 0
    if args.details:
        rows = [[v.name, v.path, v.type, v.format, human(v.capacity), human(v.allocation)]
                for v in vols]
        table(out, ["Name", "Path", "Type", "Format", "Capacity", "Allocation"], rows)
    else:
        table(out, ["Name", "Path"], [[v.name, v.path] for v in vols])
    for v in vols:
        if v.error:
            sys.stderr.write(f"warning: {printable(v.name, sys.stderr)}: "
                             f"{printable(v.error, sys.stderr)}\n")
    return 0


def cmd_vol_info(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    v = ctl.volume_info(pool, name)
    if args.json:
        dump_json(out, volume_json(v))
        return 0
    lines = [("Name:", v.name), ("Type:", v.type), ("Format:", v.format),
             ("Capacity:", _size(v.capacity, args.bytes)),
             ("Allocation:", _size(v.allocation, args.bytes))]
    if args.physical:
        lines.append(("Physical:", _size(v.physical, args.bytes)))
    if v.backing:
        lines.append(("Backing:", f"{v.backing.path} ({v.backing.format or 'format unknown'})"))
    if v.probed_format and v.probed_format != v.format:
        lines.append(("Header says:", f"{v.probed_format} (ignored: created as {v.format})"))
    for key, value in lines:
        out.write(f"{key:<15} {printable(value, out)}\n")
    if v.error:
        out.write(f"{'Error:':<15} {printable(v.error, out)}\n")
    return 0


def cmd_vol_dumpxml(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    out.write(printable_xml(ctl.volume_xml(pool, name), out))
    return 0


def cmd_vol_path(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    out.write(printable(ctl.volume_info(pool, name).path, out) + "\n")
    return 0


def cmd_vol_create(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    info = wait_job(ctl.create_volume(args.pool, _read_input(args.file)), sys.stderr)
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
        backing = BackingStore(path=path, format=args.backing_vol_format)
    vdef = VolumeDef(name=args.name, capacity=capacity, allocation=allocation,
                     target=VolumeTarget(format=args.format), backing=backing)
    if args.print_xml:
        from backends import xmlio

        out.write(printable_xml(xmlio.format_volume(vdef), out))
        return 0
    wait_job(ctl.create_volume_def(args.pool, vdef), sys.stderr)
    out.write(f"Vol {printable(args.name, out)} created\n")
    return 0


def cmd_vol_clone(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    method = wait_job(ctl.clone_volume(pool, name, args.newname, target_pool=args.newpool),
                      sys.stderr)
    out.write(f"Vol {printable(args.newname, out)} cloned from {printable(name, out)} "
              f"({printable(str(method), out)})\n")
    return 0


def cmd_vol_delete(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    ctl.delete_volume(pool, name)
    out.write(f"Vol {printable(name, out)} deleted\n")
    return 0


def cmd_vol_wipe(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    wait_job(ctl.wipe_volume(pool, name, args.algorithm), sys.stderr)
    out.write(f"Vol {printable(name, out)} wiped\n")
    return 0


def cmd_vol_resize(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
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


def cmd_vol_upload(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    length = parse_size(args.length, "length") if args.length else None
    written = wait_job(ctl.upload_volume(pool, name, args.file,
                                         offset=parse_size(args.offset, "offset"),
                                         length=length), sys.stderr)
    out.write(f"Uploaded {written} bytes to {printable(name, out)}\n")
    return 0


def cmd_vol_download(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pool, name = resolve_volume(ctl, args)
    length = parse_size(args.length, "length") if args.length else None
    count = wait_job(ctl.download_volume(pool, name, args.file,
                                         offset=parse_size(args.offset, "offset"),
                                         length=length, sparse=args.sparse), sys.stderr)
    out.write(f"Downloaded {count} bytes of {printable(name, out)} to "
              f"{printable(args.file, out)}\n")
    return 0


# == parser =============================================================================
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="poolkeeper",
                     description="Storage pools and volumes for virtualization hosts "
                                 "(libvirt XML). With no command, opens the TUI.")
    parser.add_argument("--root", help="state directory (default: /etc/poolkeeper and "
                                       "/run/poolkeeper for root; $POOLKEEPER_ROOT)")
    parser.add_argument("--version", action="version", version=f"poolkeeper {_version()}")
    tui = parser.add_argument_group("TUI (no command)")
    tui.add_argument("--no-mouse", action="store_true", help="ignore the mouse (thin links)")
    tui.add_argument("--ascii", action="store_true", default=None,
                     help="ASCII borders and bars (automatic for TERM=linux)")
    tui.add_argument("--demo", action="store_true",
                     help="open a sandbox root with sample pools in a temporary directory")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def cmd(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=handler)
        return p

    def pool_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("pool", metavar="POOL")

    def vol_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("vol", metavar="VOL", help="volume name (with --pool) or full path")
        p.add_argument("--pool", help="the pool holding VOL")

    p = cmd("pool-list", cmd_pool_list, "list pools (active ones unless --all)")
    p.add_argument("--all", action="store_true", help="active and inactive pools")
    p.add_argument("--inactive", action="store_true", help="inactive pools only")
    p.add_argument("--details", action="store_true", help="sizes and persistence too")
    p.add_argument("--type", help="only these pool types (comma separated)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = cmd("pool-info", cmd_pool_info, "state and sizes of a pool")
    pool_arg(p)
    p.add_argument("--bytes", action="store_true", help="sizes in bytes")
    p.add_argument("--json", action="store_true")

    p = cmd("pool-dumpxml", cmd_pool_dumpxml, "the pool's XML")
    pool_arg(p)
    p.add_argument("--inactive", action="store_true", help="the stored definition only")

    p = cmd("pool-define", cmd_pool_define, "define a pool from an XML file ('-' = stdin)")
    p.add_argument("file", metavar="FILE")

    p = cmd("pool-define-as", cmd_pool_define_as, "define a pool from arguments")
    p.add_argument("name", metavar="NAME")
    p.add_argument("type", metavar="TYPE")
    p.add_argument("--source-host")
    p.add_argument("--source-port", type=int)
    p.add_argument("--source-path", help="source directory (netfs)")
    p.add_argument("--source-dev", action="append", help="source device (repeatable)")
    p.add_argument("--source-name", help="volume group name (logical)")
    p.add_argument("--source-format")
    p.add_argument("--source-initiator", help="initiator IQN (iscsi)")
    p.add_argument("--auth-type", choices=["chap"], help="iSCSI authentication (chap)")
    p.add_argument("--auth-username", help="CHAP user name")
    p.add_argument("--secret-usage", help="name of the CHAP secret (set it with secret-set)")
    p.add_argument("--source-protocol-ver", help="NFS version (netfs)")
    p.add_argument("--target", help="target path")
    p.add_argument("--print-xml", action="store_true", help="print the XML, define nothing")

    for name, handler, text in (("pool-build", cmd_pool_build, "build the pool's storage"),
                                ("pool-start", cmd_pool_start, "start (activate) a pool")):
        p = cmd(name, handler, text)
        pool_arg(p)
        if name == "pool-start":
            p.add_argument("--build", action="store_true", help="build before starting")
        p.add_argument("--overwrite", action="store_true", help="build over existing data")
        p.add_argument("--no-overwrite", action="store_true",
                       help="refuse to build over anything that might be data")

    for name, verb, message, text in (
        ("pool-destroy", StorageController.stop_pool, "Pool {pool} destroyed",
         "stop (deactivate) a pool; data is kept"),
        ("pool-undefine", StorageController.undefine_pool, "Pool {pool} has been undefined",
         "forget an inactive pool's definition"),
        ("pool-refresh", StorageController.refresh_pool, "Pool {pool} refreshed",
         "rescan a pool's volumes"),
    ):
        pool_arg(cmd(name, _simple(verb, message), text))

    p = cmd("pool-delete", cmd_pool_delete,
            "delete the pool's storage (dir: the empty directory); refused while it "
            "still holds volumes")
    pool_arg(p)
    p.add_argument("--force", action="store_true",
                   help="erase the storage even though it still holds volumes")

    p = cmd("pool-autostart", cmd_pool_autostart, "start the pool when poolkeeper starts")
    pool_arg(p)
    p.add_argument("--disable", action="store_true")

    cmd("pool-capabilities", cmd_pool_capabilities, "pool types and formats supported")

    p = cmd("find-storage-pool-sources", cmd_find_sources, "discover sources for a pool type")
    p.add_argument("type", metavar="TYPE")
    p.add_argument("--host")
    p.add_argument("--device")

    p = cmd("secret-set", cmd_secret_set,
            "store a secret (iSCSI CHAP password); the value is read from stdin")
    p.add_argument("usage", metavar="USAGE", help="the name pools use: <secret usage='...'/>")
    p = cmd("secret-undefine", cmd_secret_undefine, "delete a stored secret")
    p.add_argument("usage", metavar="USAGE")

    p = cmd("vol-list", cmd_vol_list, "list a pool's volumes")
    pool_arg(p)
    p.add_argument("--details", action="store_true")
    p.add_argument("--json", action="store_true")

    p = cmd("vol-info", cmd_vol_info, "a volume's type and sizes")
    vol_args(p)
    p.add_argument("--bytes", action="store_true")
    p.add_argument("--physical", action="store_true")
    p.add_argument("--json", action="store_true")

    vol_args(cmd("vol-dumpxml", cmd_vol_dumpxml, "a volume's XML"))
    vol_args(cmd("vol-path", cmd_vol_path, "a volume's path"))

    p = cmd("vol-create", cmd_vol_create, "create a volume from an XML file ('-' = stdin)")
    pool_arg(p)
    p.add_argument("file", metavar="FILE")

    p = cmd("vol-create-as", cmd_vol_create_as, "create a volume from arguments")
    pool_arg(p)
    p.add_argument("name", metavar="NAME")
    p.add_argument("capacity", metavar="CAPACITY", help="e.g. 10G, 512MiB, 1000000")
    p.add_argument("--allocation", help="allocate this much now (default: all of it)")
    p.add_argument("--format", help="raw, qcow2, qcow, qed, vmdk, vpc, vdi")
    p.add_argument("--backing-vol", help="backing volume (name in POOL, or path)")
    p.add_argument("--backing-vol-format", help="the backing volume's format")
    p.add_argument("--print-xml", action="store_true")

    p = cmd("vol-clone", cmd_vol_clone, "copy a volume (reflink where possible)")
    vol_args(p)
    p.add_argument("newname", metavar="NEWNAME")
    p.add_argument("--newpool", help="clone into this pool (default: the same)")

    vol_args(cmd("vol-delete", cmd_vol_delete, "delete a volume"))

    p = cmd("vol-wipe", cmd_vol_wipe, "overwrite a volume's data")
    vol_args(p)
    p.add_argument("--algorithm", default="zero", choices=WIPE_ALGORITHMS)

    p = cmd("vol-resize", cmd_vol_resize, "change a volume's capacity")
    vol_args(p)
    p.add_argument("capacity", metavar="CAPACITY", help="new size, or a change with --delta")
    p.add_argument("--delta", action="store_true", help="CAPACITY is a change")
    p.add_argument("--shrink", action="store_true", help="allow making it smaller")
    p.add_argument("--allocate", action="store_true", help="allocate the new space now")

    p = cmd("vol-upload", cmd_vol_upload, "write a file's bytes into a volume")
    vol_args(p)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--offset", default="0")
    p.add_argument("--length")

    p = cmd("vol-download", cmd_vol_download, "copy a volume's bytes into a file")
    vol_args(p)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--offset", default="0")
    p.add_argument("--length")
    p.add_argument("--sparse", action="store_true", help="keep holes as holes")
    return parser


def _cancel_on_hangup() -> dict[int, Any]:
    """SIGHUP (the SSH link dropped) and SIGTERM cancel a running job like Ctrl-C does, so
    the job removes what it half made instead of dying mid-write."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGHUP, signal.SIGTERM):
            previous[sig] = signal.signal(sig, interrupt)
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _negative_size_last(argv: list[str]) -> list[str]:
    """`vol-resize VOL -10G --shrink`: argparse would take -10G for an option, so move it
    behind `--` (CAPACITY is vol-resize's last positional)."""
    if "vol-resize" not in argv or "--" in argv:
        return argv
    start = argv.index("vol-resize")
    for i in range(start + 1, len(argv)):
        if re.fullmatch(r"-\d+(\.\d+)?[A-Za-z]*", argv[i]):
            return argv[:i] + argv[i + 1:] + ["--", argv[i]]
    return argv


def run_tui(args: argparse.Namespace) -> int:
    if not sys.stdin.isatty():
        # Textual would read end-of-file from a pipe or /dev/null forever, at full speed
        sys.stderr.write("error: the TUI needs a terminal on standard input; give a COMMAND "
                         "to use the command line (see `poolkeeper --help`)\n")
        return 1
    from .app import run_app

    return run_app(args.root, mouse=not args.no_mouse, ascii=args.ascii, demo=args.demo)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    argv = _negative_size_last(list(sys.argv[1:] if argv is None else argv))
    out = out or sys.stdout
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        sys.stderr.write(f"error: {printable(str(exc), sys.stderr)}\n")
        return 1
    if not args.command:
        return run_tui(args)
    try:
        ctl = StorageController(args.root)
    except (PoolkeeperError, OSError) as exc:
        sys.stderr.write(f"error: {printable(str(exc), sys.stderr)}\n")
        return 1
    previous = _cancel_on_hangup()
    try:
        for problem in ctl.startup_errors:
            sys.stderr.write(f"warning: {printable(problem, sys.stderr)}\n")
        return args.func(ctl, args, out)
    except PoolkeeperError as exc:
        sys.stderr.write(f"error: {printable(str(exc), sys.stderr)}\n")
        return 1
    except OSError as exc:
        name = exc.filename
        name = os.fsdecode(name) if isinstance(name, str | bytes) else str(name)
        where = f" ({printable(name, sys.stderr)})" if exc.filename else ""
        sys.stderr.write(f"error: {printable(str(exc.strerror or exc), sys.stderr)}"
                         f"{where}\n")
        return 1
    except KeyboardInterrupt:
        # Interrupted before wait_job took over: cancel what is running so nothing
        # half-made stays behind, and say so.
        running = ctl.jobs.running()
        for job in running:
            job.cancel()
        for job in running:
            job.join()
        sys.stderr.write("error: cancelled\n" if running else "error: interrupted\n")
        return 1 if running else 130
    finally:
        ctl.close()
        _restore_signals(previous)

