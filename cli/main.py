"""virsh-shaped command line over the StorageController: the parser and `main`.

Errors go to stderr as `error: ...` with exit status 1; every listing takes --json;
long jobs draw a progress bar when stderr is a terminal (cli.output). With no command,
`main` opens the TUI.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from typing import Any, TextIO

from backends.controller import StorageController
from backends.errors import PoolkeeperError
from backends.model import WIPE_ALGORITHMS

from .output import printable
from .secret_verbs import add_secret_commands
from .verbs import (
    Handler,
    UsageError,
    cmd_find_sources,
    cmd_pool_autostart,
    cmd_pool_build,
    cmd_pool_capabilities,
    cmd_pool_define,
    cmd_pool_define_as,
    cmd_pool_delete,
    cmd_pool_dumpxml,
    cmd_pool_info,
    cmd_pool_list,
    cmd_pool_start,
    cmd_secret_set,
    cmd_secret_undefine,
    cmd_vol_clone,
    cmd_vol_create,
    cmd_vol_create_as,
    cmd_vol_delete,
    cmd_vol_download,
    cmd_vol_dumpxml,
    cmd_vol_info,
    cmd_vol_list,
    cmd_vol_path,
    cmd_vol_resize,
    cmd_vol_upload,
    cmd_vol_wipe,
    simple_handler,
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `poolkeeper {self.prog.split()[-1]} --help`)")


def _version() -> str:
    try:
        return metadata.version("poolkeeper")
    except metadata.PackageNotFoundError:
        return "unknown"


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
        pool_arg(cmd(name, simple_handler(verb, message), text))

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
    p = cmd("secret-undefine", cmd_secret_undefine, "delete a secret (by UUID or usage)")
    p.add_argument("usage", metavar="SECRET")
    add_secret_commands(cmd)  # secret-define, -set-value, -get-value, -list, -dumpxml

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
    from tui.app import run_app

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

