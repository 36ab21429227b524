"""The log panel: the external commands the back end ran, with exit status and duration.

What the user's actions ran is shown; the routine reads (the live monitor's and a view's
own refreshes: parted print, vgs, ... every few seconds, runner.routine) only when asked
(L), and then a command that succeeds again within ROUTINE_REPEAT seconds is not
repeated, so the log stays readable.
"""

from __future__ import annotations

import math
import shlex
import time
from collections import deque

from rich.text import Text
from textual.widgets import RichLog

from backends.runner import Completed

from ..shown import shown

STATUS_WIDTH = 8  # "exit 127", "timeout"; the command's last stderr line is indented as much
ROUTINE_REPEAT = 30.0  # seconds before the same routine read is shown again
KEEP = 2000  # commands kept (and lines shown)


def command_line(command: Completed, *, ascii: bool = False) -> Text:
    ok = command.returncode == 0
    text = Text(no_wrap=True)
    status = "ok" if ok else ("timeout" if command.returncode is None
                             else f"exit {command.returncode}")
    text.append(f"{status:<{STATUS_WIDTH}}", style="green" if ok else "bold red")
    text.append(f"{command.duration:6.2f}s  ", style="dim")
    # secrets already masked by the runner
    text.append(shown(shlex.join(command.shown), ascii))  # argv holds file names
    if not ok and command.stderr.strip():
        last = command.stderr.strip().splitlines()[-1]  # a tool's words, maybe with names
        text.append("\n" + " " * STATUS_WIDTH + shown(last, ascii), style="red")
    return text


class LogPanel(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=KEEP, wrap=False, markup=False)
        self.show_routine = False
        self._commands: deque[Completed] = deque(maxlen=KEEP)
        self._routine_shown: dict[tuple[str, ...], float] = {}  # argv -> when last shown
        self.border_title = "commands"

    def add_command(self, command: Completed) -> None:
        self._commands.append(command)
        if self._wanted(command, time.monotonic()):
            self._write(command)

    def set_show_routine(self, show: bool) -> None:
        """Show the routine reads too (rate-limited), or only what actions ran."""
        self.show_routine = show
        self.border_title = "commands, with routine reads" if show else "commands"
        self.clear()
        self._routine_shown.clear()
        now = time.monotonic()
        for command in self._commands:
            if self._wanted(command, now):
                self._write(command)

    def _wanted(self, command: Completed, now: float) -> bool:
        if not command.routine:
            return True
        if not self.show_routine:
            return False
        key = tuple(command.shown)
        if command.returncode == 0 and now - self._routine_shown.get(key, -math.inf) \
                < ROUTINE_REPEAT:
            return False
        self._routine_shown[key] = now
        return True

    def _write(self, command: Completed) -> None:
        # shrink=False: a long command stays whole (scroll right), never cut with an ellipsis
        self.write(command_line(command, ascii=self.app.has_class("-ascii")), shrink=False)
