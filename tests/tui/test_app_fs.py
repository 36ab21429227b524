"""fs pools in the TUI: the build dialog names what is on the device, the header shows
the mount, and a refused stop names the process that holds the mount."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.widgets import Static

from backends.controller import StorageController
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice
from tests.loopfs import loop_device
from tui.app import PoolkeeperApp

from .test_app import header, settle


def fs_pool(ctl: StorageController, device: str, target: Path) -> None:
    ctl.define_pool_def(PoolDef(type="fs", name="data", source=PoolSource(
        devices=[SourceDevice(device)], format="ext4"), target=PoolTarget(path=str(target))))


async def test_build_dialog_names_the_filesystem_found(state_root, tmp_path):
    with loop_device(tmp_path, 64) as device:
        subprocess.run(["mkfs.ext4", "-q", "-L", "precious", device], check=True)
        ctl = StorageController(state_root, create_default=False)
        try:
            fs_pool(ctl, device, tmp_path / "mnt")
            assert "ext4" in ctl.build_warning("data")
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                await pilot.press("b")
                await settle(app, pilot)
                warning = str(app.screen.query_one("#signature", Static).render())
                assert "ext4" in warning and "precious" in warning
                await pilot.press("escape")
                await settle(app, pilot)
        finally:
            ctl.close()


async def test_header_shows_the_mount_and_stop_names_the_holder(state_root, tmp_path):
    with loop_device(tmp_path, 64) as device:
        subprocess.run(["mkfs.ext4", "-q", device], check=True)
        ctl = StorageController(state_root, create_default=False)
        holder = None
        try:
            fs_pool(ctl, device, tmp_path / "mnt")
            ctl.start_pool("data")
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                assert f"{device} (ext4) mounted at" in header(app)
                holder = subprocess.Popen(
                    [sys.executable, "-c", "import time; print('x', flush=True); "
                     "time.sleep(60)"], cwd=tmp_path / "mnt", stdout=subprocess.PIPE, text=True)
                holder.stdout.readline()
                await pilot.press("s")
                await settle(app, pilot)
                notes = [str(n.message) for n in app._notifications]
                assert any(f"pid {holder.pid}" in n for n in notes), notes
                assert ctl.pool_info("data").state == "running"
        finally:
            if holder is not None:
                holder.kill()
                holder.wait()
            if ctl.store.is_active("data"):
                ctl.stop_pool("data")
            ctl.close()


async def test_delete_dialog_lists_what_the_filesystem_holds_and_forces(state_root, tmp_path):
    """The delete dialog names the volumes still on the inactive
    pool's filesystem, and destroying it (name typed) passes --force."""
    from backends.model import VolumeDef
    from tui.dialogs import DeletePoolDialog

    from .test_flows import type_confirm, wait_for

    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            fs_pool(ctl, device, tmp_path / "mnt")
            ctl.build_pool("data").wait(120)
            ctl.start_pool("data")
            ctl.create_volume_def("data", VolumeDef(name="guest.img", capacity=1 << 20)
                                  ).wait(60)
            ctl.stop_pool("data")
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                await pilot.press("X")
                await wait_for(pilot, app, lambda: isinstance(app.screen, DeletePoolDialog))
                holds = str(app.screen.query_one("#holds", Static).render())
                assert "still holds 1 volume: guest.img" in holds
                app.screen.query_one("#opt-destroy").value = True
                await settle(app, pilot)
                await type_confirm(pilot, app.screen, "data")
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: "data" not in ctl.pool_names())
            done = subprocess.run(["blkid", "-p", device], capture_output=True)
            assert done.returncode == 2  # the filesystem was erased, as confirmed
        finally:
            if ctl.store.is_active("data"):
                ctl.stop_pool("data")
            ctl.close()
