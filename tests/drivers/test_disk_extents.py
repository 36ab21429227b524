"""A disk pool's free space, one rule everywhere (issue 15 item 18).

`available` is the SUM of the free extents, as libvirt's disk backend adds up its free
extents; the largest one (the largest partition that can be made now) is reported beside
it. What counts as a free extent is one rule (backends/drivers/parted_table.py): a gap of
at least 1 MiB from its first 1 MiB boundary. So the extent list (pool XML, extent bar,
free rows), the count in the header and the sums all agree, and a gpt disk's 1007 KiB
before the first boundary is in none of them.
"""

from __future__ import annotations

import json

import pytest

from backends import xmlio

from . import test_disk
from .test_disk import (
    GiB,
    MiB,
    create,
    expected_free,
    needs_loops,
    new_pool,
    pn,
)

make_loop = test_disk.make_loop  # the fixture: loop devices on images, released after


@needs_loops
def test_available_is_the_sum_and_the_largest_extent_is_beside_it(ctl, make_loop, cli):
    dev = make_loop(1024)
    new_pool(ctl, dev, "gpt")
    create(ctl, pn(dev, 1), 100 * MiB)  # 1 MiB .. 101 MiB
    create(ctl, pn(dev, 2), 300 * MiB, start=600 * MiB)  # 600 MiB .. 900 MiB
    end = GiB - 33 * 512  # gpt's last usable byte + 1
    extents = [(101 * MiB, 600 * MiB), (900 * MiB, end)]

    info = ctl.pool_info("d")
    assert info.available == sum(e - s for s, e in extents)  # libvirt's meaning: the sum
    assert info.largest_free == 499 * MiB
    assert info.detail.startswith("gpt label, 2 partitions, 2 free extents")

    # the same extents, and nothing else, in the pool XML and the layout (bar, free rows)
    [layout] = ctl.pool_layout("d")
    assert [(f.start, f.end) for f in layout.free] == extents == expected_free(dev)
    pdef = xmlio.parse_pool(ctl.pool_xml("d"))
    assert [(f.start, f.end) for f in pdef.source.devices[0].free_extents] == extents
    assert pdef.available == info.available

    # pool-info: virsh's lines (--bytes: bare integers, as virsh), Available the sum; the
    # largest extent on a line after them
    out = cli("pool-info", "d", "--bytes").out.splitlines()
    assert f"Available:      {info.available}" in out
    assert out[out.index(f"Available:      {info.available}") + 1] == \
        f"Largest extent: {499 * MiB}"
    got = json.loads(cli("pool-info", "d", "--json").out)
    assert (got["available"], got["largest_free_extent"]) == (info.available, 499 * MiB)

    # the largest extent is what one partition can take: a byte more is refused
    with pytest.raises(Exception, match="the largest free extent is"):
        create(ctl, pn(dev, 3), 499 * MiB + 4096)
    create(ctl, pn(dev, 3), 499 * MiB)  # exactly fills the first extent
    info = ctl.pool_info("d")
    assert info.available == info.largest_free == end - 900 * MiB
    assert "1 free extent" in info.detail


@needs_loops
def test_a_gap_under_a_mib_is_no_free_extent(ctl, make_loop):
    dev = make_loop(256)
    new_pool(ctl, dev, "gpt")
    create(ctl, pn(dev, 1), 10 * MiB + 512)  # ends 512 bytes past 11 MiB
    create(ctl, pn(dev, 2), 20 * MiB, start=12 * MiB)  # the gap between: under 1 MiB
    free = [(f.start, f.end) for f in ctl.pool_layout("d")[0].free]
    assert free == [(32 * MiB, 256 * MiB - 33 * 512)] == expected_free(dev)
    info = ctl.pool_info("d")
    assert info.available == info.largest_free == free[0][1] - free[0][0]
    assert "1 free extent" in info.detail
