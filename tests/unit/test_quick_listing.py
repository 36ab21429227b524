"""A quick listing (what the TUI asks for: StorageController(probe_later=True)) lists a dir
pool from its directory and one lstat per file, and reads the headers after, in a thread
(HeaderProber) that is held back here. Nothing relies on a header not read yet: vol-info,
the command line (another process), and the check that a deleted volume backs no other
one all see the real formats and backing files (issue 15 item 3)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.drivers.dir import DirDriver
from backends.errors import InUse
from backends.events import VolumesChanged
from backends.model import PoolDef, PoolTarget

GiB = 1 << 30
REPO = Path(__file__).resolve().parents[2]


class HeldProber:
    """The header thread's reads wait for `go`; what it asked for, call by call."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.asked: list[list[str]] = []


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldProber]:
    state = HeldProber()
    real = DirDriver.refresh_volumes

    def refresh_volumes(self: DirDriver, names: list[str]):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "pk-headers":
            state.go.wait(60)
            state.asked.append(list(names))
        return real(self, names)

    monkeypatch.setattr(DirDriver, "refresh_volumes", refresh_volumes)
    yield state
    state.go.set()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """200 sparse raw files, a qcow2 base and a qcow2 overlay backed by it."""
    images = tmp_path / "images"
    images.mkdir()
    for i in range(200):
        with open(images / f"raw-{i:03d}.img", "wb") as fh:
            fh.truncate((i + 1) << 20)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "base.qcow2"),
                    "1G"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F",
                    "qcow2", str(images / "overlay.qcow2")], check=True, cwd=images)
    return images


@pytest.fixture
def quick(state_root: Path, images: Path) -> Iterator[StorageController]:
    ctl = StorageController(state_root, create_default=False, probe_later=True)
    try:
        ctl.define_pool_def(PoolDef(type="dir", name="p", target=PoolTarget(path=str(images))))
        yield ctl
    finally:
        ctl.close()


def all_read(ctl: StorageController) -> None:
    """Wait (bounded, nothing timed) until the header thread has read everything and
    ended (its last batch is published as it ends)."""
    for _ in range(1200):
        if not any(t.name == "pk-headers" for t in threading.enumerate()):
            return
        threading.Event().wait(0.05)
    raise AssertionError("the header thread did not end")


def test_the_listing_leaves_headers_to_the_thread_and_says_so(
        quick: StorageController, held: HeldProber) -> None:
    events: list[VolumesChanged] = []
    quick.subscribe(lambda e: events.append(e) if isinstance(e, VolumesChanged) else None)
    # the rows a view shows while the listing goes on are asked for first
    quick.probe_first("p", ["raw-150.img", "overlay.qcow2"])
    quick.start_pool("p")
    listed = {v.name: v for v in quick.cached_volumes("p")}
    assert len(listed) == 202
    assert all(v.pending for v in listed.values())
    base = listed["base.qcow2"]
    # unknown, not guessed: no format, no capacity, no backing file
    assert (base.format, base.capacity, base.backing) == ("", 0, None)
    assert base.physical > 0 and base.allocation > 0  # what the lstat says
    held.go.set()
    all_read(quick)
    assert held.asked[0][:2] == ["raw-150.img", "overlay.qcow2"]  # asked for first
    read = {v.name: v for v in quick.cached_volumes("p")}
    assert not any(v.pending for v in read.values())
    assert read["base.qcow2"] is base  # read into the listed info itself
    assert (base.format, base.capacity) == ("qcow2", GiB)
    assert read["overlay.qcow2"].backing is not None
    assert read["overlay.qcow2"].backing.path == str(base.path)
    assert (read["raw-007.img"].format, read["raw-007.img"].capacity) == ("raw", 8 << 20)
    assert read["raw-007.img"].file_id is not None
    changed = {n for e in events for n in e.changed}
    assert changed == set(read)  # each one published as changed


def test_what_acts_or_reports_reads_the_headers_itself(
        quick: StorageController, held: HeldProber, state_root: Path) -> None:
    quick.start_pool("p")
    assert all(v.pending for v in quick.cached_volumes("p"))
    # vol-info reads the volume again
    info = quick.volume_info("p", "overlay.qcow2")
    assert (info.format, info.pending) == ("qcow2", False)
    assert info.backing is not None and info.backing.path.endswith("/base.qcow2")
    # the command line is another process: its listing reads every header
    out = subprocess.run(
        [sys.executable, "-m", "cli", "--root", str(state_root), "vol-list", "p", "--details"],
        capture_output=True, text=True, check=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}).stdout
    line = next(x for x in out.splitlines() if x.split()[:1] == ["base.qcow2"])
    assert "1.00 GiB" in line  # the header's virtual size, not the file's 196 KiB
    listed = subprocess.run(
        [sys.executable, "-m", "cli", "--root", str(state_root), "vol-list", "p", "--json"],
        capture_output=True, text=True, check=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}).stdout
    base = next(v for v in json.loads(listed) if v["name"] == "base.qcow2")
    assert (base["format"], base["capacity"]) == ("qcow2", 1 << 30)
    # a base another volume is backed by is not deleted, its overlay's header unread
    with pytest.raises(InUse, match="overlay.qcow2"):
        quick.delete_volume("p", "base.qcow2")
    assert (Path(quick.pool_def("p").target.path) / "base.qcow2").exists()
    # that check read what was pending: nothing is left to guess
    assert not any(v.pending for v in quick.cached_volumes("p"))


