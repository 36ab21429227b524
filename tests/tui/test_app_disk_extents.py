"""A disk pool's free space in the TUI (issue 15 item 18): the header says the sum and the
largest extent, each labelled, and the free rows of the table, the free segments of the
extent bar and the header's extent count are the same extents (no row for a gpt disk's
1007 KiB before the first 1 MiB boundary, nor for a gap under 1 MiB)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from backends.controller import StorageController
from backends.model import (
    Extent,
    VolumeDef,
)
from backends.units import human
from tests.loopfs import loop_device
from tui.app import PoolkeeperApp
from tui.widgets.extent_bar import ExtentBar
from tui.widgets.volume_table import VolumeTable

from .test_app import header, settle
from .test_app_disk import start_disk_pool

MiB = 1 << 20


async def test_header_rows_and_bar_show_the_same_free_extents(state_root: Path,
                                                              tmp_path: Path):
    with loop_device(tmp_path, 256) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            start_disk_pool(ctl, device)
            base = os.path.basename(device)
            for n, start, size in ((1, MiB, 10 * MiB + 512), (2, 12 * MiB, 20 * MiB),
                                   (3, 100 * MiB, 50 * MiB)):
                ctl.create_volume_def("d", VolumeDef(
                    name=f"{base}p{n}", capacity=size,
                    source_devices=[(device, [Extent(start, start + size)])])).wait(60)
            end = 256 * MiB - 33 * 512
            want = [(32 * MiB, 100 * MiB), (150 * MiB, end)]
            info = ctl.pool_info("d")
            assert info.available == sum(e - s for s, e in want)
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(160, 50)) as pilot:
                await settle(app, pilot)
                text = " ".join(header(app).split())
                assert f"available {human(info.available)}" in text, text
                assert f"largest free extent {human(end - 150 * MiB)}" in text, text
                count = re.search(r"(\d+) free extents?", text)
                assert count and int(count.group(1)) == len(want), text
                table = app.screen.query_one("#volumes", VolumeTable)
                assert [(s, e) for _, s, e in table.free_extents] == want
                bar = app.screen.query_one("#extents", ExtentBar)
                spans = bar.segment_spans(device)
                assert [(s, e) for _, _, s, e, vol in spans if vol is None] == want
        finally:
            if ctl.store.is_active("d"):
                ctl.stop_pool("d")
            ctl.close()
