"""Semantic checks of a volume definition, for the type of pool it is in.

Decides what a volume may ask for: its name, type and sizes; the formats each pool type
takes (its driver's volume_formats; a <format> is dropped where there are none, as
libvirt ignores it there); its
path, permissions, timestamps, encryption, qcow2 options and backing store; and, for a
volume about to be made, what poolkeeper would not honour (`refuse_unhonoured`) and an
allocation larger than the capacity (`check_allocation_fits`: lowered to it).
"""

from __future__ import annotations

import re

from .. import checks
from ..drivers import features, pool_types
from ..errors import InvalidSize, ValidationError
from ..model import (
    FILE_VOLUME_FORMATS,
    VOLUME_TYPES,
    BackingStore,
    Encryption,
    Timestamps,
    VolumeDef,
    VolumeTarget,
)
from .encryption import refuse_unhonoured_encryption
from .structure import VOLUME_FEATURES
from .values import (
    _a,
    _check_abs_path,
    _check_extent,
    _check_name,
    _check_permissions,
    _check_secret_ref,
    _check_size_value,
    _check_text,
)
from .where import _err, _Where

ENCRYPTION_FORMATS = ("default", "qcow", "luks", "luks2")

_COMPAT_RE = re.compile(r"[0-9]+\.[0-9]+")
_TIMESTAMP_RE = re.compile(r"[0-9]+(\.[0-9]{0,9})?")


def validate_volume(vol: VolumeDef, pool_type: str | None = None) -> None:
    """Semantic checks for a volume in a pool of `pool_type` (None: not known yet).

    For logical and iSCSI pools a <format> is dropped, as libvirt ignores it there.
    """
    _check_pool_type_arg(pool_type)
    _validate_volume(vol, pool_type, _Where())


def refuse_unhonoured(vol: VolumeDef, pool_type: str, *, clone: bool = False) -> None:
    """For a volume about to be made (`clone`: as a copy) in a pool of `pool_type`, with its
    format settled: refuse what the XML asks for that poolkeeper would not do, rather than
    make something else and say nothing.

    Not refused, as libvirt ignores them on input too: <key>, <physical>, the volume type,
    <target><path>, <timestamps>, the <permissions> and <timestamps> of a <backingStore>,
    the <source> of a file volume, a permissions <label> (never applied on create), the
    <allocation> of an image format (qemu-img makes it sparse) and the <permissions> of a
    partition (libvirt's disk pools do not apply them either)."""
    target = vol.target
    fmt = target.format
    _refuse_uncreatable(fmt, pool_type, clone)
    refuse_unhonoured_encryption(vol, pool_type)
    if fmt != "qcow2":
        what = f"{fmt} volumes" if fmt else f"the volumes of {pool_type} pools"
        for element, value in (("compat", target.compat), ("clusterSize", target.cluster_size),
                               ("features", target.features)):
            if value is not None:
                raise ValidationError(f"<{element}> applies to qcow2 volumes only; poolkeeper "
                                      f"cannot honour it for {what}: remove it",
                                      element=element)
    if clone and vol.backing is not None:
        raise ValidationError(
            "a clone gets its source's backing file (or none); remove <backingStore>, or "
            "create an overlay with vol-create-as --backing-vol", element="backingStore")
    if "data_file" in (target.features or []):
        raise ValidationError(
            "poolkeeper does not make qcow2 images with an external data file; remove "
            "<data_file/> from <features>", element="features")
    have = features(pool_type)
    files = have.volumes_are_files
    if target.nocow and (clone or not files or fmt not in ("raw", "qcow2")):
        made = "a clone" if clone else (f"{fmt} volumes" if fmt and files
                                        else f"the volumes of {pool_type} pools")
        raise ValidationError(
            f"poolkeeper sets no-copy-on-write only on new raw and qcow2 files, not on {made}; "
            "remove <nocow/>", element="nocow")
    perms = target.permissions
    if not have.volume_permissions and perms is not None and (
            perms.mode is not None or perms.owner is not None or perms.group is not None):
        raise ValidationError(
            f"poolkeeper does not set the permissions of the volumes of {pool_type} pools "
            "(udev owns their device nodes); remove <permissions>", element="permissions")


