"""The first-cut TUI: opens on the default pool, lists its volumes, starts and stops pools."""

from __future__ import annotations

from textual.widgets import DataTable, Static, Tree

from backends.controller import StorageController
from backends.model import VolumeDef
from tui.app import PoolkeeperApp


async def settle(app: PoolkeeperApp, pilot) -> None:
    for _ in range(5):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)


async def test_opens_on_default_pool_and_toggles_it(state_root):
    ctl = StorageController(state_root)
    try:
        ctl.create_volume_def("default", VolumeDef(name="disk.img", capacity=1 << 20,
                                                   allocation=0)).wait(30)
        app = PoolkeeperApp(ctl)
        async with app.run_test(size=(120, 30)) as pilot:
            await settle(app, pilot)
            table = app.query_one("#volumes", DataTable)
            assert table.row_count == 1
            assert table.get_row_at(0)[0] == "disk.img"
            tree = app.query_one("#pools", Tree)
            labels = [str(n.label) for n in tree.root.children[0].children]
            assert labels[0].startswith("default  running")
            await pilot.press("s")
            await settle(app, pilot)
            assert ctl.pool_info("default").state == "inactive"
            header = str(app.query_one("#header", Static).render())
            assert "press s to start it" in header
            assert app.query_one("#volumes", DataTable).row_count == 0
            await pilot.press("s")
            await settle(app, pilot)
            assert ctl.pool_info("default").state == "running"
            assert app.query_one("#volumes", DataTable).row_count == 1
    finally:
        ctl.close()
