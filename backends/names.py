"""Name rules shared by pools and volumes (and checked before any filesystem call)."""

from __future__ import annotations

from .errors import InvalidName

MAX_NAME_BYTES = 255
# Files being written (volumes being built, state files being saved) carry this prefix
# until they are complete; a leftover one of a killed process is removed at the next start.
PARTIAL_PREFIX = ".poolkeeper-partial-"


def check_name(name: str, what: str = "name") -> str:
    """Return `name` if it is safe as a pool/volume name, else raise InvalidName.

    Refused: empty, '.', '..', '/' anywhere, control characters (NUL, newline, tab, ...),
    DEL, C1 controls, more than 255 bytes of UTF-8, and names that are not valid text.
    """
    if not isinstance(name, str) or name == "":
        raise InvalidName(f"{what} must not be empty", element="name")
    if name in (".", ".."):
        raise InvalidName(f"{what} '{name}' is not allowed", element="name")
    if "/" in name:
        raise InvalidName(f"{what} {name!r} must not contain '/'", element="name")
    if name.startswith(PARTIAL_PREFIX):
        raise InvalidName(f"{what} {name!r} begins with '{PARTIAL_PREFIX}', which poolkeeper "
                          "reserves for files being written; choose another name", element="name")
    for ch in name:
        # C0, DEL and C1 (0x9b is a terminal's CSI: a name must not drive the screen).
        if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            raise InvalidName(
                f"{what} {name!r} contains the control character {ch!r}", element="name"
            )
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"{what} {name!r} is not valid UTF-8", element="name") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidName(
            f"{what} is {len(encoded)} bytes long; at most {MAX_NAME_BYTES} are allowed",
            element="name",
        )
    return name
