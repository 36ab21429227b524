"""The focused field is seen without colour (issue 15, items 9 and 10): a '>' before its
label (or before a typed confirmation's prompt), in ASCII mode too; a steady cursor drawn
in reverse video in the focused input; a focused button, radio or list row in reverse
video. Before, a slightly different background was all there was: nothing under NO_COLOR
or on the Linux console."""

from __future__ import annotations

from typing import Any

import pytest
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, Input

from tests.screentext import screen_text
from tests.tui.test_dialog_footer import every_dialog
from tests.tui.test_dialogs import opened, shown
from tui.dialogs import TypedConfirm
from tui.dialogs.fields import Field


def holder(screen: Screen[Any]) -> Field | TypedConfirm | None:
    node = screen.focused
    while node is not None and node is not screen:
        if isinstance(node, (Field, TypedConfirm)):
            return node
        node = node.parent
    return None


def marked_lines(app: Any) -> list[str]:
    return [line.strip(" |\u2502") for line in screen_text(app).splitlines()
            if line.strip(" |\u2502").startswith("> ")]


def label_of(widget: Field | TypedConfirm) -> str:
    return widget.label_text if isinstance(widget, Field) else widget.prompt


@pytest.mark.parametrize("index", range(len(every_dialog())))
async def test_the_focused_field_is_marked(index: int) -> None:
    """Tab through every dialog: whenever a field or typed confirmation has
    the focus, exactly one line starts with '> ' and names it; otherwise none does."""
    dialog = every_dialog()[index]
    async with opened(dialog) as (app, pilot):
        for widget in app.screen.query(TypedConfirm):
            widget.display = True  # the optional ones too
        await pilot.pause()
        seen_marks = 0
        for _ in range(12):
            await pilot.pause()
            where = holder(app.screen)
            lines = marked_lines(app)
            if where is None or not shown(where):
                assert lines == [], (type(dialog).__name__, lines)
            else:
                seen_marks += 1
                assert len(lines) == 1, (type(dialog).__name__, lines)
                assert lines[0][2:].startswith(label_of(where)[:10]), lines
            await pilot.press("tab")
        if any(shown(f) for f in app.screen.query(Field)) or app.screen.query(TypedConfirm):
            assert seen_marks, type(dialog).__name__


async def test_the_cursor_is_steady_and_reverse_video() -> None:
    dialog = every_dialog()[7]  # create volume: Name focused first
    async with opened(dialog) as (app, pilot):
        focused = app.screen.focused
        assert isinstance(focused, Input)
        assert focused.cursor_blink is False  # never off for half a second
        assert focused.get_component_rich_style("input--cursor").reverse


async def test_focused_buttons_radios_and_lists_are_reverse_video() -> None:
    from tests.tui.test_dialogs import vol
    from tui.dialogs import WipeVolumeDialog

    async with opened(WipeVolumeDialog(vol())) as (app, pilot):
        radio_set = app.screen.focused
        assert radio_set is not None and type(radio_set).__name__ == "RadioSet"
        selected = radio_set.query_one(".-selected", Widget)
        assert selected.get_component_rich_style("toggle--label").reverse
        app.screen.query_one("#cancel", Button).focus()
        await pilot.pause()
        assert app.screen.query_one("#cancel", Button).rich_style.reverse
