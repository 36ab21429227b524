"""A disk pool in the TUI: carve a disk into partitions by picking free segments on the
extent bar, and watch the extents update."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Input

from backends.controller import StorageController
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice
from tests.loopfs import loop_device
from tui.app import PoolkeeperApp
from tui.dialogs import CreateVolumeDialog
from tui.widgets.extent_bar import ExtentBar
from tui.widgets.volume_table import VolumeTable

from .test_app import settle

MiB = 1 << 20


def start_disk_pool(ctl: StorageController, device: str, name: str = "d") -> None:
    """A gpt disk pool on `device`, defined, built (the label written) and started."""
    ctl.define_pool_def(PoolDef(type="disk", name=name, source=PoolSource(
        devices=[SourceDevice(device)], format="gpt"), target=PoolTarget(path="/dev")))
    ctl.build_pool(name).wait(60)
    ctl.start_pool(name)


async def test_carve_a_disk_from_the_extent_bar(state_root: Path, tmp_path: Path):
    with loop_device(tmp_path, 256) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            start_disk_pool(ctl, device)
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                bar = app.screen.query_one("#extents", ExtentBar)
                assert bar.display and [d.path for d in bar.layouts] == [device]
                free = bar.layouts[0].free[0]
                bar.focus()
                bar.select_segment(device, free.start)
                await pilot.press("n")
                await settle(app, pilot)
                dialog = app.screen
                assert isinstance(dialog, CreateVolumeDialog)
                name = os.path.basename(device) + "p1"
                dialog.query_one("#name", Input).value = name
                dialog.query_one("#capacity", Input).value = "64M"
                await pilot.press("ctrl+s")
                await settle(app, pilot)  # the back end checks it before the dialog closes
                table = app.screen.query_one("#volumes", VolumeTable)
                # the table and the bar are fed by separate reads: wait for both
                for _ in range(100):
                    await settle(app, pilot, 1)
                    if name in table.visible_names() and bar.layouts[0].used:
                        break
                notes = [str(n.message) for n in app._notifications]
                assert name in table.visible_names(), notes
                vol = ctl.volume_info("d", name)
                assert vol.capacity == 64 * MiB
                layout = bar.layouts[0]
                assert [u[2] for u in layout.used] == [name]
                # placed where it was picked, on the first 1 MiB boundary
                assert layout.used[0][0] == -(-free.start // MiB) * MiB
                # the table lists the space left after it as a free row (like cfdisk)
                for _ in range(50):
                    if any(f[1] >= layout.used[0][1] for f in table.free_extents):
                        break
                    await settle(app, pilot, 1)
                rest = [f for f in table.free_extents if f[1] >= layout.used[0][1]]
                assert rest and rest[-1][0] == device and rest[-1][2] > rest[-1][1] + 100 * MiB
                # enter on it opens the create dialog, sized to the free space
                table.focus()
                await pilot.press("end")
                assert table.cursor_volume is None and table.cursor_free == rest[-1]
                await pilot.press("enter")
                await settle(app, pilot)
                dialog = app.screen
                assert isinstance(dialog, CreateVolumeDialog)
                start = -(-rest[-1][1] // MiB) * MiB
                assert dialog.query_one("#capacity", Input).value == (
                    f"{(rest[-1][2] - start) // MiB}M")
        finally:
            if ctl.store.is_active("d"):
                ctl.stop_pool("d")
            ctl.close()
