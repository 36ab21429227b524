"""PoolkeeperApp: the Textual front end. Global keys, the command palette, SSH-friendly
options (--no-mouse, --ascii, NO_COLOR); the main screen does the rest.

Leaving: q (or the palette's Quit) exits with status 0. A terminal that goes away (SIGHUP,
or a hang-up on stdin without a signal: tui.hangup) and SIGTERM cancel the running jobs at
once and exit with status 1; the controller then waits for the jobs, which remove what they
half made, as the CLI's do on Ctrl-C (a second SIGHUP meanwhile is ignored). An unhandled
error exits with status 1 after Textual prints its traceback, or a plain one when Textual
cannot draw it (run_app returns the status).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterable, Iterator, Sequence
from functools import partial

from rich.console import RenderableType
from rich.text import Text
from textual import events
from textual.app import SystemCommand
from textual.binding import Binding
from textual.command import CommandPalette
from textual.content import Content
from textual.markup import escape as markup_escape
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.scrollbar import ScrollBar
from textual.theme import ThemeProvider
from textual.widget import Widget

from backends.api import Controller
from backends.controller import StorageController
from backends.fleet import Fleet

from .dialogs.base import Dialog
from .hangup import HangupWatch
from .keys import KeyRow, row_reason, screen_keys
from .keys import display as key_display
from .screens.main import MainScreen
from .shown import shown, shown_lines
from .textual_fixes import KeyOrderApp, Palette
from .widgets.scrollbars import AsciiScrollBarRender

SWITCH_INTERVAL = 0.0005  # seconds: see PoolkeeperApp.on_mount


class PoolkeeperApp(KeyOrderApp):
    TITLE = "poolkeeper"
    CSS_PATH = "poolkeeper.tcss"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [Binding("q", "quit", "Quit")]

    def __init__(self, controller: Controller, *, ascii: bool = False,
                 monitor_interval: float | None = 3.0, notice: str | None = None) -> None:
        super().__init__()
        self.notice = notice  # said once the screen is up (the demo: why no disk pools)
        self.ctl = controller
        self.ascii = ascii
        self.monitor_interval = monitor_interval
        self.main_screen = MainScreen(controller, ascii=ascii)
        self.gone: str | None = None  # why it stopped without q: "SIGTERM", ...
        self.cancelled_jobs = 0
        self.crashed = False
        self._hangup_watch: HangupWatch | None = None

    def on_mount(self) -> None:
        # The UI thread shares the GIL with workers whose scans make a syscall per file
        # (open, fstat, pread): after each, a worker waits for the GIL while the UI thread
        # runs, up to the switch interval (5 ms by default). A short one lets a 100,000-
        # volume listing go on at its own pace while the UI paints.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.set_class(self.ascii, "-ascii")
        self.push_screen(self.main_screen)
        if self.notice:
            self.notify(self.notice, timeout=20, markup=False)
        if self.monitor_interval:
            self.ctl.start_monitor(self.monitor_interval)
        if not self.is_headless:
            self._watch_terminal()

    def on_unmount(self) -> None:
        if self._hangup_watch is not None:
            self._hangup_watch.stop()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)

    # == keys in order (textual_fixes.KeyOrderApp) ====================================
    def split_paste(self, paste: events.Paste) -> list[events.Key | events.Paste] | None:
        """In a dialog, a tab in pasted text moves to the next field, as typing it does:
        "v.img<Tab>1G" fills Name and Capacity. Elsewhere, and without a tab, a paste is
        text for the focused field (an input keeps its first line, as Textual does)."""
        if "\t" not in paste.text or not isinstance(self.screen, Dialog):
            return None
        parts: list[events.Key | events.Paste] = []
        for i, piece in enumerate(paste.text.split("\t")):
            if i:
                parts.append(events.Key("tab", "\t"))
            if piece:
                parts.append(events.Paste(piece))
        return parts

    # == leaving ========================================================================
    def _watch_terminal(self) -> None:
        """SIGHUP, SIGTERM, and a hang-up of stdin without a signal (tui.hangup)."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.stop_all, "the terminal hung up (SIGHUP)")
        loop.add_signal_handler(signal.SIGTERM, self.stop_all, "SIGTERM")
        self._hangup_watch = HangupWatch(
            sys.__stdin__.fileno() if sys.__stdin__ else 0,
            lambda: loop.call_soon_threadsafe(self.stop_all, "the terminal hung up"))
        self._hangup_watch.start()

    def stop_all(self, why: str) -> None:
        """The terminal is gone (or we were told to stop): cancel every running job now,
        so that each stops at its next chunk and removes what it half made, and exit with
        status 1. Nothing is drawn: there may be no terminal any more."""
        if self.gone is not None:
            return
        self.gone = why
        running = self.ctl.jobs.running()
        for job in running:
            job.cancel()
        self.cancelled_jobs = len(running)
        self.exit(return_code=1)

    def panic(self, *renderables: RenderableType) -> None:
        self.crashed = True  # Textual 8.2.8 leaves return_code unset when it panics
        super().panic(*renderables)

    def _fatal_error(self) -> None:
        """After an unhandled error: Textual's, which renders a Rich traceback with the
        locals, then closes the app. That rendering can fail itself (a Rich Style half
        made by a ColorParseError raised AttributeError from its repr), and then Textual
        never closed: the app stayed up, ignoring every key. Then the traceback is kept
        as plain text (escaped: it may quote names) and the app closes, status 1."""
        self.crashed = True
        try:
            super()._fatal_error()
        except Exception:
            lines = traceback.format_exc().splitlines()  # the error, then this one
            self._exit_renderables.append(Text(shown_lines(lines, self.ascii)))
            self._close_messages_no_wait()

    def _start_widget(self, parent: Widget, widget: Widget) -> None:
        # Textual starts every scrollbar through here (and nothing else, as of 8.2.8): in
        # ASCII mode each one, in any screen or dialog, gets the block-free renderer.
        if self.ascii and isinstance(widget, ScrollBar):
            widget.renderer = AsciiScrollBarRender  # type: ignore[misc]  # per instance
        super()._start_widget(parent, widget)

    def get_key_display(self, binding: Binding) -> str:
        # as printed on the keyboard, as F1 and the palette name it (tui.keys): "F1",
        # "/", "Del", "^s"; arrows spelled in ASCII mode
        return key_display(binding, self.ascii)

    def action_command_palette(self) -> None:
        # Palette: Textual's, with the fixes for Enter pressed twice (tui.textual_fixes).
        # One at a time, anywhere in the stack: a second one under the same id would
        # crash (DuplicateIds); a worker's screen opens only over the main screen
        # (MainScreenBase._open), never over a palette.
        if self.use_command_palette and not any(
                isinstance(screen, CommandPalette) for screen in self.screen_stack):
            # ASCII mode: Textual's placeholder ends in an ellipsis character
            ascii_text = {"placeholder": "Search for commands..."} if self.ascii else {}
            self.push_screen(Palette(id="--command-palette", **ascii_text))

    def search_themes(self) -> None:
        # The palette's "Theme" opens a second palette: Textual's, without the fixes
        # (Textual 8.2.8); the same list of themes in a Palette.
        self.push_screen(Palette(providers=[ThemeProvider], placeholder="Search for themes..."))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification is plain text, escaped once here (tui.shown), a newline
        included: callers pass raw text. poolkeeper's own pass markup=False (a name may
        hold '[b]'); Textual's few markup notices lose their styles. Thread-safe, as
        App.notify is."""
        if markup:
            try:
                message = Content.from_markup(message).plain
            except Exception:  # not valid markup after all: show it as it is
                pass
        self.notify_lines([message], title=title, severity=severity, timeout=timeout)

    def notify_lines(self, lines: Sequence[str], *, title: str = "",
                     severity: SeverityLevel = "information",
                     timeout: float | None = None) -> None:
        """A notification of several lines (raw text), each escaped on its own: the line
        breaks are the ones between `lines`, never one inside a name."""
        super().notify(shown_lines(lines, self.ascii), title=shown(title, self.ascii),
                       severity=severity, timeout=timeout, markup=False)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then every key of the screen beneath (tui.keys: the same
        list as F1), each named by its key as printed on the keyboard."""
        yield from super().get_system_commands(screen)
        for row in screen_keys(screen):
            reason = row_reason(row)
            title = row.description if row.section == "anywhere" else (
                f"{row.section}: {row.description}")
            help_text = f"key: {row.names(self.ascii)}" + (
                f" (unavailable: {reason})" if reason else "")
            # the palette reads help as markup: a volume name in a reason may hold '[b]'
            help_text = markup_escape(shown(help_text, self.ascii))
            yield SystemCommand(title, help_text, partial(self._palette, row))

    def _palette(self, row: KeyRow) -> None:
        """A key chosen in the palette: what the key does, or a notice why not now."""
        reason = row_reason(row)
        if reason:
            self.notify(reason, severity="warning", markup=False)
        elif not row.action:  # a text field's editing keys: the field gets the focus
            row.node.focus()  # type: ignore[attr-defined]
        else:
            self.call_later(self.run_action, row.action, row.node)

