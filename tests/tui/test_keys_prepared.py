"""Keys typed while the main screen prepares a dialog never reach the main screen (issue
15, item 6): `X` looks at the storage in a worker before the delete dialog opens, and keys
typed meanwhile (the pool's name to confirm, in a laggy moment) went to the main screen,
where `s` starts or stops the selected pool and Down selects another. Now they wait for
the dialog and go to it; if it does not open they are dropped, and Escape cancels.

The worker is slowed by a gate on the controller method it calls (the method itself runs
for real afterwards); keys are queued at once, as a terminal delivers a burst. The same in
a real terminal: tests/reliability/test_tui_keys.py (..._while_the_delete_dialog_is_...).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Static

from backends.controller import StorageController
from tests.conftest import make_dir_pool
from tests.reliability.test_tui_keys import settle
from tests.tui.test_keys_focus import send, typed
from tui.app import PoolkeeperApp
from tui.dialogs import BuildPoolDialog, DefinePoolDialog, DeletePoolDialog
from tui.dialogs.fields import TypedConfirm
from tui.screens.help import HelpScreen

GATE_CAP = 30.0  # s a held worker waits at most (a cap, not a measure)


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


def gated(monkeypatch: pytest.MonkeyPatch, ctl: StorageController, method: str,
          then: Callable[..., Any] | None = None) -> tuple[threading.Event, threading.Event]:
    """ctl.<method> waits for the returned gate, then runs `then` (the real method by
    default). Returns (looking: the worker has begun, gate)."""
    looking, gate = threading.Event(), threading.Event()
    run = then or getattr(ctl, method)

    def held(*args: Any, **kwargs: Any) -> Any:
        looking.set()
        gate.wait(GATE_CAP)
        return run(*args, **kwargs)

    monkeypatch.setattr(ctl, method, held)
    return looking, gate


def notices(app: PoolkeeperApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


def status(app: PoolkeeperApp) -> str:
    return str(app.main_screen.query_one("#status", Static).render())


async def on_fs1(app: PoolkeeperApp, pilot: Any) -> None:
    await settle(app, pilot)
    app.main_screen.select_pool("fs1")
    app.main_screen.tree.focus()
    await settle(app, pilot)


async def begun(looking: threading.Event, app: PoolkeeperApp, pilot: Any) -> None:
    """The worker is held, and every key sent has been read."""
    assert await asyncio.to_thread(looking.wait, GATE_CAP)
    for _ in range(100):
        if app.keys_seen >= app.keys_sent:
            break
        await pilot.pause(0.05)
    await pilot.pause(0.3)  # (before: the keys were handled by the main screen by now)


async def test_the_name_typed_with_x_fills_the_delete_dialog_once_it_opens(
        controller: StorageController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    """`X`, then Down Space Tab and the name, in one burst while the storage is looked
    into. Before: Down selected `default` on the main screen, `s` (in "fs1") stopped it,
    and the dialog opened empty, on `default`."""
    looking, gate = gated(monkeypatch, controller, "stored_volumes")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await on_fs1(app, pilot)
        send(app, ["X", "down", "space", "tab", *"fs1"])
        await begun(looking, app, pilot)
        assert app.screen is app.main_screen  # not open yet: the keys wait
        assert app.main_screen.selected == "fs1"
        assert controller.pool_info("default").active
        assert not controller.pool_info("fs1").active
        assert "preparing the delete dialog... (Esc cancels)" in status(app)
        gate.set()
        await typed(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, DeletePoolDialog) and dialog.pool.name == "fs1"
        assert str(dialog.query_one("#submit").label) == "Destroy"
        assert dialog.query_one("#confirm", TypedConfirm).input.value == "fs1"
        assert "preparing" not in status(app)
        send(app, ["enter"])
        await typed(app, pilot)
        assert app.screen is app.main_screen
        assert "fs1" not in [p.name for p in controller.list_pools()]
        assert not (tmp_path / "fs1").exists()  # destroyed, as the dialog said
        assert controller.pool_info("default").active


async def test_a_name_typed_behind_n_keeps_its_first_letter_n(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch) -> None:
    """`n` and the new pool's name typed at once: the name's own first `n` is not taken
    for `n` typed again (that rule is the XML view's only: it has no field)."""
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        await settle(app, pilot)
        app.main_screen.tree.focus()
        app.main_screen.pool_types = None  # not read yet: `n` prepares the form
        looking, gate = gated(monkeypatch, controller, "pool_types")
        await settle(app, pilot)
        send(app, ["n", *"nfs1"])
        await begun(looking, app, pilot)
        gate.set()
        await typed(app, pilot)
        assert isinstance(app.screen, DefinePoolDialog), app.screen_stack
        assert app.screen.query_one("#name", Input).value == "nfs1"


async def test_keys_typed_while_a_screen_is_prepared_are_dropped_when_it_does_not_open(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch) -> None:
    """The XML cannot be read (the pool went away meanwhile): nothing opens, and the keys
    typed for it are dropped, said in a notice. Before, `s` stopped `default` and `a`
    turned its autostart on."""
    real = controller.pool_xml
    looking, gate = gated(monkeypatch, controller, "pool_xml",
                          lambda *args, **kwargs: real("no-such-pool"))
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        app.main_screen.tree.focus()
        await settle(app, pilot)
        assert app.main_screen.selected == "default"
        autostart = controller.pool_info("default").autostart
        send(app, ["x", "s", "a", "down"])
        await begun(looking, app, pilot)
        gate.set()
        await typed(app, pilot)
        assert app.screen is app.main_screen
        assert controller.pool_info("default").active  # `s` never reached it
        assert controller.pool_info("default").autostart == autostart  # nor `a`
        assert app.main_screen.selected == "default"  # nor Down
        said = notices(app)
        assert any("could not read the XML of pool default" in n for n in said), said
        assert any("3 keys typed while the XML of pool default was being prepared were "
                   "dropped" in n for n in said), said
        send(app, ["a"])  # and keys go to the main screen again
        await typed(app, pilot)
        for _ in range(100):
            if controller.pool_info("default").autostart != autostart:
                break
            await pilot.pause(0.05)
        assert controller.pool_info("default").autostart != autostart


async def test_escape_cancels_a_dialog_being_prepared(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch) -> None:
    """Escape while the delete dialog is prepared: the keys typed for it are dropped, it
    does not open when the look is done, and X opens it again afterwards. Before, `s`
    started fs1 and the dialog opened anyway."""
    looking, gate = gated(monkeypatch, controller, "stored_volumes")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await on_fs1(app, pilot)
        send(app, ["X", "s", "escape"])
        await begun(looking, app, pilot)
        said = notices(app)
        assert any("cancelled: the delete dialog of pool fs1 will not open; 1 key typed "
                   "for it was dropped" in n for n in said), said
        assert "preparing" not in status(app)
        gate.set()
        await typed(app, pilot)
        await settle(app, pilot)
        assert app.screen is app.main_screen  # its result was not shown
        assert not controller.pool_info("fs1").active
        assert controller.pool_info("default").active
        send(app, ["X"])  # asked again, it opens
        await typed(app, pilot)
        assert isinstance(app.screen, DeletePoolDialog)


async def test_keys_for_a_prepared_dialog_never_go_to_a_screen_that_came_on_top(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another screen comes on top while keys wait (a screen no key asked for, as a
    worker's is): they were typed for the prepared dialog, so they are dropped, and that
    dialog does not open later over the main screen, where keys typed next would land in
    it."""
    looking, gate = gated(monkeypatch, controller, "stored_volumes")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await on_fs1(app, pilot)
        send(app, ["X", "s"])
        await begun(looking, app, pilot)
        app.main_screen.action_help()
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        said = notices(app)
        assert any("the delete dialog of pool fs1 was not opened: another screen was "
                   "opened meanwhile" in n and "1 key typed for it was dropped" in n
                   for n in said), said
        send(app, ["escape"])  # typed at the help: closes it
        await typed(app, pilot)
        assert app.screen is app.main_screen
        gate.set()
        await settle(app, pilot)
        assert app.screen is app.main_screen
        assert not controller.pool_info("fs1").active


async def test_keys_typed_while_the_editor_is_prepared_are_dropped(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch) -> None:
    """`e` fetches the definition first; the editor then reads the terminal itself, so
    keys typed meanwhile cannot go to it: they are dropped (before: `s` stopped the
    pool)."""
    looking, gate = gated(monkeypatch, controller, "pool_xml")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await settle(app, pilot)
        app.main_screen.tree.focus()
        send(app, ["e", "s"])
        await begun(looking, app, pilot)
        gate.set()
        await typed(app, pilot)
        await settle(app, pilot)
        assert controller.pool_info("default").active
        said = notices(app)
        assert any("1 key typed while the editor for pool default was being prepared was "
                   "dropped" in n for n in said), said


# == a burst in the dialog itself ========================================================
@pytest.mark.parametrize("dialog_type, key, to_mode", [
    (DeletePoolDialog, "X", ["down", "space"]),
    (BuildPoolDialog, "b", ["down", "down", "space"]),
])
async def test_space_and_tab_typed_together_reach_the_confirmation(
        controller: StorageController, dialog_type: type, key: str, to_mode: list[str]
        ) -> None:
    """Choosing the destructive mode shows 'type NAME to confirm'; a Tab typed with that
    Space went by the layout from before the field was shown and focused Cancel (the
    name was lost, Enter then cancelled). A focus key now waits for the layout."""
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24)) as pilot:
        await on_fs1(app, pilot)
        send(app, [key])
        await typed(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, dialog_type)
        send(app, [*to_mode, "tab", *"fs1"])
        await typed(app, pilot)
        confirm = dialog.query_one("#confirm", TypedConfirm)
        assert app.screen.focused is confirm.input
        assert confirm.input.value == "fs1"
        assert not dialog.query_one("#submit").disabled  # the typed name opened it


async def test_keys_typed_after_a_dialog_chosen_in_the_palette_go_to_it(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch) -> None:
    """The palette's "Delete pool" prepares the dialog as X does (the palette closes as
    it starts, and must not count as a screen that came on top): keys typed meanwhile
    wait for the dialog, as they do after X."""
    looking, gate = gated(monkeypatch, controller, "stored_volumes")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await on_fs1(app, pilot)
        await pilot.press("ctrl+p")
        await settle(app, pilot)
        await pilot.press(*"Delete pool")
        await settle(app, pilot)
        send(app, ["enter"])  # (keys typed with it are dropped: the palette closes)
        assert await asyncio.to_thread(looking.wait, GATE_CAP)
        send(app, ["down", "space", "tab", *"fs1"])
        await begun(looking, app, pilot)
        assert app.screen is app.main_screen
        assert not controller.pool_info("fs1").active
        gate.set()
        await typed(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, DeletePoolDialog), (app.screen_stack, notices(app))
        assert dialog.query_one("#confirm", TypedConfirm).input.value == "fs1"
