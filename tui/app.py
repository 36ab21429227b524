"""PoolkeeperApp: the Textual front end. Global keys, the command palette, SSH-friendly
options (--no-mouse, --ascii, NO_COLOR); the main screen does the rest."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.screen import Screen
from textual.scrollbar import ScrollBar, ScrollBarRender
from textual.widget import Widget

from backends.controller import StorageController

from .screens.main import MainScreen


class AsciiScrollBarRender(ScrollBarRender):
    """Whole-cell thumbs drawn as reverse-video blanks: Textual's smooth thumb ends are
    block glyphs that a TERM=linux console cannot draw."""

    VERTICAL_BARS = [" "] * 8
    HORIZONTAL_BARS = [" "] * 8


class PoolkeeperApp(App[None]):
    TITLE = "poolkeeper"
    CSS_PATH = "poolkeeper.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, controller: StorageController, *, ascii: bool = False,
                 monitor_interval: float | None = 3.0) -> None:
        super().__init__()
        self.ctl = controller
        self.ascii = ascii
        self.monitor_interval = monitor_interval
        self.main_screen = MainScreen(controller, ascii=ascii)

    def on_mount(self) -> None:
        self.set_class(self.ascii, "-ascii")
        self.push_screen(self.main_screen)
        if self.monitor_interval:
            self.ctl.start_monitor(self.monitor_interval)

    def _start_widget(self, parent: Widget, widget: Widget) -> None:
        # Textual starts every scrollbar through here (and nothing else, as of 8.2.8): in
        # ASCII mode each one, in any screen or dialog, gets the block-free renderer.
        if self.ascii and isinstance(widget, ScrollBar):
            widget.renderer = AsciiScrollBarRender  # type: ignore[misc]  # per instance
        super()._start_widget(parent, widget)

    def get_key_display(self, binding: Binding) -> str:
        shown = super().get_key_display(binding)
        # ASCII mode: "up", "enter" rather than the arrow and return glyphs
        return binding.key if self.ascii and not shown.isascii() else shown

    def action_command_palette(self) -> None:
        if self.ascii and self.use_command_palette and not CommandPalette.is_open(self):
            # Textual's placeholder ends in an ellipsis character
            self.push_screen(CommandPalette(placeholder="Search for commands...",
                                            id="--command-palette"))
            return
        super().action_command_palette()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, MainScreen):
            return
        for key, description, reason in screen.key_rows():
            action = next(b.action for b in screen.BINDINGS
                          if isinstance(b, Binding) and b.key == key)
            help_text = f"key: {key}" + (f" (unavailable: {reason})" if reason else "")
            yield SystemCommand(description, help_text, partial(self._palette, screen, action))

    def _palette(self, screen: MainScreen, action: str) -> None:
        reason = screen.disabled_reason(action)
        if reason:
            self.notify(reason, severity="warning")
            return
        getattr(screen, f"action_{action}")()


def wants_ascii() -> bool:
    """The Linux console (TERM=linux) cannot draw box characters reliably."""
    return os.environ.get("TERM") == "linux"


def run_app(root: str | None, *, mouse: bool = True, ascii: bool | None = None,
            demo: bool = False) -> int:
    sandbox = None
    if demo:
        from .demo import make_demo_root

        state = make_demo_root()
        sandbox, root = state.parent, str(state)
    controller = StorageController(root)
    try:
        PoolkeeperApp(controller, ascii=wants_ascii() if ascii is None else ascii).run(
            mouse=mouse)
    finally:
        controller.close()
        if sandbox is not None:  # the demo is a sandbox: leave nothing behind
            shutil.rmtree(sandbox, ignore_errors=True)
    return 0
