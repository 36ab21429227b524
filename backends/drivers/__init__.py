"""The one registry of pool types: each libvirt pool type and the driver class that is
its home, imported when first needed. Everything that lists or describes pool types
(the XML checks and schema, the define form, capabilities, the packages `make test`
installs) reads it from here; adding a type is one line below plus its driver (see
docs/adding-a-pool-type.md)."""

from __future__ import annotations

from importlib import import_module

from ..errors import Unsupported
from ..model import PoolFeatures
from .base import Claim, PoolDriver, source_conflict

__all__ = ["Claim", "PoolDriver", "available_drivers", "driver_class", "features",
           "pool_types", "source_conflict"]

# type -> (module, relative to this package unless absolute; class name), in the order
# lists and the define form show the types
_DRIVERS: dict[str, tuple[str, str]] = {
    "dir": (".dir", "DirDriver"),
    "fs": (".fs", "FsDriver"),
    "netfs": (".fs", "NetfsDriver"),
    "logical": (".logical", "LogicalDriver"),
    "disk": (".disk", "DiskDriver"),
    "iscsi": (".iscsi", "IscsiDriver"),
    "iscsi-direct": (".iscsi_direct", "IscsiDirectDriver"),
}


def pool_types() -> tuple[str, ...]:
    """Every pool type poolkeeper knows (libvirt's names), in display order."""
    return tuple(_DRIVERS)


def _load(pool_type: str) -> type[PoolDriver] | None:
    entry = _DRIVERS.get(pool_type)
    if entry is None:
        return None
    module_name, class_name = entry
    qualified = module_name if not module_name.startswith(".") else __name__ + module_name
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


def features(pool_type: str) -> PoolFeatures:
    """What a pool type is and can do (raises Unsupported for an unknown type)."""
    return driver_class(pool_type).features()
