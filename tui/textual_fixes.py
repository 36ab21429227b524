"""Workarounds for Textual 8.2.8 (pinned in pyproject.toml) behaviour that crashed or
closed poolkeeper under fast typing. Each is as small as the bug allows; re-check each one
when Textual is upgraded (tests/reliability/test_tui_keys.py fails if one is still needed
and gone).

1. Screen.dismiss pops whatever screen is on top, not the screen it is called on. Keys
   typed faster than the app handles them are already messages queued on a screen: Enter
   pressed twice in the command palette (or in a dialog's last field) gives two
   Input.Submitted, each of which dismisses. The second popped the main screen (the app
   went blank, then the main screen's workers crashed with NoActiveAppError and the app
   exited, cancelling the jobs), a third raised ScreenStackError. DismissOnce dismisses
   only the screen on top, and only once; every poolkeeper screen and the palette use it.
2. CommandPalette also runs the chosen command again for each queued Enter (its handlers
   read state left by the first), and a key typed behind the Enter starts a new search
   whose worker then fills a list that is gone (NoMatches: the app crashed). Palette drops
   the choice and input messages once it is dismissed.
   PoolkeeperApp opens every palette as a Palette (the command palette, and the theme
   list that its "Theme" command opens).
3. OptionList._move_page reads the line of the highlighted option from a cache that is only
   built once the list has a size: PageUp/PageDown an instant after ctrl+p, or in a palette
   or Select overlay squeezed to no rows at a small height, raised KeyError. Without lines
   there is no page, so the key moves one option. OptionList is patched (one method):
   the palette's CommandList and Select's overlay are Textual's own subclasses.
4. The app hands a key to the focused widget as a message and reads the next key at
   once: the next key went to the widget that had focus before Tab's focus change (which
   runs when Tab has bubbled up to the app's bindings), so `a Tab b` typed together gave
   Name=`ab`. tui.keyorder holds each key until the previous one is handled; to know
   when a key's handling ends (a widget stopped it, or it reached the app), the message
   pump calls the key's `_pk_done` once a node handled it without passing it on
   (MessagePump._dispatch_message and Message._bubble_to are patched, one method each).
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.await_complete import AwaitComplete
from textual.command import CommandPalette
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.widgets import Button, Input, OptionList


class DismissOnce:
    """Mixin for a Screen: dismiss() of a screen that is not on top, or was dismissed
    already, does nothing (fix 1)."""

    _dismissed = False

    def dismiss(self, result: Any = None) -> AwaitComplete:
        screen: Screen[Any] = self  # type: ignore[assignment]  # mixed into a Screen
        if self._dismissed or not screen.is_active:
            return AwaitComplete.nothing()
        self._dismissed = True
        # Keys typed at this screen after the key that closed it never reach the screen
        # beneath (tui.keyorder): there `s` stops a pool.
        drop = getattr(screen.app, "drop_keys_until_drawn", None)
        if drop is not None:
            drop()
        return super().dismiss(result)  # type: ignore[misc]


class Palette(DismissOnce, CommandPalette):
    """The command palette, with fixes 1 and 2."""

    @on(Input.Submitted)
    @on(Input.Changed)
    @on(Button.Pressed)
    @on(OptionList.OptionSelected)
    def _drop_after_dismiss(self, event: Message) -> None:
        # Handlers of the most derived class run first; prevent_default stops the
        # dispatch before CommandPalette's own handlers.
        if self._dismissed:
            event.prevent_default()
            event.stop()


_textual_move_page = OptionList._move_page


def _move_page(self: OptionList, direction: Any) -> None:
    """Fix 3: a page move with no lines laid out moves one option."""
    if (self.highlighted or 0) not in self._index_to_line:
        if direction > 0:
            self.action_cursor_down()
        else:
            self.action_cursor_up()
        return
    _textual_move_page(self, direction)


OptionList._move_page = _move_page  # type: ignore[method-assign]


_textual_dispatch = MessagePump._dispatch_message


async def _dispatch_message(self: MessagePump, message: Message) -> None:
    """Fix 4: tell whoever waits on this message (only keys tui.keyorder orders carry
    `_pk_done`) that its handling is over: handled here and not passed on to a parent."""
    done = getattr(message, "_pk_done", None)
    if done is None:
        await _textual_dispatch(self, message)
        return
    hops = getattr(message, "_pk_hops", 0)
    try:
        await _textual_dispatch(self, message)
    finally:
        if getattr(message, "_pk_hops", 0) == hops:
            done(message)


def _bubble_to(self: Message, widget: MessagePump) -> None:
    """Textual's, counting the hops that reached a queue (a closing parent drops it)."""
    self._no_default_action = False
    if widget.post_message(self):
        self._pk_hops = getattr(self, "_pk_hops", 0) + 1  # type: ignore[attr-defined]


MessagePump._dispatch_message = _dispatch_message  # type: ignore[method-assign]
Message._bubble_to = _bubble_to  # type: ignore[method-assign]
