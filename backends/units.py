"""Byte sizes with libvirt's unit table.

b/byte/bytes = 1; k, KiB, m, MiB, ... (one letter, or letter + "iB") are powers of 1024;
KB, MB, ... (letter + "B") are powers of 1000. Case-insensitive, as libvirt's
virScaleInteger. Results are capped at 2**63 - 1 like libvirt.
"""

from __future__ import annotations

import re

from .errors import InvalidSize

MAX_SIZE = 2**63 - 1

_PREFIXES = "kmgtpe"
_UNIT_RE = re.compile(r"^(?:(b|bytes?)|([kmgtpe])(ib|b)?)$", re.IGNORECASE)
_ARG_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


def unit_multiplier(unit: str | None) -> int:
    """Multiplier for a libvirt unit name; None or "" means bytes."""
    if unit is None or unit == "":
        return 1
    m = _UNIT_RE.fullmatch(unit)  # match() would let "KiB\n" through ('$' before a newline)
    if not m:
        raise InvalidSize(
            f"unknown unit '{unit}'; use b, bytes, KB, K, KiB, MB, M, MiB, ... up to EB, E, EiB"
        )
    if m.group(1):
        return 1
    power = _PREFIXES.index(m.group(2).lower()) + 1
    suffix = (m.group(3) or "").lower()
    base = 1000 if suffix == "b" else 1024
    return base**power


def scale(value: str, unit: str | None, what: str = "size") -> int:
    """Parse an unsigned decimal `value` in `unit` into bytes (libvirt semantics)."""
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise InvalidSize(f"malformed {what} '{value}': expected an unsigned whole number")
    multiplier = unit_multiplier(unit)
    digits = text.lstrip("0") or "0"
    # Past 19 digits it is too large in any unit (and int() refuses more than 4300 digits).
    if len(digits) > len(str(MAX_SIZE)) or int(digits) * multiplier > MAX_SIZE:
        shown = text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"
        raise InvalidSize(f"{what} '{shown}{' ' + unit if unit else ''}' is too large")
    return int(digits) * multiplier


def parse_size(text: str, what: str = "size", default_unit: str | None = None) -> int:
    """Parse a virsh-style size argument such as `10G`, `512MiB`, `4096`."""
    m = _ARG_RE.match(text)
    if not m:
        raise InvalidSize(
            f"malformed {what} '{text}': expected a number with an optional unit, "
            "e.g. 10G or 512MiB"
        )
    return scale(m.group(1), m.group(2) or default_unit, what)


def human(size: int | None) -> str:
    """Binary size for people, e.g. '1.5 GiB'."""
    if size is None:
        return "-"
    import humanize  # here: a --json listing or a start shows no size (3 ms of imports)

    return humanize.naturalsize(size, binary=True, format="%.2f")

