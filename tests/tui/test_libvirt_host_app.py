"""The TUI on a libvirt connection's controller (backends.libvirt_host, on libvirt's test
driver): the same screens show its pools by id, its volumes (listed pending, filled in
behind), and stop and start it through libvirt, its events redrawing them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Static

from backends.libvirt_controller import LibvirtController
from backends.libvirt_host import LibvirtHostController
from tests.settle import settle
from tui.app import PoolkeeperApp
from tui.widgets.volume_table import VolumeTable

try:
    import libvirt  # noqa: F401

    MISSING = None
except ImportError:
    MISSING = "libvirt-python is not installed (pip install -e '.[libvirt]')"
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


@pytest.fixture
def host() -> Iterator[LibvirtHostController]:
    other = LibvirtController("test:///default")  # another client fills the pool
    pool = other.connection.conn.storagePoolLookupByName("default-pool")
    for name in ("a.img", "b.img", "c.img"):
        pool.createXML(f"<volume><name>{name}</name><capacity>{3 << 20}</capacity>"
                       "</volume>", 0)
    ctl = LibvirtHostController("test:///default", "t")
    try:
        yield ctl
    finally:
        ctl.close()
        other.close()


def header(app: Any) -> str:
    return str(app.screen.query_one("#pool-header", Static).render())


async def test_the_main_screen_runs_on_a_libvirt_connection(host: LibvirtHostController
                                                             ) -> None:
    app = PoolkeeperApp(host, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot, 6)
        table = app.screen.query_one("#volumes", VolumeTable)
        for _ in range(50):  # the sizes come behind the rows
            if table.visible_names() and not table.pending_count:
                break
            await pilot.pause(0.05)
        assert table.visible_names() == ["a.img", "b.img", "c.img"]
        assert table.pending_count == 0
        assert "default-pool@t" in header(app) and "running" in header(app)
        assert "3 volumes" in header(app)
        await pilot.press("s")  # stop, through libvirt; its event redraws the screen
        await settle(app, pilot, 6)
        assert host.pool_info("default-pool@t").state == "inactive"
        for _ in range(50):
            if "press s to start it" in header(app):
                break
            await pilot.pause(0.05)
        assert "press s to start it" in header(app) and table.row_count == 0
        await pilot.press("s")
        await settle(app, pilot, 6)
        for _ in range(50):
            if table.visible_names() and not table.pending_count:
                break
            await pilot.pause(0.05)
        assert host.pool_info("default-pool@t").state == "running"
        assert table.visible_names() == ["a.img", "b.img", "c.img"]
