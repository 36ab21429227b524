"""VolumeRows without a screen: batches are merged into the order a full sort gives, without
sorting everything again; headers read into pending volumes change their cells in place
and, when sorted by what a header gives, the order once sorted again (issue 15 item 3)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from backends.model import BackingStore, VolumeInfo
from tui.widgets import volume_rows
from tui.widgets.volume_rows import VolumeRows, merged

GiB = 1 << 30
FORMATS = ("raw", "qcow2", "vmdk")


def vol(i: int, rng: random.Random, pending: bool = False) -> VolumeInfo:
    v = VolumeInfo(name=f"v{i:05d}-{rng.choice('abc') * rng.randint(1, 9)}.img",
                   key=f"/p/{i}", path=f"/p/{'d' * rng.randint(1, 5)}/{i}",
                   format=rng.choice(FORMATS), capacity=rng.randint(1, 64) * GiB,
                   allocation=rng.randint(0, GiB),
                   backing=BackingStore(path=f"/b/{i % 7}", format="raw") if i % 3 else None)
    if pending:
        v.format, v.capacity, v.backing, v.pending = "", 0, None, True
    return v


def scratch(volumes: list[VolumeInfo], column: str, text: str) -> VolumeRows:
    """The same volumes, sorted and filtered from nothing."""
    rows = VolumeRows()
    rows.replace(volumes)
    rows.sort_by(column)
    rows.set_filter(text)
    return rows


def same(rows: VolumeRows, volumes: list[VolumeInfo]) -> None:
    want = scratch(volumes, rows.sort_column, rows.filter_text)
    assert [v.name for v in rows.order] == [v.name for v in want.order]
    assert [v.name for v in rows.rows] == [v.name for v in want.rows]
    assert [v.name for v in rows.by_name_order] == [v.name for v in want.by_name_order]
    assert {n: id(v) for n, v in rows.by_name.items()} == {
        n: id(v) for n, v in want.by_name.items()}
    for column in ("name", "format", "backing", "path"):
        assert rows.content_width(column) == want.content_width(column), column
    assert rows.pending == want.pending == sum(v.pending for v in volumes)


@pytest.mark.parametrize("column", ["name", "format", "capacity", "path", "backing"])
@pytest.mark.parametrize("text", ["", "b"])
def test_batches_merge_into_the_order_a_full_sort_gives(column: str, text: str) -> None:
    rng = random.Random(f"{column}{text}")
    volumes = [vol(i, rng, pending=i % 4 == 0) for i in range(3000)]
    rng.shuffle(volumes)
    rows = VolumeRows()
    rows.sort_by(column)
    rows.set_filter(text)
    start = 0
    while start < len(volumes):
        size = rng.choice((1, 5, 63, 64, 300, 1200))
        rows.add_many(volumes[start:start + size])
        start += size
        same(rows, volumes[:start])


@pytest.mark.parametrize("column", ["name", "format", "capacity"])
@pytest.mark.parametrize("text", ["", "c"])
def test_a_big_diff_is_the_same_as_small_ones(column: str, text: str) -> None:
    rng = random.Random(f"diff{column}{text}")
    volumes = [vol(i, rng) for i in range(2000)]
    rows = scratch(volumes, column, text)
    by_name = {v.name: v for v in volumes}
    for _ in range(4):
        names = sorted(by_name)
        removed = rng.sample(names, 100)
        changed = [replace(by_name[n], format=rng.choice(FORMATS),
                           capacity=rng.randint(1, 64) * GiB)
                   for n in rng.sample([n for n in names if n not in removed], 150)]
        added = [vol(5000 + rng.randrange(10**6), rng) for _ in range(120)]
        added = [v for v in {v.name: v for v in added}.values() if v.name not in by_name]
        rows.marked = set(removed[:5]) | {changed[0].name}
        gone, touched, moved = rows.apply_diff(added, removed, changed)
        assert sorted(gone) == sorted(removed) and moved
        assert sorted(touched) == sorted(v.name for v in changed)
        for n in removed:
            del by_name[n]
        by_name.update((v.name, v) for v in [*changed, *added])
        same(rows, list(by_name.values()))
        assert rows.marked == {changed[0].name}  # the marks of gone names go


def test_a_batch_is_merged_without_sorting_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """100 volumes into 20,000 look at the sort key of a few hundred rows, not of every
    one (a full re-sort of the table on the UI thread for each batch of a listing)."""
    calls = [0]
    name_key = volume_rows._NAME_KEY

    def counted(v: VolumeInfo) -> str:
        calls[0] += 1
        return name_key(v)

    monkeypatch.setattr(volume_rows, "_NAME_KEY", counted)
    rng = random.Random(3)
    volumes = [vol(i, rng) for i in range(20_100)]
    rows = VolumeRows()
    rows.add_many(volumes[:20_000])
    calls[0] = 0
    rows.add_many(volumes[20_000:])
    assert calls[0] < 3000
    same(rows, volumes)


def test_merged_slots_new_rows_in() -> None:
    rng = random.Random(5)
    key = volume_rows._NAME_KEY
    for existing, new in ((0, 5), (1000, 1), (1000, 30), (1000, 500), (50, 2000)):
        volumes = [vol(i, rng) for i in range(existing + new)]
        rng.shuffle(volumes)
        rows = sorted(volumes[:existing], key=key)
        assert merged(rows, volumes[existing:], key) == sorted(volumes, key=key)


def read_into(v: VolumeInfo, fmt: str, capacity: int, backing: str | None = None) -> None:
    """What VolumeCache.probed does: the header read into the pending info itself."""
    v.format, v.capacity = fmt, capacity
    v.backing = BackingStore(path=backing, format="qcow2") if backing else None
    v.pending = False


def test_a_volume_removed_after_its_header_was_read_in_place_is_no_longer_pending(
        ) -> None:
    """The back end clears `pending` in place before the view hears of the read; if the
    volume's removal arrives first (deleted outside meanwhile), it must leave the count:
    before, the count read the cleared flag and said "1 to go" for good."""
    rng = random.Random(3)
    volumes = [vol(i, rng, pending=True) for i in range(10)]
    rows = VolumeRows()
    rows.add_many(volumes)
    assert rows.pending == 10
    read_into(volumes[0], "qcow2", GiB)  # read, not yet published
    rows.apply_diff([], [volumes[0].name], [])  # the removal comes first
    assert rows.pending == 9
    for v in volumes[1:]:
        read_into(v, "raw", GiB)
    rows.apply_diff([], [], list(volumes[1:]))
    assert rows.pending == 0


def test_headers_read_into_pending_volumes_change_their_cells_in_place() -> None:
    rng = random.Random(7)
    volumes = [vol(i, rng, pending=True) for i in range(500)]
    rows = VolumeRows()
    rows.add_many(volumes)
    assert rows.pending == 500 and rows.content_width("format") == 0
    order = list(rows.order)
    read = volumes[:200]
    for v in read:
        read_into(v, "qcow2", 2 * GiB, backing="/b/base-image.qcow2")
    gone, touched, moved = rows.apply_diff([], [], list(read))
    assert (gone, sorted(touched), moved) == ([], sorted(v.name for v in read), False)
    assert rows.order == order and not rows.stale  # sorted by name: nothing moved
    assert rows.pending == 300
    assert rows.content_width("format") == len("qcow2")
    assert rows.content_width("backing") == len("/b/base-image.qcow2")
    same(rows, volumes)


def test_headers_read_while_sorted_by_format_sort_again() -> None:
    rng = random.Random(11)
    volumes = [vol(i, rng, pending=True) for i in range(300)]
    rows = VolumeRows()
    rows.add_many(volumes)
    rows.sort_by("format")
    for i, v in enumerate(volumes[:150]):
        read_into(v, FORMATS[i % 3], GiB)
    rows.apply_diff([], [], volumes[:150])
    assert rows.stale  # the keys changed under the sorted lists
    rows.resort()
    assert not rows.stale
    same(rows, volumes)
    # computed away from the UI thread (a big table): the same order
    for v in volumes[150:]:
        read_into(v, "raw", GiB)
    rows.apply_diff([], [], volumes[150:])
    assert rows.stale
    view = rows.view_task("format", "")()
    rows.install(view)
    assert not rows.stale
    same(rows, volumes)


def test_a_view_computed_before_headers_were_read_still_goes_in() -> None:
    """A sort computed away from the UI thread goes in though headers were read into
    volumes meanwhile (the same volumes: `members` did not move), and the order is then
    stale again; while headers come every second, a sort would otherwise never land."""
    rng = random.Random(13)
    volumes = [vol(i, rng, pending=True) for i in range(400)]
    rows = VolumeRows()
    rows.add_many(volumes)
    task = rows.view_task("format", "")
    version, members = rows.version, rows.members
    for v in volumes[:100]:
        read_into(v, "qcow2", GiB)
    rows.apply_diff([], [], volumes[:100])
    assert rows.version != version and rows.members == members
    rows.install(task(), read_since=True)
    assert rows.sort_column == "format" and rows.stale
    rows.resort()
    same(rows, volumes)
    rows.add_many([vol(1000, rng)])  # a volume more: a View of before cannot go in
    assert rows.members != members
