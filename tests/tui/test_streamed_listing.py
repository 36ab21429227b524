"""A big pool opens fast: `s` on a stopped dir pool shows the first rows while the scan
goes on, and the header says it is listing until the scan is done (issue 15 item 3).
The dir driver is made to pause after its first batch, so the test sees the middle."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from textual.widgets import Static

from backends.controller import StorageController
from backends.drivers.dir import DirDriver
from backends.events import PoolChanged
from backends.model import PoolDef, PoolTarget
from tui.app import PoolkeeperApp
from tui.widgets.volume_table import VolumeTable

FILES = 300
BATCH = 50


def header(app: PoolkeeperApp) -> str:
    return str(app.screen.query_one("#pool-header", Static).render())


async def until(pilot, check, rounds: int = 400) -> None:
    """Wait (a bounded number of rounds, no timing asserted) until `check()` holds."""
    for _ in range(rounds):
        if check():
            return
        await pilot.pause(0.05)
    assert check()


@pytest.fixture
def paused_scan(monkeypatch):
    """The dir driver's listing stops after its first batch until `go` is set."""
    original = DirDriver.refresh_batches
    go, paused = threading.Event(), threading.Event()

    def refresh_batches(self, batch: int = BATCH):
        for i, volumes in enumerate(original(self, batch=BATCH)):
            yield volumes
            if i == 0:
                paused.set()
                go.wait(60)

    monkeypatch.setattr(DirDriver, "refresh_batches", refresh_batches, raising=False)
    yield go, paused
    go.set()


async def test_rows_show_while_the_listing_goes_on(state_root: Path, tmp_path: Path,
                                                   paused_scan) -> None:
    go, paused = paused_scan
    images = tmp_path / "images"
    images.mkdir()
    for i in range(FILES - 1):
        with open(images / f"vol-{i:04d}.img", "wb") as fh:
            fh.truncate((i + 1) << 20)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                    str(images / "vol-9999.qcow2"), "1G"], check=True)
    ctl = StorageController(state_root, create_default=False)
    try:
        ctl.define_pool_def(PoolDef(type="dir", name="big",
                                    target=PoolTarget(path=str(images))))
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 30)) as pilot:
            table = app.screen.query_one("#volumes", VolumeTable)
            await until(pilot, lambda: "press s to start it" in header(app))
            await pilot.press("s")
            # the scan stops after its first batch: those rows are shown, and the
            # header says the listing goes on
            await until(pilot, lambda: paused.is_set() and table.total_count == BATCH
                        and "listing..." in header(app))
            assert f"listing... {BATCH} volumes so far" in header(app)
            assert table.row(0).name == min(table.visible_names())
            assert table.row(0).name.startswith("vol-")
            assert ctl.pool_info("big").state == "running"
            go.set()
            await until(pilot, lambda: f"{FILES} volumes," in header(app))
            assert "listing" not in header(app)
            assert table.total_count == FILES
            assert table.visible_names() == sorted(p.name for p in images.iterdir())
            assert table.row(0).name == "vol-0000.img"  # the cursor stayed on top
            qcow2 = next(v for v in table.all_volumes() if v.name == "vol-9999.qcow2")
            assert (qcow2.format, qcow2.capacity) == ("qcow2", 1 << 30)
            # the listing was read once, not again when the pool said it had started
            assert len(ctl.cached_volumes("big")) == FILES
    finally:
        ctl.close()


async def test_a_scan_that_fails_leaves_the_pool_stopped(state_root: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.img").write_bytes(b"\0" * 4096)

    def refresh_batches(self, batch: int = BATCH):
        yield []
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(DirDriver, "refresh_batches", refresh_batches, raising=False)
    ctl = StorageController(state_root, create_default=False)
    try:
        ctl.define_pool_def(PoolDef(type="dir", name="big",
                                    target=PoolTarget(path=str(images))))
        with pytest.raises(Exception, match="Input/output error"):
            ctl.start_pool("big")
        assert ctl.pool_info("big").state == "inactive"
        assert ctl.cached_volumes("big") == []
    finally:
        ctl.close()


async def test_a_sizes_event_while_listing_reads_the_pool_once(
        state_root: Path, tmp_path: Path, paused_scan, monkeypatch) -> None:
    go, paused = paused_scan
    images = tmp_path / "images"
    images.mkdir()
    for i in range(FILES):
        (images / f"vol-{i:04d}.img").write_bytes(b"")
    full_reads: list[str] = []
    real_refresh = DirDriver.refresh

    def counted(self):  # type: ignore[no-untyped-def]
        full_reads.append(self.target)
        return real_refresh(self)

    monkeypatch.setattr(DirDriver, "refresh", counted)
    ctl = StorageController(state_root, create_default=False)
    try:
        ctl.define_pool_def(PoolDef(type="dir", name="big",
                                    target=PoolTarget(path=str(images))))
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: "press s to start it" in header(app))
            await pilot.press("s")
            await until(pilot, lambda: paused.is_set() and "listing..." in header(app))
            # free space changed on the filesystem meanwhile (any writer): the monitor says so
            ctl.bus.publish(PoolChanged("big", "sizes"))
            await pilot.pause(0.1)
            go.set()
            await until(pilot, lambda: f"{FILES} volumes," in header(app))
            await pilot.pause(0.3)
            assert full_reads == []  # the streamed listing only, no second full read
    finally:
        ctl.close()


