"""Every dialog's footer says what its buttons say (issue 15, item 6): the key that does
what a button does is named as the button is ("^s Destroy" with [Destroy], "esc Discard"
with [Discard]), in every state the dialog can be in. Before, the delete-pool dialog was
seen with `^s Undefine` under a [Destroy] button, and the error dialog offered "esc
Cancel" with no Cancel anywhere."""

from __future__ import annotations

from typing import Any

import pytest
from textual.screen import Screen
from textual.widgets import Button, RadioSet
from textual.widgets._footer import FooterKey

import tui.dialogs
from tests.tui.test_dialogs import all_dialogs, opened, pool, shown
from tui.dialogs import DeletePoolDialog, Dialog, ErrorDialog, SecretDialog
from tui.dialogs.connection import ConnectionDialog
from tui.dialogs.fields import Radio

# The footer key of each button's action.
KEY_OF_BUTTON = {"submit": "^s", "cancel": "esc"}


def every_dialog() -> list[Screen[Any]]:
    return [*all_dialogs(False),
            ErrorDialog("Error", "it failed", ascii=False),  # no retry: Close only
            DeletePoolDialog(pool(type="fs"), held=[], ascii=False),
            SecretDialog("iscsi-chap", ascii=False),
            ConnectionDialog(name="kvm2", uri="qemu+ssh://root@kvm2/system", ascii=False)]


def dialog_classes() -> set[type]:
    """Every dialog class of tui.dialogs that is opened as it is (a base such as
    TransferDialog is checked through its subclasses)."""
    found: set[type] = set()
    todo = [Dialog]
    while todo:
        cls = todo.pop()
        subs = [sub for sub in cls.__subclasses__()
                if sub.__module__.startswith(tui.dialogs.__name__)]
        if not subs and cls is not Dialog:
            found.add(cls)
        todo.extend(subs)
    return found


def test_every_dialog_class_is_checked() -> None:
    """A new dialog class must be added to every_dialog (and so to this check)."""
    assert dialog_classes() <= {type(d) for d in every_dialog()}


def footer(screen: Screen[Any]) -> dict[str, str]:
    return {key.key_display: key.description for key in screen.query(FooterKey)}


def mismatches(screen: Screen[Any]) -> list[str]:
    keys = footer(screen)
    shown_labels = {str(b.label) for b in screen.query("#buttons Button").results(Button)
                    if shown(b)}
    wrong = []
    for button_id, key in KEY_OF_BUTTON.items():
        button = screen.query_one(f"#{button_id}", Button)
        if shown(button):
            if keys.get(key) != str(button.label):
                wrong.append(f"{key} says {keys.get(key)!r}, its button [{button.label}]")
        elif key in keys and keys[key] not in shown_labels:
            # no button of its own: it names one that does the same (esc: Close)
            wrong.append(f"{key} says {keys[key]!r}: no such button ({shown_labels})")
    return wrong


@pytest.mark.parametrize("index", range(len(every_dialog())))
async def test_footer_names_the_buttons(index: int) -> None:
    dialog = every_dialog()[index]
    async with opened(dialog) as (app, pilot):
        await pilot.pause()
        name = type(dialog).__name__
        assert mismatches(app.screen) == [], name
        # every choice of a mode (delete: undefine / destroy; build: its three modes)
        for radio_set in app.screen.query(RadioSet):
            for radio in radio_set.query(Radio):
                if radio.disabled:
                    continue
                radio.value = True
                await pilot.pause()
                await pilot.pause()
                assert mismatches(app.screen) == [], f"{name}, {radio.id} chosen"


async def test_delete_pool_footer_follows_destroy_and_back() -> None:
    async with opened(DeletePoolDialog(pool(type="fs"), held=[])) as (app, pilot):
        assert footer(app.screen)["^s"] == "Undefine"
        await pilot.press("down", "space")
        await pilot.pause()
        assert str(app.screen.query_one("#submit", Button).label) == "Destroy"
        assert footer(app.screen)["^s"] == "Destroy"
        await pilot.press("up", "space")
        await pilot.pause()
        assert footer(app.screen)["^s"] == "Undefine"
