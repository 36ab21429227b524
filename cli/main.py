"""virsh-shaped command line over the StorageController: the parser and `main`.

Errors go to stderr as `error: ...` with exit status 1; every listing takes --json;
long jobs draw a progress bar when stderr is a terminal (cli.output). With no command,
`main` opens the TUI.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

from backends import refs
from backends.controller import StorageController
from backends.errors import PoolkeeperError

from . import argspec
from .commands import GROUPS, POOL_REFS, all_verbs
from .output import printable
from .verbs import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `poolkeeper --help`)")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's, as wide as argparse makes it (shutil.get_terminal_size's columns, less
    2), told its width: argparse makes a formatter for every add_argument, and one not
    told imports shutil to measure (~1.6 ms of every command)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)


def _columns() -> int:
    """shutil.get_terminal_size().columns: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("poolkeeper")
    except metadata.PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    """--version, the package's metadata read only when asked (importlib.metadata costs
    every command ~10 ms to import)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        sys.stdout.write(f"poolkeeper {_version()}\n")  # where argparse's own prints it
        parser.exit()


def _commands_help() -> str:
    return "\n".join(argspec.group_listing(verbs, title, keyword)
                     for title, keyword, verbs in GROUPS)


# == parser =============================================================================
def build_parser() -> argparse.ArgumentParser:
    """The options before the verb; each verb's own are parsed from the table in
    cli.commands, as virsh parses them (cli.argspec)."""
    parser = _Parser(prog="poolkeeper", formatter_class=_Formatter,
                     usage="poolkeeper [OPTIONS] [COMMAND [ARGS...]]",
                     description="Storage pools and volumes for virtualization hosts "
                                 "(libvirt XML). With no command, opens the TUI.",
                     epilog="commands (`poolkeeper COMMAND --help` for each):\n\n"
                            + _commands_help())
    parser.add_argument("--root", help="state directory (default: /etc/poolkeeper and "
                                       "/run/poolkeeper for root; $POOLKEEPER_ROOT)")
    parser.add_argument("-c", "--connect", metavar="URI",
                        help="run the command on this libvirt connection (qemu:///system, "
                             "qemu+ssh://root@HOST/system, test:///default; `default`: "
                             "$LIBVIRT_DEFAULT_URI) instead of the native engine")
    parser.add_argument("--version", action=_VersionAction)
    tui = parser.add_argument_group("TUI (no command)")
    tui.add_argument("--no-mouse", action="store_true", help="ignore the mouse (thin links)")
    tui.add_argument("--ascii", action="store_true", default=None,
                     help="ASCII borders and bars (automatic for TERM=linux)")
    tui.add_argument("--demo", action="store_true",
                     help="open a sandbox root with sample pools in a temporary directory")
    return parser


_TAKES_VALUE = ("--root", "-c", "--connect")


def _split(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(global options, the verb, the verb's arguments)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if not word.startswith("-"):
            return argv[:i], word, argv[i + 1:]
        i += 2 if word in _TAKES_VALUE else 1
    return argv, None, []


def opens_tui(argv: Sequence[str]) -> bool:
    """No command among the arguments: main opens the TUI (unless --help or --version)."""
    return _split(list(argv))[1] is None


def parse_command(verb_name: str, words: list[str], out: TextIO) -> argparse.Namespace | None:
    """The verb's arguments (None: its --help was shown)."""
    verbs = all_verbs()
    if verb_name == "help":  # virsh help [VERB | GROUP]
        return _help(words, out)
    verb = verbs.get(verb_name)
    if verb is None:
        raise UsageError(f"unknown command '{verb_name}' (see `poolkeeper --help`)")
    options = words[:words.index("--")] if "--" in words else words
    if "--help" in options or "-h" in options:
        out.write(argspec.help_page(verb))
        return None
    return argspec.parse(verb, words)


def _help(words: list[str], out: TextIO) -> None:
    verbs = all_verbs()
    for word in words or [""]:
        if word in verbs:
            out.write(argspec.help_page(verbs[word]))
            continue
        groups = [g for g in GROUPS if word in ("", g[1])]
        if not groups:
            raise UsageError(f"command or command group '{word}' doesn't exist "
                             "(see `poolkeeper --help`)")
        out.write("\n".join(argspec.group_listing(vs, t, k) for t, k, vs in groups) + "\n")
    return None


def _resolve_pools(ctl: StorageController, args: argparse.Namespace) -> None:
    """A pool given by UUID is named by its name from here on (virsh: name, then UUID)."""
    for dest in POOL_REFS:
        value = getattr(args, dest, None)
        if value:
            setattr(args, dest, refs.pool_name(ctl, value))


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


def run_tui(args: argparse.Namespace) -> int:
    if not sys.stdin.isatty():
        # Textual would read end-of-file from a pipe or /dev/null forever, at full speed
        sys.stderr.write("error: the TUI needs a terminal on standard input; give a COMMAND "
                         "to use the command line (see `poolkeeper --help`)\n")
        return 1
    from tui.app import run_app

    return run_app(args.root, mouse=not args.no_mouse, ascii=args.ascii, demo=args.demo)


def _connected(uri: str, verb: str, args: argparse.Namespace, out: TextIO) -> int:
    """The verb over a libvirt connection (cli.connect_verbs), never the native engine."""
    try:
        from .connect_verbs import run_connected

        return run_connected(uri, verb, args, out)
    except PoolkeeperError as exc:
        sys.stderr.write(f"error: {printable(str(exc), sys.stderr)}\n")
        return 1
    except OSError as exc:  # a local file (an upload's source, a download's target)
        name = f" ({printable(os.fsdecode(exc.filename), sys.stderr)})" if exc.filename else ""
        sys.stderr.write(f"error: {printable(str(exc.strerror or exc), sys.stderr)}{name}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    options, verb, words = _split(argv)
    try:
        top = build_parser().parse_args(options)
        if verb is None:
            if top.connect is not None:
                raise UsageError("the TUI does not open libvirt connections yet: give a "
                                 "COMMAND with -c (see `poolkeeper --help`)")
            return run_tui(top)
        args = parse_command(verb, words, out)
    except UsageError as exc:
        sys.stderr.write(f"error: {printable(str(exc), sys.stderr)}\n")
        return 1
    if args is None:  # help was shown
        return 0
    if top.connect is not None:
        previous = _cancel_on_hangup()  # SIGTERM/SIGHUP abort a stream as Ctrl-C does
        try:
            return _connected(top.connect, verb, args, out)
        finally:
            _restore_signals(previous)
    try:
        ctl = StorageController(top.root, watch_listings=False)
    except (PoolkeeperError, OSError) as exc:
        sys.stderr.write(f"error: {printable(str(exc), sys.stderr)}\n")
        return 1
    previous = _cancel_on_hangup()
    try:
        for problem in ctl.startup_errors:
            sys.stderr.write(f"warning: {printable(problem, sys.stderr)}\n")
        _resolve_pools(ctl, args)
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

