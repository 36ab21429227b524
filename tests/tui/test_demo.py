"""`--demo` (issue 15 item 19): as root it has an image-backed disk pool and an fs pool
besides the dir pools, so the extent bar can be tried; without root it has dir pools only
and says why. Whatever way it ends (q, a hang-up, kill -9 and the next demo), it leaves no
loop device, mount or sandbox behind.

The demo runs with TMPDIR (tempfile.tempdir) pointed at the test's directory, so its
sandbox, and the sweep of dead demos' sandboxes, stay there.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import blockprobe
from backends.controller import StorageController
from tests.loopfs import can_use_loop_devices
from tests.termdriver import Terminal, have_tmux
from tui import demo
from tui.app import PoolkeeperApp
from tui.widgets.extent_bar import ExtentBar
from tui.widgets.volume_table import VolumeTable

from .test_app import header, settle

REPO = Path(__file__).resolve().parents[2]
needs_block = pytest.mark.skipif(not can_use_loop_devices() or demo.block_pools_missing()
                                 is not None, reason="needs root, loop devices, parted, mkfs")
needs_tmux = pytest.mark.skipif(not have_tmux(), reason="needs tmux (make test installs it)")


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        yield tmp_path
    finally:  # a failed test's demo: its mounts and loop devices go too
        for sandbox in tmp_path.glob(demo.PREFIX + "*"):
            demo.sweep(sandbox)


def leftovers(sandbox: Path) -> list[str]:
    """Loop devices of the sandbox's images and mounts below it (none may be left)."""
    found = [m.target for m in blockprobe.mounts_below(str(sandbox))]
    images = sandbox / demo.IMAGES
    for image in images.glob("*.img") if images.is_dir() else []:
        found += [i.device for i in blockprobe.loops_backed_by(str(image))]
    return found


def all_loops_of(tmp: Path) -> list[str]:
    """Every loop device whose backing file is under `tmp` (found from sysfs)."""
    found = []
    for entry in Path("/sys/block").glob("loop*"):
        backing = blockprobe.loop_backing_file(f"/dev/{entry.name}")
        if backing and backing.startswith(str(tmp) + "/"):
            found.append(f"/dev/{entry.name}")
    return found


@needs_block
async def test_demo_as_root_has_disk_and_fs_pools_and_leaves_nothing(private_tmp):
    sandbox, state, note = demo.make_demo()
    ctl = None
    try:
        assert note is None and sandbox.parent == private_tmp
        ctl = StorageController(state)
        pools = {p.name: p for p in ctl.list_pools()}
        assert {p.type for p in pools.values()} == {"dir", "disk", "fs"}
        assert pools["disk0"].active and pools["fs0"].active
        assert len(ctl.pool_layout("disk0")[0].free) == 3
        assert len(leftovers(sandbox)) == 3  # disk0's and fs0's loop devices, fs0's mount
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            app.screen.select_pool("disk0")
            await settle(app, pilot)
            bar = app.screen.query_one("#extents", ExtentBar)
            assert bar.display and len(bar.layouts[0].used) == 3
            assert "largest free extent" in header(app)
            app.screen.select_pool("fs0")
            await settle(app, pilot)
            table = app.screen.query_one("#volumes", VolumeTable)
            assert table.visible_names() == ["vm1.img", "vm2.img"]
    finally:
        demo.close_demo(ctl, sandbox)
    assert not sandbox.exists()
    assert all_loops_of(private_tmp) == []


async def test_demo_without_root_has_dir_pools_and_says_why(private_tmp, monkeypatch):
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    note = demo.block_pools_missing()
    assert note and "need root" in note and "sudo poolkeeper --demo" in note
    sandbox, state, said = demo.make_demo()
    ctl = None
    try:
        assert said == note
        ctl = StorageController(state)
        assert {p.type for p in ctl.list_pools()} == {"dir"}
        app = PoolkeeperApp(ctl, monitor_interval=None, notice=said)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            assert any("need root" in str(n.message) for n in app._notifications)
    finally:
        demo.close_demo(ctl, sandbox)
    assert not sandbox.exists()


def _demo_in_terminal(term: Terminal, tmp: Path) -> Path:
    term.start([sys.executable, "-m", "tui", "--demo"],
               env={"PYTHONPATH": str(REPO), "TMPDIR": str(tmp)})
    assert term.wait_for("disk0", 120), term.screen()
    [sandbox] = tmp.glob(demo.PREFIX + "*")
    assert len(leftovers(sandbox)) == 3
    return sandbox


@needs_block
@needs_tmux
def test_a_hung_up_demo_leaves_nothing(private_tmp):
    with Terminal(private_tmp / "term", size=(80, 24)) as term:
        sandbox = _demo_in_terminal(term, private_tmp)
        term.hang_up()
        assert term.wait_exit(120) is not None
    assert not sandbox.exists()
    assert all_loops_of(private_tmp) == []


@needs_block
@needs_tmux
def test_a_killed_demo_is_swept_by_the_next(private_tmp):
    with Terminal(private_tmp / "term", size=(80, 24)) as term:
        sandbox = _demo_in_terminal(term, private_tmp)
        pid = term.app_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert term.wait_exit(60) == 128 + signal.SIGKILL
    assert sandbox.exists() and len(leftovers(sandbox)) == 3  # nothing could run
    assert demo.sweep_dead_demos() == [sandbox]
    assert not sandbox.exists()
    assert all_loops_of(private_tmp) == []
