"""The controller's questions about this host rather than about a pool (a mixin of
StorageController): which pool types it can define and what each can do, the block
devices pickers offer, the sources a pool type could use, capabilities XML. None of them
touches the state root."""

from __future__ import annotations

from . import reports
from .drivers import driver_class, features, pool_types
from .model import PoolFeatures


class HostQueries:
    def block_devices(self) -> list[tuple[str, int, str]]:
        """Every disk, partition and loop device: (path, size, what is on it in words),
        for pickers that build pools from devices ("empty" when nothing was found)."""
        return reports.block_devices()

    def find_pool_sources(self, pool_type: str, host: str | None = None,
                          device: str | None = None) -> str:
        sources = driver_class(pool_type).find_sources(host=host, device=device)
        return reports.sources_xml(pool_type, sources)

    def capabilities(self) -> str:
        return reports.capabilities_xml()

    def pool_features(self, pool_type: str) -> PoolFeatures:
        """What a pool type is and can do, as its driver declares it."""
        return features(pool_type)

    def pool_types(self) -> dict[str, PoolFeatures]:
        """Every pool type this host can define, in display order (the define form)."""
        return {t: features(t) for t in pool_types()}
