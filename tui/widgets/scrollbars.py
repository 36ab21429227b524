"""The scrollbar renderer of ASCII mode (--ascii, TERM=linux), for the app and the widgets
that set their own."""

from __future__ import annotations

from typing import ClassVar

from textual.scrollbar import ScrollBarRender


class AsciiScrollBarRender(ScrollBarRender):
    """Whole-cell thumbs drawn as reverse-video blanks: Textual's smooth thumb ends are
    block glyphs that a TERM=linux console cannot draw."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "] * 8
    HORIZONTAL_BARS: ClassVar[list[str]] = [" "] * 8
