"""Checked forms refused after their check: the clone, resize, create and define dialogs
open again with what was typed and why when the verb refuses at its start (the storage
changed since the dialog's check) or in its job (another program partitioned the disk);
the resize dialog is checked by the back end before it closes; a clone the target pool's
driver would refuse in its job (a qcow2 image into a disk pool) is refused up front.
On real dir pools, a real disk on a loop device and a real LVM volume group."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from textual.widgets import Input, Select

from backends import blockprobe, runner
from backends.controller import StorageController
from backends.model import (
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    VolumeDef,
    VolumeTarget,
)
from tests.loopfs import loop_device
from tests.lvmenv import lvm_fixture  # noqa: F401 (fixture 'lvm')
from tui.app import PoolkeeperApp
from tui.dialogs import (
    CloneVolumeDialog,
    CreateVolumeDialog,
    DefinePoolDialog,
    ResizeVolumeDialog,
)
from tui.screens.main import MainScreen
from tui.widgets.volume_table import VolumeTable

from .test_app import settle
from .test_app_disk import start_disk_pool
from .test_checked_forms import message, open_create
from .test_flows import wait_for

MiB = 1 << 20


def form_error(dialog) -> str:
    """The line above the buttons (a refusal that names no field)."""
    return str(dialog.query_one("#form-message").render())


async def open_on(app: PoolkeeperApp, pilot, pool: str, volume: str, key: str):
    screen = app.screen
    assert isinstance(screen, MainScreen)
    screen.select_pool(pool)
    await settle(app, pilot)
    table = screen.query_one("#volumes", VolumeTable)
    await wait_for(pilot, app, lambda: volume in table.visible_names())
    table.focus()
    table.select(volume)
    await pilot.press(key)
    await settle(app, pilot)
    return app.screen


def stop(ctl: StorageController, pool: str = "d") -> None:
    if ctl.store.is_active(pool):
        ctl.stop_pool(pool)
    ctl.close()


async def test_a_clone_refused_at_its_start_reopens_the_dialog_with_the_input(
        state_root: Path):
    """A race: the dialog's check passed, then another process made a file of the new
    name before the clone started. The clone dialog opens again with the name typed and
    why (it said so in a notice, and what was typed was lost)."""
    ctl = StorageController(state_root)
    ctl.create_volume_def("default", VolumeDef(name="a.img", capacity=4 * MiB,
                                               allocation=0)).wait(30)
    checked = ctl.check_clone

    def check_then_race(pool: str, source: str, new_name: str, **kwargs):
        refusal = checked(pool, source, new_name, **kwargs)
        (state_root / "images" / new_name).write_bytes(b"someone else's")
        return refusal

    ctl.check_clone = check_then_race  # type: ignore[method-assign]
    try:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            dialog = await open_on(app, pilot, "default", "a.img", "k")
            assert isinstance(dialog, CloneVolumeDialog)
            dialog.query_one("#new_name", Input).value = "mine.img"
            await settle(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: isinstance(app.screen, CloneVolumeDialog)
                           and app.screen is not dialog)
            again = app.screen
            await settle(app, pilot)
            assert again.query_one("#new_name", Input).value == "mine.img"
            assert again.query_one("#pool", Select).value == "default"
            await wait_for(pilot, app, lambda: "already exists" in message(again, "new_name"))
            assert (state_root / "images" / "mine.img").read_bytes() == b"someone else's"
    finally:
        ctl.close()


async def test_a_qcow2_clone_into_a_disk_pool_is_refused_before_the_dialog_closes(
        state_root: Path, tmp_path: Path):
    """A partition gets a volume's bytes as they are, so a qcow2 image is refused by the
    disk driver's clone. The dialog's check did not ask the driver what the clone makes
    (its clone_target), so the dialog closed and the job failed; now it stays open."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root)
        try:
            ctl.create_volume_def("default", VolumeDef(
                name="q.qcow2", capacity=4 * MiB,
                target=VolumeTarget(format="qcow2"))).wait(30)
            start_disk_pool(ctl, device)
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_on(app, pilot, "default", "q.qcow2", "k")
                dialog.query_one("#pool", Select).value = "d"
                first = f"{os.path.basename(device)}p1"
                name = dialog.query_one("#new_name", Input)
                await wait_for(pilot, app, lambda: name.value == first)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: "convert it to raw" in form_error(dialog))
                assert app.screen is dialog and name.value == first
                assert ctl.list_volumes("d") == []
                assert not [j for j in ctl.jobs.list() if j.kind == "clone"]
        finally:
            stop(ctl)


