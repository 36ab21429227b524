"""virsh's references: a pool by name or UUID, a volume by name (in a pool), key or path.

virsh tries a pool's name first, then its UUID; a volume given with a pool by its name in
that pool first, then as a key, then as a path; without a pool as a key, then a path.
"""

from __future__ import annotations

import contextlib
import os
import re

from .errors import InvalidName, PoolkeeperError, VolumeNotFound
from .lookup import PoolLookup
from .names import check_name

_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}")


def _uuid_key(text: str) -> str:
    return text.replace("-", "").lower()


def pool_by_uuid(ctl: PoolLookup, ref: str) -> str | None:
    """The name of the pool whose UUID is `ref` (with or without dashes), or None."""
    if not _UUID.fullmatch(ref):
        return None
    for name in ctl.store.definition_names():
        try:
            uuid = ctl.pool_def(name).uuid
        except PoolkeeperError:
            continue
        if uuid and _uuid_key(uuid) == _uuid_key(ref):
            return name
    return None


def pool_name(ctl: PoolLookup, ref: str) -> str:
    """The pool `ref` names, by name or by UUID (neither: `ref`, for the verb to say
    that no pool has that name)."""
    try:
        if ctl.store.read_definition(ref) is not None:
            return ref
    except InvalidName:
        pass
    return pool_by_uuid(ctl, ref) or ref


def volume_by_key_or_path(ctl: PoolLookup, ref: str) -> tuple[str, str]:
    """(pool, volume) of the volume whose key or path is `ref`, in the active pools. A
    path is compared as written (normalized), never looked up in the filesystem."""
    try:
        pool, name = ctl.find_volume(ref)  # a path: no listing needed
        ctl.volume_info(pool, name)  # and a volume there
        return pool, name
    except (VolumeNotFound, InvalidName):
        pass
    path = os.path.normpath(ref) if ref.startswith("/") else None
    for pool in ctl.store.definition_names():
        if not ctl.store.is_active(pool):
            continue
        try:
            volumes = ctl.list_volumes(pool)
        except PoolkeeperError:
            continue
        for v in volumes:
            if v.key == ref or (path and v.path == path):
                return pool, v.name
    raise VolumeNotFound(f"no volume with key or path '{ref}' in any active pool")


def volume(ctl: PoolLookup, ref: str, pool: str | None = None,
           pool_option: str = "--pool") -> tuple[str, str]:
    """(pool, volume) of `ref`: a name in `pool`, else a key or a path (virsh's order).
    With a pool, what is no valid volume name is only looked for as the path of one of
    its volumes, else refused as a name: nothing outside the pool is touched for it."""
    if pool:
        pool = pool_name(ctl, pool)
        try:
            check_name(ref, "volume name")
        except InvalidName:
            if ref.startswith("/"):
                with contextlib.suppress(VolumeNotFound, InvalidName):
                    found = ctl.find_volume(ref)
                    if found[0] == pool:
                        ctl.volume_info(*found)
                        return found
            raise
        try:
            ctl.volume_info(pool, ref)
            return pool, ref
        except VolumeNotFound:
            pass
    try:
        return volume_by_key_or_path(ctl, ref)
    except VolumeNotFound:
        if pool:
            raise VolumeNotFound(f"no volume named '{ref}' in pool '{pool}', and no volume "
                                 f"with that key or path") from None
        raise VolumeNotFound(f"no volume with key or path '{ref}' in any active pool; "
                             f"a volume's name needs its pool ({pool_option} POOL)") from None
