"""Semantic checks of a pool definition, per pool type; also fills libvirt's defaults.

What each type's <source> uses and needs, its formats, whether it has a local target and
what that is, come from the type's driver (PoolFeatures: `source` is its SourceRule);
this module checks the values against them (hosts, device paths or target IQNs, source
directory, volume group name, format, CHAP auth, NFS protocol version, mount options)
and normalises the target path and fills the default format as libvirt does. Where the
source names the volume group, the pool name and the group default to each other, and
the target is /dev/VG whatever the input says.
"""

from __future__ import annotations

import re

from .. import checks
from ..drivers import driver_class, features, pool_types
from ..errors import InvalidName, ValidationError
from ..model import (
    PoolDef,
    PoolSource,
    SourceAuth,
    SourceDevice,
    SourceHost,
)
from .values import (
    _a,
    _bad_char,
    _check_abs_path,
    _check_extent,
    _check_name,
    _check_permissions,
    _check_secret_ref,
    _check_size_value,
    _check_text,
    _check_uuid,
)
from .where import _err, _Where

MAX_IQN_BYTES = 223  # RFC 3720 limit for iSCSI names

_IQN_RE = re.compile(r"iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[A-Za-z0-9.-]+(:.+)?")
_GENERIC_NAME_RE = re.compile(r"[A-Za-z0-9_+-]+")  # libvirt's genericName (e.g. "demo-target")
_MOUNT_OPT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_=.:+/@-]*")
_PROTOCOL_RE = re.compile(r"[0-9]+(\.[0-9]+)*")


def validate_pool(pool: PoolDef) -> None:
    """Semantic checks; also fills libvirt's defaults and normalises paths in place.

    Logical pools get their name from <source><name> (or the reverse) and target path
    /dev/VG (whatever the input says, as libvirt); a pool type's default <format> (fs and
    netfs auto, logical lvm2, disk unknown) is filled in when absent, as libvirt prints
    it; target and source dir paths lose doubled and trailing slashes.
    """
    _validate_pool(pool, _Where())


def _check_pool_type(ptype: str, where: _Where) -> None:
    if ptype not in pool_types():
        raise _err(
            f"pool type '{ptype}' is not supported; poolkeeper manages: "
            + ", ".join(pool_types()),
            "pool",
            where,
            "pool",
        )


def _validate_pool(pool: PoolDef, where: _Where) -> None:
    _check_pool_type(pool.type, where)
    _check_pool_name(pool, where)
    if pool.uuid is not None:
        _check_uuid(pool.uuid, "uuid", where, "uuid")
    for tag in ("capacity", "allocation", "available"):
        _check_size_value(getattr(pool, tag), tag, where)
    if pool.cow is not None and not features(pool.type).supports_cow:
        cow_types = " and ".join(t for t in pool_types() if features(t).supports_cow)
        raise _err(
            f"copy-on-write control applies only to {cow_types} pools, not {pool.type}; "
            "remove <features>",
            "cow",
            where,
            "cow",
        )
    _check_pool_source(pool, where)
    _check_pool_target(pool, where)
    _check_mount_opts(pool, where)


def _check_pool_name(pool: PoolDef, where: _Where) -> None:
    src = pool.source
    if features(pool.type).source.name:
        # libvirt: the pool name and the volume group name default to each other.
        if not pool.name and src.name:
            pool.name = src.name
            where.alias("name", "source.name")
        if not pool.name:
            raise _err(
                f"{_a(pool.type)} pool needs <name> or <source><name> (the volume group)",
                "name",
                where,
                "pool",
            )
        if src.name is None:
            src.name = pool.name
            where.alias("source.name", "name")
    elif not pool.name and where.at("name") is None:
        raise InvalidName(
            "missing pool name: add <name>...</name> inside <pool>",
            element="name",
            line=where.at("pool"),
        )
    _check_name(pool.name, "pool name", where, "name")


