"""The volume table chooses its columns by width (issue 15 item 16): at 80x24 Name, Format,
Capacity, Allocation and % are on screen; at 160x50 every column; the ones that do not fit
are drawn after the others, a Right press (a column at a time) away, and Home comes back.
Real volumes in a real dir pool: a qcow2 on a backing file, one held open by this process."""

from __future__ import annotations

import subprocess
from pathlib import Path

from backends.controller import StorageController
from backends.model import BackingStore, VolumeDef, VolumeTarget
from tests.screentext import screen_text
from tui.app import PoolkeeperApp
from tui.widgets.volume_table import VolumeTable

from .test_app import settle

MiB = 1 << 20
GiB = 1 << 30


def state_root_images(ctl: StorageController) -> Path:
    """The default pool's directory."""
    return Path(ctl.pool_info("default").target)


def make_volumes(ctl: StorageController) -> Path:
    """default holds base.qcow2, a long-named qcow2 on it, and a raw image; the path of the
    raw image (the test holds it open: the In use by column names this process)."""
    ctl.create_volume_def("default", VolumeDef(
        name="base.qcow2", capacity=2 * GiB, target=VolumeTarget(format="qcow2"))).wait(30)
    base = str(state_root_images(ctl) / "base.qcow2")
    ctl.create_volume_def("default", VolumeDef(
        name="web01-production-frontend.qcow2", capacity=2 * GiB,
        target=VolumeTarget(format="qcow2"),
        backing=BackingStore(path=base, format="qcow2"))).wait(30)
    ctl.create_volume_def("default", VolumeDef(name="db.img", capacity=64 * MiB,
                                               allocation=64 * MiB)).wait(30)
    return state_root_images(ctl) / "db.img"


def table_lines(app: PoolkeeperApp) -> list[str]:
    """The volume table's lines as on screen (its header first)."""
    table = app.screen.query_one("#volumes", VolumeTable)
    region = table.content_region
    lines = screen_text(app).splitlines()
    return [line[region.x:region.right] for line in lines[region.y:region.bottom]]


async def test_80x24_shows_name_format_sizes_and_percent(state_root: Path):
    ctl = StorageController(state_root)
    try:
        make_volumes(ctl)
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            lines = table_lines(app)
            head = lines[0].split()
            for title in ("Name", "Fmt", "Cap", "Alloc", "%"):
                assert title in head, lines[0]
            db = next(line for line in lines if line.strip().startswith("db.img"))
            # raw, 64 MiB fully allocated: every required cell on screen, % included
            assert "raw" in db and "64.0 MiB" in db and db.rstrip().endswith("100%"), db
            web = next(line for line in lines if line.strip().startswith("web01"))
            assert "\u2026" in web  # the long name is cut, the sizes are not
            assert web.rstrip().endswith("%")
    finally:
        ctl.close()


async def test_160x50_shows_every_column(state_root: Path):
    ctl = StorageController(state_root)
    try:
        held = make_volumes(ctl)
        with open(held, "rb") as fh, subprocess.Popen(["sleep", "120"], stdin=fh) as sleep:
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(160, 50)) as pilot:
                await settle(app, pilot)
                lines = table_lines(app)
                for title in ("Name", "Format", "Capacity", "Allocation", "Alloc%",
                              "Backing store", "In use by", "Path"):
                    assert title in lines[0], lines[0]
                web = next(line for line in lines if line.strip().startswith("web01"))
                assert "base.qcow2" in web  # the backing store, its file name kept
                db = next(line for line in lines if line.strip().startswith("db.img"))
                assert f"sleep (pid {sleep.pid})"[:8] in db, db  # who holds it open
                assert db.rstrip().endswith("db.img")  # the path: its file name kept
                sleep.kill()
    finally:
        ctl.close()


async def test_right_reaches_path_a_column_at_a_time_and_home_comes_back(state_root: Path):
    ctl = StorageController(state_root)
    try:
        make_volumes(ctl)
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            table = app.screen.query_one("#volumes", VolumeTable)
            table.focus()
            await pilot.pause()
            assert "Path" not in table_lines(app)[0]
            presses = 0
            while "Path" not in table_lines(app)[0] and presses < 10:
                await pilot.press("right")
                await pilot.pause()
                presses += 1
            # Name, Fmt, Cap, Alloc, % on screen: Path comes first of the ones to the right
            assert presses <= 5, presses
            assert any(str(state_root)[:8] in line for line in table_lines(app)), \
                table_lines(app)
            await pilot.press("home")
            await pilot.pause()
            assert table_lines(app)[0].split()[:2] == ["Name", "\u25b2"]
    finally:
        ctl.close()


def test_a_cell_cut_in_the_middle_is_escaped_once() -> None:
    """A path cut in the middle was escaped twice: ESC drawn as \\\\x1b, a backslash as four."""
    from tui.shown import shown
    from tui.widgets.volume_lines import VolumeLines

    for ascii_mode in (False, True):
        lines = VolumeLines(ascii=ascii_mode)
        path = "/var/lib/libvirt/images/store/a\x1b\\b.qcow2"
        cut = lines.fit(path, 24, middle=True)
        assert cut.endswith(shown("a\x1b\\b.qcow2", ascii_mode)), cut
        assert "\\\\\\\\" not in cut and "\\\\x1b" not in cut, cut
