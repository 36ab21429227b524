"""What the dialogs return (None always means cancelled). Plain, immutable data."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BuildChoice:
    """pool-build: None = default (refuse over existing data), True = --overwrite,
    False = --no-overwrite."""

    overwrite: bool | None


@dataclass(frozen=True)
class DeletePoolChoice:
    """True: destroy the storage (pool-delete) and then undefine; False: undefine only.
    `force`: the storage still holds volumes (or could not be looked into), the dialog
    said so and the pool's name was typed: pool-delete --force. `expected`: the volumes
    the dialog listed (None: it listed none to check against): the delete refuses if
    the storage holds anything else by then (controller.delete_pool)."""

    destroy_storage: bool
    force: bool = False
    expected: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CloneRequest:
    new_name: str
    target_pool: str
    format: str


@dataclass(frozen=True)
class ResizeRequest:
    """An absolute new capacity in bytes (deltas typed in the dialog are resolved)."""

    capacity: int
    shrink: bool
    allocate: bool


@dataclass(frozen=True)
class WipeRequest:
    algorithm: str


@dataclass(frozen=True)
class TransferRequest:
    """vol-upload / vol-download: local file, volume offset, length (None: to the end)."""

    path: str
    offset: int
    length: int | None
    sparse: bool


@dataclass(frozen=True)
class DeleteVolumesRequest:
    names: list[str] = field(default_factory=list)