def _check_pool_source(pool: PoolDef, where: _Where) -> None:
    rule = features(pool.type).source
    src = pool.source
    ptype = pool.type

    def unused(element: str, key: str) -> ValidationError:
        return _err(f"{ptype} pools do not use <{element}>; remove it", element, where, key)

    def needed(what: str) -> ValidationError:
        return _err(f"{_a(ptype)} pool needs {rule.needs[what]}", "source", where, "source")

    for what, (low, high), items in (
        ("host", rule.hosts, src.hosts),
        ("device", rule.devices, src.devices),
    ):
        if high == 0 and items:
            raise unused(what, f"{what}.0")
        if len(items) < low or (high is not None and len(items) > high):
            raise needed(what)
    if src.dir is not None and not rule.dir:
        raise unused("dir", "dir")
    if rule.dir and src.dir is None:
        raise needed("dir")
    if src.name is not None and not rule.name:
        raise unused("name", "source.name")
    if src.initiator_iqn is not None and not rule.initiator[0]:
        raise unused("initiator", "iqn")
    if rule.initiator[1] and src.initiator_iqn is None:
        raise needed("initiator")
    if src.auth is not None and not rule.auth:
        raise unused("auth", "auth")
    if src.protocol_ver is not None and not rule.protocol:
        raise unused("protocol", "protocol")
    if not rule.vendor:
        if src.vendor is not None:
            raise unused("vendor", "vendor")
        if src.product is not None:
            raise unused("product", "product")
    _check_source_values(pool, where)


def _check_source_values(pool: PoolDef, where: _Where) -> None:
    src = pool.source
    for i, host in enumerate(src.hosts):
        _check_host(host, where, f"host.{i}")
    for i, dev in enumerate(src.devices):
        _check_device(pool.type, dev, where, i)
    if src.dir is not None:
        src.dir = _check_source_dir(src.dir, src.format, where)
    if src.name is not None:
        _check_vg_name(src.name, where)
    _check_pool_format(pool, where)
    if src.initiator_iqn is not None:
        _check_iqn(src.initiator_iqn, "iqn", where, "iqn", "initiator name", strict=False)
    if src.auth is not None:
        _check_auth(src.auth, where)
    if src.protocol_ver is not None:
        _check_protocol(src, where)
    for tag in ("vendor", "product"):
        value = getattr(src, tag)
        if value is not None:
            _check_text(value, f"{tag} name", tag, where, tag)


def _check_host(host: SourceHost, where: _Where, key: str) -> None:
    name = host.name
    if not checks.is_host_name(name):
        raise _err(f"host name '{name}' is not valid: {checks.HOST_NAME_RULE}", "host", where,
                   key)
    if host.port is not None and not 1 <= host.port <= 65535:
        raise _err(f"port {host.port} is out of range (1-65535)", "host", where, key)


def _check_device(ptype: str, dev: SourceDevice, where: _Where, i: int) -> None:
    key = f"device.{i}"
    have = features(ptype)
    kind = have.source.device_kind
    if kind.startswith("iqn"):
        _check_iqn(dev.path, "device", where, key, "target IQN", strict=kind == "iqn-strict")
    else:
        problem = checks.device_path_problem(dev.path, lvm=kind == "lvm-path")
        if problem:
            raise _err(problem, "device", where, key)
    if dev.part_separator is not None and not have.source.part_separator:
        raise _err("part_separator= applies only to disk pools; remove it", "device", where, key)
    if dev.free_extents and not have.has_layout:
        raise _err("<freeExtent> is reported only for disk pools; remove it", "device", where, key)
    for j, ext in enumerate(dev.free_extents):
        _check_extent(ext.start, ext.end, "freeExtent", where, f"{key}.extent.{j}")


def _check_iqn(value: str, element: str, where: _Where, key: str, what: str, strict: bool) -> None:
    """An iSCSI name reaches iscsiadm/libiscsi argv: keep it to plain, bounded text."""
    example = "e.g. iqn.2013-06.com.example:target0"
    if (
        not isinstance(value, str)
        or not value
        or value.startswith("-")
        or "/" in value
        or ".." in value
        or any(ch.isspace() for ch in value)
        or _bad_char(value)  # controls, and surrogates that .encode() below would choke on
    ):
        raise _err(
            f"{what} '{value}' is not valid: it must not be empty, start with '-', or contain "
            f"'/', '..', spaces or control characters ({example})",
            element,
            where,
            key,
        )
    if len(value.encode("utf-8")) > MAX_IQN_BYTES:
        raise _err(f"{what} is longer than {MAX_IQN_BYTES} bytes", element, where, key)
    if element != "device":
        return
    if _IQN_RE.fullmatch(value):
        return
    if not strict and _GENERIC_NAME_RE.fullmatch(value):
        return
    raise _err(f"{what} '{value}' is not an iSCSI qualified name ({example})", element, where, key)


def _check_source_dir(value: str, fmt: str | None, where: _Where) -> str:
    _check_text(value, "source directory", "dir", where, "dir")
    if value.startswith("/"):
        return _sanitize_path(value)
    relative_ok = fmt in ("cifs", "glusterfs")  # a share or volume name, as libvirt writes it
    if relative_ok and value and not value.startswith("-") and ".." not in value.split("/"):
        return value
    raise _err(
        f"source directory '{value}' must be an absolute path such as /export/images",
        "dir",
        where,
        "dir",
    )


