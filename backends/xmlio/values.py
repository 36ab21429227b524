"""Value checks that pool and volume definitions share.

Decides what a name, UUID, size, extent, absolute path, secret reference, permission
set or piece of free text may be, wherever it appears: free text that ends up in files,
argv or a terminal holds no control character and nothing XML cannot carry; sizes and
offsets stay within units.MAX_SIZE; ids within MAX_UID. Each check raises with the
element and the line noted for it.
"""

from __future__ import annotations

import re

from .. import checks, names, units
from ..drivers import features
from ..errors import InvalidName, InvalidSize
from ..model import Permissions
from ..textsafe import describe
from .where import _err, _relocate, _Where

MAX_UID = 2**32 - 2  # (uid_t)-1 means "unset"; write -1 (or leave it out) for that

# What XML 1.0 cannot carry at all (besides the C0 controls: checks.control_char): the
# complement of its Char production, spelt as the few characters it leaves out (the negated
# class of its ranges takes re ~3 ms to compile, which every command paid).
_NOT_XML_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _check_name(name: str, what: str, where: _Where, key: str) -> None:
    try:
        names.check_name(name, what)
    except InvalidName as exc:
        raise _relocate(exc, "name", where.at(key)) from None
    bad = _bad_char(name)  # C1 controls and non-characters, which names.py lets through
    if bad:
        raise InvalidName(
            f"{what} '{name}' contains {describe(bad)}",
            element="name",
            line=where.at(key),
        )


def _check_uuid(value: str, element: str, where: _Where, key: str) -> None:
    if not names.UUID_RE.fullmatch(value):
        raise _err(
            f"'{value}' is not a UUID (expected 32 hex digits, e.g. "
            "4dea22b3-1d52-d8f3-2516-782e98ab3fa0)",
            element,
            where,
            key,
        )


def _check_size_value(value: int | None, tag: str, where: _Where) -> None:
    if value is None:
        return
    if not isinstance(value, int) or value < 0 or value > units.MAX_SIZE:
        raise InvalidSize(
            f"{tag} {value!r} is out of range (0 to {units.MAX_SIZE} bytes)",
            element=tag,
            line=where.at(tag),
        )


def _a(ptype: str) -> str:
    """'a dir', 'an fs', 'an iscsi' (before "pool"): the article is the type's."""
    return f"{features(ptype).article} {ptype}"


def _check_extent(start: int, end: int, element: str, where: _Where, key: str) -> None:
    for value in (start, end):
        if not isinstance(value, int) or not 0 <= value <= units.MAX_SIZE:
            raise _err(f"offset {value!r} is out of range", element, where, key)
    if start > end:
        raise _err(f"start={start} is after end={end}", element, where, key)


def _check_abs_path(value: str, element: str, where: _Where, key: str, what: str) -> None:
    if not isinstance(value, str) or not value.startswith("/") or value == "/":
        raise _err(
            f"{what} '{value}' must be an absolute path such as /dev/sdb", element, where, key
        )
    _check_text(value, what, element, where, key)


def _check_secret_ref(uuid: str | None, usage: str | None, where: _Where, key: str) -> None:
    if (uuid is None) == (usage is None):
        raise _err(
            "give exactly one of uuid='...' or usage='...' to name the secret",
            "secret",
            where,
            key,
        )
    if uuid is not None:
        _check_uuid(uuid, "secret", where, key)
    if usage is not None:
        if not usage:
            raise _err("usage= must not be empty", "secret", where, key)
        _check_text(usage, "secret usage", "secret", where, key)


def _check_permissions(perms: Permissions | None, where: _Where, prefix: str) -> None:
    if perms is None:
        return
    mode = perms.mode
    if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o777):
        shown = f"0{mode:o}" if isinstance(mode, int) and mode >= 0 else repr(mode)
        raise _err(
            f"mode {shown} is out of range: use permission bits 0000-0777",
            "mode",
            where,
            f"{prefix}.mode",
        )
    for tag in ("owner", "group"):
        value = getattr(perms, tag)
        if value is not None and (not isinstance(value, int) or not 0 <= value <= MAX_UID):
            raise _err(
                f"{tag} {value} is out of range (0-{MAX_UID}, or -1 for none)",
                tag,
                where,
                f"{prefix}.{tag}",
            )
    if perms.label is not None:
        _check_text(perms.label, "security label", "label", where, f"{prefix}.label")


def _check_text(value: str, what: str, element: str, where: _Where, key: str) -> None:
    """Free text that ends up in files, argv or a terminal: no control characters."""
    if not isinstance(value, str):
        raise _err(f"{what} must be text, not {type(value).__name__}", element, where, key)
    bad = _bad_char(value)
    if bad:
        raise _err(f"{what} '{value}' contains {describe(bad)}", element, where, key)


def _bad_char(value: str) -> str | None:
    bad = _NOT_XML_RE.search(value)
    return checks.control_char(value) or (bad.group(0) if bad else None)
