"""What the app says after an action, driven with key presses against real dir pools: a
failure says "could not ...", a partial result names what was done and what was not (and
why), each with its severity; nothing is reported behind a success text."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.model import BackingStore, VolumeDef, VolumeTarget
from tui.app import PoolkeeperApp
from tui.screens.main import MainScreen
from tui.widgets.volume_table import VolumeTable

from .test_app import settle
from .test_flows import type_confirm, wait_for

MiB = 1 << 20


@pytest.fixture
def controller(state_root: Path):
    ctl = StorageController(state_root)
    try:
        yield ctl
    finally:
        ctl.close()


def notices(app: PoolkeeperApp) -> list[tuple[str, str]]:
    return [(str(n.message), n.severity) for n in app._notifications]


def make(ctl: StorageController, name: str, fmt: str = "raw",
         backing: str | None = None) -> None:
    ctl.create_volume_def("default", VolumeDef(
        name=name, capacity=MiB, allocation=0, target=VolumeTarget(format=fmt),
        backing=BackingStore(path=backing, format="qcow2") if backing else None)).wait(30)


async def delete_marked(app: PoolkeeperApp, pilot, names: list[str]) -> VolumeTable:
    await settle(app, pilot)
    table = app.screen.query_one("#volumes", VolumeTable)
    table.focus()
    for name in names:
        table.select(name)
        await pilot.press("space")
    await pilot.press("delete")
    await settle(app, pilot)
    await type_confirm(pilot, app.screen, names[0] if len(names) == 1 else str(len(names)))
    await pilot.press("ctrl+s")
    return table


async def test_a_partial_delete_names_what_went_and_what_stayed(controller, state_root):
    """Two volumes marked, one the backing store of a third: the notice said "could not
    delete 2 volumes: 1 of them deleted; ..." as an error, never naming the one deleted.
    Now: a warning naming both lists, and why the other stayed."""
    images = state_root / "images"
    make(controller, "a.img")
    make(controller, "base.qcow2", "qcow2")
    make(controller, "b.qcow2", "qcow2", backing=str(images / "base.qcow2"))
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await delete_marked(app, pilot, ["a.img", "base.qcow2"])
        await wait_for(pilot, app, lambda: any("deleted" in t for t, _s in notices(app)))
        assert not (images / "a.img").exists() and (images / "base.qcow2").exists()
        [(text, severity)] = [n for n in notices(app) if "deleted" in n[0]]
        assert text.startswith("deleted 1 of 2 volumes: a.img; not deleted: base.qcow2 (")
        assert "backing" in text and "b.qcow2" in text
        assert severity == "warning"


async def test_a_delete_that_did_nothing_is_an_error_and_a_whole_one_names_them(
        controller, state_root):
    images = state_root / "images"
    make(controller, "base.qcow2", "qcow2")
    make(controller, "b.qcow2", "qcow2", backing=str(images / "base.qcow2"))
    make(controller, "c.img")
    make(controller, "d.img")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        table = await delete_marked(app, pilot, ["base.qcow2"])
        await wait_for(pilot, app, lambda: any("delete" in t for t, _s in notices(app)))
        [(text, severity)] = notices(app)
        assert text.startswith("could not delete base.qcow2: ") and "backing" in text
        assert severity == "error"
        app.clear_notifications()
        await delete_marked(app, pilot, ["c.img", "d.img"])
        await wait_for(pilot, app, lambda: any("deleted" in t for t, _s in notices(app)))
        assert notices(app) == [("deleted 2 volumes: c.img, d.img", "information")]
        assert "c.img" not in table.visible_names()


async def test_a_start_that_fails_says_could_not(controller, tmp_path):
    """A dir pool whose directory was removed: `s` reports the failure as an error that
    begins "could not start pool", never a success text."""
    target = tmp_path / "vms"
    target.mkdir()
    controller.define_pool(f"<pool type='dir'><name>vms</name><target><path>{target}"
                           "</path></target></pool>")
    target.rmdir()
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.select_pool("vms")
        await settle(app, pilot)
        await pilot.press("s")
        await wait_for(pilot, app, lambda: bool(notices(app)))
        [(text, severity)] = notices(app)
        assert text.startswith("could not start pool vms: ") and "does not exist" in text
        assert "started" not in text and severity == "error"
        assert controller.pool_info("vms").state == "inactive"


async def test_an_autostart_that_failed_is_said_when_the_app_opens(state_root, tmp_path):
    """The CLI warns of a pool that failed to autostart; the TUI said nothing at all."""
    target = tmp_path / "vms"
    target.mkdir()
    with StorageController(state_root, autostart=False) as first:
        first.define_pool(f"<pool type='dir'><name>vms</name><target><path>{target}"
                          "</path></target></pool>")
        first.set_autostart("vms", True)
    target.rmdir()
    ctl = StorageController(state_root)  # the first of this boot: it autostarts
    try:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 30), notifications=True) as pilot:
            await settle(app, pilot)
            [(text, severity)] = notices(app)
            assert text.startswith("autostart of pool 'vms' failed: the directory ")
            assert severity == "error"
    finally:
        ctl.close()