def test_a_header_read_loses_to_a_newer_read(
        quick: StorageController, held: HeldProber, images: Path) -> None:
    """The monitor's read of a volume (or a listing begun anew) wins over the header
    thread's older read of it."""
    quick.start_pool("p")
    pending = {v.name: v for v in quick.cached_volumes("p")}
    # the monitor read raw-001.img meanwhile, and raw-002.img is gone
    (images / "raw-002.img").unlink()
    quick._cache.update("p", {"raw-001.img": quick.volume_info("p", "raw-001.img"),
                              "raw-002.img": None})
    newer = quick.cached_volumes("p", ["raw-001.img"])[0]
    held.go.set()
    all_read(quick)
    assert quick.cached_volumes("p", ["raw-001.img"]) == [newer]
    assert pending["raw-001.img"].pending  # the older info was left alone
    assert quick.cached_volumes("p", ["raw-002.img"]) == []


def test_the_command_line_lists_every_header(state_root: Path, images: Path) -> None:
    """Without probe_later (the CLI's controller), a listing reads each header."""
    with StorageController(state_root, create_default=False) as ctl:
        ctl.define_pool_def(PoolDef(type="dir", name="p", target=PoolTarget(path=str(images))))
        ctl.start_pool("p")
        volumes = {v.name: v for v in ctl.cached_volumes("p")}
        assert not any(v.pending for v in volumes.values())
        assert volumes["base.qcow2"].format == "qcow2"


def test_the_fast_path_lists_a_file_as_the_full_scan_would_without_its_header(
        tmp_path: Path) -> None:
    """_quick (most of a big listing) and _scan's quick branch give the same volume; what
    _quick leaves (a link, a directory, an unsafe name, a FIFO) goes to _scan."""
    import os

    from backends.drivers import dir_listing

    images = tmp_path / "images"
    images.mkdir()
    (images / "a.img").write_bytes(b"x" * 5000)
    os.symlink("a.img", images / "link.img")
    (images / "sub").mkdir()
    (images / "bad\x1bname.img").write_bytes(b"")
    os.mkfifo(images / "fifo")
    dfd = os.open(images, os.O_RDONLY | os.O_DIRECTORY)
    try:
        prefix = f"{images}/"
        fast = dir_listing.quick_file(dfd, "a.img", prefix)
        driver = DirDriver(PoolDef(name="p", type="dir", target=PoolTarget(path=str(images))))
        slow = driver._scan(dfd, "a.img", dir_listing.UNKNOWN, prefix, headers=False)
        assert fast is not None and fast == slow and fast.pending and fast.format == ""
        assert fast.physical == 5000 and fast.path == f"{images}/a.img"
        for name in ("link.img", "sub", "bad\x1bname.img", "fifo", "gone.img"):
            assert dir_listing.quick_file(dfd, name, prefix) is None, name
    finally:
        os.close(dfd)


def test_a_base_in_another_pool_the_view_never_listed_is_not_deleted(
        state_root: Path, tmp_path: Path) -> None:
    """The backing check reads a pool the TUI has not listed (or whose first listing or
    scan is still coming in) whole, each header read: before, it took a quick listing of
    it, whose overlays name no backing file yet, and deleted the base."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(a / "base.img"), "1M"],
                   check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(a / "base.img"),
                    "-F", "raw", str(b / "ov.qcow2")], check=True)
    with StorageController(state_root, create_default=False) as cli:  # another process
        for name, path in (("a", a), ("b", b)):
            cli.define_pool_def(PoolDef(type="dir", name=name,
                                        target=PoolTarget(path=str(path))))
            cli.start_pool(name)
    with StorageController(state_root, create_default=False, probe_later=True) as tui:
        assert tui.cached_volumes("b") == []  # never listed here
        with pytest.raises(InUse, match="ov.qcow2"):
            tui.delete_volume("a", "base.img")
    assert (a / "base.img").exists()
