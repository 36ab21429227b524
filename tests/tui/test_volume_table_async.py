"""A big table's sort and filter run beside the keys: the old view stays and keys are
handled while the new order is computed in a thread (no timing asserts: the computation is
held on an Event until the test lets it go)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from tests.tui.test_volume_table import TableApp, loaded, many, screen_lines, vol
from tui.widgets import volume_views
from tui.widgets.volume_rows import View, VolumeRows


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """Every view computation waits for the gate; `done` lists the ones that ran."""
    monkeypatch.setattr(volume_views, "ASYNC_ROWS", 100)
    event, done = threading.Event(), []
    real = getattr(VolumeRows, "view_task", None)  # (none before: fails on the asserts)

    def held(self: VolumeRows, column: str, text: str) -> Callable[[], View]:
        task = real(self, column, text)

        def run() -> View:
            event.wait(timeout=30)
            done.append(f"{column}/{text}")
            return task()

        return run

    monkeypatch.setattr(VolumeRows, "view_task", held, raising=False)
    return event, done


async def _until(pilot: Pilot, ready: Callable[[], bool]) -> None:
    for _ in range(500):
        if ready():
            return
        await pilot.pause(0.01)
    raise AssertionError("the view never came")


async def test_a_big_sort_leaves_the_keys_working(gate) -> None:  # type: ignore[no-untyped-def]
    release, done = gate
    app = TableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        volumes = many(1_000)
        table = await loaded(pilot, volumes)
        await pilot.press("o")  # sort by the next column (format): computed in a thread
        await pilot.press("down", "down")  # handled while the sort waits
        assert table.cursor_row == 2 and table.cursor_volume.name == "vm-000002.img"
        assert table.sort_column == "name" and table.view_pending  # the old view stays
        assert done == []
        assert screen_lines(app)[0].split()[:2] == ["Name", "\u25b2"]
        release.set()
        await _until(pilot, lambda: not table.view_pending)
        assert done == ["format/"]
        assert table.sort_column == "format"
        assert table.cursor_volume.name == "vm-000002.img"  # the cursor kept its volume
        assert "Format \u25b2" in screen_lines(app)[0]


async def test_filter_typing_is_computed_beside_the_keys_and_folded(gate) -> None:  # type: ignore[no-untyped-def]
    release, done = gate
    app = TableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = await loaded(pilot, many(1_000))
        table.request_filter("vm-0009")  # a thread starts on this one...
        await pilot.press("down")
        table.request_filter("vm-00099")  # ...these wait for it, and only the last is
        table.request_filter("vm-000998")  # computed after it
        assert table.cursor_row == 1 and table.row_count == 1_000 and table.view_pending
        release.set()
        await _until(pilot, lambda: not table.view_pending)
        assert done == ["name/vm-0009", "name/vm-000998"]
        assert table.visible_names() == ["vm-000998.img"]


async def test_a_change_while_sorting_is_not_lost(gate) -> None:  # type: ignore[no-untyped-def]
    release, done = gate
    app = TableApp()
    async with app.run_test(size=(120, 20)) as pilot:
        table = await loaded(pilot, many(1_000))
        table.request_sort("capacity")
        table.apply_diff([vol("000-new.img", 1)], ["vm-000005.img"], [])  # meanwhile
        release.set()
        await _until(pilot, lambda: not table.view_pending)
        assert done == ["capacity/", "capacity/"]  # the first result was stale: again
        names = [table.row(i).name for i in range(table.row_count)]
        assert names[0] == "000-new.img" and "vm-000005.img" not in names
        assert table.row_count == 1_000
        capacities = [table.row(i).capacity for i in range(table.row_count)]
        assert capacities == sorted(capacities)
