"""What the TUI shows must be readable and true in every mode it supports.

  * A verb that fails says "could not <do it>: <why>" as an error; it said the success
    text ("pool p started: <why>").
  * --ascii (and TERM=linux): the dialogs' one-row inputs and buttons got a full ASCII
    border that took their only row, so what was typed, the placeholders and the button
    labels were invisible (and the dialogs' footer was boxed away).
  * a radio button or a checkbox showed the same glyph on and off (Textual tells
    them apart by colour only); now the glyph differs, in Unicode and in ASCII mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, Input

from backends.controller import StorageController
from backends.drivers import features, pool_types
from tests.conftest import make_dir_pool
from tests.screentext import screen_text
from tests.settle import settle
from tui.app import PoolkeeperApp
from tui.dialogs import CreateVolumeDialog, DeletePoolDialog
from tui.dialogs.fields import Check, Radio

TYPES = {t: features(t) for t in pool_types()}


async def select(app: PoolkeeperApp, pilot, pool: str) -> None:
    """Move the pool tree's cursor to `pool`, as a user does."""
    await settle(app, pilot)
    app.main_screen.query_one("#pools").focus()
    for key in ["home"] + ["down"] * 6:
        await pilot.press(key)
        await settle(app, pilot, 1)
        if app.main_screen.selected == pool:
            return
    raise AssertionError(f"pool {pool} never selected")


async def open_screen(app: PoolkeeperApp, pilot, pool: str, key: str, kind: type) -> object:
    await select(app, pilot, pool)
    await pilot.press(key)
    for _ in range(100):
        await settle(app, pilot, 1)
        if isinstance(app.screen, kind):
            return app.screen
    raise AssertionError(f"{key} opened no {kind.__name__}: {app.screen_stack}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A state root with an active dir pool 'a' and an inactive, empty one 'b'."""
    state = tmp_path / "state"
    state.mkdir()
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "a", tmp_path / "a")
        make_dir_pool(ctl, "b", tmp_path / "b")
        ctl.stop_pool("b")
        ctl.store.mark_initialized()
    return state


# == a failure is said as a failure =======================================================
async def test_a_verb_that_fails_says_could_not(root: Path, tmp_path: Path) -> None:
    (tmp_path / "b").rmdir()  # pool-start fails: the directory is gone
    with StorageController(root) as ctl:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await settle(app, pilot)
            app.main_screen.run_verb("start pool b", "pool b started", ctl.start_pool, "b")
            await settle(app, pilot)
            app.main_screen.run_verb("stop pool a", "pool a stopped", ctl.stop_pool, "a")
            await settle(app, pilot)
            notes = [(n.message, n.severity) for n in app._notifications]
    failed = [n for n in notes if "b" in n[0]]
    assert len(failed) == 1, notes
    message, severity = failed[0]
    assert message.startswith("could not start pool b: ") and severity == "error", notes
    assert "does not exist" in message and "started" not in message, notes
    assert ("pool a stopped", "information") in notes  # success: the success text


async def test_the_start_key_on_a_pool_that_cannot_start_says_could_not(
        root: Path, tmp_path: Path) -> None:
    (tmp_path / "b").rmdir()
    with StorageController(root) as ctl:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40), notifications=True) as pilot:
            await select(app, pilot, "b")
            await pilot.press("s")
            await settle(app, pilot)
            notes = [n.message for n in app._notifications]
    assert any(n.startswith("could not start pool b: ") for n in notes), notes
    assert not any("pool b started" in n for n in notes), notes


