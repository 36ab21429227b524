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
            # raw, 64 MiB fully allocated: every required cell on screen, % included (the
            # sizes as ls -h has them, so that the names have room)
            assert "raw" in db and "64.0M" in db and db.rstrip().endswith("100%"), db
            assert any(line.split()[:1] == ["base.qcow2"] for line in lines), lines
            web = next(line for line in lines if line.strip().startswith("web01"))
            # the long name is cut in the middle (its start and extension kept), the
            # sizes are not
            assert web.split()[0].startswith("web01") and "\u2026" in web.split()[0], web
            assert web.split()[0].endswith(".qcow2"), web
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
                # every column; the titles and sizes are abbreviated so that the names
                # are whole (drop or abbreviate before cutting)
                for title in ("Name", "Fmt", "Cap", "Alloc", "%", "Backing", "Path"):
                    assert title in lines[0].split(), lines[0]
                assert " In use " in lines[0], lines[0]
                web = next(line for line in lines if line.strip().startswith("web01"))
                assert web.split()[0] == "web01-production-frontend.qcow2", web
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


SHORT = [f"vol{n:05d}.qcow2" for n in (1, 2, 10001)]
# 62 characters each; two differ only near the end, one at the start
LONG = [f"ubuntu-22.04-server-cloudimg-amd64-disk-kvm-20240-node{n}.qcow2" for n in
        ("01", "02")] + ["windows-2022-datacenter-evaluation-english-build-0000001.qcow2"]
assert {len(name) for name in LONG} == {62}


def name_cells(app: PoolkeeperApp) -> dict[str, str]:
    """The name cell of each volume row on screen, by the volume's name."""
    table = app.screen.query_one("#volumes", VolumeTable)
    lines = table_lines(app)[1:1 + table.row_count]
    return {table.row(i).name: line[2:].split("  ")[0].strip()
            for i, line in enumerate(lines)}


async def test_names_are_cut_last_and_in_the_middle(state_root: Path, tmp_path: Path):
    """Short names are whole at 80x24 and up (titles and sizes are abbreviated, the
    optional columns go first); long names are whole where they fit (160x50) and
    elsewhere cut in the middle, start and extension kept, each still told apart. The old
    order cut Name to 8 cells first: vol00001… at 100 columns."""
    from tests.conftest import make_dir_pool

    ctl = StorageController(state_root, create_default=False)
    try:
        for pool, names in (("short", SHORT), ("mixed", SHORT[:2] + LONG)):
            make_dir_pool(ctl, pool, tmp_path / pool)
            for name in names:
                subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                                str(tmp_path / pool / name), "1G"], check=True)
        for size in ((80, 24), (100, 30), (120, 40), (160, 50)):
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=size) as pilot:
                for pool in ("short", "mixed"):
                    app.main_screen.select_pool(pool)
                    await settle(app, pilot)
                    cells = name_cells(app)
                    where = (size, pool, cells, table_lines(app)[0])
                    assert len(cells) == (3 if pool == "short" else 5), where
                    for name in SHORT:
                        assert cells.get(name, name) == name, where  # whole
                    for name in LONG:
                        if name not in cells:
                            continue
                        cell = cells[name]
                        if size == (160, 50):
                            assert cell == name, where
                        else:  # cut in the middle: its start, its end, its extension
                            head, _, tail = cell.partition("\u2026")
                            assert tail and name.startswith(head) and name.endswith(tail)
                            assert len(head) >= 4 and tail.endswith(".qcow2"), where
                    assert len(set(cells.values())) == len(cells), where  # told apart
                    head = table_lines(app)[0].split()
                    assert {"Name", "%"} <= set(head) or "Alloc%" in head, where
    finally:
        ctl.close()


def test_choose_columns_cuts_a_name_only_when_nothing_else_gives() -> None:
    """The table widths of 80x24, 100x30, 120x40 and 160x50 (50, 62, 75, 114 cells): a
    14-cell name is whole at each; a 62-cell one is whole at 114 and cut elsewhere, and
    then only after every optional column went and titles and sizes were abbreviated."""
    from tui.widgets.volume_lines import MARK_WIDTH, choose_columns

    for name in (14, 62):
        natural = {"name": name, "format": 5, "capacity": 11, "allocation": 11, "pct": 4,
                   "backing": 40, "in_use": 0, "path": 60}
        for width in (50, 62, 75, 114):
            layout = choose_columns(natural, width)
            shown = layout.order[:layout.shown]
            assert shown[:5] == ("name", "format", "capacity", "allocation", "pct"), layout
            if layout.widths["name"] < name:
                assert name == 62 and width < 114, layout
                assert len(shown) == 5 and layout.compact == 2, layout
            # empty: the first to go, and not drawn to the right either
            assert "in_use" not in layout.order or len(shown) == 8, layout
        wide = choose_columns(natural, 114)
        assert wide.widths["name"] >= name, wide
        # the columns shown fill the width: a dropped one starts past the right edge
        if wide.shown < len(wide.order):
            assert MARK_WIDTH + sum(wide.widths[k] for k in wide.order[:wide.shown]) + 2 * (
                wide.shown - 1) == 114, wide
    # a format is not cut while a more compact size makes room (linux-swap at 80x24)
    natural = {"name": 7, "format": 10, "capacity": 11, "allocation": 11, "pct": 4,
               "backing": 0, "in_use": 0, "path": 12}
    assert choose_columns(natural, 50).widths["format"] == 10


def test_cut_name_keeps_the_start_the_end_and_the_extension() -> None:
    from rich.cells import cell_len

    from tui.widgets.volume_lines import cut_name

    assert cut_name("vol00001.qcow2", 14, "\u2026") == "vol00001.qcow2"
    assert cut_name("vol00001.qcow2", 13, "\u2026") == "vol\u2026001.qcow2"
    assert cut_name("vol00001.qcow2", 12, "~") == "vo~001.qcow2"
    assert cut_name("web01-production-frontend.qcow2", 17, "~") == "web01~ntend.qcow2"
    # no extension (or no room for it): the start and the end of the whole name
    assert cut_name("disk-without-extension-42", 12, "~") == "disk-~ion-42"
    assert cut_name("vol00001.qcow2", 8, "~") == "vol~cow2"
    assert cut_name("notes v1.5 final", 10, "~") == "note~final"
    # wide characters: exactly the width, in cells
    cut = cut_name("\u65e5\u672c\u8a9e\u306e\u30dc\u30ea\u30e5\u30fc\u30e0.img", 13, "~")
    assert cell_len(cut) == 13 and cut.endswith(".img") and cut.startswith("\u65e5"), cut
