"""Name rules shared by pools and volumes (and checked before any filesystem call)."""

from __future__ import annotations

import re

from .errors import InvalidName
from .textsafe import describe, first_unsafe

MAX_NAME_BYTES = 255
# Files being written (volumes being built, state files being saved) carry this prefix
# until they are complete; a leftover one of a killed process is removed at the next start.
PARTIAL_PREFIX = ".poolkeeper-partial-"
# A UUID as libvirt's XML and secrets take it: 32 hex digits, bare or in the 8-4-4-4-12 form
UUID_RE = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is safe as a pool/volume name, else raise InvalidName.

    Refused: empty, '.', '..', '/' anywhere, more than 255 bytes of UTF-8, names that are
    not valid text (bytes that are not UTF-8), and every character textsafe escapes on a
    terminal: control characters (C0 such as NUL, newline, tab, ESC; DEL; C1 such as the
    8-bit CSI 0x9b), bidi controls and other invisible format characters (U+202E, U+200B,
    ...) and line/paragraph separators. Such a name could drive the terminal, display in a
    misleading order or look like another name. Messages hold the name as it was given
    and name the offending character (textsafe.describe); whatever prints them escapes
    them once (textsafe's rule).
    """
    if not isinstance(name, str) or name == "":
        raise InvalidName(f"{what} must not be empty", element="name")
    if name in (".", ".."):
        raise InvalidName(f"{what} '{name}' is not allowed", element="name")
    if "/" in name:
        raise InvalidName(f"{what} '{name}' must not contain '/'", element="name")
    if name.startswith(PARTIAL_PREFIX):
        raise InvalidName(f"{what} '{name}' begins with '{PARTIAL_PREFIX}', which poolkeeper "
                          "reserves for files being written; choose another name", element="name")
    bad = first_unsafe(name)
    if bad is not None:
        raise InvalidName(f"{what} '{name}' contains {describe(bad)}; names must not hold it",
                          element="name")
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidName(
            f"{what} is {len(encoded)} bytes long; at most {MAX_NAME_BYTES} are allowed",
            element="name",
        )
    return name
