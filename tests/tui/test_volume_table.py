"""VolumeTable: behaviour through Pilot and the rendered screen text (no timing asserts)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.pilot import Pilot

from backends.model import BackingStore, VolumeInfo
from backends.units import human
from tui.widgets.volume_table import VolumeTable

GiB = 1 << 30
MiB = 1 << 20


def vol(name: str, capacity: int = GiB, allocation: int = 0, fmt: str = "raw",
        backing: str | None = None, error: str | None = None,
        path: str | None = None) -> VolumeInfo:
    return VolumeInfo(
        name=name, key=f"/pool/{name}", path=path or f"/pool/{name}", format=fmt,
        capacity=capacity, allocation=allocation,
        backing=BackingStore(path=backing, format="qcow2") if backing else None, error=error,
    )


def sample() -> list[VolumeInfo]:
    """Values chosen so lexical and numeric orders differ (9 GiB < 10 GiB < 512 GiB)."""
    return [
        vol("web.qcow2", 10 * GiB, 9 * GiB, "qcow2", backing="/pool/base.qcow2"),
        vol("db.img", 512 * GiB, 100 * MiB),
        vol("base.qcow2", 9 * GiB, 2 * GiB, "qcow2"),
        vol("swap.img", 512 * MiB, 512 * MiB),
        vol("cache.vmdk", 20 * GiB, 1 * GiB, "vmdk", backing="/pool/a-base.qcow2"),
    ]


def many(count: int) -> list[VolumeInfo]:
    return [vol(f"vm-{i:06d}.img", (i % 64 + 1) * GiB, (i * 7919) % GiB) for i in range(count)]


class TableApp(App[None]):
    def __init__(self, ascii: bool = False) -> None:
        super().__init__()
        self.ascii_mode = ascii
        self.selections: list[str | None] = []
        self.activated: list[str] = []
        self.free_activated: list[tuple[str, int, int]] = []

    def compose(self) -> ComposeResult:
        yield VolumeTable(ascii=self.ascii_mode, id="table")

    def on_mount(self) -> None:
        self.query_one(VolumeTable).focus()

    def on_volume_table_selection_changed(self, message: VolumeTable.SelectionChanged) -> None:
        self.selections.append(message.volume.name if message.volume else None)

    def on_volume_table_activated(self, message: VolumeTable.Activated) -> None:
        self.activated.append(message.volume.name)

    def on_volume_table_free_row_activated(
        self, message: VolumeTable.FreeRowActivated
    ) -> None:
        self.free_activated.append((message.device, message.start, message.end))


def screen_lines(app: App) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def table_of(app: App) -> VolumeTable:
    return app.query_one(VolumeTable)


async def loaded(pilot: Pilot, volumes: list[VolumeInfo]) -> VolumeTable:
    table = table_of(pilot.app)
    table.set_volumes(volumes)
    await pilot.pause()
    return table


async def test_rows_in_name_order_on_screen():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        volumes = sample()
        random.Random(1).shuffle(volumes)
        table = await loaded(pilot, volumes)
        expected = sorted(v.name for v in volumes)
        assert table.visible_names() == expected
        assert table.row_count == table.total_count == 5
        lines = screen_lines(app)
        assert lines[0].split()[:2] == ["Name", "\u25b2"]
        for line, name in zip(lines[1:6], expected, strict=True):
            assert line.split()[0] == name
        db = lines[1 + expected.index("db.img")]
        assert human(512 * GiB) in db and human(100 * MiB) in db and "0%" in db
        web = lines[1 + expected.index("web.qcow2")]
        assert "/pool/base.qcow2" in web and " 90%" in web and "qcow2" in web
        assert table.cursor_volume is not None and table.cursor_volume.name == "base.qcow2"
        assert app.selections == ["base.qcow2"]


SORT_EXPECTED = {
    "name": ["base.qcow2", "cache.vmdk", "db.img", "swap.img", "web.qcow2"],
    "format": ["base.qcow2", "web.qcow2", "db.img", "swap.img", "cache.vmdk"],
    # numeric, not lexical: 512 MiB < 9 GiB < 10 GiB < 20 GiB < 512 GiB
    "capacity": ["swap.img", "base.qcow2", "web.qcow2", "cache.vmdk", "db.img"],
    "allocation": ["db.img", "swap.img", "cache.vmdk", "base.qcow2", "web.qcow2"],
    "pct": ["db.img", "cache.vmdk", "base.qcow2", "web.qcow2", "swap.img"],
    "backing": ["base.qcow2", "db.img", "swap.img", "cache.vmdk", "web.qcow2"],
    "in_use": ["base.qcow2", "cache.vmdk", "swap.img", "web.qcow2", "db.img"],
    "path": ["base.qcow2", "cache.vmdk", "db.img", "swap.img", "web.qcow2"],
}


@pytest.mark.parametrize("key", [key for key, _ in VolumeTable.COLUMNS])
async def test_sort_by_each_column_and_reverse(key: str):
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = await loaded(pilot, sample())
        table.set_in_use({"web.qcow2": "qemu (pid 12)", "db.img": "qemu (pid 99)",
                          "swap.img": "losetup"})
        if key == "name":
            table.sort_by("path")  # so that sort_by("name") below is a change of column
        table.sort_by(key)  # a new column sorts ascending
        await pilot.pause()
        expected = SORT_EXPECTED[key]
        assert table.visible_names() == expected
        assert table.sort_column == key and not table.sort_reverse
        lines = screen_lines(app)
        assert [line.split()[0] for line in lines[1:6]] == expected
        # Same key again toggles; an explicit flag sets.
        table.sort_by(key)
        await pilot.pause()
        assert table.visible_names() == expected[::-1]
        assert [line.split()[0] for line in screen_lines(app)[1:6]] == expected[::-1]
        table.sort_by(key, reverse=False)
        assert table.visible_names() == expected


async def test_sort_keys_cycle_and_reverse_and_arrow():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = await loaded(pilot, sample())
        await pilot.press("o")
        assert table.sort_column == "format"
        await pilot.press("o", "O")
        assert table.sort_column == "capacity" and table.sort_reverse
        assert table.visible_names() == SORT_EXPECTED["capacity"][::-1]
        await pilot.pause()
        assert "Capacity \u25bc" in screen_lines(app)[0]


async def test_header_click_sorts_and_click_again_reverses():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = await loaded(pilot, sample())
        x = screen_lines(app)[0].index("Capacity")
        assert table.column_at(x) == "capacity"
        await pilot.click(VolumeTable, offset=(x, 0))
        assert table.visible_names() == SORT_EXPECTED["capacity"]
        await pilot.click(VolumeTable, offset=(x + 2, 0))
        assert table.visible_names() == SORT_EXPECTED["capacity"][::-1]
        await pilot.pause()
        assert "Capacity \u25bc" in screen_lines(app)[0]
        # A click on a row moves the cursor there; a double click activates it.
        await pilot.click(VolumeTable, offset=(5, 3))
        assert table.cursor_volume.name == table.visible_names()[2]
        await pilot.double_click(VolumeTable, offset=(5, 3))
        assert app.activated[-1] == table.visible_names()[2]


async def test_filter_narrows_and_clears():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        volumes = [*sample(), vol("other", path="/elsewhere/DATA/other")]
        table = await loaded(pilot, volumes)
        table.select("web.qcow2")
        table.set_filter("QCOW")
        await pilot.pause()
        assert table.visible_names() == ["base.qcow2", "web.qcow2"]
        assert table.row_count == 2 and table.total_count == 6
        assert [v.name for v in table.all_volumes()] == sorted(v.name for v in volumes)
        assert table.cursor_volume.name == "web.qcow2"  # still shown: cursor stays
        lines = screen_lines(app)
        assert [line.split()[0] for line in lines[1:3]] == ["base.qcow2", "web.qcow2"]
        assert lines[3].strip() == ""
        table.set_filter("qcow2")  # narrowing reuses the shown rows
        assert table.visible_names() == ["base.qcow2", "web.qcow2"]
        table.set_filter("data")  # matches the path only
        assert table.visible_names() == ["other"]
        assert table.cursor_volume.name == "other"
        table.set_filter("nothing-like-this")
        await pilot.pause()
        assert table.row_count == 0 and table.cursor_volume is None
        assert 'no volume matches "nothing-like-this"' in screen_lines(app)[1]
        table.set_filter("")
        await pilot.pause()
        assert table.row_count == 6
        assert len([line for line in screen_lines(app)[1:] if line.strip()]) == 6


async def test_set_volumes_again_keeps_cursor_on_same_name():
    app = TableApp()
    async with app.run_test(size=(100, 22)) as pilot:
        table = await loaded(pilot, many(300))
        table.select("vm-000150.img")
        await pilot.pause()
        line = table.cursor_row - table.scroll_offset.y
        fresh = [v for v in many(301) if v.name != "vm-000010.img"]
        random.Random(2).shuffle(fresh)
        table.set_volumes(fresh)
        await pilot.pause()
        assert table.cursor_volume.name == "vm-000150.img" and table.cursor_row == 149
        assert table.cursor_row - table.scroll_offset.y == line  # same screen line
        assert table.total_count == 300
        table.set_volumes(many(5))  # the cursor's volume is gone: first row
        await pilot.pause()
        assert table.cursor_row == 0 and app.selections[-1] == "vm-000000.img"


async def test_apply_diff_keeps_cursor_on_same_volume():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = await loaded(pilot, sample())
        assert table.select("db.img")
        table.apply_diff(added=[vol("aaa-first.img")], removed=["swap.img"], changed=[])
        await pilot.pause()
        assert table.visible_names() == ["aaa-first.img", "base.qcow2", "cache.vmdk",
                                         "db.img", "web.qcow2"]
        assert table.cursor_volume.name == "db.img" and table.cursor_row == 3
        # A change that moves the row under the current sort: the cursor follows it.
        table.sort_by("capacity")
        table.apply_diff([], [], [vol("db.img", 1 * MiB)])
        await pilot.pause()
        assert table.visible_names()[0] == "db.img"
        assert table.cursor_volume.name == "db.img" and table.cursor_row == 0
        assert table.cursor_volume.capacity == MiB
        assert human(MiB) in screen_lines(app)[1]
        # Removing the cursor's volume moves the cursor to the row now in its place.
        table.apply_diff([], ["db.img"], [])
        await pilot.pause()
        assert table.cursor_volume.name == table.visible_names()[0]
        assert app.selections[-1] == table.cursor_volume.name
        # Adding a volume that is already there is a change, not a duplicate.
        table.apply_diff([vol("web.qcow2", 1)], [], [])
        assert table.total_count == 4 and table.visible_names()[0] == "web.qcow2"


async def test_a_listings_small_batch_above_the_first_row_keeps_the_cursor_on_top():
    """A first listing's rows come in batches in directory order: a batch smaller than a
    bulk merge, sorted before the row the cursor was put on, must not leave the view
    starting at that row (the pool then seemed to begin at disk-00025)."""
    app = TableApp()
    async with app.run_test(size=(80, 16)) as pilot:
        table = await loaded(pilot, [vol(f"disk-{i:05d}.img") for i in range(25, 60)])
        assert table.cursor_row == 0 and table.cursor_volume.name == "disk-00025.img"
        table.apply_diff([vol(f"disk-{i:05d}.img") for i in range(25)], [], [], listing=True)
        await pilot.pause()
        assert table.cursor_row == 0 and table.cursor_volume.name == "disk-00000.img"
        assert "disk-00000.img" in screen_lines(app)[1]
        # Outside a listing, a volume made above keeps the cursor on its own.
        table.apply_diff([vol("a-new.img")], [], [])
        await pilot.pause()
        assert table.cursor_volume.name == "disk-00000.img"


async def test_a_whole_listing_keeps_the_cursor_on_top():
    """A first listing's whole result (the load_volumes worker's) can reach the table
    before its last batches: it comes as set_volumes, and the cursor on the first row
    stays there (it stayed on its volume, 25 rows down, with the view following it)."""
    app = TableApp()
    async with app.run_test(size=(80, 16)) as pilot:
        table = await loaded(pilot, [vol(f"disk-{i:05d}.img") for i in range(25, 60)])
        every = [vol(f"disk-{i:05d}.img") for i in range(60)]
        table.set_volumes(every)
        await pilot.pause()
        assert table.cursor_row == 0 and table.cursor_volume.name == "disk-00000.img"
        table.select("disk-00030.img")
        table.set_volumes(every)  # moved by the user: it stays on its volume
        assert table.cursor_volume.name == "disk-00030.img"


async def test_apply_diff_rerenders_only_the_changed_row():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = await loaded(pilot, sample())
        calls: list[int] = []
        original = table.render_line

        def counting(y: int):
            calls.append(y)
            return original(y)

        table.render_line = counting  # the compositor looks the method up on the instance
        built = table.strips_built
        before = screen_lines(app)
        # Allocation changes but the name-sorted position does not.
        table.apply_diff([], [], [vol("db.img", 512 * GiB, 300 * GiB)])
        await pilot.pause()
        after = screen_lines(app)
        row_y = 1 + table.visible_names().index("db.img")
        assert calls == [row_y]
        assert table.strips_built == built + 1
        assert human(300 * GiB) in after[row_y] and " 59%" in after[row_y]
        assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [row_y]
        # A structural change repaints the view, but unchanged rows come from the cache.
        calls.clear()
        built = table.strips_built
        table.apply_diff([vol("zzz.img")], [], [])
        await pilot.pause()
        assert len(calls) > 5
        assert table.strips_built == built + 1


async def test_marks_with_space():
    app = TableApp()
    async with app.run_test(size=(160, 20)) as pilot:
        table = await loaded(pilot, sample())
        await pilot.press("down", "space")  # marks cache.vmdk and moves down (to db.img)
        assert table.marked == {"cache.vmdk"}
        assert table.cursor_volume is not None and table.cursor_volume.name == "db.img"
        await pilot.press("down", "space")
        assert table.marked == {"cache.vmdk", "swap.img"}
        lines = screen_lines(app)
        assert lines[2].startswith("\u25cf cache.vmdk") and lines[4].startswith("\u25cf swap.img")
        assert lines[1].startswith("  base.qcow2")
        await pilot.press("up", "space")
        assert table.marked == {"cache.vmdk"}
        table.apply_diff([], ["cache.vmdk"], [])  # a removed volume loses its mark
        assert table.marked == set()
        await pilot.press("space")
        table.clear_marks()
        await pilot.pause()
        assert table.marked == set()
        assert not any(line.startswith("\u25cf") for line in screen_lines(app))


async def test_empty_text_and_in_use():
    app = TableApp()
    async with app.run_test(size=(120, 12)) as pilot:
        table = table_of(app)
        table.empty_text = "pool inactive: press s to start it"
        await pilot.pause()
        lines = screen_lines(app)
        assert "Name" in lines[0]
        assert lines[1].strip() == "pool inactive: press s to start it"
        assert table.cursor_volume is None and table.row_count == 0
        table.set_volumes(sample())
        table.set_in_use({"db.img": "qemu (pid 12)"})
        await pilot.pause()
        db = next(line for line in screen_lines(app) if line.split()[0] == "db.img")
        assert "qemu (pid 12)" in db
        table.set_volumes([])
        await pilot.pause()
        assert "pool inactive" in screen_lines(app)[1]


async def test_error_volume_is_visible():
    app = TableApp()
    async with app.run_test(size=(160, 12)) as pilot:
        await loaded(pilot, [vol("ok.img"), vol("bad.img", 0, error="permission denied")])
        bad = screen_lines(app)[1]
        assert bad.split()[:2] == ["bad.img", "!"] and "error: permission denied" in bad
        table = table_of(app)
        styles = [seg.style for seg in table.render_line(1) if "bad.img" in seg.text]
        assert styles and styles[0] != table.rich_style  # name drawn in the error style


@pytest.mark.parametrize("ascii", [False, True])
async def test_a_pending_volume_says_its_header_is_unknown(ascii: bool):
    """Listed before its header is read (VolumeInfo.pending): format, capacity, % and
    backing store are unknown, and say so; what the lstat gave (allocation) is shown."""
    unknown = "?" if ascii else "\u2026"
    app = TableApp(ascii=ascii)
    async with app.run_test(size=(160, 12)) as pilot:
        pending = replace(vol("new.qcow2", 0, 3 * MiB, ""), pending=True)
        await loaded(pilot, [vol("ok.img"), pending])
        line = screen_lines(app)[1]
        assert line.split()[:4] == ["new.qcow2", unknown, unknown, human(3 * MiB).split()[0]]
        assert line.split()[5:7] == [unknown, unknown]  # % and backing store
        assert screen_lines(app)[2].split()[:2] == ["ok.img", "raw"]


async def test_ascii_mode_renders_only_ascii():
    app = TableApp(ascii=True)
    async with app.run_test(size=(80, 12)) as pilot:
        volumes = [*sample(), vol("x" * 90 + ".img"), vol("caf\u00e9.img"),
                   vol("broken.img", error="unreadable \u2014 header")]
        table = await loaded(pilot, volumes)
        table.sort_by("name", reverse=True)
        await pilot.press("space")
        await pilot.pause()
        lines = screen_lines(app)
        assert "Name v" in lines[0] and lines[1].startswith("  xxxxxxxx")
        assert any(line.startswith("* base.qcow2") for line in lines)  # cursor stayed on it
        assert "~" in "".join(lines)  # truncation marker
        for y in range(12):
            for segment in table.render_line(y):
                assert segment.text.isascii(), segment.text
        for line in lines:
            assert line.isascii(), line


async def test_key_navigation():
    app = TableApp()
    async with app.run_test(size=(100, 22)) as pilot:
        table = await loaded(pilot, many(500))
        page = table.scrollable_content_region.height - 1  # rows under the header
        assert table.cursor_row == 0
        await pilot.press("pagedown")
        assert table.cursor_row == page
        await pilot.press("down", "down", "up")
        assert table.cursor_row == page + 1
        await pilot.press("pageup")
        assert table.cursor_row == 1
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == 499
        assert table.cursor_volume.name == "vm-000499.img"
        lines = screen_lines(app)
        assert "vm-000499.img" in lines[page]  # last row at the bottom of the view
        await pilot.press("home")
        await pilot.pause()
        assert table.cursor_row == 0 and "vm-000000.img" in screen_lines(app)[1]
        await pilot.press("enter")
        assert app.activated == ["vm-000000.img"]


async def test_horizontal_scroll_keeps_header_fixed():
    app = TableApp()
    async with app.run_test(size=(40, 10)) as pilot:
        table = await loaded(pilot, sample())
        assert table.virtual_size.width > 40
        await pilot.press("pagedown")  # vertical: header stays
        await pilot.press(*["right"] * 30)
        await pilot.pause()
        assert table.scroll_offset.x > 0
        header = screen_lines(app)[0]
        assert "Name" not in header and ("Alloc" in header or "Backing" in header)


async def test_hundred_thousand_rows_and_one_diff():
    app = TableApp()
    async with app.run_test(size=(160, 50)) as pilot:
        volumes = many(100_000)
        table = await loaded(pilot, volumes)
        assert table.total_count == 100_000
        table.sort_by("capacity")
        await pilot.press("pagedown")
        target = table.cursor_volume
        changed = replace(target, allocation=target.capacity // 2)
        table.apply_diff([], [], [changed])
        await pilot.pause()
        assert table.cursor_volume is changed
        row = next(line for line in screen_lines(app) if target.name in line)
        assert human(changed.allocation) in row and " 50%" in row
        table.apply_diff([vol("000-new.img", 1)], [volumes[5].name], [])
        assert table.total_count == 100_000 and table.visible_names()[0] == "000-new.img"
        assert table.cursor_volume is changed


class SnapshotApp(App[None]):
    def compose(self) -> ComposeResult:
        yield VolumeTable(id="table")

    def on_mount(self) -> None:
        table = self.query_one(VolumeTable)
        volumes = []
        for i in range(20):
            fmt = "qcow2" if i % 3 else "raw"
            volumes.append(vol(f"guest-{i:02d}.{'qcow2' if fmt == 'qcow2' else 'img'}",
                               (i + 1) * 4 * GiB, (i * 613 * MiB) % ((i + 1) * 4 * GiB), fmt,
                               backing="/pool/base.qcow2" if i % 5 == 1 else None,
                               error="permission denied" if i == 7 else None))
        table.set_volumes(volumes)
        table.set_in_use({"guest-02.qcow2": "qemu (pid 4242)"})
        table.focus()


def test_snapshot_twenty_volumes(snap_compare):
    async def before(pilot: Pilot) -> None:
        await pilot.press("down", "down", "space", "down")

    assert snap_compare(SnapshotApp(), terminal_size=(80, 24), run_before=before)


def test_format_cell_shows_lv_attributes():
    from backends.model import VolumeInfo
    from tui.widgets.volume_rows import format_cell

    thin = VolumeInfo(name="lv", key="k", path="/dev/vg/lv", format="raw",
                      attributes="Vwi-a-tz--")
    assert format_cell(thin) == "raw Vwi-a-tz--"
    assert format_cell(VolumeInfo(name="f", key="k", path="/p", format="qcow2")) == "qcow2"


# ---------------------------------------------------------------- free-extent rows

FREE = [("/dev/sda", 300 * MiB, GiB), ("/dev/sda", 17408, MiB)]  # unsorted on purpose


async def test_free_rows_render_after_volumes_in_start_order():
    app = TableApp()
    async with app.run_test(size=(160, 12)) as pilot:
        table = await loaded(pilot, sample())
        table.set_free_extents(FREE)
        table.sort_by("capacity", reverse=True)  # volumes reorder, free rows do not
        await pilot.pause()
        lines = screen_lines(app)
        assert [line.split()[0] for line in lines[1:6]] == [
            "db.img", "cache.vmdk", "web.qcow2", "base.qcow2", "swap.img"]
        first, second = lines[6], lines[7]
        assert first.split()[:2] == ["(free)", "free"] and second.split()[:2] == ["(free)", "free"]
        assert human(MiB - 17408) in first and first.rstrip().endswith(
            f"{human(17408)}-{human(MiB)}")
        assert human(GiB - 300 * MiB) in second and second.rstrip().endswith(
            f"{human(300 * MiB)}-{human(GiB)}")
        assert table.free_extents == sorted(FREE, key=lambda f: f[1])
        assert table.row_count == 5  # volumes only
        # drawn dim: the name cell carries the dim component style
        dim = table.get_component_rich_style("volume-table--dim", partial=True)
        style = next(seg.style for seg in table.render_line(6) if "(free)" in seg.text)
        assert style is not None and style.color == dim.color
        table.set_free_extents([])
        await pilot.pause()
        assert not any("(free)" in line for line in screen_lines(app))


async def test_cursor_on_free_row_has_no_volume_and_enter_posts_free_row_activated():
    app = TableApp()
    async with app.run_test(size=(160, 12)) as pilot:
        table = await loaded(pilot, sample())
        table.set_free_extents(FREE)
        await pilot.press("end")
        assert table.cursor_row == 6
        assert table.cursor_volume is None and table.cursor_free == ("/dev/sda", 300 * MiB, GiB)
        assert app.selections[-1] is None
        await pilot.press("enter")
        await pilot.pause()
        assert app.free_activated == [("/dev/sda", 300 * MiB, GiB)] and app.activated == []
        await pilot.press("up")
        assert table.cursor_free == ("/dev/sda", 17408, MiB)
        await pilot.press("up")
        assert table.cursor_volume is not None and table.cursor_volume.name == "web.qcow2"
        assert table.cursor_free is None
        # the cursor stays on its free row when the volumes change under it
        await pilot.press("end")
        table.apply_diff([vol("new.img")], ["db.img"], [])
        table.set_volumes(table.all_volumes())
        assert table.cursor_free == ("/dev/sda", 300 * MiB, GiB) and table.cursor_row == 6
        # ... and moves to the row where it was when its extent goes away
        table.set_free_extents([("/dev/sda", 400 * MiB, GiB)])
        assert table.cursor_free == ("/dev/sda", 400 * MiB, GiB) and table.cursor_row == 5


async def test_filter_does_not_hide_free_rows():
    app = TableApp()
    async with app.run_test(size=(160, 12)) as pilot:
        table = await loaded(pilot, sample())
        table.set_free_extents(FREE)
        table.set_filter("qcow2")
        await pilot.pause()
        names = [line.split()[0] for line in screen_lines(app)[1:] if line.strip()]
        assert names == ["base.qcow2", "web.qcow2", "(free)", "(free)"]
        table.set_filter("no-such-volume")
        await pilot.pause()
        names = [line.split()[0] for line in screen_lines(app)[1:] if line.strip()]
        assert names == ["(free)", "(free)"]
        assert table.cursor_free == ("/dev/sda", 17408, MiB)


async def test_free_rows_are_never_marked():
    app = TableApp()
    async with app.run_test(size=(160, 12)) as pilot:
        table = await loaded(pilot, [vol("a.img")])
        table.set_free_extents(FREE)
        await pilot.press("space", "down", "space", "down", "space")
        assert table.cursor_free == ("/dev/sda", 300 * MiB, GiB)
        assert table.marked == {"a.img"}
        lines = screen_lines(app)
        assert lines[1].startswith("\u25cf a.img")
        assert lines[2].startswith("  (free)") and lines[3].startswith("  (free)")


async def test_free_rows_only_and_several_devices():
    app = TableApp()
    async with app.run_test(size=(160, 12)) as pilot:
        table = table_of(app)
        table.set_free_extents([("/dev/sdb", 0, GiB), ("/dev/sda", MiB, 2 * MiB),
                                ("/dev/sda", 5, 5)])  # empty: left out
        await pilot.pause()
        lines = screen_lines(app)
        assert lines[1].split()[0] == "(free)" and lines[1].rstrip().endswith(
            f"sdb: {human(0)}-{human(GiB)}")
        assert lines[2].rstrip().endswith(f"sda: {human(MiB)}-{human(2 * MiB)}")
        assert lines[3].strip() == ""  # no "no volumes" line when free rows are shown
        assert table.cursor_row == 0 and table.cursor_volume is None
        await pilot.click(VolumeTable, offset=(3, 2), times=2)
        await pilot.pause()
        assert app.free_activated == [("/dev/sda", MiB, 2 * MiB)]


class NewPoolApp(TableApp):
    """The table inside something whose own `n` defines a pool (as the main screen's)."""

    BINDINGS = [Binding("n", "define_pool", "New pool")]

    def __init__(self) -> None:
        super().__init__()
        self.defined = 0

    def action_define_pool(self) -> None:
        self.defined += 1


async def test_n_on_a_free_row_creates_there_and_elsewhere_defines_a_pool():
    """`n` on a free row opened "define a storage pool" (the README: create a volume in
    that free extent, as on the extent bar)."""
    app = NewPoolApp()
    async with app.run_test(size=(160, 12)) as pilot:
        table = await loaded(pilot, [vol("a.img")])
        table.set_free_extents(FREE)
        await pilot.pause()
        await pilot.press("n")  # on a.img: the app's n
        await pilot.pause()
        assert (app.defined, app.free_activated) == (1, [])
        await pilot.press("down", "n")  # on the first free row
        await pilot.pause()
        assert app.defined == 1
        assert app.free_activated == [("/dev/sda", 17408, MiB)]