def _refuse_uncreatable(fmt: str | None, pool_type: str, clone: bool) -> None:
    """A format poolkeeper lists but cannot make (an iso, a dmg): refused before any job,
    saying how to get such a volume. A clone copies its source's format as it is."""
    have = features(pool_type)
    if clone or fmt is None or not have.creatable_formats or fmt in have.creatable_formats:
        return
    how = {"iso": "an ISO image is written by a tool such as xorriso; create a raw volume "
                  "of its size and vol-upload the image into it",
           "dir": "make the directory yourself (mkdir) and refresh the pool"}
    raise ValidationError(
        f"poolkeeper cannot create {fmt} volumes: "
        + how.get(fmt, "it creates only " + ", ".join(have.creatable_formats)
                  + "; create one of those, or vol-upload an existing image into a raw "
                  "volume"),
        element="format")


def check_allocation_fits(vol: VolumeDef) -> None:
    """For a volume about to be made: an allocation above its capacity means fully
    allocated, and is lowered to the capacity in place.

    Allocation is a live value: an existing volume shows more than its capacity (a
    1000-byte file takes a 4096-byte block, an image its metadata), so its vol-dumpxml
    says so, and libvirt accepts that back. The volume is never made larger for it."""
    if vol.allocation is not None and vol.capacity is not None \
            and vol.allocation > vol.capacity:
        vol.allocation = vol.capacity


def _check_pool_type_arg(pool_type: str | None) -> None:
    if pool_type is not None and pool_type not in pool_types():
        raise ValueError(f"unknown pool type '{pool_type}'")


def _validate_volume(vol: VolumeDef, pool_type: str | None, where: _Where, *,
                     size_from_source: bool = False) -> None:
    _check_name(vol.name, "volume name", where, "name")
    if vol.type is not None and vol.type not in VOLUME_TYPES:
        raise _err(
            f"volume type '{vol.type}' is not valid; use one of: " + ", ".join(VOLUME_TYPES),
            "volume",
            where,
            "volume",
        )
    if vol.key is not None:
        _check_text(vol.key, "volume key", "key", where, "key")
    for i, (path, extents) in enumerate(vol.source_devices):
        _check_abs_path(path, "device", where, f"device.{i}", "device path")
        for j, ext in enumerate(extents):
            _check_extent(ext.start, ext.end, "extent", where, f"device.{i}.extent.{j}")
    _check_volume_sizes(vol, where, size_from_source=size_from_source)
    _check_volume_target(vol.target, pool_type, where)
    if vol.backing is not None:
        _check_backing(vol.backing, where)


def _check_volume_sizes(vol: VolumeDef, where: _Where, *,
                        size_from_source: bool = False) -> None:
    for tag in ("capacity", "allocation", "physical"):
        _check_size_value(getattr(vol, tag), tag, where)
    if vol.backing is not None or vol.target.format == "dir":
        return  # a backing file (or a directory) supplies the size
    if vol.capacity is None and size_from_source:
        return  # a clone: the source's capacity
    if vol.capacity is None:
        raise InvalidSize(
            "missing <capacity>: give the volume size, e.g. <capacity unit='GiB'>10</capacity>",
            element="volume",
            line=where.at("volume"),
        )
    # capacity 0 is valid, as in libvirt: an empty file lists and dumps that way; pool
    # types whose volumes cannot be empty (partitions, LVs) refuse it when one is made


def _check_volume_target(target: VolumeTarget, pool_type: str | None, where: _Where) -> None:
    if target.path is not None:
        _check_volume_path(target.path, pool_type, where)
    _check_volume_format(target, pool_type, where)
    _check_permissions(target.permissions, where, "target")
    _check_timestamps(target.timestamps, where, "target")
    if target.encryption is not None:
        _check_encryption(target.encryption, where)
    if target.compat is not None and not _COMPAT_RE.fullmatch(target.compat):
        raise _err(
            f"compat '{target.compat}' must look like 1.1 or 0.10", "compat", where, "compat"
        )
    if target.cluster_size is not None:
        _check_size_value(target.cluster_size, "clusterSize", where)
        if target.cluster_size == 0:
            raise _err("clusterSize must be greater than 0", "clusterSize", where, "clusterSize")
    if target.features is not None:
        _check_features(target.features, where)