# == --ascii: inputs and buttons are visible ==============================================
async def test_ascii_dialog_inputs_and_buttons_are_visible(root: Path) -> None:
    with StorageController(root) as ctl:
        app = PoolkeeperApp(ctl, ascii=True, monitor_interval=None)
        async with app.run_test(size=(80, 24)) as pilot:
            dialog = await open_screen(app, pilot, "a", "c", CreateVolumeDialog)
            await pilot.press(*"vm1")
            await settle(app, pilot)
            text = screen_text(app)
            inputs = [i for i in dialog.query(Input) if i.display and i.parent.display]
            assert inputs
            for box in inputs:
                assert box.content_region.height >= 1, (box, box.region)
                assert box.styles.border_left[0] == "ascii", box.styles.border
            assert "|vm1" in text, text  # typed, between its side bars
            assert "e.g. 10G or 512MiB" in text, text  # a placeholder
            for button in dialog.query(Button):
                assert button.content_region.height >= 1, button
                assert str(button.label) in text, (button.label, text)
            footer = text.rstrip("\n").splitlines()[-1]
            assert "^s Create" in footer, footer
            assert text.isascii()


# == on and off differ in the glyph, with colour, without it, in ASCII ======================
def mark(text: str, label: str) -> str:
    """The toggle's mark drawn before `label`."""
    line = next(ln for ln in text.splitlines() if label in ln)
    return line[:line.index(label)].rstrip()[-3:]


@pytest.mark.parametrize("no_color", [True, False], ids=["no-color", "color"])
@pytest.mark.parametrize("ascii", [False, True], ids=["unicode", "ascii"])
async def test_toggles_show_on_and_off_apart(root: Path, ascii: bool, no_color: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    with StorageController(root) as ctl:
        app = PoolkeeperApp(ctl, ascii=ascii, monitor_interval=None)
        async with app.run_test(size=(100, 30)) as pilot:
            assert app.no_color == no_color
            # radio buttons: the delete dialog (undefine chosen, destroy not)
            dialog = await open_screen(app, pilot, "b", "X", DeletePoolDialog)
            radios = list(dialog.query(Radio))
            assert [r.value for r in radios] == [True, False]
            text = screen_text(app)
            on = mark(text, "undefine only (keep the data)")
            off = mark(text, "destroy the storage and undefine")
            assert on != off, (on, off)
            await pilot.press("escape")
            await settle(app, pilot)
            # checkboxes: the create dialog's "sparse", off and then on
            dialog = await open_screen(app, pilot, "a", "c", CreateVolumeDialog)
            check = dialog.query(Check).first()
            label = str(check.label)
            assert not check.value
            unchecked = mark(screen_text(app), label)
            check.value = True
            await settle(app, pilot)
            checked = mark(screen_text(app), label)
            assert checked != unchecked, (checked, unchecked)
            if ascii:
                assert (on, off, checked, unchecked) == ("(*)", "( )", "[X]", "[ ]")


@pytest.mark.parametrize("no_color", [True, False], ids=["no-color", "color"])
@pytest.mark.parametrize("ascii", [False, True], ids=["unicode", "ascii"])
async def test_device_picker_shows_marked_and_unmarked_apart(
        ascii: bool, no_color: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The define dialog's device picker (a SelectionList) drew an X in every box, marked
    or not, in ASCII mode too ([X]); colour alone told them apart."""
    from tests.tui.test_dialogs import FakeDevices, no_discover, opened, pick_devices, set_type
    from tui.dialogs import DefinePoolDialog

    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    async with opened(DefinePoolDialog(no_discover, types=TYPES, devices=FakeDevices(),
                                       ascii=ascii),
                      size=(120, 40)) as (app, pilot):
        assert app.no_color == no_color
        await set_type(pilot, "logical")
        picker = await pick_devices(pilot, app)
        await pilot.press("space")  # marks /dev/sdb
        await pilot.pause()
        assert picker.selected == ["/dev/sdb"]
        text = screen_text(app)
        marked, unmarked = mark(text, "/dev/sdb  8.00 GiB"), mark(text, "/dev/sdc  16.00 GiB")
        assert marked != unmarked, (marked, unmarked)
        if ascii:
            assert (marked, unmarked) == ("[X]", "[ ]")
