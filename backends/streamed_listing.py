"""A pool's first listing, shown as it comes.

A big directory takes seconds to read; its first volumes go into the cache (and so to a
view) at once, the rest at intervals that double up to LISTING_SLICE seconds, since each
publication costs a view a merge of everything it shows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .drivers.base import PoolDriver
from .format_records import FormatRecords
from .model import VolumeInfo
from .monitor import VolumeCache

# A streamed listing publishes what it found at least this often (seconds)
LISTING_SLICE = 1.0


def list_streamed(cache: VolumeCache, records: FormatRecords, name: str,
                  driver: PoolDriver, before: Callable[[str], None] | None = None, *,
                  first: bool = False) -> bool:
    """The pool's listing into the cache, published batch by batch as it is read.
    `before(name)` runs once the listing has begun, before the first file is read (the
    monitor's watch: what changes from then on is seen, PoolMonitor.prepare). `first`:
    only if the pool has no listing yet; returns whether it listed."""
    if not cache.begin_listing(name, first):
        return False
    complete = False
    try:
        if before is not None:
            before(name)
        pending: list[VolumeInfo] = []
        shown_at, wait = None, LISTING_SLICE / 8
        for batch in driver.refresh_batches():
            pending += batch
            now = time.monotonic()
            if shown_at is None or now - shown_at >= wait:
                cache.add_listed(name, records.apply(name, pending))
                pending = []
                if shown_at is not None:
                    wait = min(wait * 2, LISTING_SLICE)
                shown_at = now
        cache.add_listed(name, records.apply(name, pending))
        complete = True
    finally:
        cache.end_listing(name, complete)
    return True
