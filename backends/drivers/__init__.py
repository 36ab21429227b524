"""Pool drivers by libvirt pool type, imported when first needed."""

from __future__ import annotations

from importlib import import_module

from ..errors import Unsupported
from .base import PoolDriver

# type -> (module in this package, class name)
_DRIVERS: dict[str, tuple[str, str]] = {
    "dir": ("dir", "DirDriver"),
    "fs": ("fs", "FsDriver"),
    "netfs": ("fs", "NetfsDriver"),
    "logical": ("logical", "LogicalDriver"),
    "disk": ("disk", "DiskDriver"),
    "iscsi": ("iscsi", "IscsiDriver"),
    "iscsi-direct": ("iscsi_direct", "IscsiDirectDriver"),
}


def _load(pool_type: str) -> type[PoolDriver] | None:
    entry = _DRIVERS.get(pool_type)
    if entry is None:
        return None
    module_name, class_name = entry
    qualified = f"{__name__}.{module_name}"
    try:
        module = import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name == qualified:  # this version has no such driver
            return None
        raise
    return getattr(module, class_name, None)


def driver_class(pool_type: str) -> type[PoolDriver]:
    cls = _load(pool_type)
    if cls is None:
        supported = ", ".join(sorted(available_drivers()))
        raise Unsupported(
            f"pool type '{pool_type}' is not available in this version of poolkeeper "
            f"(available: {supported})"
        )
    return cls


def available_drivers() -> dict[str, type[PoolDriver]]:
    found = {}
    for pool_type in _DRIVERS:
        cls = _load(pool_type)
        if cls is not None:
            found[pool_type] = cls
    return found