def _check_volume_path(path: str, pool_type: str | None, where: _Where) -> None:
    urls = pool_type is None or features(pool_type).volume_urls
    if urls and path.startswith("iscsi://"):
        _check_text(path, "volume path", "path", where, "target.path")
        return
    _check_abs_path(path, "path", where, "target.path", "volume path")


def _check_volume_format(target: VolumeTarget, pool_type: str | None, where: _Where) -> None:
    if pool_type is not None and not features(pool_type).volume_formats:
        target.format = None  # libvirt ignores and never prints it for these pools
        return
    fmt = target.format
    if fmt is None:
        return
    if pool_type is None:  # any type's
        allowed = tuple(dict.fromkeys(
            f for t in pool_types() for f in features(t).volume_formats))
    else:
        allowed = features(pool_type).volume_formats
    if fmt == "none" and pool_type is not None and features(pool_type).volumes_are_files:
        raise _err(
            f"volume format 'none' is not valid in {_a(pool_type)} pool; use raw for a plain file",
            "format",
            where,
            "target.format",
        )
    if fmt not in allowed:
        where_txt = f"{_a(pool_type)} pool" if pool_type else "a volume"
        raise _err(
            f"'{fmt}' is not a valid format for {where_txt}; use one of: " + ", ".join(allowed),
            "format",
            where,
            "target.format",
        )


def _check_timestamps(stamps: Timestamps | None, where: _Where, prefix: str) -> None:
    if stamps is None:
        return
    for tag in ("atime", "mtime", "ctime", "btime"):
        value = getattr(stamps, tag)
        if value is not None and not _TIMESTAMP_RE.fullmatch(value):
            raise _err(
                f"timestamp '{value}' must be seconds, optionally with up to 9 decimals "
                "(e.g. 1700000000.123456789)",
                tag,
                where,
                f"{prefix}.{tag}",
            )


def _check_encryption(enc: Encryption, where: _Where) -> None:
    if enc.format not in ENCRYPTION_FORMATS:
        raise _err(
            f"encryption format '{enc.format}' is not supported; use one of: "
            + ", ".join(ENCRYPTION_FORMATS),
            "encryption",
            where,
            "encryption",
        )
    if len(enc.secrets) > 1:
        raise _err(
            "only one <secret> is allowed inside <encryption>",
            "secret",
            where,
            "encryption.secret.1",
        )
    for i, sec in enumerate(enc.secrets):
        key = f"encryption.secret.{i}"
        if sec.type != "passphrase":
            raise _err(
                f"secret type '{sec.type}' is not supported; use type='passphrase'",
                "secret",
                where,
                key,
            )
        _check_secret_ref(sec.uuid, sec.usage, where, key)


def _check_features(features: list[str], where: _Where) -> None:
    seen: set[str] = set()
    for feat in features:
        if feat not in VOLUME_FEATURES:
            raise _err(
                f"unknown feature '{feat}'; use: " + ", ".join(VOLUME_FEATURES),
                "features",
                where,
                "features",
            )
        if feat in seen:
            raise _err(f"feature '{feat}' is listed twice", "features", where, "features")
        seen.add(feat)


def _check_backing(backing: BackingStore, where: _Where) -> None:
    path = backing.path
    if not isinstance(path, str) or not path:
        raise _err("the backing store path must not be empty", "path", where, "backing.path")
    if checks.is_remote_backing(path):
        raise _err(
            f"backing store '{path}' {checks.REMOTE_BACKING}",
            "backingStore",
            where,
            "backing.path",
        )
    _check_abs_path(path, "path", where, "backing.path", "backing store path")
    if backing.format is not None and backing.format not in FILE_VOLUME_FORMATS:
        raise _err(
            f"'{backing.format}' is not a valid backing file format; use one of: "
            + ", ".join(FILE_VOLUME_FORMATS),
            "format",
            where,
            "backing.format",
        )
    _check_permissions(backing.permissions, where, "backing")
    _check_timestamps(backing.timestamps, where, "backing")