def _check_vg_name(value: str, where: _Where) -> None:
    """The volume group name goes to vgcreate and into /dev/VG: LVM's own rules."""
    if not checks.is_vg_name(value):
        raise _err(
            f"volume group name '{value}' is not valid: {checks.VG_NAME_RULE}; set "
            "<source><name> if the pool name does not qualify",
            "name",
            where,
            "source.name",
        )


def _check_pool_format(pool: PoolDef, where: _Where) -> None:
    fmt = pool.source.format
    if fmt is None:
        # libvirt's default, which it prints: a dump says what the pool will do
        pool.source.format = features(pool.type).default_pool_format
        return
    allowed = features(pool.type).pool_formats
    if not allowed:
        raise _err(f"{pool.type} pools do not use <format>; remove it", "format", where, "format")
    if fmt not in allowed:
        raise _err(
            f"'{fmt}' is not a valid format for {_a(pool.type)} pool; use one of: "
            + ", ".join(allowed),
            "format",
            where,
            "format",
        )


def _check_auth(auth: SourceAuth, where: _Where) -> None:
    if auth.type != "chap":
        raise _err(
            f"authentication type '{auth.type}' is not supported; use type='chap'",
            "auth",
            where,
            "auth",
        )
    if not auth.username:
        raise _err("username= must not be empty", "auth", where, "auth")
    _check_text(auth.username, "CHAP user name", "auth", where, "auth")
    _check_secret_ref(auth.secret.uuid, auth.secret.usage, where, "secret")


def _check_protocol(src: PoolSource, where: _Where) -> None:
    if src.format not in (None, "auto", "nfs"):
        raise _err(
            f"<protocol ver=...> applies only to NFS; remove it for format '{src.format}'",
            "protocol",
            where,
            "protocol",
        )
    if not _PROTOCOL_RE.fullmatch(src.protocol_ver or ""):
        raise _err(
            f"protocol version '{src.protocol_ver}' must be digits and dots, e.g. 4.1",
            "protocol",
            where,
            "protocol",
        )


def _check_pool_target(pool: PoolDef, where: _Where) -> None:
    target = pool.target
    perms = target.permissions
    have = features(pool.type)
    if not have.has_target:
        if target.path is not None or (perms is not None and not perms.is_empty()):
            raise _err(
                f"{pool.type} pools have no local target (LUNs are reached over the "
                "network); remove <target>",
                "target",
                where,
                "target",
            )
        return
    expected = driver_class(pool.type).implied_target(pool)
    if expected is not None:
        # The source decides it (a volume group's /dev/VG): libvirt rewrites what the
        # input says rather than refusing it, and so does poolkeeper.
        target.path = expected
    if target.path is None:
        raise _err(
            f"{_a(pool.type)} pool needs <target><path>/...</path></target>: "
            + have.target_hint,
            "target",
            where,
            "target" if where.at("target") else "pool",
        )
    _check_abs_path(target.path, "path", where, "target.path", "target path")
    target.path = _sanitize_path(target.path)
    if target.path == "/":
        raise _err("the target path must not be /", "path", where, "target.path")
    _check_permissions(perms, where, "target")


def _sanitize_path(path: str) -> str:
    """Collapse '//' and drop a trailing '/' (libvirt's virFileSanitizePath)."""
    cleaned = re.sub(r"/{2,}", "/", path)
    if len(cleaned) > 1:
        cleaned = cleaned.rstrip("/") or "/"
    return cleaned


def _check_mount_opts(pool: PoolDef, where: _Where) -> None:
    if not pool.mount_opts:
        return
    if not features(pool.type).mount_options:
        mounted = " and ".join(t for t in pool_types() if features(t).mount_options)
        raise _err(
            f"mount options apply only to {mounted} pools, not {pool.type}",
            "fs:mount_opts",
            where,
            "mount_opts",
        )
    for i, opt in enumerate(pool.mount_opts):
        key = f"option.{i}"
        if not isinstance(opt, str) or not _MOUNT_OPT_RE.fullmatch(opt) or len(opt) > 255:
            hint = (
                "; put each option in its own <fs:option>"
                if isinstance(opt, str) and "," in opt
                else ""
            )
            raise _err(
                f"mount option '{opt}' is not valid: one option per element, letters, digits "
                f"and _ = . : + / @ - only, no spaces or commas{hint}",
                "fs:option",
                where,
                key,
            )