def two_partitions(ctl: StorageController, device: str, second: bool = True) -> str:
    """p1 (8 MiB at 1 MiB) and, if `second`, p2 right after it; returns p1's name."""
    base = os.path.basename(device)
    for n in (1, 2) if second else (1,):
        ctl.create_volume_def("d", VolumeDef(name=f"{base}p{n}", capacity=8 * MiB)).wait(60)
    return f"{base}p1"


async def test_a_resize_past_the_free_space_is_refused_beside_the_size(
        state_root: Path, tmp_path: Path):
    """A partition grows only into the free space right after it. The resize dialog
    closed and the job failed; now the back end checks it first: refused beside the
    size, the dialog open with what was typed, nothing changed."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            start_disk_pool(ctl, device)
            first = two_partitions(ctl, device)
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_on(app, pilot, "d", first, "z")
                assert isinstance(dialog, ResizeVolumeDialog)
                dialog.query_one("#size", Input).value = "12M"
                await settle(app, pilot)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app,
                               lambda: "can grow only into the free space" in message(dialog,
                                                                                      "size"))
                assert app.screen is dialog
                assert dialog.query_one("#size", Input).value == "12M"
                assert ctl.volume_info("d", first).capacity == 8 * MiB
                assert not [j for j in ctl.jobs.list() if j.kind == "resize"]
                dialog.query_one("#size", Input).value = "12MiB"  # the same size: still
                await settle(app, pilot)
                assert "can grow only" in message(dialog, "size")
        finally:
            stop(ctl)


async def test_a_resize_refused_at_its_start_reopens_the_dialog_with_the_input(
        state_root: Path, tmp_path: Path):
    """A race: the check passed, then a partition was made right after the one resized.
    The resize dialog opens again with the size typed and why."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            start_disk_pool(ctl, device)
            first = two_partitions(ctl, device, second=False)
            checked = ctl.check_resize
            second = first[:-1] + "2"

            def check_then_race(pool: str, name: str, capacity: int, **kwargs):
                refusal = checked(pool, name, capacity, **kwargs)
                ctl.create_volume_def("d", VolumeDef(name=second, capacity=8 * MiB)).wait(60)
                return refusal

            ctl.check_resize = check_then_race  # type: ignore[method-assign]
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_on(app, pilot, "d", first, "z")
                dialog.query_one("#size", Input).value = "+4M"
                await settle(app, pilot)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: isinstance(app.screen, ResizeVolumeDialog)
                               and app.screen is not dialog)
                again = app.screen
                await settle(app, pilot)
                assert again.query_one("#size", Input).value == "+4M"
                await wait_for(pilot, app, lambda: "can grow only into the free space" in
                               message(again, "size"))
                assert ctl.volume_info("d", first).capacity == 8 * MiB
        finally:
            stop(ctl)


def partition_meanwhile(ctl: StorageController, device: str, then=None) -> None:
    """Another program partitions the disk while the create's job waits for the disk's
    lock (the job was started after the check, so it is refused in the job)."""
    started = ctl.create_volume_def

    def start_then_partition(pool: str, vdef: VolumeDef):
        with blockprobe.disk_lock(device):
            job = started(pool, vdef)
            runner.run(["parted", "-s", device, "mkpart", "theirs", "1MiB", "5MiB"])
            if then is not None:
                then()
        return job

    ctl.create_volume_def = start_then_partition  # type: ignore[method-assign]