BIG = 3000
QCOW2 = 20


@pytest.fixture
def held_headers(monkeypatch):
    """The header thread's reads wait for `go`; the names of each read, in order."""
    go, asked = threading.Event(), []
    real = DirDriver.refresh_volumes

    def refresh_volumes(self, names):
        if threading.current_thread().name == "pk-headers":
            go.wait(60)
            asked.append(list(names))
        return real(self, names)

    monkeypatch.setattr(DirDriver, "refresh_volumes", refresh_volumes)
    yield go, asked
    go.set()


def table_rows(app: PoolkeeperApp) -> list[str]:
    """The table's lines on screen, under its header."""
    table = app.screen.query_one("#volumes", VolumeTable)
    r = table.content_region
    lines = [strip.text for strip in app.screen._compositor.render_strips()]
    return [line[r.x:r.right] for line in lines[r.y + 1:r.bottom]]


async def test_all_rows_come_before_the_headers_and_say_so(state_root: Path, tmp_path: Path,
                                                           held_headers) -> None:
    """A quick listing (the TUI's): every row is listed and sorted while no header has
    been read; the cells a header gives say they are unknown (never "raw"), keys that
    need them say why, the rows on screen are read first, then the formats come."""
    go, asked = held_headers
    images = tmp_path / "images"
    images.mkdir()
    for i in range(BIG - QCOW2):
        with open(images / f"raw-{i:04d}.img", "wb") as fh:
            fh.truncate((i % 7 + 1) << 20)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "t.qcow2"),
                    "1G"], check=True)
    header_bytes = (tmp_path / "t.qcow2").read_bytes()
    for i in range(QCOW2):
        (images / f"zz-{i:02d}.qcow2").write_bytes(header_bytes)
    ctl = StorageController(state_root, create_default=False, probe_later=True)
    try:
        ctl.define_pool_def(PoolDef(type="dir", name="big",
                                    target=PoolTarget(path=str(images))))
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.screen.query_one("#volumes", VolumeTable)
            await until(pilot, lambda: "press s to start it" in header(app))
            await pilot.press("s")
            await until(pilot, lambda: f"{BIG} volumes, reading headers" in header(app))
            assert table.total_count == table.pending_count == BIG
            assert table.visible_names() == sorted(p.name for p in images.iterdir())
            rows = table_rows(app)
            assert rows[0].split()[:3] == ["raw-0000.img", "\u2026", "\u2026"]  # not "raw"
            assert not any("raw " in r.split(".img", 1)[1] for r in rows if ".img" in r)
            await pilot.press("tab")  # the table has the keys
            await pilot.press("w")  # wipe: its dialog names the format and size
            await until(pilot, lambda: any("header is being read" in str(n.message)
                                           for n in app._notifications))
            assert app.screen is app.main_screen  # no dialog on a guess
            # the last rows on screen: they are read first, once the thread goes on
            await pilot.press("end")
            bottom = table.visible_names()[-5:]
            await until(pilot, lambda: set(bottom) <= set(ctl._prober._first.get("big", [])))
            await pilot.press("o")  # sorted by format while no header is read
            assert table.sort_column == "format"
            go.set()
            await until(pilot, lambda: "provisioned" in header(app), rounds=1200)
            # (the first read may have been taken before the wish)
            assert set(bottom) <= {*asked[0], *asked[1]}
            assert table.pending_count == 0
            volumes = {v.name: v for v in table.all_volumes()}
            assert (volumes["zz-03.qcow2"].format, volumes["zz-03.qcow2"].capacity) == (
                "qcow2", 1 << 30)
            assert volumes["raw-0001.img"].format == "raw"
            # sorted again once the formats came: qcow2 before raw
            assert table.visible_names() == sorted(volumes, key=lambda n: (
                volumes[n].format, n))
            rows = table_rows(app)
            assert rows[0].split()[:2] == ["zz-00.qcow2", "qcow2"] and "1.00 GiB" in rows[0]
            cells = [r.split() for r in rows]
            cells = [c for c in cells if len(c) > 1 and c[0] in volumes]  # (not a toast)
            assert len(cells) > 20 and all(c[1] in ("qcow2", "raw") for c in cells)
    finally:
        ctl.close()
