"""Forms the back end checks before they close: the create-volume and define-pool dialogs
run the checks the verb would run (the pool type's own, from its driver), show a refusal
beside its field and stay open with what was typed; a refusal of the verb itself (a race)
opens the dialog again with the input and the error. On real dir pools, a real disk on a
loop device and a real LVM volume group."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from textual.widgets import Input, Select

from backends.controller import StorageController
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice, VolumeDef
from tests.loopfs import loop_device
from tests.lvmenv import lvm_fixture  # noqa: F401 (fixture 'lvm')
from tui.app import PoolkeeperApp
from tui.dialogs import CreateVolumeDialog, DefinePoolDialog
from tui.dialogs.fields import Check, Field
from tui.screens.main import MainScreen
from tui.widgets.volume_table import VolumeTable

from .test_app import settle
from .test_app_disk import start_disk_pool
from .test_flows import wait_for

MiB = 1 << 20


def message(dialog, control_id: str) -> str:
    """The text shown under the field of `control_id`."""
    return str(dialog.query_one(f"#field-{control_id}", Field).query_one(
        "InlineMessage").render())


async def open_create(app: PoolkeeperApp, pilot, pool: str) -> CreateVolumeDialog:
    screen = app.screen
    assert isinstance(screen, MainScreen)
    screen.select_pool(pool)
    await settle(app, pilot)
    await pilot.press("c")
    await settle(app, pilot)
    assert isinstance(app.screen, CreateVolumeDialog)
    return app.screen


async def test_a_disk_pool_prefills_the_next_partition_and_refuses_another_name(
        state_root: Path, tmp_path: Path):
    """The name of a disk pool's volume is the kernel's name of the partition (loop0p3
    after p1 and p2). The dialog closed on any name, and the job failed afterwards; now
    it opens with the name filled in, and a wrong name is refused beside the name field,
    the dialog open and the capacity kept."""
    with loop_device(tmp_path, 128) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            start_disk_pool(ctl, device)
            base = os.path.basename(device)
            for n in (1, 2):
                ctl.create_volume_def("d", VolumeDef(name=f"{base}p{n}",
                                                     capacity=8 * MiB)).wait(60)
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_create(app, pilot, "d")
                name = dialog.query_one("#name", Input)
                await wait_for(pilot, app, lambda: name.value != "")
                assert name.value == f"{base}p3"
                name.value = "sda1"
                dialog.query_one("#capacity", Input).value = "8M"
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: "must be named" in message(dialog, "name"))
                assert app.screen is dialog and f"'{base}p3'" in message(dialog, "name")
                assert dialog.query_one("#capacity", Input).value == "8M"
                assert len(ctl.list_volumes("d")) == 2  # nothing was made
                name.value = f"{base}p3"  # the error goes once the name is changed
                await settle(app, pilot)
                assert "must be named" not in message(dialog, "name")
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: app.screen is not dialog)  # checked, closed
                table = app.screen.query_one("#volumes", VolumeTable)
                await wait_for(pilot, app, lambda: f"{base}p3" in table.visible_names())
        finally:
            if ctl.store.is_active("d"):
                ctl.stop_pool("d")
            ctl.close()


async def test_a_sparse_lv_without_a_thin_pool_is_refused_beside_the_choice(
        lvm, state_root: Path):  # noqa: F811 (the fixture)
    """A logical pool without a thin pool cannot make a sparse LV: the dialog closed and
    lvcreate's job failed. Now the sparse choice says why, and the dialog stays open."""
    vg = "pkt" + uuid.uuid4().hex[:8]
    device = lvm.disk(64)
    ctl = StorageController(state_root, create_default=False)
    try:
        ctl.define_pool_def(PoolDef(type="logical", name=vg, source=PoolSource(
            name=vg, devices=[SourceDevice(device)], format="lvm2"),
            target=PoolTarget(path=f"/dev/{vg}")))
        ctl.build_pool(vg).wait(60)
        ctl.start_pool(vg)
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            dialog = await open_create(app, pilot, vg)
            dialog.query_one("#name", Input).value = "lv1"
            dialog.query_one("#capacity", Input).value = "8M"
            dialog.query_one("#sparse", Check).value = True
            await settle(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: "no thin pool" in message(dialog, "sparse"))
            assert app.screen is dialog
            assert dialog.query_one("#name", Input).value == "lv1"
            assert ctl.list_volumes(vg) == []
            dialog.query_one("#sparse", Check).value = False  # thick: made
            await settle(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: not ctl.jobs.running(vg) and [
                v.name for v in ctl.list_volumes(vg)] == ["lv1"])
    finally:
        if ctl.store.is_active(vg):
            ctl.stop_pool(vg)
        ctl.close()


