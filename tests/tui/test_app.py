"""The whole app, driven by key presses against real dir pools in a temp root."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from backends.controller import StorageController
from backends.model import VolumeDef, VolumeTarget
from tests.settle import settle as settle_pilot
from tui.app import PoolkeeperApp
from tui.screens.main import MainScreen
from tui.widgets.jobs_panel import JobsPanel
from tui.widgets.log_panel import LogPanel
from tui.widgets.volume_table import VolumeTable

MiB = 1 << 20



async def settle(app: PoolkeeperApp, pilot, rounds: int = 6) -> None:
    await settle_pilot(app, pilot, rounds)



def header(app: PoolkeeperApp) -> str:
    return str(app.screen.query_one("#pool-header", Static).render())


@pytest.fixture
def controller(state_root: Path):
    ctl = StorageController(state_root)  # makes and starts "default" in STATE/images
    try:
        yield ctl
    finally:
        ctl.close()


async def test_main_screen_lists_the_default_pool_and_toggles_it(controller, state_root):
    controller.create_volume_def("default", VolumeDef(name="disk.img", capacity=MiB,
                                                      allocation=0)).wait(30)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one("#volumes", VolumeTable)
        assert table.visible_names() == ["disk.img"]
        text = header(app)
        assert "default" in text and "running" in text and "capacity" in text
        assert "autostart yes" in text and "available" in text and "allocation" in text
        await pilot.press("s")
        await settle(app, pilot)
        assert controller.pool_info("default").state == "inactive"
        assert "press s to start it" in header(app)
        assert table.row_count == 0 and "press s to start it" in table.empty_text
        # volume actions are greyed with the reason while the pool is inactive
        screen = app.screen
        assert isinstance(screen, MainScreen)
        assert screen.check_action("create_volume", ()) is None
        assert "not active" in screen.disabled_reason("create_volume")
        await pilot.press("s")
        await settle(app, pilot)
        assert controller.pool_info("default").state == "running"
        assert table.visible_names() == ["disk.img"]


async def test_create_volume_dialog_makes_the_file(controller, state_root):
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await settle(app, pilot)
        dialog = app.screen
        dialog.query_one("#name", Input).value = "new.img"
        dialog.query_one("#capacity", Input).value = "12 potatoes"
        await pilot.pause()
        await pilot.click("#submit")
        await settle(app, pilot)
        assert app.screen is dialog  # refused inline, nothing lost
        assert dialog.query_one("#name", Input).value == "new.img"
        dialog.query_one("#capacity", Input).value = "4M"
        dialog.query_one("#allocation", Input).value = "0"
        await pilot.pause()
        await pilot.click("#submit")
        await settle(app, pilot, 10)
        for _ in range(50):
            if (state_root / "images" / "new.img").exists():
                break
            await pilot.pause(0.05)
        assert os.stat(state_root / "images" / "new.img").st_size == 4 * MiB
        await settle(app, pilot)
        assert "new.img" in app.screen.query_one("#volumes", VolumeTable).visible_names()


async def test_jobs_panel_shows_a_running_job_and_cancels_it(controller, state_root, tmp_path):
    controller.create_volume_def("default", VolumeDef(name="v", capacity=MiB,
                                                      allocation=0)).wait(30)
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        job = controller.upload_volume("default", "v", str(fifo))
        writer: list[int] = []
        opener = threading.Thread(target=lambda: writer.append(os.open(fifo, os.O_WRONLY)))
        opener.start()
        opener.join(10)
        os.write(writer[0], b"x" * 1024)
        await pilot.press("j")
        await settle(app, pilot)
        panel = app.screen.query_one("#jobs", JobsPanel)
        assert panel.display and job.id in panel.jobs
        assert "running" in str(panel.get_option_at_index(0).prompt)
        await pilot.press("s")  # keys keep working while a job runs: stop is refused
        await settle(app, pilot)
        assert controller.pool_info("default").state == "running"
        panel.focus()
        panel.highlighted = 0
        await pilot.press("C")  # cancel is C wherever it appears (c is create)
        # The cancel ends the wait for the next chunk: the writer stays open and silent.
        job.join(10)
        os.close(writer[0])
        await settle(app, pilot)
        assert job.state == "cancelled"
        assert "cancelled" in str(panel.get_option_at_index(0).prompt)


async def test_log_panel_lists_the_commands_run(controller, state_root):
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("l")
        controller.create_volume_def("default", VolumeDef(
            name="q.qcow2", capacity=MiB, target=VolumeTarget(format="qcow2"))).wait(30)
        await settle(app, pilot)
        log = app.screen.query_one("#log", LogPanel)
        assert log.display
        logged = "\n".join(line.text for line in log.lines)
        assert "qemu-img create -f qcow2" in logged and "ok" in logged


async def test_xml_view_shows_the_pool(controller):
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("x")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "XmlScreen"
        assert "<name>default</name>" in app.screen.xml
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)


async def test_filter_narrows_the_table(controller):
    for name in ("alpha.img", "beta.img", "alphabet.img"):
        controller.create_volume_def("default", VolumeDef(name=name, capacity=MiB,
                                                          allocation=0)).wait(30)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"alpha")
        await settle(app, pilot)
        table = app.screen.query_one("#volumes", VolumeTable)
        assert table.visible_names() == ["alpha.img", "alphabet.img"]


async def test_changes_made_outside_appear_without_a_key(controller, state_root):
    app = PoolkeeperApp(controller, monitor_interval=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        (state_root / "images" / "copied-in.img").write_bytes(b"\0" * 4096)
        table = app.screen.query_one("#volumes", VolumeTable)
        for _ in range(60):
            await pilot.pause(0.1)
            if "copied-in.img" in table.visible_names():
                break
        assert "copied-in.img" in table.visible_names()


class SlowController(StorageController):
    """Refresh takes 2 s: the UI must keep handling keys meanwhile."""

    def list_volumes(self, pool: str):
        time.sleep(2)
        return super().list_volumes(pool)


async def test_ui_thread_does_no_io(state_root):
    ctl = SlowController(state_root)
    try:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause(0.2)  # the slow refresh is running in a worker now
            started = time.monotonic()
            await pilot.press("j")
            await pilot.pause(0.05)
            assert app.screen.query_one("#jobs", JobsPanel).display
            assert time.monotonic() - started < 1.0
            await app.workers.wait_for_complete()
    finally:
        ctl.close()


async def test_help_lists_keys_with_reasons(controller):
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await settle(app, pilot)
        assert type(app.screen).__name__ == "HelpScreen"
        rows = {key: reason for section, key, _, reason in app.screen.table_rows
                if section == "anywhere"}
        assert rows["b"] == "stop the pool before building it (s)"
        assert rows["n"] is None


async def test_a_pool_directory_removed_while_shown_is_reported(controller, state_root):
    import shutil

    app = PoolkeeperApp(controller, monitor_interval=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        shutil.rmtree(state_root / "images")
        for _ in range(60):
            await pilot.pause(0.1)
            if "inaccessible" in header(app):
                break
        assert "inaccessible" in header(app)
        assert "not reachable" in header(app)


async def test_escape_clears_and_closes_the_filter(controller):
    """Escape in the filter neither cleared nor closed it."""
    for name in ("alpha.img", "beta.img"):
        controller.create_volume_def("default", VolumeDef(name=name, capacity=MiB,
                                                          allocation=0)).wait(30)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"alpha")
        await settle(app, pilot)
        table = app.screen.query_one("#volumes", VolumeTable)
        assert table.visible_names() == ["alpha.img"]
        await pilot.press("escape")
        await settle(app, pilot)
        box = app.screen.query_one("#filter", Input)
        assert (box.value, box.display) == ("", False)
        assert table.visible_names() == ["alpha.img", "beta.img"]
        assert app.screen.focused is table
        await pilot.press("j")  # a key after escape reaches the table's screen, not the box
        await settle(app, pilot)
        assert box.value == ""
        assert app.screen.query_one("#jobs", JobsPanel).display


async def test_the_filter_belongs_to_its_pool(controller, state_root, tmp_path):
    """A filter typed in one pool carried over to the others (and hid their volumes)."""
    controller.create_volume_def("default", VolumeDef(name="alpha.img", capacity=MiB,
                                                      allocation=0)).wait(30)
    other = tmp_path / "other"
    other.mkdir()
    controller.define_pool(f"<pool type='dir'><name>other</name><target><path>{other}"
                           "</path></target></pool>")
    controller.start_pool("other")
    controller.create_volume_def("other", VolumeDef(name="zeta.img", capacity=MiB,
                                                    allocation=0)).wait(30)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        await pilot.press("slash", *"alp")
        await settle(app, pilot)
        table = screen.query_one("#volumes", VolumeTable)
        box = screen.query_one("#filter", Input)
        assert table.visible_names() == ["alpha.img"]
        screen.select_pool("other")
        await settle(app, pilot)
        assert table.visible_names() == ["zeta.img"]
        assert (box.value, box.display) == ("", False)
        screen.select_pool("default")
        await settle(app, pilot)
        assert (box.value, box.display) == ("alp", True)
        assert table.visible_names() == ["alpha.img"]


async def test_closing_the_jobs_panel_gives_focus_back(controller):
    """After the jobs panel closed, focus landed in the filter and the next key was typed
    into it."""
    controller.create_volume_def("default", VolumeDef(name="alpha.img", capacity=MiB,
                                                      allocation=0)).wait(30)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        table = app.screen.query_one("#volumes", VolumeTable)
        await pilot.press("slash", "a", "enter")  # a filter stays open; the table has focus
        await settle(app, pilot)
        assert app.screen.focused is table
        await pilot.press("j")
        await settle(app, pilot)
        assert isinstance(app.screen.focused, JobsPanel)
        await pilot.press("j")
        await settle(app, pilot)
        assert app.screen.focused is table
        await pilot.press("l")  # the log panel key, not text in a box
        await settle(app, pilot)
        assert app.screen.query_one("#filter", Input).value == "a"
        assert app.screen.query_one("#log", LogPanel).display


async def test_an_inaccessible_pool_can_be_stopped_with_s(controller, tmp_path):
    """Its directory removed, a pool is inaccessible: `s` said "already active" and b/X said
    "stop it first", a dead end. `s` stops it; b and X say why they wait for that."""
    target = tmp_path / "gone"
    target.mkdir()
    controller.define_pool(f"<pool type='dir'><name>gone</name><target><path>{target}"
                           "</path></target></pool>")
    controller.start_pool("gone")
    target.rmdir()
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, MainScreen)
        screen.select_pool("gone")
        await settle(app, pilot)
        assert screen.pools["gone"].state == "inaccessible"
        assert screen.disabled_reason("build_pool") == "stop the pool before building it (s)"
        assert screen.disabled_reason("delete_pool") == "stop the pool first (s)"
        await pilot.press("s")
        await settle(app, pilot)
        assert controller.pool_info("gone").state == "inactive"
        assert screen.pools["gone"].state == "inactive"


async def test_q_quit_is_in_the_footer_at_80_columns_and_home_scrolls_back(controller):
    """At 80 columns the footer had no room for `q Quit`, and Home moved the cursor to the
    first row but left the table scrolled to the right."""
    from tests.screentext import screen_text

    controller.create_volume_def("default", VolumeDef(name="a" * 60 + ".img", capacity=MiB,
                                                      allocation=0)).wait(30)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        footer = screen_text(app).splitlines()[-1]
        assert "F1 Help" in footer and "q Quit" in footer, footer
        table = app.screen.query_one("#volumes", VolumeTable)
        table.focus()
        await pilot.press("right", "right", "right", "right")
        await settle(app, pilot)
        assert table.scroll_offset.x > 0
        await pilot.press("home")
        await settle(app, pilot)
        assert table.scroll_offset.x == 0
