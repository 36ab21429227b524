"""What several verbs take from their arguments: an XML document from a file or stdin
(never past the parser's cap), and the volume a VOL argument names."""

from __future__ import annotations

import argparse
import os
import sys

from backends import refs, xmlio
from backends.errors import PoolkeeperError, XMLError
from backends.lookup import PoolLookup
from backends.units import human


def read_input(path: str) -> bytes:
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


def read_text(path: str) -> str:
    """read_input as UTF-8 text (an XML document handed to libvirt as it is)."""
    data = read_input(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PoolkeeperError(f"'{path}' is not UTF-8 text; is it an XML file?") from None


def volume_of(ctl: PoolLookup, args: argparse.Namespace) -> tuple[str, str]:
    """(pool, name) of VOL: a name in --pool, else a key or a path (backends.refs)."""
    return refs.volume(ctl, args.vol, args.pool)