async def test_a_duplicate_target_is_refused_beside_the_target(state_root: Path):
    ctl = StorageController(state_root)  # "default" in STATE/images
    try:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(140, 45)) as pilot:
            await settle(app, pilot)
            await pilot.press("n")
            await settle(app, pilot)
            dialog = app.screen
            assert isinstance(dialog, DefinePoolDialog)
            assert dialog.query_one("#type", Select).value == "dir"
            dialog.query_one("#name", Input).value = "again"
            dialog.query_one("#target", Input).value = str(state_root / "images") + "/"
            await settle(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: "conflict" in message(dialog, "target"))
            assert "pool 'default'" in message(dialog, "target") and app.screen is dialog
            assert dialog.query_one("#name", Input).value == "again"
            assert ctl.pool_names() == ["default"]
            dialog.query_one("#name", Input).value = "default"  # a name taken: by the name
            dialog.query_one("#target", Input).value = str(state_root.parent / "elsewhere")
            await settle(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: "already exists" in message(dialog, "name"))
            assert app.screen is dialog and ctl.pool_names() == ["default"]
    finally:
        ctl.close()


async def test_a_create_refused_after_the_check_reopens_the_dialog_with_the_input(
        state_root: Path):
    """A race: the dialog's check passed, then another process made a file of that name
    before the create. The dialog opens again with what was typed and why."""
    ctl = StorageController(state_root)
    checked = ctl.check_volume_def

    def check_then_race(pool: str, vdef: VolumeDef):
        refusal = checked(pool, vdef)
        (state_root / "images" / vdef.name).write_bytes(b"someone else's")
        return refusal

    ctl.check_volume_def = check_then_race  # type: ignore[method-assign]
    try:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            dialog = await open_create(app, pilot, "default")
            dialog.query_one("#name", Input).value = "x.img"
            dialog.query_one("#capacity", Input).value = "3M"
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: isinstance(app.screen, CreateVolumeDialog)
                           and app.screen is not dialog)
            again = app.screen
            await settle(app, pilot)
            assert again.query_one("#name", Input).value == "x.img"
            assert again.query_one("#capacity", Input).value == "3M"
            assert "already exists" in message(again, "name")
            assert (state_root / "images" / "x.img").read_bytes() == b"someone else's"
    finally:
        ctl.close()


async def test_a_clone_into_a_disk_pool_is_refused_beside_the_name(
        state_root: Path, tmp_path: Path):
    """A clone into a disk pool makes a partition, named as the kernel names it: the name
    is filled in when the pool is chosen, and another name is refused beside the new
    name before the dialog closes (the dialog closed, and the job failed)."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root)
        try:
            ctl.create_volume_def("default", VolumeDef(name="a.img", capacity=4 * MiB,
                                                       allocation=0)).wait(30)
            start_disk_pool(ctl, device)
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                table = app.screen.query_one("#volumes", VolumeTable)
                table.focus()
                table.select("a.img")
                await pilot.press("k")
                await settle(app, pilot)
                dialog = app.screen
                dialog.query_one("#pool", Select).value = "d"
                first = f"{os.path.basename(device)}p1"
                name = dialog.query_one("#new_name", Input)
                await wait_for(pilot, app, lambda: name.value == first)  # filled in
                dialog.query_one("#pool", Select).value = "default"  # and back
                await wait_for(pilot, app, lambda: name.value == "a-clone.img")
                dialog.query_one("#pool", Select).value = "d"
                await wait_for(pilot, app, lambda: name.value == first)
                name.value = "a-clone.img"  # typed: refused beside it
                await settle(app, pilot)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: f"'{first}'" in message(dialog, "new_name"))
                assert app.screen is dialog and ctl.list_volumes("d") == []
                dialog.query_one("#new_name", Input).value = first
                await settle(app, pilot)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: not ctl.jobs.running("d") and [
                    v.name for v in ctl.list_volumes("d")] == [first])
        finally:
            if ctl.store.is_active("d"):
                ctl.stop_pool("d")
            ctl.close()
