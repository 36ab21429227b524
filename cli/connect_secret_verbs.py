"""`poolkeeper -c URI` secret verbs on libvirt's secrets (backends.libvirt_secrets):
secret-define, secret-set-value, secret-get-value, secret-list, secret-dumpxml and
secret-undefine, with the native verbs' rules: a value never comes from argv (stdin,
--file or the terminal, as cli.secret_verbs reads it) and is printed only with --reveal.
"""

from __future__ import annotations

import argparse
import base64
from typing import TextIO

from backends.errors import PoolkeeperError
from backends.libvirt_controller import LibvirtController
from backends.libvirt_secrets import LibvirtSecrets

from . import virsh_text
from .inputs import read_text
from .output import dump_json, printable
from .secret_verbs import _read_value, refuse_unrevealed
from .verbs import read_secret_set_value, write_xml


def secret_define(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    uuid = LibvirtSecrets(lc).define(read_text(args.file), args.validate)
    out.write(f"Secret {printable(uuid, out)} created\n")
    return 0


def secret_set_value(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    value = _read_value(args)  # refuses --base64 VALUE before anything is sent
    LibvirtSecrets(lc).set_value(args.secret, value)
    out.write("Secret value set\n")
    return 0


def secret_get_value(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    refuse_unrevealed(args)
    value = LibvirtSecrets(lc).value(args.secret)
    if not args.plain:
        out.write(base64.b64encode(value).decode("ascii") + "\n")
        return 0
    try:
        out.write(value.decode("utf-8") + "\n")
    except UnicodeDecodeError:
        raise PoolkeeperError("the value is not UTF-8 text; leave out --plain to get it "
                              "in base64") from None
    return 0


def secret_list(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    lv = lc.libvirt
    flags = ((lv.VIR_CONNECT_LIST_SECRETS_EPHEMERAL if args.ephemeral else 0)
             | (lv.VIR_CONNECT_LIST_SECRETS_NO_EPHEMERAL if args.no_ephemeral else 0)
             | (lv.VIR_CONNECT_LIST_SECRETS_PRIVATE if args.private else 0)
             | (lv.VIR_CONNECT_LIST_SECRETS_NO_PRIVATE if args.no_private else 0))
    secrets = LibvirtSecrets(lc).list(flags)
    if args.json:  # the native shape; whether it has a value is not asked of libvirt
        dump_json(out, [{"uuid": s.uuid, "usage_type": s.usage_type, "usage": s.usage_id,
                         "description": s.description, "private": s.private,
                         "has_value": None, "usage_named": False} for s in secrets])
        return 0
    virsh_text.table(out, ["UUID", "Usage"], [[s.uuid, s.usage_text] for s in secrets])
    virsh_text.end(out)
    return 0


def secret_dumpxml(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    write_xml(out, LibvirtSecrets(lc).xml(args.secret), args)
    return 0


def secret_set(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    """poolkeeper's secret-set over a connection: the value of the secret pools name by
    that usage (a private iSCSI one defined for it when there is none)."""
    value = read_secret_set_value(args.usage)
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not value:
        raise PoolkeeperError("an empty value was given: nothing was set")
    LibvirtSecrets(lc).set_by_usage(args.usage, value)
    out.write(f"Secret {printable(args.usage, out)} set\n")
    return 0


def secret_undefine(lc: LibvirtController, args: argparse.Namespace, out: TextIO) -> int:
    LibvirtSecrets(lc).undefine(args.usage, force=args.force)
    out.write(f"Secret {printable(args.usage, out)} deleted\n")
    return 0


SECRET_VERBS = {
    "secret-define": secret_define, "secret-set-value": secret_set_value,
    "secret-set": secret_set,
    "secret-get-value": secret_get_value, "secret-list": secret_list,
    "secret-dumpxml": secret_dumpxml, "secret-undefine": secret_undefine,
}
