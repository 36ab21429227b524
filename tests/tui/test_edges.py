"""A key that would not move says why (issue 15 item 15: "inapplicable keys say why, never
silently nothing"): Up on the first row, Down on the last, PageDown at the end, Right at
the last column, Left at the first, in the volume table, the pool list, the jobs panel and
the log, each once while its notice is on screen (a held key repeats). Every key F1 lists
for those four is walked at the top and at the bottom: each acts or says why. Real dir
pools, real volumes, real jobs."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input
from textual.widgets._toast import Toast

from backends.controller import StorageController
from backends.model import VolumeDef
from tests.conftest import make_dir_pool
from tests.screentext import screen_text
from tui.app import PoolkeeperApp
from tui.keys import screen_keys
from tui.widgets.jobs_panel import JobsPanel
from tui.widgets.pool_tree import PoolTree
from tui.widgets.volume_table import VolumeTable

from .test_app import settle

MiB = 1 << 20


def notices(app: PoolkeeperApp) -> list[str]:
    return [note.message for note in app._notifications]


async def pools_with_three_volumes(ctl: StorageController, tmp_path: Path) -> None:
    for pool in ("p", "q"):
        make_dir_pool(ctl, pool, tmp_path / pool)
    for i in range(3):
        ctl.create_volume_def("p", VolumeDef(name=f"v{i}.img", capacity=MiB)).wait(30)


async def press(app: PoolkeeperApp, pilot, *keys: str) -> list[str]:
    """Press `keys` after clearing the notices; the notices they gave."""
    app.clear_notifications()
    await pilot.press(*keys)
    await settle(app, pilot)
    return notices(app)


async def test_the_volume_table_says_when_the_cursor_is_at_an_edge(
        ctl: StorageController, tmp_path: Path):
    await pools_with_three_volumes(ctl, tmp_path)
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:  # toasts drawn
        await settle(app, pilot)
        app.main_screen.select_pool("p")
        await settle(app, pilot)
        table = app.main_screen.query_one("#volumes", VolumeTable)
        table.focus()
        await pilot.pause()
        assert await press(app, pilot, "up") == ["first volume already (1 of 3)"]
        assert "first volume already (1 of 3)" in screen_text(app)
        assert await press(app, pilot, "pageup") == ["first volume already (1 of 3)"]
        # Down to the last row moves quietly; Down held there says it once, not five times
        assert await press(app, pilot, "down", "down") == []
        assert table.cursor_row == 2
        assert await press(app, pilot, *["down"] * 5) == ["last volume already (3 of 3)"]
        assert len(app.screen.query(Toast)) == 1, screen_text(app)  # one on screen
        assert await press(app, pilot, "pagedown") == ["last volume already (3 of 3)"]
        assert await press(app, pilot, "end") == ["last volume already (3 of 3)"]
        # sideways, a column at a time: the last column says so, and so does the first
        assert await press(app, pilot, "left") == ["the first column is on screen already"]
        said: list[str] = []
        for _ in range(10):
            said = await press(app, pilot, "right")
            if said:
                break
        assert said == ["the last column is on screen already"], said
        assert table.scroll_offset.x > 0
        assert await press(app, pilot, "home") == []  # the first row and column again
        assert table.scroll_offset.x == 0 and table.cursor_row == 0
        assert await press(app, pilot, "home") == ["first volume already (1 of 3)"]
        # the palette's "volume table: Up" says the same
        up = next(c for c in app.get_system_commands(app.main_screen)
                  if c.title == "volume table: Up")
        assert "unavailable: first volume already" in up.help
        app.clear_notifications()
        up.callback()
        await settle(app, pilot)
        assert notices(app) == ["first volume already (1 of 3)"]
        # an empty pool: the keys say why there is nowhere to go
        app.main_screen.select_pool("q")
        await settle(app, pilot)
        table.focus()
        assert await press(app, pilot, "down") == ["no volumes: press c to create one"]


async def test_the_pool_list_and_the_jobs_panel_say_when_at_an_edge(
        ctl: StorageController, tmp_path: Path):
    make_dir_pool(ctl, "p", tmp_path / "p")
    make_dir_pool(ctl, "q", tmp_path / "q")
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        tree = app.main_screen.query_one("#pools", PoolTree)
        tree.focus()
        tree.action_scroll_home()  # the "dir" line, then p and q
        await settle(app, pilot)
        assert await press(app, pilot, "up") == ["already at the top of the pool list"]
        assert await press(app, pilot, "down", "down") == []
        assert tree.cursor_node.data == "q"
        assert await press(app, pilot, "down", "down", "down") == [
            "already at the bottom of the pool list"]
        assert await press(app, pilot, "pagedown") == ["already at the bottom of the pool list"]
        assert await press(app, pilot, "space") == [
            "a pool has nothing to fold: Space folds a pool type"]
        assert await press(app, pilot, "enter") == ["q is shown already: Tab moves to its volumes"]
        assert await press(app, pilot, "right") == [
            "the pool list is all on screen: nothing to scroll sideways"]
        # ^c (F1: "Copy selected text") with nothing selected: Textual said "Press q to
        # quit the app", not why nothing was copied
        assert await press(app, pilot, "ctrl+c") == [
            "nothing selected to copy (q quits)"]
        # the jobs panel: empty, then three jobs (Up and Down wrap around, as Textual's)
        assert await press(app, pilot, "j") == []
        panel = app.main_screen.query_one("#jobs", JobsPanel)
        assert panel.has_focus
        assert await press(app, pilot, "down") == [
            "no jobs yet: long work (create, clone, wipe, upload...) shows here"]
        for i in range(3):
            ctl.create_volume_def("p", VolumeDef(name=f"v{i}.img", capacity=MiB)).wait(30)
        await settle(app, pilot)
        panel.highlighted = 0
        assert await press(app, pilot, "home") == ["first job already (1 of 3)"]
        assert await press(app, pilot, "end") == []
        assert await press(app, pilot, "pagedown") == ["last job already (3 of 3)"]
        said = await press(app, pilot, "enter")  # the job whole, in a notice
        assert len(said) == 1 and said[0].startswith("create v") and ": done" in said[0]


def fingerprint(app: PoolkeeperApp) -> tuple[object, ...]:
    """What a key of the four panels can change, short of a notice."""
    screen = app.main_screen
    tree = screen.query_one("#pools", PoolTree)
    table = screen.query_one("#volumes", VolumeTable)
    jobs = screen.query_one("#jobs", JobsPanel)
    log = screen.query_one("#log")
    return (
        len(app.screen_stack), app.focused and app.focused.id,
        tree.cursor_line, tuple(n.is_expanded for n in tree.root.children),
        tree.scroll_offset, table.cursor_row, table.scroll_offset, frozenset(table.marked),
        table.sort_column, table.sort_reverse, jobs.highlighted, jobs.scroll_offset,
        log.scroll_offset, jobs.display, log.display,
    )


async def to_start(app: PoolkeeperApp, pilot, section: str, where: str) -> None:
    """The main screen alone, the jobs panel and log open, `section` focused with its
    cursor on the first line (where="top") or the last."""
    while app.screen is not app.main_screen:
        app.pop_screen()
        await pilot.pause()
    screen = app.main_screen
    if screen.query_one("#filter", Input).display:
        screen.close_filter()
    for panel, key in (("#jobs", "j"), ("#log", "l")):
        if not screen.query_one(panel).display:
            await pilot.press(key)
    await settle(app, pilot)
    widget = screen.query_one({"pool list": "#pools", "volume table": "#volumes",
                               "jobs panel": "#jobs", "log": "#log"}[section])
    widget.focus()
    top = where == "top"
    if isinstance(widget, PoolTree):
        for node in widget.root.children:
            node.expand()
        await pilot.pause()
        widget.action_scroll_home() if top else widget.action_scroll_end()
    elif isinstance(widget, VolumeTable):
        widget.action_first() if top else widget.action_last()
    elif isinstance(widget, JobsPanel):
        widget.highlighted = 0 if top else widget.option_count - 1
    else:
        widget.scroll_home(animate=False) if top else widget.scroll_end(animate=False)
    await settle(app, pilot)
    app.clear_notifications()


async def test_every_key_of_the_four_panels_acts_or_says_why_at_either_end(
        ctl: StorageController, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EDITOR", "true")
    await pools_with_three_volumes(ctl, tmp_path)
    app = PoolkeeperApp(ctl, monitor_interval=None)
    silent: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.main_screen.select_pool("p")
        await settle(app, pilot)
        for i in range(3):  # jobs for the jobs panel
            ctl.create_volume_def("q", VolumeDef(name=f"w{i}.img", capacity=MiB)).wait(30)
        await settle(app, pilot)
        rows = [row for row in screen_keys(app.main_screen)
                if row.section in ("pool list", "volume table", "jobs panel", "log")
                and row.action]
        assert {row.section for row in rows} == {"pool list", "volume table", "jobs panel",
                                                 "log"}
        for where in ("top", "bottom"):
            for row in rows:
                for key in row.keys:
                    await to_start(app, pilot, row.section, where)
                    before = fingerprint(app)
                    await pilot.press(key)
                    await settle(app, pilot)
                    if not notices(app) and fingerprint(app) == before:
                        silent.append(f"{row.section} at the {where}: {key}")
    assert not silent, silent


async def test_the_extent_bar_says_when_at_an_edge_and_n_on_a_volume_defines_a_pool(
        ctl: StorageController, tmp_path: Path):
    """A gpt disk pool on a loop device: a partition, then free space. Left on the first
    segment, Right on the last, Up and Down with one device, Enter on a partition: each
    says why; n on a partition is the screen's n (it did nothing there)."""
    import os

    from tests.conftest import gpt_disk_pool
    from tui import dialogs
    from tui.widgets.extent_bar import ExtentBar

    with gpt_disk_pool(ctl, tmp_path / "disk.img") as disk:
        part = f"{os.path.basename(disk)}p1"
        ctl.create_volume_def("d", VolumeDef(name=part, capacity=8 * MiB)).wait(60)
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            app.main_screen.select_pool("d")
            await settle(app, pilot)
            bar = app.main_screen.query_one("#extents", ExtentBar)
            bar.focus()
            bar.action_first()
            await settle(app, pilot)
            assert bar.selected is not None and bar.selected[3] == part
            name = os.path.basename(bar.selected[0])  # as the bar names it
            assert await press(app, pilot, "left") == [f"first segment of {name} already"]
            assert await press(app, pilot, "home") == [f"first segment of {name} already"]
            assert await press(app, pilot, "up") == ["first device already"]
            assert await press(app, pilot, "down") == ["last device already"]
            assert await press(app, pilot, "enter") == [
                f"only on a free segment: this one is {part}"]
            await press(app, pilot, "n")
            assert isinstance(app.screen, dialogs.DefinePoolDialog), app.screen
            app.pop_screen()
            await settle(app, pilot)
            assert "New volume here" not in screen_text(app).splitlines()[-1]
            assert await press(app, pilot, "right") == []
            assert bar.selected is not None and bar.selected[3] is None  # the free space
            assert "n New volume here" in screen_text(app).splitlines()[-1]  # the footer
            assert await press(app, pilot, "right") == [f"last segment of {name} already"]
            assert await press(app, pilot, "end") == [f"last segment of {name} already"]
