"""PoolkeeperApp: the Textual front end. Global keys, the command palette, SSH-friendly
options (--no-mouse, --ascii, NO_COLOR); the main screen does the rest."""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from backends.controller import StorageController

from .screens.main import MainScreen


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
    if demo:
        from .demo import make_demo_root

        root = str(make_demo_root())
        print(f"demo root: {root}")
    controller = StorageController(root)
    try:
        PoolkeeperApp(controller, ascii=wants_ascii() if ascii is None else ascii).run(
            mouse=mouse)
    finally:
        controller.close()
    return 0
