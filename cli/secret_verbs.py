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
from typing import TextIO

from backends.controller import StorageController
from backends.errors import PoolkeeperError
from backends.secrets import MAX_SECRET_BYTES

from . import virsh_text
from .inputs import read_input
from .output import dump_json
from .verbs import UsageError, write_xml


def _uuid_of(ctl: StorageController, ref: str) -> str:
    sdef = ctl.secret_store.find(ref)
    if sdef is None:
        raise PoolkeeperError(f"no secret '{ref}' is defined; see `poolkeeper secret-list`")
    return sdef.uuid


def cmd_secret_define(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    sdef = ctl.define_secret(read_input(args.file))
    out.write(f"Secret {sdef.uuid} created\n")
    return 0


def _read_value(args: argparse.Namespace) -> bytes:
    """As virsh: --file holds base64 unless --plain; --interactive asks on the terminal.
    With neither, poolkeeper reads the plain value from stdin (no echo on a terminal)."""
    if args.base64 is not None:
        raise UsageError("secret-set-value takes no value on the command line (--base64), "
                         "where every user can read it: give it on stdin or with --file (and "
                         "change the passphrase if it was a real one)")
    if args.file is not None:
        try:
            with open(args.file, "rb") as fh:
                data = fh.read(4 * MAX_SECRET_BYTES + 3)
        except OSError as exc:
            raise PoolkeeperError(f"cannot read '{args.file}': {exc.strerror}") from None
        data = data.removesuffix(b"\n").removesuffix(b"\r")
        if args.plain:
            return data
        try:
            return base64.b64decode(data, validate=True)
        except binascii.Error:
            raise UsageError(f"'{args.file}' is not base64 (as virsh, --file holds the value "
                             "in base64): add --plain to read it as it is") from None
    if args.interactive or sys.stdin.isatty():
        return getpass.getpass("Enter new value for secret: ").encode("utf-8")
    data = sys.stdin.buffer.read(4 * MAX_SECRET_BYTES + 3)
    return data.removesuffix(b"\n").removesuffix(b"\r")


def cmd_secret_set_value(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    ctl.set_secret_value(_uuid_of(ctl, args.secret), _read_value(args))
    out.write("Secret value set\n")
    return 0


def refuse_unrevealed(args: argparse.Namespace) -> None:
    """secret-get-value prints a value only when asked with --reveal (here and over -c)."""
    if not args.reveal:
        raise UsageError("secret-get-value prints the secret's value on the screen; add "
                         "--reveal if that is what you want")


def cmd_secret_get_value(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    refuse_unrevealed(args)
    value = ctl.secret_value(_uuid_of(ctl, args.secret))
    out.write((value if args.plain else base64.b64encode(value.encode()).decode()) + "\n")
    return 0


UNNAMED = "(usage name not recorded)"


def cmd_secret_list(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    """The defined secrets, then the CHAP values stored by usage name (secret-set USAGE):
    those have no uuid and are never revealed, so they count as private."""
    def shown(private: bool) -> bool:
        return (args.private == args.no_private or private == args.private) \
            and not args.ephemeral  # poolkeeper keeps no ephemeral secrets

    secrets = [(s, has) for s, has in ctl.list_secrets() if shown(s.private)]
    usage_named = ctl.usage_named_secrets() if shown(True) else []
    if args.json:
        dump_json(out, [{"uuid": s.uuid, "usage_type": s.usage_type, "usage": s.usage_id,
                         "description": s.description, "private": s.private,
                         "has_value": has, "usage_named": False} for s, has in secrets]
                  + [{"uuid": None, "usage_type": "iscsi", "usage": usage,
                      "description": None, "private": True, "has_value": True,
                      "usage_named": True} for usage in usage_named])
        return 0
    virsh_text.table(out, ["UUID", "Usage"],
                     [[s.uuid, s.usage_text + ("" if has else "  (no value)")]
                      for s, has in secrets]
                     + [["-", f"iscsi {usage}" if usage is not None else f"iscsi {UNNAMED}"]
                        for usage in usage_named])
    virsh_text.end(out)
    return 0


def cmd_secret_dumpxml(ctl: StorageController, args: argparse.Namespace, out: TextIO) -> int:
    write_xml(out, ctl.secret_xml(_uuid_of(ctl, args.secret)), args)
    return 0