async def test_a_create_refused_in_its_job_reopens_the_dialog_with_the_input(
        state_root: Path, tmp_path: Path):
    """The check passed and the job started, then another program made a partition: the
    job refuses the name (the new partition is number 2 now). The job's failure was
    a notice only; now the create dialog opens again with the input and why."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            start_disk_pool(ctl, device)
            partition_meanwhile(ctl, device)
            base = os.path.basename(device)
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_create(app, pilot, "d")
                name = dialog.query_one("#name", Input)
                await wait_for(pilot, app, lambda: name.value == f"{base}p1")
                dialog.query_one("#capacity", Input).value = "8M"
                await settle(app, pilot)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: isinstance(app.screen, CreateVolumeDialog)
                               and app.screen is not dialog)
                again = app.screen
                await settle(app, pilot)
                assert again.query_one("#name", Input).value == f"{base}p1"
                assert again.query_one("#capacity", Input).value == "8M"
                await wait_for(pilot, app, lambda: f"'{base}p2'" in message(again, "name"))
                assert [j.state for j in ctl.jobs.list() if j.kind == "create"] == ["failed"]
        finally:
            stop(ctl)


async def test_a_create_refused_in_its_job_elsewhere_says_so_and_c_reopens_it(
        state_root: Path, tmp_path: Path):
    """The same refusal while the user looks at another pool: no dialog pops up there; the
    notice says what failed and that c opens the form again, and it does, with the
    input and why."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root)
        try:
            start_disk_pool(ctl, device)
            base = os.path.basename(device)
            app = PoolkeeperApp(ctl, monitor_interval=None)

            def look_elsewhere() -> None:
                screen = app.screen
                assert isinstance(screen, MainScreen)
                app.call_from_thread(screen.select_pool, "default")

            partition_meanwhile(ctl, device, look_elsewhere)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_create(app, pilot, "d")
                name = dialog.query_one("#name", Input)
                await wait_for(pilot, app, lambda: name.value == f"{base}p1")
                dialog.query_one("#capacity", Input).value = "8M"
                await settle(app, pilot)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: any(
                    "press c" in str(n.message) for n in app._notifications))
                screen = app.screen
                assert isinstance(screen, MainScreen) and screen.selected == "default"
                said = next(str(n.message) for n in app._notifications
                            if "press c" in str(n.message))
                assert f"could not create {base}p1" in said and f"'{base}p2'" in said
                screen.select_pool("d")
                await settle(app, pilot)
                await pilot.press("c")
                await wait_for(pilot, app, lambda: isinstance(app.screen, CreateVolumeDialog))
                again = app.screen
                await settle(app, pilot)
                assert again.query_one("#name", Input).value == f"{base}p1"
                assert again.query_one("#capacity", Input).value == "8M"
                # the refusal, or (once the table shows their partition) that name taken
                await wait_for(pilot, app, lambda: f"'{base}p" in message(again, "name"))
                await pilot.press("escape")
                await settle(app, pilot)
                await pilot.press("c")  # once: the next c opens a fresh form
                await wait_for(pilot, app, lambda: isinstance(app.screen, CreateVolumeDialog))
                await settle(app, pilot)
                assert app.screen.query_one("#capacity", Input).value == ""
        finally:
            stop(ctl)


async def test_a_define_refused_by_the_verb_reopens_the_dialog_with_the_input(
        state_root: Path, tmp_path: Path):
    """A race: the define dialog's check passed, then another pool with the same target
    was defined (by the CLI, say) before the define ran. The dialog opens again with the
    typed values and the refusal beside the target; the other pool is left as it was."""
    ctl = StorageController(state_root, create_default=False)
    checked = ctl.check_pool_def

    def check_then_race(pdef: PoolDef, new: bool = True):
        refusal = checked(pdef, new)
        ctl.define_pool_def(PoolDef(type="dir", name="theirs", target=pdef.target))
        return refusal

    ctl.check_pool_def = check_then_race  # type: ignore[method-assign]
    mine = str(tmp_path / "mine")
    try:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(140, 45)) as pilot:
            await settle(app, pilot)
            await pilot.press("n")
            await wait_for(pilot, app, lambda: isinstance(app.screen, DefinePoolDialog))
            dialog = app.screen
            dialog.query_one("#name", Input).value = "web"
            dialog.query_one("#target", Input).value = mine
            await settle(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: isinstance(app.screen, DefinePoolDialog)
                           and app.screen is not dialog)
            again = app.screen
            await settle(app, pilot)
            assert again.query_one("#type", Select).value == "dir"
            assert again.query_one("#name", Input).value == "web"
            assert again.query_one("#target", Input).value == mine
            await wait_for(pilot, app, lambda: "pool 'theirs'" in message(again, "target"))
            assert ctl.pool_names() == ["theirs"]
    finally:
        ctl.close()


