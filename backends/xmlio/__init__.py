"""Read and write libvirt storage pool and volume XML, safely.

Reading happens in stages, each refusing with a message that names the element and line:

1. size cap and UTF-8 check on the raw input, before any parser sees it (`reading`);
2. a scan of the prolog that refuses any DOCTYPE (so no DTD, entity or external file can
   ever be opened), then lxml with entity resolution, DTD loading and network all off
   (`reading`);
3. a structural walk: unknown elements/attributes, duplicates, stray text (`structure`);
4. conversion to the dataclasses of `model` with value checks (sizes, octal modes, ...)
   (`from_xml`);
5. semantic checks per pool type (`validate_pool` / `validate_volume`, also used on
   definitions built in code: `pool_checks`, `volume_checks`, sharing `values`);
6. RelaxNG validation against backends/schemas/*.rng as a last line of defence (`relaxng`).

`parse_pool` and `parse_volume` below run the stages in that order. Writing (`writing`)
produces libvirt's own layout (element order, 2-space indent, single quotes,
`unit='bytes'`), so `virsh pool-dumpxml` output comes back byte for byte.
"""

from __future__ import annotations

from ..model import PoolDef, VolumeDef
from .from_xml import _pool_from_xml, _volume_from_xml
from .pool_checks import MAX_IQN_BYTES as MAX_IQN_BYTES
from .pool_checks import _validate_pool, validate_pool
from .reading import MAX_XML_BYTES, _read_document
from .reading import XINCLUDE_NS as XINCLUDE_NS
from .relaxng import SCHEMA_DIR as SCHEMA_DIR
from .relaxng import _rng_validate
from .structure import FS_NS as FS_NS
from .structure import VOLUME_FEATURES as VOLUME_FEATURES
from .values import MAX_UID as MAX_UID
from .volume_checks import ENCRYPTION_FORMATS as ENCRYPTION_FORMATS
from .volume_checks import (
    _check_pool_type_arg,
    _validate_volume,
    check_allocation_fits,
    refuse_unhonoured,
    validate_volume,
)
from .where import _Where
from .writing import format_pool, format_volume

__all__ = [
    "MAX_XML_BYTES",
    "check_allocation_fits",
    "format_pool",
    "format_volume",
    "parse_pool",
    "parse_volume",
    "refuse_unhonoured",
    "validate_pool",
    "validate_volume",
]


def parse_pool(text: str | bytes, *, schema: bool = True) -> PoolDef:
    """Parse, check and return a pool definition; raise XMLError or ValidationError.
    `schema=False`: without the RelaxNG check, for a definition poolkeeper stored after
    checking it (compiling the schema costs a listing ~50 ms; every other check is made)."""
    root = _read_document(text, "pool")
    where = _Where()
    pool = _pool_from_xml(root, where)
    _validate_pool(pool, where)
    if schema:
        _rng_validate("pool", root)
    return pool


def parse_volume(text: str | bytes, pool_type: str | None = None, *,
                 size_from_source: bool = False) -> VolumeDef:
    """Parse, check and return a volume definition for a pool of `pool_type` (if known).
    `size_from_source`: the XML of a clone, where a missing <capacity> means the source's."""
    _check_pool_type_arg(pool_type)
    root = _read_document(text, "volume")
    where = _Where()
    vol = _volume_from_xml(root, where)
    _validate_volume(vol, pool_type, where, size_from_source=size_from_source)
    _rng_validate("volume", root)
    return vol
