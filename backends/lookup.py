"""What the volume safety checks read of the pools: a Protocol the controller fulfils.

The checks (backing_chain, volume_users, pool_objects) take the controller through it,
so they name what they read and never import the controller.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .model import PoolDef, VolumeInfo
from .store import Store


class PoolLookup(Protocol):
    store: Store

    def pool_def(self, name: str) -> PoolDef: ...

    def find_volume(self, ref: str) -> tuple[str, str]: ...

    def volume_info(self, pool: str, name: str) -> VolumeInfo: ...

    def cached_volumes(self, pool: str, names: Iterable[str] | None = None
                       ) -> list[VolumeInfo]: ...

    def probed_volumes(self, pool: str) -> list[VolumeInfo]: ...

    def list_volumes(self, pool: str) -> list[VolumeInfo]: ...