async def test_a_clone_refused_in_its_job_reopens_the_dialog_with_the_input(
        state_root: Path, tmp_path: Path):
    """A clone into a disk pool whose job finds the disk partitioned meanwhile: the clone
    dialog opens again with the target pool and the name chosen, and why."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root)
        try:
            ctl.create_volume_def("default", VolumeDef(name="a.img", capacity=4 * MiB,
                                                       allocation=0)).wait(30)
            start_disk_pool(ctl, device)
            started = ctl.clone_volume

            def start_then_partition(*args, **kwargs):
                with blockprobe.disk_lock(device):
                    job = started(*args, **kwargs)
                    runner.run(["parted", "-s", device, "mkpart", "theirs", "1MiB", "5MiB"])
                return job

            ctl.clone_volume = start_then_partition  # type: ignore[method-assign]
            first = f"{os.path.basename(device)}p1"
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_on(app, pilot, "default", "a.img", "k")
                dialog.query_one("#pool", Select).value = "d"
                name = dialog.query_one("#new_name", Input)
                await wait_for(pilot, app, lambda: name.value == first)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: isinstance(app.screen, CloneVolumeDialog)
                               and app.screen is not dialog)
                again = app.screen
                await settle(app, pilot)
                assert again.query_one("#pool", Select).value == "d"
                assert again.query_one("#new_name", Input).value == first
                await wait_for(pilot, app,
                               lambda: first[:-1] + "2'" in message(again, "new_name"))
                assert [j.state for j in ctl.jobs.list() if j.kind == "clone"] == ["failed"]
        finally:
            stop(ctl)


async def test_a_resize_refused_in_its_job_reopens_the_dialog_with_the_input(
        state_root: Path, tmp_path: Path):
    """The check and the start passed, then, while the job waited for the disk, another
    program made a partition right after the one resized: the job refuses the growth,
    and the resize dialog opens again with the size typed and why."""
    with loop_device(tmp_path, 64) as device:
        ctl = StorageController(state_root, create_default=False)
        try:
            start_disk_pool(ctl, device)
            first = two_partitions(ctl, device, second=False)
            started = ctl.resize_volume

            def start_then_partition(*args, **kwargs):
                with blockprobe.disk_lock(device):
                    job = started(*args, **kwargs)
                    runner.run(["parted", "-s", device, "mkpart", "theirs", "9MiB", "13MiB"])
                return job

            ctl.resize_volume = start_then_partition  # type: ignore[method-assign]
            app = PoolkeeperApp(ctl, monitor_interval=None)
            async with app.run_test(size=(120, 40)) as pilot:
                await settle(app, pilot)
                dialog = await open_on(app, pilot, "d", first, "z")
                dialog.query_one("#size", Input).value = "+4M"
                await settle(app, pilot)
                await pilot.press("ctrl+s")
                await wait_for(pilot, app, lambda: isinstance(app.screen, ResizeVolumeDialog)
                               and app.screen is not dialog)
                again = app.screen
                await wait_for(pilot, app, lambda: "can grow only into the free space" in
                               message(again, "size"))
                assert again.query_one("#size", Input).value == "+4M"
                assert [j.state for j in ctl.jobs.list() if j.kind == "resize"] == ["failed"]
                assert ctl.volume_info("d", first).capacity == 8 * MiB
        finally:
            stop(ctl)


async def test_a_qcow2_clone_into_a_logical_pool_is_refused_before_the_dialog_closes(
        lvm, state_root: Path):  # noqa: F811 (the fixture)
    """An LV gets a volume's bytes as they are: the logical driver's clone refuses a qcow2
    image, and now its clone_target says so to the dialog's check (the job failed)."""
    vg = "pkt" + uuid.uuid4().hex[:8]
    device = lvm.disk(64)
    ctl = StorageController(state_root)
    try:
        ctl.create_volume_def("default", VolumeDef(
            name="q.qcow2", capacity=4 * MiB, target=VolumeTarget(format="qcow2"))).wait(30)
        ctl.define_pool_def(PoolDef(type="logical", name=vg, source=PoolSource(
            name=vg, devices=[SourceDevice(device)], format="lvm2"),
            target=PoolTarget(path=f"/dev/{vg}")))
        ctl.build_pool(vg).wait(60)
        ctl.start_pool(vg)
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            dialog = await open_on(app, pilot, "default", "q.qcow2", "k")
            dialog.query_one("#pool", Select).value = vg
            dialog.query_one("#new_name", Input).value = "copy"
            await settle(app, pilot)
            await pilot.press("ctrl+s")
            await wait_for(pilot, app, lambda: "convert it to raw" in form_error(dialog))
            assert app.screen is dialog and ctl.list_volumes(vg) == []
            assert not [j for j in ctl.jobs.list() if j.kind == "clone"]
    finally:
        stop(ctl, vg)
