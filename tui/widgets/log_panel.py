"""The log panel: every external command the back end ran, with exit status and duration."""

from __future__ import annotations

import shlex

from rich.text import Text
from textual.widgets import RichLog

from backends.runner import Completed


def command_line(command: Completed) -> Text:
    ok = command.returncode == 0
    text = Text(no_wrap=True, overflow="ellipsis")
    status = "ok" if ok else ("timeout" if command.returncode is None
                             else f"exit {command.returncode}")
    text.append(f"{status:<8}", style="green" if ok else "bold red")
    text.append(f"{command.duration:7.2f}s  ", style="dim")
    text.append(shlex.join(command.shown))  # secrets already masked by the runner
    if not ok and command.stderr.strip():
        text.append("\n        " + command.stderr.strip().splitlines()[-1], style="red")
    return text


class LogPanel(RichLog):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=2000, wrap=False, markup=False)
        self.border_title = "commands"

    def add_command(self, command: Completed) -> None:
        self.write(command_line(command))