def wants_ascii() -> bool:
    """The Linux console (TERM=linux) cannot draw box characters reliably."""
    return os.environ.get("TERM") == "linux"


def run_app(root: str | None, *, mouse: bool = True, ascii: bool | None = None,
            demo: bool = False) -> int:
    sandbox = note = None
    if demo:
        from .demo import make_demo

        sandbox, state, note = make_demo()
        root = str(state)
    native = StorageController(root, probe_later=True)  # headers after rows
    # this host and the saved libvirt connections (opened in the background)
    fleet = Fleet(native, native.paths.config_dir)
    fleet.open()
    controller: Controller = fleet
    app = PoolkeeperApp(controller, ascii=wants_ascii() if ascii is None else ascii,
                        notice=note)
    try:
        app.run(mouse=mouse)
    finally:
        with _hangup_ignored():
            if sandbox is not None:  # the demo is a sandbox: leave nothing behind
                from .demo import close_demo

                fleet.close_connections()
                close_demo(native, sandbox)  # also stops its pools: loop devices, mounts
            else:
                controller.close()  # cancels what still runs and waits for it to clean up
        # The process ends next: the final collection would walk every object of a big
        # pool's listing (2 s at 100,000 volumes); q must exit within a second.
        gc.freeze()
    if app.gone is not None:
        _say(f"error: {app.gone}: poolkeeper stopped"
             + (f"; {app.cancelled_jobs} running job(s) cancelled" if app.cancelled_jobs else "")
             + "\n")
    # Textual sets 1 after an unhandled error (and has printed the traceback)
    return app.return_code or (1 if app.crashed else 0)


@contextlib.contextmanager
def _hangup_ignored() -> Iterator[None]:
    """While the jobs clean up: the terminal may be gone, and a second SIGHUP (the app's
    handler went with its event loop) must not kill the process halfway. SIGTERM stays
    the way to stop a clean-up that cannot finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


def _say(text: str) -> None:
    """A last word on stderr, which may be a terminal that is gone."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text)
        sys.stderr.flush()
