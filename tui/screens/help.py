"""F1: every key of the main screen, and why the unavailable ones are unavailable now."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90; max-width: 100%; height: 90%;
                            border: round $primary; background: $surface; }
    HelpScreen VerticalScroll { height: 1fr; }
    HelpScreen Button { width: 100%; }
    """

    def __init__(self, rows: list[tuple[str, str, str | None]]) -> None:
        """rows: (key, what it does, why it is unavailable now or None)."""
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=True, header_style="bold")
        table.add_column("key", no_wrap=True)
        table.add_column("action")
        table.add_column("now")
        for key, description, reason in self.rows:
            table.add_row(key, description, f"[dim]{reason}[/dim]" if reason else "available")
        with Vertical() as box:
            box.border_title = "poolkeeper keys"
            with VerticalScroll():
                yield Static(table)
                yield Static(
                    "\nctrl+p opens the command palette (every action, searchable). "
                    "Dialogs: tab moves between fields, enter submits, escape or the "
                    "Cancel button closes. Destructive actions ask for the name typed.",
                )
            yield Button("Close", id="close")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
