"""Two ways the key storm in a real terminal (test_tui_keys.py) killed
the app with RecursionError.

1. Screens a worker opens (the XML view, the build, delete and secret dialogs, a refused
   edit) were pushed once the worker was done, over whatever was on top: `x x x` typed
   faster than the XML loads stacked one view per key, and a few dozen stacked modal
   screens overflowed Python's stack when drawn (each draws the one beneath it). Now one
   is prepared at a time and it opens only over the main screen; a result that comes back
   once the user opened something else is not put over it, and a notice says so.
2. A dialog's after_refresh hook that shows a TypedConfirm called refresh_form from inside
   itself; on a dialog being closed the confirm's display reads False whatever it is set
   to, so it recursed until the stack ran out. Now a nested call asks for one more pass
   (at most a few), run after the hook returns.

The workers are held (a gate on the controller method they call; the engine itself runs
for real on a dir pool) so that every key of a burst is handled before any worker ends,
as on a busy host.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from textual.widgets import RadioButton, RadioSet

from backends.controller import StorageController
from tests.reliability.test_tui_keys import send, settle
from tui.app import PoolkeeperApp
from tui.dialogs import BuildPoolDialog, DeletePoolDialog
from tui.dialogs.fields import TypedConfirm
from tui.screens.help import HelpScreen
from tui.screens.xml_view import XmlScreen

HOLD_CAP = 30.0  # seconds a held worker waits at most (a cap, not a measure)


def hold(monkeypatch: pytest.MonkeyPatch, ctl: StorageController, method: str
         ) -> threading.Event:
    """Make ctl.<method> wait for the returned gate before it runs (the real method)."""
    gate = threading.Event()
    real: Callable[..., Any] = getattr(ctl, method)

    def held(*args: Any, **kwargs: Any) -> Any:
        gate.wait(HOLD_CAP)
        return real(*args, **kwargs)

    monkeypatch.setattr(ctl, method, held)
    return gate


# key, the controller method its worker calls, the screen it opens (delete and build
# are offered for a stopped pool)
OPENERS = {
    "xml": ("x", "pool_xml", XmlScreen),
    "delete": ("X", "stored_volumes", DeletePoolDialog),
    "build": ("b", "build_warning", BuildPoolDialog),
}


def held_app(ctl: StorageController, monkeypatch: pytest.MonkeyPatch, opener: str
             ) -> tuple[PoolkeeperApp, threading.Event, str, type]:
    """The app on a stopped 'default' pool, with the opener's worker held: the app, the
    gate that lets the worker go on, the key, the screen it opens."""
    key, method, screen_type = OPENERS[opener]
    ctl.stop_pool("default")
    gate = hold(monkeypatch, ctl, method)
    return PoolkeeperApp(ctl, monitor_interval=None), gate, key, screen_type


@pytest.mark.parametrize("opener", list(OPENERS))
async def test_a_key_typed_again_while_its_screen_is_prepared_opens_one(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch, opener: str) -> None:
    app, gate, key, screen_type = held_app(controller, monkeypatch, opener)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        send(app, [key] * 12)
        for _ in range(5):
            await pilot.pause(0.05)  # every key handled, every worker still held
        gate.set()
        await settle(app, pilot)
        opened = [s for s in app.screen_stack if isinstance(s, screen_type)]
        assert len(opened) == 1, app.screen_stack
        assert app.screen is opened[0]
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen is app.main_screen
        send(app, [key])  # and the key works again once it was shown
        await settle(app, pilot)
        assert isinstance(app.screen, screen_type), app.screen_stack


@pytest.mark.parametrize("opener", list(OPENERS))
async def test_a_screen_prepared_while_another_was_opened_is_not_put_over_it(
        controller: StorageController, monkeypatch: pytest.MonkeyPatch, opener: str) -> None:
    app, gate, key, screen_type = held_app(controller, monkeypatch, opener)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        send(app, [key])
        for _ in range(5):
            await pilot.pause(0.05)
        # Another screen comes on top while it is prepared. Not by a key: keys (and the
        # footer's clicks, which are keys) wait for the screen being prepared
        # (tests/tui/test_keys_prepared.py); by a screen no key asked for, as a worker's
        # (a refused edit) is.
        app.main_screen.action_help()
        for _ in range(5):
            await pilot.pause(0.05)
        assert isinstance(app.screen, HelpScreen)
        gate.set()
        await settle(app, pilot)
        assert isinstance(app.screen, HelpScreen), app.screen_stack
        assert not any(isinstance(s, screen_type) for s in app.screen_stack)
        notices = [n.message for n in app._notifications]
        assert any("was not opened: another screen was opened meanwhile" in m
                   for m in notices), notices


async def test_a_dialog_whose_confirm_cannot_be_shown_does_not_recurse(
        controller: StorageController) -> None:
    """The closing state, made directly: a confirm whose display stays False (as a closing
    widget's does) while the destroy mode asks for it to be shown."""
    controller.stop_pool("default")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("X")
        await settle(app, pilot)
        dialog = app.screen
        assert isinstance(dialog, DeletePoolDialog)
        confirm = dialog.query_one("#confirm", TypedConfirm)
        type(confirm).display = property(  # type: ignore[assignment]
            lambda self: False, lambda self, value: None)
        try:
            destroy = dialog.query_one("#mode", RadioSet).query(RadioButton)[1]
            destroy.value = True
            await settle(app, pilot)
            assert app.is_running and app.return_code is None
            assert app.screen is dialog
        finally:
            del type(confirm).display
