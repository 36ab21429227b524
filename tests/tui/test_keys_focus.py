"""Keys typed together are handled in order, each by the widget that has focus once the
keys before it are done; keys typed at a closing dialog never reach the main screen; a
delete acts on what its dialog displayed (issue 15, items 6 and 7: tui.textual_fixes.KeyOrderApp).

Keys are queued at once on the driver, as a terminal delivers a burst (no wait between
them, unlike Pilot.press); the real terminal's version is in
tests/reliability/test_tui_keys.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input

from backends.controller import StorageController
from backends.model import VolumeDef
from tests.conftest import make_dir_pool
from tests.reliability.test_tui_keys import send as send_burst
from tests.reliability.test_tui_keys import settle
from tui.app import PoolkeeperApp
from tui.dialogs import CreateVolumeDialog, DeletePoolDialog


@pytest.fixture
def controller(state_root: Path, tmp_path: Path) -> Iterator[StorageController]:
    """Running pool `default`, stopped pool `fs1` (an empty directory: destroyable)."""
    ctl = StorageController(state_root, create_default=False)
    try:
        make_dir_pool(ctl, "default", tmp_path / "default")
        make_dir_pool(ctl, "fs1", tmp_path / "fs1")
        ctl.stop_pool("fs1")
        ctl.store.mark_initialized()
        yield ctl
    finally:
        ctl.close()


def send(app: PoolkeeperApp, keys: list[str]) -> None:
    app.keys_sent = getattr(app, "keys_sent", 0) + len(keys)
    send_burst(app, keys)


def send_paste(app: PoolkeeperApp, text: str) -> None:
    app.keys_sent = getattr(app, "keys_sent", 0) + 1
    paste = events.Paste(text)
    paste.set_sender(app)
    app._driver.send_message(paste)


async def typed(app: PoolkeeperApp, pilot) -> None:
    """Wait until every key sent was read and handled (KeyOrderApp holds them), then
    settle. (Before KeyOrderApp: a fixed pause.)"""
    if not hasattr(app, "keys_seen"):
        await pilot.pause(1)
        await settle(app, pilot)
        return
    for _ in range(600):
        if (getattr(app, "keys_seen", 0) >= app.keys_sent and app._current is None
                and not app._held):
            break
        await pilot.pause(0.05)
    await settle(app, pilot)


def field(app: PoolkeeperApp, control_id: str) -> str:
    return app.screen.query_one(f"#{control_id}", Input).value


async def open_create(app: PoolkeeperApp, pilot) -> None:
    await settle(app, pilot)
    await pilot.press("c")
    await settle(app, pilot)
    assert isinstance(app.screen, CreateVolumeDialog)


# == item 7: each key to the field that has focus once the keys before it are done ======
async def test_a_tab_typed_between_letters_moves_focus_before_the_next_letter(
        controller: StorageController) -> None:
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        await open_create(app, pilot)
        send(app, ["a", "tab", "b"])
        await typed(app, pilot)
        assert (field(app, "name"), field(app, "capacity")) == ("a", "b")


async def test_a_name_tab_and_size_typed_together_fill_two_fields(
        controller: StorageController) -> None:
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        await open_create(app, pilot)
        send(app, [*"v.img", "tab", "1", "G"])
        await typed(app, pilot)
        assert (field(app, "name"), field(app, "capacity")) == ("v.img", "1G")


async def test_enter_in_a_field_moves_on_before_the_next_key(
        controller: StorageController) -> None:
    """Enter moves to the next field by a message of its own (Input.Submitted): the keys
    behind it wait for that too."""
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        await open_create(app, pilot)
        send(app, [*"w.img", "enter", "2", "M"])
        await typed(app, pilot)
        assert (field(app, "name"), field(app, "capacity")) == ("w.img", "2M")


async def test_a_paste_with_a_tab_fills_the_fields_a_tab_would(
        controller: StorageController) -> None:
    """Decision: in a dialog, a tab in pasted text moves to the next field, as typing it
    does; keys typed behind the paste come after it."""
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        await open_create(app, pilot)
        send_paste(app, "p.img\t3M")
        send(app, ["tab", "tab"])
        await typed(app, pilot)
        assert (field(app, "name"), field(app, "capacity")) == ("p.img", "3M")
        assert app.screen.focused is not None
        assert app.screen.focused.id not in ("name", "capacity")  # the tabs came after


async def test_a_paste_without_a_tab_is_text_for_the_focused_field(
        controller: StorageController) -> None:
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        await open_create(app, pilot)
        send_paste(app, "q 1.img")
        await typed(app, pilot)
        assert (field(app, "name"), field(app, "capacity")) == ("q 1.img", "")


# == item 6: keys never reach the screen beneath a dialog ===============================
async def open_delete_fs1_destroy(app: PoolkeeperApp, pilot) -> DeletePoolDialog:
    await settle(app, pilot)
    app.main_screen.select_pool("fs1")
    await settle(app, pilot)
    await pilot.press("X")
    await settle(app, pilot)
    dialog = app.screen
    assert isinstance(dialog, DeletePoolDialog) and dialog.pool.name == "fs1"
    await pilot.press("down", "space", "tab", *"fs1")
    await settle(app, pilot)
    assert str(dialog.query_one("#submit").label) == "Destroy"
    return dialog


@pytest.mark.parametrize("confirm", ["enter", "ctrl+s"])
async def test_a_key_typed_behind_the_confirming_key_never_reaches_the_main_screen(
        controller: StorageController, tmp_path: Path, confirm: str) -> None:
    """`s` typed right behind the key that confirms the delete: before, it stopped the
    pool selected on the main screen (ctrl+s) or went into the typed name (enter: 'fs1s'
    was then refused)."""
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        await open_delete_fs1_destroy(app, pilot)
        send(app, [confirm, "s"])
        await typed(app, pilot)
        await settle(app, pilot)
        assert app.screen is app.main_screen
        assert "fs1" not in [p.name for p in controller.list_pools()]
        assert not (tmp_path / "fs1").exists()  # destroyed, as the dialog said
        assert controller.pool_info("default").active  # `s` was dropped
        assert app.dropped_keys >= 1


# == item 6: a destructive confirmation acts on what it displayed =======================
async def test_delete_pool_acts_on_the_pool_and_mode_it_displayed(
        controller: StorageController, tmp_path: Path) -> None:
    """The selection behind the dialog moves (a click, the monitor) before the confirm:
    the pool the dialog named, in the mode it showed, is the one acted on."""
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        dialog = await open_delete_fs1_destroy(app, pilot)
        app.main_screen.select_pool("default")  # behind the dialog
        await settle(app, pilot)
        assert dialog.query_one("#submit").label.plain == "Destroy"
        send(app, ["enter"])
        await typed(app, pilot)
        assert [p.name for p in controller.list_pools()] == ["default"]
        assert not (tmp_path / "fs1").exists()  # destroyed, not only undefined
        assert controller.pool_info("default").active
        assert (tmp_path / "default").is_dir()


async def test_delete_volume_acts_on_the_volume_it_displayed(
        controller: StorageController) -> None:
    for name in ("a.img", "b.img"):
        controller.create_volume_def("default", VolumeDef(name=name, capacity=1 << 20,
                                                          allocation=None)).wait(60)
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 30)) as pilot:
        await settle(app, pilot)
        app.main_screen.table.focus()
        await pilot.press("home")
        await settle(app, pilot)
        assert app.main_screen.table.cursor_volume.name == "a.img"
        await pilot.press("delete")
        await settle(app, pilot)
        dialog = app.screen
        await pilot.press(*"a.img")  # the typed name (focused first)
        await settle(app, pilot)
        app.main_screen.table.action_cursor_down()  # behind the dialog: onto b.img
        await settle(app, pilot)
        assert app.main_screen.table.cursor_volume.name == "b.img"
        assert app.screen is dialog
        send(app, ["enter"])
        await typed(app, pilot)
        await settle(app, pilot)
        assert [v.name for v in controller.list_volumes("default")] == ["b.img"]
