"""The rules for values that reach a tool's argv, a path or a terminal, written once.

Two kinds of callers use them: xmlio checks a definition as it is read and names where in
the XML a value was wrong; the drivers check again what they hand a tool, whatever xmlio
did (a definition can come from an older version's files). So each rule is a predicate or
a function that returns the problem in words, and the `require_*` forms raise for callers
that have no place in the XML to name.

  * control characters (C0, DEL, C1): never in a name, path or text that reaches argv;
  * host names: a DNS name or an IP address, which mount, showmount and iscsiadm cannot
    read as an option;
  * volume group and logical volume names: LVM's rules (they become /dev/VG/LV and
    vgcreate's and lvcreate's arguments);
  * paths that reach argv: absolute, no '..' (it would leave /dev), no comma (mount and LVM
    read lists); a logical pool's devices no spaces either;
  * backing stores: local files only (qemu-img opens json:, nbd:// and host:path itself).
"""

from __future__ import annotations

import ipaddress
import re

from .errors import InvalidName, UnsafePath, ValidationError
from .names import check_name
from .textsafe import describe, quoted

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DNS_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_VG_NAME_RE = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]*")
MAX_HOST_NAME = 253
MAX_VG_NAME = 127

HOST_NAME_RULE = ("use a DNS name (letters, digits, '.' and '-', not starting with '-') or an "
                  "IP address")
VG_NAME_RULE = ("use letters, digits and + _ . - (not starting with '-', at most "
                f"{MAX_VG_NAME} characters)")


def control_char(value: str) -> str | None:
    """The first control character of `value` (C0, DEL or C1), or None."""
    found = _CONTROL_RE.search(value)
    return found.group(0) if found else None


def is_host_name(name: object) -> bool:
    if not isinstance(name, str) or not name or "%" in name:  # '%': an IPv6 zone
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return len(name) <= MAX_HOST_NAME and name.isascii() and bool(_DNS_RE.fullmatch(name))


def require_host_name(name: object) -> str:
    if not is_host_name(name):
        raise ValidationError(f"host name {quoted(name)} is not valid: {HOST_NAME_RULE}", "host")
    assert isinstance(name, str)
    return name


def is_vg_name(name: object) -> bool:
    return (isinstance(name, str) and name not in (".", "..") and len(name) <= MAX_VG_NAME
            and bool(_VG_NAME_RE.fullmatch(name)))


def require_vg_name(name: object) -> str:
    if not is_vg_name(name):
        raise ValidationError(f"volume group name {quoted(name)} is not valid: {VG_NAME_RULE}",
                              "name")
    assert isinstance(name, str)
    return name


def path_problem(value: object, what: str, *, relative_ok: bool = False) -> str | None:
    """What is wrong with a path that reaches argv (a device, a mount's source or target),
    in words that name it as `what`; None when it is fine. `relative_ok`: a share or
    volume name (cifs, glusterfs) rather than a path."""
    if not isinstance(value, str) or not value:
        return f"{what} must not be empty"
    bad = control_char(value)
    if bad:
        return f"{what} '{value}' contains {describe(bad)}"
    plain = not value.startswith("-") and ".." not in value.split("/") and "," not in value
    if relative_ok:
        return None if plain else (f"{what} '{value}' must not start with '-' or contain '..' "
                                   "or a comma")
    if not plain or not value.startswith("/") or value == "/":
        return f"{what} '{value}' must be an absolute path, without '..' or a comma"
    return None


def require_path(value: object, what: str, element: str, *, relative_ok: bool = False) -> str:
    problem = path_problem(value, what, relative_ok=relative_ok)
    if problem:
        raise ValidationError(problem, element)
    assert isinstance(value, str)
    return value


def device_path_problem(value: object, *, lvm: bool = False) -> str | None:
    """A pool's source device (disk, fs, logical): path_problem's rule, and for LVM no
    spaces either (LVM's filters and reports are lists split on spaces)."""
    problem = path_problem(value, "device path")
    if problem is None and lvm and " " in str(value):
        problem = f"device path '{value}' must not contain spaces for LVM"
    return problem


def require_device_path(value: object, *, lvm: bool = False) -> str:
    problem = device_path_problem(value, lvm=lvm)
    if problem:
        raise ValidationError(problem, "device")
    assert isinstance(value, str)
    return value


def is_remote_backing(path: str) -> bool:
    """json:{...}, nbd://, iscsi://host/..., host:path: not a local file (a ':' before the
    first '/')."""
    if path.startswith("json:") or "://" in path:
        return True
    colon, slash = path.find(":"), path.find("/")
    return colon != -1 and (slash == -1 or colon < slash)


REMOTE_BACKING = "is not a local file; poolkeeper only accepts backing files inside its pools"


def require_local_backing(path: str) -> None:
    if is_remote_backing(path):
        raise UnsafePath(f"backing store '{path}' {REMOTE_BACKING}")


_LV_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
# lvm(8) "VALID NAMES": prefixes and parts reserved for LVM's own sub-volumes.
_LV_RESERVED_PREFIXES = ("snapshot", "pvmove")
_LV_RESERVED_PARTS = (
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_imeta", "_iorig", "_mimage", "_mlog",
    "_pmspare", "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig",
)


def check_lv_name(name: object) -> str:
    """A logical volume name by LVM's rules (checked before LVM sees it)."""
    check_name(name, "volume name")  # type: ignore[arg-type]
    assert isinstance(name, str)
    if not _LV_NAME.fullmatch(name):
        raise InvalidName(
            f"'{name}' cannot be a logical volume name: use letters, digits and + _ . - (not "
            "starting with '-', at most 127 characters)", element="name")
    if name.startswith(_LV_RESERVED_PREFIXES):
        raise InvalidName(f"'{name}' cannot be a logical volume name: names starting with "
                          "'snapshot' or 'pvmove' are reserved by LVM", element="name")
    for part in _LV_RESERVED_PARTS:
        if part in name:
            raise InvalidName(f"'{name}' cannot be a logical volume name: '{part}' is "
                              "reserved by LVM for its internal volumes", element="name")
    return name
