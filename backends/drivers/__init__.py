"""Pool drivers by libvirt pool type."""

from __future__ import annotations

from ..errors import Unsupported
from .base import PoolDriver
from .dir import DirDriver
from .fs import FsDriver, NetfsDriver

DRIVERS: dict[str, type[PoolDriver]] = {
    "dir": DirDriver,
    "fs": FsDriver,
    "netfs": NetfsDriver,
}


def driver_class(pool_type: str) -> type[PoolDriver]:
    try:
        return DRIVERS[pool_type]
    except KeyError:
        supported = ", ".join(sorted(DRIVERS))
        raise Unsupported(
            f"pool type '{pool_type}' is not available in this version of poolkeeper "
            f"(available: {supported})"
        ) from None
