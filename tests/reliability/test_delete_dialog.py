"""The delete-pool dialog never erases what it did not show.

  * Busy is not "cannot tell": a pool whose lock another job or process holds while the
    dialog looks inside is shown as busy, and destroying is unavailable (it offered to
    force, which, once the lock was free, erased whatever the storage held by then).
    Told apart by the exception's type (backends.errors.Busy), never by its text.
  * The dialog's choice carries the volumes it listed; controller.delete_pool(...,
    expected=names) refuses under the pool lock if the storage holds anything else, so a
    volume made after the list was shown is never erased unseen. The CLI's --force (no
    list) is unchanged.
  * dir and netfs pools only remove an empty directory: the dialog says up front that
    the directory is not empty (naming its entries) and destroying is unavailable,
    instead of failing after the name was typed.
  * The footer names the primary action the button names ("^s Destroy").
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import RadioButton, Static

from backends.controller import StorageController
from backends.errors import StateError
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice, VolumeDef
from tests.loopfs import can_use_loop_devices, loops_of, release_partitioned
from tests.screentext import screen_text
from tests.settle import settle
from tui.app import PoolkeeperApp
from tui.dialogs import DeletePoolDialog

needs_loops = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")
MiB = 1 << 20


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def open_dialog(app: PoolkeeperApp, pilot) -> DeletePoolDialog:
    await settle(app, pilot)
    app.main_screen.query_one("#pools").focus()
    await pilot.press("X")
    for _ in range(100):
        await settle(app, pilot, 1)
        if isinstance(app.screen, DeletePoolDialog):
            return app.screen
    raise AssertionError(f"no delete dialog: {app.screen_stack}")


async def destroy_with_the_name(pilot, dialog: DeletePoolDialog, name: str) -> None:
    """What a user does to destroy: pick the option, type the name, ctrl+s."""
    await pilot.press("down", "enter")
    await pilot.pause()
    confirm = dialog.query_one("#confirm Input")
    if confirm.display and confirm.parent.display:  # shown only once destroy is chosen
        confirm.focus()
        await pilot.press(*name)
    await pilot.press("ctrl+s")


def recording(ctl: StorageController) -> list[dict[str, Any]]:
    """The delete_pool calls the TUI makes (the real one runs)."""
    calls: list[dict[str, Any]] = []
    real = ctl.delete_pool

    def delete_pool(name: str, force: bool = False, expected: Any = None) -> None:
        calls.append({"name": name, "force": force, "expected": expected})
        real(name, force=force, **({} if expected is None else {"expected": expected}))

    ctl.delete_pool = delete_pool  # type: ignore[method-assign]
    return calls


@pytest.fixture
def fs_pool(ctl: StorageController, tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """An inactive fs pool 'p' on an ext4 image holding the volumes named."""
    made: list[Path] = []

    def make(*volumes: str) -> Path:
        image = tmp_path / "fs.img"
        with open(image, "wb") as fh:
            fh.truncate(64 * MiB)
        made.append(image)
        ctl.define_pool_def(PoolDef(type="fs", name="p", source=PoolSource(
            devices=[SourceDevice(str(image))], format="ext4"),
            target=PoolTarget(str(tmp_path / "mnt"))))
        ctl.build_pool("p").wait(120)
        add_volumes(ctl, *volumes)
        return image

    try:
        yield make
    finally:
        if "p" in ctl.pool_names() and ctl.store.is_active("p"):
            ctl.stop_pool("p")
        for image in made:
            for dev in loops_of(image):
                release_partitioned(dev, image)


def add_volumes(ctl: StorageController, *names: str) -> None:
    ctl.start_pool("p")
    for name in names:
        ctl.create_volume_def("p", VolumeDef(name=name, capacity=MiB)).wait(60)
    ctl.stop_pool("p")


def has_ext4(image: Path) -> bool:
    done = subprocess.run(["blkid", "-p", "-o", "value", "-s", "TYPE", str(image)],
                          capture_output=True, text=True)
    return done.stdout.strip() == "ext4"


# == Busy is never a reason to force ======================================================
@needs_loops
async def test_a_busy_pool_is_never_offered_for_forcing(ctl, fs_pool) -> None:
    image = fs_pool("guest.img")
    before = sha(image)
    calls = recording(ctl)
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        # another holder of the pool lock (a job, another poolkeeper) while it looks
        with ctl.locks.pool("p", exclusive=True, what="building", wait=0):
            dialog = await open_dialog(app, pilot)
        text = str(dialog.query_one("#holds", Static).render())
        assert "busy" in text and "erases whatever is there" not in text, text
        assert dialog.query_one("#opt-destroy", RadioButton).disabled
        # the lock is free now: the user tries to destroy all the same
        await destroy_with_the_name(pilot, dialog, "p")
        await settle(app, pilot)
    assert not any(call["force"] for call in calls), calls
    assert sha(image) == before and has_ext4(image)


# == a volume made after the list was shown is never erased unseen ========================
@needs_loops
def test_delete_with_an_expected_list_refuses_what_changed(ctl, fs_pool) -> None:
    image = fs_pool("a.img", "b.img")
    before = sha(image)
    with pytest.raises(StateError, match=r"pool 'p' changed since its volumes were listed: "
                                         r"it now also holds b\.img\. Nothing was erased"):
        ctl.delete_pool("p", force=True, expected=["a.img"])
    with pytest.raises(StateError, match=r"c\.img is gone"):
        ctl.delete_pool("p", force=True, expected=["a.img", "b.img", "c.img"])
    assert sha(image) == before and has_ext4(image)
    ctl.delete_pool("p", force=True, expected=["b.img", "a.img"])  # the same, any order
    assert not has_ext4(image)


@needs_loops
async def test_the_dialog_never_erases_a_volume_made_after_it_listed_them(ctl, fs_pool
                                                                          ) -> None:
    image = fs_pool("a.img")
    calls = recording(ctl)
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        dialog = await open_dialog(app, pilot)
        assert "still holds 1 volume: a.img" in str(dialog.query_one("#holds",
                                                                     Static).render())
        add_volumes(ctl, "late.img")  # meanwhile, elsewhere
        before = sha(image)
        await destroy_with_the_name(pilot, dialog, "p")
        await settle(app, pilot)
        notes = [n.message for n in app._notifications]
    assert calls == [{"name": "p", "force": True, "expected": ("a.img",)}], calls
    assert any(n.startswith("could not remove pool p: pool 'p' changed since its volumes "
                            "were listed: it now also holds late.img") for n in notes), notes
    assert sha(image) == before and has_ext4(image)
    assert "p" in ctl.pool_names()


# == dir and netfs: said up front =========================================================
async def test_a_dir_pool_that_is_not_empty_says_so_before_a_name_is_typed(ctl, tmp_path
                                                                           ) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep.img").write_bytes(b"data")
    (target / "notes.txt").write_bytes(b"mine")
    ctl.define_pool_def(PoolDef(type="dir", name="p", target=PoolTarget(str(target))))
    calls = recording(ctl)
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(app, pilot)
        text = str(dialog.query_one("#holds", Static).render())
        assert "The directory is not empty (2 entries: keep.img, notes.txt)" in text, text
        assert dialog.query_one("#opt-destroy", RadioButton).disabled
        await destroy_with_the_name(pilot, dialog, "p")
        await settle(app, pilot)
    assert calls == []  # never tried
    assert sorted(p.name for p in target.iterdir()) == ["keep.img", "notes.txt"]


async def test_the_footer_names_what_the_button_does(ctl, tmp_path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    ctl.define_pool_def(PoolDef(type="dir", name="p", target=PoolTarget(str(target))))
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        dialog = await open_dialog(app, pilot)
        footer = screen_text(app).splitlines()[-1]
        assert "Undefine" in footer and "Destroy" not in footer, footer
        await pilot.press("down", "enter")
        await settle(app, pilot)
        assert str(dialog.query_one("#submit").label) == "Destroy"
        footer = screen_text(app).splitlines()[-1]
        assert "Destroy" in footer and "Undefine" not in footer, footer
        dialog.query_one("#confirm Input").focus()
        await pilot.press("p", "ctrl+s")
        await settle(app, pilot)
    assert "p" not in ctl.pool_names() and not target.exists()
