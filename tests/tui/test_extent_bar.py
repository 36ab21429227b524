"""ExtentBar: to-scale geometry, labels, keys and messages, ASCII mode and snapshots, driven
through Pilot in a tiny app and checked on the rendered screen text.

Update the snapshot baselines after a deliberate change of the drawing with
`.venv/bin/pytest tests/tui/test_extent_bar.py --snapshot-update`, and look at them.
"""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Footer, Static

from backends.model import DeviceLayout, FreeExtent
from backends.units import human
from tui.widgets.extent_bar import ExtentBar, free_rows, short_size

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

FILL = {"used": "#=", "free": "."}  # ASCII fill patterns: used alternate '#' and '='


def one_gib() -> list[DeviceLayout]:
    """A 1 GiB disk, partitions at known offsets, a free extent between them, and the
    GPT's 1 MiB at each end uncovered (gaps)."""
    return [DeviceLayout(
        "/dev/sda", GiB,
        used=[(1 * MiB, 129 * MiB, "sda1"), (129 * MiB, 385 * MiB, "sda2"),
              (641 * MiB, 1023 * MiB, "sda3")],
        free=[FreeExtent(385 * MiB, 641 * MiB)],
    )]


def gpt_disk() -> list[DeviceLayout]:
    """The snapshot's disk: 4 GiB, 4 partitions, 2 free extents."""
    return [DeviceLayout(
        "/dev/sda", 4 * GiB,
        used=[(1 * MiB, 513 * MiB, "sda1"), (513 * MiB, 1537 * MiB, "sda2"),
              (2049 * MiB, 3073 * MiB, "sda3"), (3073 * MiB, 3585 * MiB, "sda4")],
        free=[FreeExtent(1537 * MiB, 2049 * MiB), FreeExtent(3585 * MiB, 4 * GiB - 17 * KiB)],
    )]


def two_pvs() -> list[DeviceLayout]:
    """The snapshot's VG: two PVs, an LV (home) with a segment on each, free on both."""
    return [
        DeviceLayout("/dev/sdb1", 8 * GiB,
                     used=[(1 * MiB, 4 * GiB + MiB, "root"),
                           (4 * GiB + MiB, 6 * GiB + MiB, "home")],
                     free=[FreeExtent(6 * GiB + MiB, 8 * GiB)]),
        DeviceLayout("/dev/sdc", 4 * GiB,
                     used=[(1 * MiB, 2 * GiB + MiB, "home"),
                           (2 * GiB + MiB, 2 * GiB + 513 * MiB, "swap")],
                     free=[FreeExtent(2 * GiB + 513 * MiB, 4 * GiB)]),
    ]


class BarApp(App[None]):
    def __init__(self, layouts: list[DeviceLayout], *, ascii: bool = True) -> None:
        super().__init__()
        self.layouts = layouts
        self.ascii_mode = ascii
        self.selected: list[tuple[str, int, int, str | None, bool]] = []
        self.chosen: list[tuple[str, int, int]] = []

    def compose(self) -> ComposeResult:
        yield ExtentBar(ascii=self.ascii_mode, id="bar")

    def on_mount(self) -> None:
        bar = self.query_one(ExtentBar)
        bar.set_layout(self.layouts)
        bar.focus()

    def on_extent_bar_segment_selected(self, message: ExtentBar.SegmentSelected) -> None:
        assert message.control is self.query_one(ExtentBar)
        self.selected.append(
            (message.device, message.start, message.end, message.volume, message.user)
        )

    def on_extent_bar_free_segment_chosen(self, message: ExtentBar.FreeSegmentChosen) -> None:
        self.chosen.append((message.device, message.start, message.end))


def screen_lines(app: App) -> list[str]:
    return [strip.text for strip in app.screen._compositor.render_strips()]


def bar_of(app: App) -> ExtentBar:
    return app.query_one(ExtentBar)


def row_of(app: App, name: str) -> str:
    rows = [line for line in screen_lines(app) if line.startswith(name + " ")]
    assert len(rows) == 1, rows
    return rows[0]


def bar_area(row: str, name: str) -> tuple[int, int]:
    """(first cell, cells) of the bar in a device row: after "name " and before the
    closing edge, found on screen (not asked of the widget)."""
    start = len(name) + 1
    end = len(row.rstrip()) - 1
    assert row[end] == "|", row
    return start, end - start


