"""virsh-shaped secret commands: secret-define, secret-set-value, secret-get-value,
secret-list and secret-dumpxml (secret-set and secret-undefine are in verbs and keep
working: both take a uuid or a usage name).

A value never comes from argv, where every user can read it in /proc: it is read from
stdin (without echo on a terminal) or from --file. It is printed only by secret-get-value
with --reveal, and never for a private secret.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import sys
from collections.abc import Callable
from typing import TextIO

from backends.controller import StorageController
from backends.errors import PoolkeeperError
from backends.secrets import MAX_SECRET_BYTES

from .output import dump_json, printable_xml, table
from .verbs import Handler, UsageError, _read_input

AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]


def add_secret_commands(cmd: AddCommand) -> None:
    """Register the commands with build_parser's `cmd`."""
    p = cmd("secret-define", cmd_secret_define,
            "define (or change) a secret from libvirt secret XML (FILE, or - for stdin)")
    p.add_argument("file", metavar="FILE")
    p = cmd("secret-set-value", cmd_secret_set_value,
            "give a defined secret its value, read from stdin (no echo) or --file, "
            "never from the command line")
    p.add_argument("uuid", metavar="SECRET", help="the secret's UUID or usage")
    p.add_argument("value", nargs="?", help=argparse.SUPPRESS)  # refused: see the handler
    p.add_argument("--file", help="read the value from this file (one trailing newline is "
                                  "dropped)")
    p.add_argument("--base64", action="store_true",
                   help="the value given is base64-encoded (as virsh's --file takes it)")
    p = cmd("secret-get-value", cmd_secret_get_value,
            "print a secret's value (base64, as virsh); refused without --reveal, and "
            "always for a private secret")
    p.add_argument("uuid", metavar="SECRET", help="the secret's UUID or usage")
    p.add_argument("--reveal", action="store_true",
                   help="yes, print the value on standard output")
    p.add_argument("--plain", action="store_true", help="print it as is, not base64")
    p = cmd("secret-list", cmd_secret_list, "list the defined secrets")
    p.add_argument("--json", action="store_true")
    p = cmd("secret-dumpxml", cmd_secret_dumpxml, "a secret's XML (never its value)")
    p.add_argument("uuid", metavar="SECRET", help="the secret's UUID or usage")


def _uuid_of(ctl: StorageController, ref: str) -> str:
    sdef = ctl.secret_store.find(ref)
    if sdef is None:
        raise PoolkeeperError(f"no secret '{ref}' is defined; see `poolkeeper secret-list`")
    return sdef.uuid


def cmd_secret_define(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    sdef = ctl.define_secret(_read_input(args.file))
    out.write(f"Secret {sdef.uuid} created\n")
    return 0


def _read_value(args: argparse.Namespace) -> bytes:
    if args.file is not None:
        try:
            with open(args.file, "rb") as fh:
                data = fh.read(4 * MAX_SECRET_BYTES + 3)
        except OSError as exc:
            raise PoolkeeperError(f"cannot read '{args.file}': {exc.strerror}") from None
    elif sys.stdin.isatty():
        data = getpass.getpass("Enter new value for secret: ").encode("utf-8")
    else:
        data = sys.stdin.buffer.read(4 * MAX_SECRET_BYTES + 3)
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if args.base64:
        try:
            data = base64.b64decode(data, validate=True)
        except binascii.Error:
            raise UsageError("the value is not valid base64 (drop --base64 to give it as "
                             "plain text)") from None
    return data


def cmd_secret_set_value(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    if args.value is not None:
        raise UsageError("secret-set-value takes no value on the command line, where every "
                         "user can read it: give it on stdin or with --file (and change the "
                         "passphrase if it was a real one)")
    ctl.set_secret_value(_uuid_of(ctl, args.uuid), _read_value(args))
    out.write("Secret value set\n")
    return 0


def cmd_secret_get_value(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    if not args.reveal:
        raise UsageError("secret-get-value prints the secret's value on the screen; add "
                         "--reveal if that is what you want")
    value = ctl.secret_value(_uuid_of(ctl, args.uuid))
    out.write((value if args.plain else base64.b64encode(value.encode()).decode()) + "\n")
    return 0


def cmd_secret_list(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    secrets = ctl.list_secrets()
    if args.json:
        dump_json(out, [{"uuid": s.uuid, "usage_type": s.usage_type, "usage": s.usage_id,
                         "description": s.description, "private": s.private,
                         "has_value": has} for s, has in secrets])
        return 0
    table(out, ["UUID", "Usage"],
          [[s.uuid, s.usage_text + ("" if has else "  (no value)")] for s, has in secrets])
    return 0


def cmd_secret_dumpxml(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    out.write(printable_xml(ctl.secret_xml(_uuid_of(ctl, args.uuid)), out))
    return 0

