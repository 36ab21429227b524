"""Keys (issue 15 items 13 and 15), through the whole app on real dir pools:

- F1 and the palette list every binding of the main screen and its widgets, read from the
  bindings, each named as printed on the keyboard ("/", "Space", "Enter", "F1", "^p");
- a key that cannot act now says why (a notice), never nothing: the main screen's keys are
  walked with no pool, a stopped pool, an empty running pool and a running pool with a
  volume and nothing marked;
- `C` cancels a job wherever it appears, `c` creates (it cancelled in the jobs panel).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from textual.binding import Binding
from textual.widgets import Input

from backends.controller import StorageController
from backends.model import VolumeDef
from tests.conftest import make_dir_pool
from tests.screentext import screen_text
from tui import dialogs
from tui.app import PoolkeeperApp
from tui.keys import key_name
from tui.screens.main import MainScreen
from tui.widgets.jobs_panel import JobsPanel
from tui.widgets.volume_table import VolumeTable

from .test_app import settle

MiB = 1 << 20


def every_binding(screen: MainScreen) -> list[tuple[str, Binding]]:
    """(where, binding) of every binding the main screen answers to: the app's, the
    screen's and every focusable widget's (Textual's internal system bindings aside)."""
    found = [("app", b) for _, b in screen.app._bindings if not b.system]
    found += [("screen", b) for _, b in screen._bindings if not b.system]
    for node in screen.query("*"):
        if node.can_focus:
            found += [(node.id or "", b) for _, b in node._bindings if not b.system]
    return found


async def test_every_binding_is_in_f1_and_in_the_palette_named_as_on_the_keyboard(
        ctl: StorageController, tmp_path: Path):
    make_dir_pool(ctl, "p", tmp_path / "p")
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.main_screen
        bindings = every_binding(screen)
        commands = list(app.get_system_commands(screen))
        palette_text = [f"{c.title} {c.help}" for c in commands]
        palette_keys = {name for c in commands if "key: " in c.help
                        for name in c.help.split("key: ")[1].split(" (")[0].split(", ")}
        await pilot.press("f1")
        await settle(app, pilot)
        help_rows = app.screen.table_rows
        overridden = {key for _, b in screen._bindings for key in [b.key]}
        for where, binding in bindings:
            if where == "app" and binding.key in overridden:
                continue  # the screen binds the key itself (q): that one is listed
            name = key_name(binding.key)
            in_help = [r for r in help_rows if name in r[1].split(", ")]
            assert in_help, (where, binding.key)
            if where != "filter" or binding.description in {r[2] for r in in_help}:
                assert binding.description in {r[2] for r in in_help}, (where, binding)
            assert name in palette_keys, (where, binding.key)
        # the keys the issue named, as printed on the keyboard; no Textual key names
        names = {n for r in help_rows for n in r[1].split(", ")}
        for key in ("q", "o", "O", "Space", "Enter", "Tab", "Home", "F1", "/", "Del",
                    "^p", "C", "\u2191"):
            assert key in names, key
        assert not any("slash" in text or "space" in text.split() for text in palette_text)
        shown = screen_text(app)
        assert "F1" in shown and "Tab" in shown


async def test_palette_names_keys_as_printed(ctl: StorageController, tmp_path: Path):
    make_dir_pool(ctl, "p", tmp_path / "p")
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await settle(app, pilot)
        await pilot.press(*"filter")
        await settle(app, pilot)
        assert "key: /" in screen_text(app)
        for _ in "filter":
            await pilot.press("backspace")
        await pilot.press(*"mark")
        await settle(app, pilot)
        assert "key: Space" in screen_text(app)


def fingerprint(app: PoolkeeperApp) -> tuple[object, ...]:
    """What a key can change on the main screen, short of a notice."""
    screen = app.main_screen
    table = screen.table
    return (
        len(app.screen_stack), type(app.screen).__name__, app.focused and app.focused.id,
        *(screen.query_one(w).display for w in ("#jobs", "#log", "#filter")),
        screen.query_one("#log").show_routine,
        table.sort_column, table.sort_reverse, frozenset(table.marked), table.cursor_row,
        screen.refreshed_at, str(screen.query_one("#pool-header").render()),
    )


async def back_to_main(app: PoolkeeperApp, pilot) -> None:
    """Close what a key opened, so that the next key starts from the main screen."""
    while app.screen is not app.main_screen:
        app.pop_screen()
        await pilot.pause()
    screen = app.main_screen
    if screen.query_one("#filter", Input).display:
        screen.close_filter()
    app.clear_notifications()
    await settle(app, pilot)


# Moving the cursor at an edge, or scrolling with nothing to scroll, is left out; so is q.
WALKED = [b.key for b in MainScreen.BINDINGS if b.key not in ("q", "s")] + [
    "space", "enter", "n", "o", "O", "s"]


async def walk(app: PoolkeeperApp, pilot, state: str) -> list[str]:
    """Press each key of WALKED (the table focused); the keys that neither changed
    anything nor said anything."""
    silent = []
    for key in WALKED:
        await back_to_main(app, pilot)
        app.main_screen.table.focus()
        await pilot.pause()
        before = fingerprint(app)
        await pilot.press(key)
        await settle(app, pilot)
        said = list(app._notifications)
        if not said and fingerprint(app) == before:
            silent.append(f"{state}: {key}")
    await back_to_main(app, pilot)
    return silent


async def test_every_key_acts_or_says_why(state_root: Path, tmp_path: Path,
                                          monkeypatch):
    monkeypatch.setenv("EDITOR", "true")
    silent: list[str] = []
    with StorageController(state_root, create_default=False) as ctl:
        ctl.store.mark_initialized()
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            silent += await walk(app, pilot, "no pool")
        make_dir_pool(ctl, "p", tmp_path / "p")
        ctl.stop_pool("p")
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            silent += await walk(app, pilot, "stopped pool")  # s (last) starts it
            assert ctl.pool_info("p").active
            silent += await walk(app, pilot, "empty running pool")  # and s stops it
            ctl.start_pool("p")
            ctl.create_volume_def("p", VolumeDef(name="v.img", capacity=MiB,
                                                 allocation=0)).wait(30)
            app.main_screen.action_refresh()
            await settle(app, pilot)
            silent += await walk(app, pilot, "a volume, none marked")
    assert not silent, silent


def running_upload(ctl: StorageController, fifo: Path):
    """An upload from a fifo that waits for its next chunk: a job that runs until it is
    cancelled (the writer's fd is returned, to close after)."""
    os.mkfifo(fifo)
    job = ctl.upload_volume("p", "v.img", str(fifo))
    writer: list[int] = []
    opener = threading.Thread(target=lambda: writer.append(os.open(fifo, os.O_WRONLY)))
    opener.start()
    opener.join(10)
    os.write(writer[0], b"x" * 1024)
    return job, writer[0]


async def test_c_creates_in_the_jobs_panel_and_C_cancels_everywhere(
        ctl: StorageController, tmp_path: Path):
    make_dir_pool(ctl, "p", tmp_path / "p")
    ctl.create_volume_def("p", VolumeDef(name="v.img", capacity=MiB, allocation=0)).wait(30)
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(app, pilot)
        job, writer = running_upload(ctl, tmp_path / "feed")
        try:
            await settle(app, pilot)
            await pilot.press("j")
            await settle(app, pilot)
            panel = app.main_screen.query_one("#jobs", JobsPanel)
            assert panel.has_focus and panel.highlighted == 0
            await pilot.press("c")  # create, as everywhere else; it used to cancel here
            await settle(app, pilot)
            assert isinstance(app.screen, dialogs.CreateVolumeDialog)
            assert job.state == "running"
            await pilot.press("escape")
            await settle(app, pilot)
            assert "C Cancel job" in screen_text(app).splitlines()[-1]  # the footer says it
            # C with the panel closed shows the job first: nothing is cancelled unseen
            await pilot.press("j")
            app.main_screen.query_one("#volumes", VolumeTable).focus()
            await settle(app, pilot)
            assert not panel.display
            await pilot.press("C")
            await settle(app, pilot)
            assert panel.display and panel.has_focus and job.state == "running"
            assert any("C again cancels" in n.message for n in app._notifications)
            await pilot.press("C")
            job.join(10)
        finally:
            os.close(writer)
        await settle(app, pilot)
        assert job.state == "cancelled"
        await pilot.press("C")  # nothing runs now: it says so
        await settle(app, pilot)
        assert any("no job is running" in n.message for n in app._notifications)


async def test_f1_in_ascii_mode_is_all_ascii(ctl: StorageController, tmp_path: Path):
    make_dir_pool(ctl, "p", tmp_path / "p")
    app = PoolkeeperApp(ctl, ascii=True, monitor_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        await settle(app, pilot)
        for key in ("home", "pagedown", "pagedown", "pagedown", "end"):
            await pilot.press(key)
            await settle(app, pilot)
            text = screen_text(app)
            assert text.isascii(), [c for c in text if not c.isascii()]
        assert "Up" in {n for r in app.screen.table_rows for n in r[1].split(", ")}
