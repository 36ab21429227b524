"""The pool verbs virsh has beyond define/start/list: transient pools (pool-create,
pool-create-as), pool-edit, pool-name / pool-uuid, pool-event and source discovery from
arguments (find-storage-pool-sources-as) or a file (find-storage-pool-sources --srcSpec).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

from backends import transient, xmlio
from backends.controller import StorageController
from backends.errors import PoolkeeperError, StateError
from backends.pool_changes import claimed_changes, pending_changes
from backends.pool_events import EVENT_TYPES, PoolEvents

from .inputs import read_input
from .output import printable, printable_xml
from .verbs import UsageError, _overwrite, pool_def_from_args


def cmd_pool_create(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pdef = xmlio.parse_pool(read_input(args.file))
    overwrite = _overwrite(args)  # either one asks for a build, as in virsh
    status = transient.create_pool(ctl, pdef, build=args.build or overwrite is not None,
                                   overwrite=overwrite)
    out.write(f"Pool {printable(status.name, out)} created from "
              f"{printable(args.file, out)}\n")
    return 0


def cmd_pool_create_as(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    pdef = pool_def_from_args(args)
    overwrite = _overwrite(args)
    if args.print_xml:
        xmlio.validate_pool(pdef)
        out.write(printable_xml(xmlio.format_pool(pdef), out))
        return 0
    status = transient.create_pool(ctl, pdef, build=args.build or overwrite is not None,
                                   overwrite=overwrite)
    out.write(f"Pool {printable(status.name, out)} created\n")
    return 0


def cmd_pool_name(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable(args.pool, out) + "\n")  # main resolved a UUID to its name
    return 0


def cmd_pool_uuid(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable(ctl.pool_info(args.pool).uuid, out) + "\n")
    return 0


# == pool-edit ==========================================================================
def cmd_pool_edit(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    """virsh pool-edit: the stored definition in $VISUAL or $EDITOR, defined again when
    changed. A running pool's type, source and target change only while it is stopped
    (as the TUI's e)."""
    return edit_pool_xml(args.pool, lambda: ctl.pool_xml(args.pool, inactive=True),
                         lambda text: _save_edit(ctl, args.pool, text), out)


def edit_pool_xml(pool: str, current: Callable[[], str], save: Callable[[str], list[str]],
                  out: TextIO) -> int:
    """pool-edit's loop, natively and over a connection: the definition `current()`
    gives, edited in $VISUAL or $EDITOR and handed to `save` (its notes are printed)
    only if the definition is still the one edited (never over another process's
    change); a refused edit is offered again on a terminal, else it fails and nothing
    changes."""
    before = current()
    text = before
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    while True:
        text = _edit(editor, pool, text)
        if text == before:
            out.write(f"Pool {printable(pool, out)} XML configuration not changed.\n")
            return 0
        try:
            now = current()
            if now != before:  # another process defined it meanwhile: never save over
                before = now
                raise StateError(f"pool '{pool}' was changed by someone else while it was "
                                 "being edited; saving would undo that change (see "
                                 f"`pool-dumpxml --inactive {pool}`, then edit again)")
            notes = save(text)
            break
        except PoolkeeperError as exc:
            sys.stderr.write(f"error: {printable(str(exc), sys.stderr)}\n")
            if not (sys.stdin.isatty() and _ask("Failed. Try again? [y,n]: ")):
                raise PoolkeeperError(f"pool '{pool}' was not changed") from None
    out.write(f"Pool {printable(pool, out)} XML configuration edited.\n")
    for note in notes:
        out.write(printable(note, out) + "\n")
    return 0


def _edit(editor: str, pool: str, text: str) -> str:
    fd, path = tempfile.mkstemp(suffix=".xml", prefix=f"{pool.replace('/', '_')}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            rc = subprocess.run([*shlex.split(editor), path], check=False).returncode
        except OSError as exc:
            raise PoolkeeperError(f"cannot run the editor '{editor}': {exc.strerror}; set "
                                  "$VISUAL or $EDITOR") from None
        if rc != 0:
            raise PoolkeeperError(f"the editor '{editor}' exited with status {rc}; "
                                  "nothing was changed")
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _ask(question: str) -> bool:
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _save_edit(ctl: StorageController, pool: str, text: str) -> list[str]:
    new = xmlio.parse_pool(text)
    if new.name != pool:
        raise PoolkeeperError(f"the edited XML names the pool '{new.name}', not '{pool}'; "
                              "pool-edit changes a pool, it does not rename one")
    running = None
    if ctl.pool_info(pool).active:
        running = xmlio.parse_pool(ctl.pool_xml(pool))
        claimed = claimed_changes(running, new)
        if claimed:
            raise StateError(f"pool '{pool}' is running: {'; '.join(claimed)} can change "
                             f"only while it is stopped (pool-destroy {pool})")
    ctl.define_pool(text)
    if running is None:
        return []
    return pending_changes(running, new, builds_target=new.type == "dir")


# == pool-event =========================================================================
def event_request(args: argparse.Namespace, out: TextIO) -> bool:
    """pool-event's arguments as virsh reads them: --list wins over every other option
    (printed: False); then --event is required, a known type, --timeout 1 or more."""
    if args.list:  # (virsh ends with an empty line)
        out.write("".join(f"{kind}\n" for kind in EVENT_TYPES) + "\n")
        return False
    if not args.event:
        raise UsageError("either --list or --event <type> is required")
    if args.event not in EVENT_TYPES:
        raise UsageError(f"unknown event type {args.event} (choose "
                         + " or ".join(EVENT_TYPES) + ")")
    timeout = args.timeout  # a number option: cli.argspec made it an int
    if timeout is not None and timeout < 1:
        raise UsageError(f"--timeout takes a number of seconds (1 or more), not {timeout}")
    return True


def write_event(args: argparse.Namespace, out: TextIO, kind: str, pool: str,
                detail: str) -> None:
    """One event as virsh prints it (--timestamp: its time first)."""
    stamp = ""
    if args.timestamp:
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%d %H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000: "
    detail = f": {detail}" if detail else ""
    out.write(f"{stamp}event '{kind}' for storage pool {printable(pool, out)}{detail}\n")
    out.flush()


def events_ended(out: TextIO, count: int, how: str) -> int:
    if how:
        out.write(f"event loop {how}\n")
    out.write(f"events received: {count}\n\n")  # (virsh ends with an empty line)
    return 0 if count else 1  # as virsh: waiting for nothing is a failure


def cmd_pool_event(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    if not event_request(args, out):
        return 0
    watcher = PoolEvents(ctl.store, ctl.subscribe)
    ctl.start_monitor(1.0)
    count, how = 0, "timed out"
    try:
        for event in watcher.events(args.timeout):
            if args.pool and event.pool != args.pool:
                continue
            if event.kind != args.event:
                continue
            write_event(args, out, event.kind, event.pool, event.detail)
            count += 1
            if not args.loop:
                how = ""
                break
    except KeyboardInterrupt:
        how = "interrupted"
    finally:
        watcher.close()
        ctl.stop_monitor()
    return events_ended(out, count, how)


# == source discovery ===================================================================
def cmd_find_sources_as(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    if args.port or args.initiator:
        # poolkeeper's discovery asks the default port with the host's initiator name
        given = "--port" if args.port else "--initiator"
        raise UsageError(f"{given} is not supported by poolkeeper's source discovery; "
                         "give the host (and nothing else)")
    out.write(printable_xml(ctl.find_pool_sources(args.type, host=args.host), out))
    return 0


def cmd_find_sources(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    host, device = args.host, args.device
    if args.srcSpec:
        from lxml import etree

        try:
            spec = etree.fromstring(read_input(args.srcSpec))
        except etree.XMLSyntaxError as exc:
            raise PoolkeeperError(f"'{args.srcSpec}' is not a <source> document: {exc}") \
                from None
        found = spec.find("host")
        host = host or (found.get("name") if found is not None else None)
        found = spec.find("device")
        device = device or (found.get("path") if found is not None else None)
    out.write(printable_xml(ctl.find_pool_sources(args.type, host=host, device=device), out))
    return 0