def check_drawn(row: str, spans: list[tuple[int, int, int, int, str | None]]) -> None:
    """Each span on screen is one segment: '|' first (when 2+ cells wide), then only its
    kind's fill pattern around at most one label."""
    for x0, x1, _start, _end, volume in spans:
        cells = row[x0:x1]
        fills = FILL["free" if volume is None else "used"]
        if x1 - x0 >= 2:
            assert cells[0] == "|", (cells, volume)
            cells = cells[1:]
        pattern = [c for c in cells if c in fills]
        assert pattern or cells.strip(), (cells, volume)
        assert len(set(pattern)) <= 1, cells  # one fill per segment
        label = "".join(c for c in cells if c not in fills).strip()
        if volume is not None and label:
            assert volume.startswith(label.rstrip("~")), (label, volume)
        if volume is None and label:
            assert label.startswith("free") or label[0].isdigit(), label


# ------------------------------------------------------------------------ geometry


@pytest.mark.parametrize("width", [80, 160])
async def test_segments_are_drawn_to_scale(width: int) -> None:
    app = BarApp(one_gib())
    async with app.run_test(size=(width, 10)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        row = row_of(app, "sda")
        first, cells = bar_area(row, "sda")
        assert cells == width - len("sda ") - 1  # the bar takes the whole width
        spans = bar.segment_spans("/dev/sda")
        assert [(s, e, v) for _, _, s, e, v in spans] == [
            (1 * MiB, 129 * MiB, "sda1"), (129 * MiB, 385 * MiB, "sda2"),
            (385 * MiB, 641 * MiB, None), (641 * MiB, 1023 * MiB, "sda3"),
        ]
        for x0, x1, start, end, volume in spans:
            ideal_x0 = first + start * cells / GiB
            ideal_width = (end - start) * cells / GiB
            assert abs(x0 - ideal_x0) <= 1, (volume, x0, ideal_x0)
            assert abs((x1 - x0) - ideal_width) <= 1, (volume, x1 - x0, ideal_width)
        # Next to each other, in order, inside the bar.
        for (_, a1, *_), (b0, *_) in zip(spans, spans[1:], strict=False):
            assert a1 == b0
        assert first <= spans[0][0] and spans[-1][1] <= first + cells
        check_drawn(row, spans)
        # sda2 (256 MiB) is twice as wide as sda1 (128 MiB), within a cell.
        w1, w2 = spans[0][1] - spans[0][0], spans[1][1] - spans[1][0]
        assert abs(w2 - 2 * w1) <= 2


async def test_a_new_width_redraws_to_scale() -> None:
    app = BarApp(one_gib())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        narrow = bar.segment_spans("/dev/sda")
        await pilot.resize_terminal(160, 8)
        await pilot.pause()
        wide = bar.segment_spans("/dev/sda")
        row = row_of(app, "sda")
        assert len(row.rstrip()) == 160
        check_drawn(row, wide)
        for (a0, a1, *_), (b0, b1, *_) in zip(narrow, wide, strict=True):
            assert abs((b1 - b0) - 2 * (a1 - a0)) <= 3  # twice the cells, give or take


@pytest.mark.parametrize("width", [80, 160])
async def test_tiny_segments_get_a_cell_from_the_largest(width: int) -> None:
    layout = DeviceLayout(
        "/dev/vdb", GiB,
        used=[(0, 4 * KiB, "bios"), (4 * KiB, 900 * MiB, "big"),
              (900 * MiB, 900 * MiB + 512, "t1")],
        free=[FreeExtent(900 * MiB + 512, 900 * MiB + 1024), FreeExtent(900 * MiB + 1024, GiB)],
    )
    app = BarApp([layout])
    async with app.run_test(size=(width, 10)) as pilot:
        await pilot.pause()
        row = row_of(app, "vdb")
        first, cells = bar_area(row, "vdb")
        spans = bar_of(app).segment_spans("/dev/vdb")
        widths = {(s, v): x1 - x0 for x0, x1, s, _, v in spans}
        assert len(widths) == 5 and all(w >= 1 for w in widths.values()), widths
        assert widths[(0, "bios")] == widths[(900 * MiB, "t1")] == 1
        assert widths[(900 * MiB + 512, None)] == 1
        assert sum(widths.values()) == cells  # still exactly the bar
        big = widths[(4 * KiB, "big")]
        ideal_big = 900 * MiB * cells / GiB
        assert ideal_big - 3 <= big <= ideal_big  # it gave the tiny ones their cells
        # Every one is visible on screen: a fill character of its kind at its cell.
        for x0, x1, _, _, volume in spans:
            if x1 - x0 == 1:
                assert row[x0] in FILL["free" if volume is None else "used"], (row, x0)
        check_drawn(row, spans)


async def test_more_segments_than_cells_still_draws_one_line() -> None:
    used = [(i * MiB, (i + 1) * MiB, f"p{i}") for i in range(0, 200, 2)]
    free = [FreeExtent(i * MiB, (i + 1) * MiB) for i in range(1, 200, 2)]
    app = BarApp([DeviceLayout("/dev/sdz", 200 * MiB, used=used, free=free)])
    async with app.run_test(size=(80, 6)) as pilot:
        await pilot.pause()
        row = row_of(app, "sdz")
        assert len(row) == 80 and row.rstrip().endswith("|")
        await pilot.press("end")
        assert bar_of(app).selected == ("/dev/sdz", 199 * MiB, 200 * MiB, None)


# ------------------------------------------------------------------------ labels


async def test_labels_fit_are_cut_or_left_out() -> None:
    layout = DeviceLayout(
        "/dev/sda", 100 * GiB,
        used=[(0, 40 * GiB, "data"),
              (40 * GiB, 50 * GiB, "a-very-long-partition-name"),
              (50 * GiB, 52 * GiB, "boot-partition")],
        free=[FreeExtent(52 * GiB, 90 * GiB), FreeExtent(90 * GiB, 97 * GiB)],
    )
    app = BarApp([layout])
    async with app.run_test(size=(80, 6)) as pilot:
        await pilot.pause()
        row = row_of(app, "sda")
        spans = {v if v else s: (x0, x1) for x0, x1, s, _, v in
                 bar_of(app).segment_spans("/dev/sda")}

        def cells(key: str | int) -> str:
            x0, x1 = spans[key]
            return row[x0:x1]

        assert " data " in cells("data")  # fits: whole, with a space either side
        cut = cells("a-very-long-partition-name")
        assert "a-very" in cut and cut.rstrip("#=").endswith("~")  # cut, marked as cut
        assert "a-very-long-partition-name" not in row
        assert set(cells("boot-partition")[1:]) <= set(FILL["used"])  # no room: pattern only
        assert "free 38G" in cells(52 * GiB)
        small_free = cells(90 * GiB)
        assert "7G" in small_free or set(small_free[1:]) == {"."}
        check_drawn(row, list(bar_of(app).segment_spans("/dev/sda")))


async def test_long_device_names_are_cut_and_bars_line_up() -> None:
    long = "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S3Z1NB0K123456X"
    layouts = [DeviceLayout(long, GiB, used=[(0, GiB, "p1")]),
               DeviceLayout("/dev/sdb", GiB, free=[FreeExtent(0, GiB)])]
    app = BarApp(layouts)
    async with app.run_test(size=(80, 6)) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        assert lines[0].startswith("ata-Samsung_S~ |")  # 14 cells at most, cut with '~'
        assert lines[2].startswith("sdb" + " " * 12 + "|")
        assert lines[0].index("|") == lines[2].index("|")  # both bars start in one column
        assert lines[0].rstrip()[-1] == lines[2].rstrip()[-1] == "|"
        assert len(lines[0].rstrip()) == len(lines[2].rstrip()) == 80


def test_short_size() -> None:
    assert short_size(512 * MiB) == "512M"
    assert short_size(int(1.2 * GiB)) == "1.2G"
    assert short_size(4 * GiB) == "4G"
    assert short_size(40 * GiB) == "40G"
    assert short_size(999 * MiB) == "999M"
    assert short_size(1000 * MiB) == "1G"  # 0.98 G: labels are short, the info line exact
    assert short_size(1023 * MiB) == "1G"
    assert short_size(300) == "300B"


# ------------------------------------------------------------------------ keys


async def test_left_right_move_and_post_segment_selected() -> None:
    app = BarApp(one_gib())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        # The first segment is selected from the start (not by the user).
        assert app.selected == [("/dev/sda", 1 * MiB, 129 * MiB, "sda1", False)]
        await pilot.press("right")
        assert bar.selected == ("/dev/sda", 129 * MiB, 385 * MiB, "sda2")
        await pilot.press("right")
        await pilot.press("right")
        await pilot.press("right")  # at the end: stays, nothing posted
        await pilot.press("left")
        await pilot.pause()
        assert app.selected[1:] == [
            ("/dev/sda", 129 * MiB, 385 * MiB, "sda2", True),
            ("/dev/sda", 385 * MiB, 641 * MiB, None, True),
            ("/dev/sda", 641 * MiB, 1023 * MiB, "sda3", True),
            ("/dev/sda", 385 * MiB, 641 * MiB, None, True),
        ]
        # The info line and the marker line follow.
        lines = screen_lines(app)
        info = f"sda: free  start {human(385 * MiB)}  end {human(641 * MiB)}  " \
               f"size {human(256 * MiB)}"
        assert info in lines[2]
        span = next(s for s in bar.segment_spans("/dev/sda") if s[4] is None)
        marker = lines[1]
        assert set(marker[span[0]:span[1]]) == {"^"} and not marker[:span[0]].strip()
        assert not marker[span[1]:].strip()
        await pilot.press("home")
        assert bar.selected is not None and bar.selected[3] == "sda1"
        await pilot.press("end")
        assert bar.selected is not None and bar.selected[3] == "sda3"


async def test_n_and_enter_on_free_post_free_segment_chosen_only() -> None:
    app = BarApp(one_gib())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        await pilot.press("n", "enter")  # sda1: used, nothing
        await pilot.pause()
        assert app.chosen == []
        await pilot.press("right", "right", "n")
        await pilot.pause()
        assert app.chosen == [("/dev/sda", 385 * MiB, 641 * MiB)]
        await pilot.press("enter")
        await pilot.press("right", "n")  # sda3: used again
        await pilot.pause()
        assert app.chosen == [("/dev/sda", 385 * MiB, 641 * MiB)] * 2
        assert "n: new volume here" not in screen_lines(app)[2]


async def test_click_selects_and_double_click_on_free_chooses() -> None:
    app = BarApp(one_gib())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        x0, x1, start, end, _ = bar.segment_spans("/dev/sda")[2]
        assert await pilot.click(ExtentBar, offset=((x0 + x1) // 2, 0))
        assert bar.selected == ("/dev/sda", start, end, None)
        assert app.chosen == []
        assert await pilot.click(ExtentBar, offset=((x0 + x1) // 2, 0), times=2)
        await pilot.pause()
        assert app.chosen == [("/dev/sda", start, end)]


async def test_up_down_switch_devices() -> None:
    app = BarApp(two_pvs())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        assert bar.outer_size.height == 2 + 2
        await pilot.press("right", "right")  # free space at the end of sdb1
        assert bar.selected == ("/dev/sdb1", 6 * GiB + MiB, 8 * GiB, None)
        lines = screen_lines(app)
        assert lines[0].startswith("sdb1 ") and lines[2].startswith("sdc  ")
        assert "^" in lines[1]  # the marker under sdb1's bar
        await pilot.press("down")  # the segment under the same place: free on sdc
        assert bar.selected == ("/dev/sdc", 2 * GiB + 513 * MiB, 4 * GiB, None)
        lines = screen_lines(app)
        assert lines[0].startswith("sdb1 ") and lines[1].startswith("sdc  ")
        assert "^" in lines[2] and "^" not in lines[0] + lines[1]  # marker moved
        assert lines[3].startswith(" sdc: free")
        await pilot.press("down")  # last device: stays
        await pilot.press("left", "up")  # swap is at 50-62 % of sdc: home on sdb1 (50-75 %)
        await pilot.pause()
        assert bar.selected == ("/dev/sdb1", 4 * GiB + MiB, 6 * GiB + MiB, "home")
        assert [s[:4] for s in app.selected] == [
            ("/dev/sdb1", 1 * MiB, 4 * GiB + MiB, "root"),
            ("/dev/sdb1", 4 * GiB + MiB, 6 * GiB + MiB, "home"),
            ("/dev/sdb1", 6 * GiB + MiB, 8 * GiB, None),
            ("/dev/sdc", 2 * GiB + 513 * MiB, 4 * GiB, None),
            ("/dev/sdc", 2 * GiB + MiB, 2 * GiB + 513 * MiB, "swap"),
            ("/dev/sdb1", 4 * GiB + MiB, 6 * GiB + MiB, "home"),
        ]


# ------------------------------------------------------------------------ set_layout


async def test_set_layout_keeps_the_selection() -> None:
    app = BarApp(one_gib())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        await pilot.press("right", "right", "right")  # sda3 at 641 MiB
        await pilot.pause()
        posted = len(app.selected)
        # sda1 grows and a partition appears in the free space: sda3 is still at 641 MiB.
        grown = [DeviceLayout(
            "/dev/sda", GiB,
            used=[(1 * MiB, 257 * MiB, "sda1"), (257 * MiB, 385 * MiB, "sda2"),
                  (385 * MiB, 513 * MiB, "sda4"), (641 * MiB, 1023 * MiB, "sda3")],
            free=[FreeExtent(513 * MiB, 641 * MiB)],
        )]
        bar.set_layout(grown)
        await pilot.pause()
        assert bar.selected == ("/dev/sda", 641 * MiB, 1023 * MiB, "sda3")
        assert len(app.selected) == posted  # it did not move: nothing posted
        assert "sda4" in row_of(app, "sda")
        # The same layout again (a live refresh): nothing rebuilt, nothing posted.
        await pilot.pause()
        built = bar.strips_built
        bar.set_layout([DeviceLayout(d.path, d.size, list(d.used), list(d.free))
                        for d in grown])
        bar.refresh()
        await pilot.pause()
        assert bar.strips_built == built and len(app.selected) == posted
        # Same start, new end (sda3 shrunk): still selected, posted with the new end.
        shrunk = [DeviceLayout("/dev/sda", GiB, used=grown[0].used[:3] + [
            (641 * MiB, 900 * MiB, "sda3")], free=grown[0].free)]
        bar.set_layout(shrunk)
        await pilot.pause()
        assert app.selected[-1] == ("/dev/sda", 641 * MiB, 900 * MiB, "sda3", False)
        # Its start now falls inside another segment: that one is selected, and posted.
        bar.set_layout([DeviceLayout("/dev/sda", GiB, used=[(1 * MiB, 1023 * MiB, "all")])])
        await pilot.pause()
        assert bar.selected == ("/dev/sda", 1 * MiB, 1023 * MiB, "all")
        assert app.selected[-1] == ("/dev/sda", 1 * MiB, 1023 * MiB, "all", False)
        bar.set_layout([])
        await pilot.pause()
        assert bar.selected is None and bar.outer_size.height == 2
        assert "no devices" in screen_lines(app)[0]


async def test_a_selection_move_rebuilds_only_the_lines_it_touches() -> None:
    app = BarApp(two_pvs())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        built = bar.strips_built
        await pilot.press("right")
        await pilot.pause()
        assert bar.strips_built - built <= 3  # the sdb1 bar, its marker, the info line
        built = bar.strips_built
        await pilot.press("left")
        await pilot.pause()
        assert bar.strips_built - built <= 1  # back to cached strips but the info line


async def test_select_volume_and_segment() -> None:
    app = BarApp(two_pvs())
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        bar = bar_of(app)
        assert bar.select_volume("swap")
        assert bar.selected == ("/dev/sdc", 2 * GiB + MiB, 2 * GiB + 513 * MiB, "swap")
        assert bar.select_volume("home")  # the first of its segments
        assert bar.selected == ("/dev/sdb1", 4 * GiB + MiB, 6 * GiB + MiB, "home")
        assert not bar.select_volume("nope")
        assert bar.select_segment("/dev/sdc", 2 * GiB + 513 * MiB)
        assert bar.selected == ("/dev/sdc", 2 * GiB + 513 * MiB, 4 * GiB, None)
        assert not bar.select_segment("/dev/sdc", 12345)
        await pilot.pause()
        assert [(s[3], s[4]) for s in app.selected[1:]] == [
            ("swap", False), ("home", False), (None, False)]


def test_free_rows() -> None:
    assert free_rows(gpt_disk() + two_pvs()) == [
        ("/dev/sda", 1537 * MiB, 2049 * MiB, 512 * MiB),
        ("/dev/sda", 3585 * MiB, 4 * GiB - 17 * KiB, 4 * GiB - 17 * KiB - 3585 * MiB),
        ("/dev/sdb1", 6 * GiB + MiB, 8 * GiB, 2 * GiB - MiB),
        ("/dev/sdc", 2 * GiB + 513 * MiB, 4 * GiB, 2 * GiB - 513 * MiB),
    ]
    assert free_rows([DeviceLayout("/dev/x", 10, free=[FreeExtent(5, 5)])]) == []


# ------------------------------------------------------------------------ ASCII


def not_ascii(lines: list[str]) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(lines) if not line.isascii()]


async def rendered(ascii: bool, width: int) -> list[str]:
    layouts = two_pvs()
    layouts[1].used.append((2 * GiB + 513 * MiB, 2 * GiB + 600 * MiB, "caf\u00e9-\u00fcber"))
    layouts[1].free[0] = FreeExtent(2 * GiB + 600 * MiB, 4 * GiB)
    app = BarApp(layouts, ascii=ascii)
    async with app.run_test(size=(width, 8)) as pilot:
        await pilot.pause()
        bar_of(app).select_volume("caf\u00e9-\u00fcber")
        await pilot.pause()
        return screen_lines(app)


@pytest.mark.parametrize("width", [80, 160])
async def test_ascii_mode_draws_only_ascii(width: int) -> None:
    lines = await rendered(True, width)
    assert not_ascii(lines) == []
    text = "\n".join(lines)
    assert "caf\\u00e9-\\u00fcber" in text  # the info line (tui.shown's escapes)
    assert "|" in text and "#" in text and "=" in text and "." in text and "^" in text


async def test_the_ascii_check_can_fail() -> None:
    lines = await rendered(False, 80)
    bad = not_ascii(lines)
    assert bad  # pattern glyphs, edges, the marker: all outside ASCII
    assert any("\u2591" in line for _, line in bad) and any("\u2514" in line for _, line in bad)


async def test_no_color_keeps_patterns_and_marks_the_selection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = BarApp(gpt_disk(), ascii=False)
    async with app.run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        assert app.no_color
        await pilot.press("right", "right")
        strips = app.screen._compositor.render_strips()
        row, marker = strips[0], strips[1]
        assert {"\u2588", "\u2593", "\u2591"} <= set(row.text)  # three patterns, no colour
        assert "\u2500" in marker.text
        reversed_text = "".join(seg.text for seg in row if seg.style and seg.style.reverse)
        assert "free 512M" in reversed_text


# ------------------------------------------------------------------------ snapshots


class SnapApp(App[None]):
    CSS = """
    #title { height: 1; padding: 0 1; text-style: bold; }
    ExtentBar { margin: 1 0; }
    #free { height: auto; padding: 0 1; }
    """

    def __init__(self, title: str, layouts: list[DeviceLayout], ascii: bool) -> None:
        super().__init__()
        self.title_text = title
        self.layouts = layouts
        self.ascii_mode = ascii

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="title")
        yield ExtentBar(ascii=self.ascii_mode, id="bar")
        yield Static(id="free")
        yield Footer()

    def on_mount(self) -> None:
        bar = self.query_one(ExtentBar)
        bar.set_layout(self.layouts)
        bar.focus()
        rows = ["free space:"] + [
            f"  {device:<10} start {human(start):>11}  end {human(end):>11}  size {human(size)}"
            for device, start, end, size in free_rows(self.layouts)
        ]
        self.query_one("#free", Static).update("\n".join(rows))


SIZES = [(80, 24), (160, 50)]


async def select_first_free(pilot: Pilot[None]) -> None:
    pilot.app.query_one(ExtentBar).select_segment("/dev/sda", 1537 * MiB)
    await pilot.pause()


async def select_home(pilot: Pilot[None]) -> None:
    pilot.app.query_one(ExtentBar).select_volume("home")
    await pilot.pause()


@pytest.mark.parametrize("ascii", [False, True], ids=["unicode", "ascii"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_disk(snap_compare, size: tuple[int, int], ascii: bool) -> None:
    app = SnapApp("disk pool vmdisk: /dev/sda, gpt, 4 GiB", gpt_disk(), ascii)
    assert snap_compare(app, terminal_size=size, run_before=select_first_free)


@pytest.mark.parametrize("ascii", [False, True], ids=["unicode", "ascii"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_lvm(snap_compare, size: tuple[int, int], ascii: bool) -> None:
    app = SnapApp("logical pool vg0: 2 PVs", two_pvs(), ascii)
    assert snap_compare(app, terminal_size=size, run_before=select_home)
