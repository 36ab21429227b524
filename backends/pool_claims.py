"""What a pool definition claims (a UUID, storage), and whether a definition may claim it.

Two defined pools may not claim the same UUID, nor the same storage (libvirt's
duplicate-source rule): what each claims is its driver's to say (`source_claims`: the
same target directory however it is spelled, the same iSCSI target at the same portal,
the same device by any of its nodes, the same NFS export, the same volume group). The
same rule finds the pool an undefined pool's format records belong to (format_records).
A pool defined again keeps its UUID, and an active pool's definition may not change what
it claims (`identity`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from .drivers import source_conflict as source_conflict  # format_records reads it here
from .drivers.base import CLAIM_ELEMENTS, conflicting_claim, refused
from .errors import AlreadyExists, StateError
from .model import PoolDef


def refuse_claimed(pdef: PoolDef, others: Iterable[tuple[str, PoolDef]]) -> None:
    """Refuse a definition whose UUID or storage one of the `others` (name, definition)
    already claims."""
    for other_name, other in others:
        if pdef.uuid and other.uuid and pdef.uuid.lower() == other.uuid.lower():
            raise AlreadyExists(f"pool '{other_name}' already has UUID {pdef.uuid}")
        claim = conflicting_claim(pdef, other)
        if claim is not None:
            raise refused(AlreadyExists(
                f"storage source conflict with pool '{other_name}': both use {claim.words}"
            ), CLAIM_ELEMENTS.get(claim.kind, "source"))


def redefined(pdef: PoolDef, current: PoolDef, is_active: Callable[[], bool]) -> PoolDef:
    """`pdef` as it replaces the pool's `current` definition: with the pool's UUID, and
    refused if it changes what the pool claims while it is active."""
    if pdef.uuid and current.uuid and pdef.uuid.lower() != current.uuid.lower():
        raise AlreadyExists(
            f"pool '{pdef.name}' already exists with UUID {current.uuid}; "
            "undefine it first or use another name"
        )
    if is_active() and identity(current) != identity(pdef):
        raise StateError(
            f"pool '{pdef.name}' is active; stop it before changing its type, source "
            f"or target (pool-destroy {pdef.name})"
        )
    return replace(pdef, uuid=current.uuid)


def source_summary(pdef: PoolDef) -> str:
    """The storage the pool claims, in words (PoolStatus.source)."""
    src = pdef.source
    parts = []
    if src.hosts:
        parts.append(",".join(h.name + (f":{h.port}" if h.port else "") for h in src.hosts))
    if src.dir:
        parts.append(src.dir)
    if src.devices:
        parts.append(",".join(d.path for d in src.devices))
    if src.name:
        parts.append(src.name)
    return " ".join(parts)


def identity(pdef: PoolDef) -> tuple:
    """What an active pool's definition may not change under it (runtime values such as
    free extents do not count)."""
    src = pdef.source
    return (pdef.type, pdef.target.path, tuple((h.name, h.port) for h in src.hosts),
            tuple(d.path for d in src.devices), src.dir, src.name, src.format)
