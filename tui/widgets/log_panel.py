"""The log panel: every external command the back end ran, with exit status and duration."""

from __future__ import annotations

import shlex

from rich.text import Text
from textual.widgets import RichLog

from backends.runner import Completed

from ..shown import shown

STATUS_WIDTH = 8  # "exit 127", "timeout"; the command's last stderr line is indented as much


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
        super().__init__(id=id, max_lines=2000, wrap=False, markup=False)
        self.border_title = "commands"

    def add_command(self, command: Completed) -> None:
        # shrink=False: a long command stays whole (scroll right), never cut with an ellipsis
        self.write(command_line(command, ascii=self.app.has_class("-ascii")), shrink=False)
