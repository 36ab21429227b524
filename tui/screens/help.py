"""F1: every key of the main screen, and why the unavailable ones are unavailable now."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from ..shown import shown
from ..textual_fixes import DismissOnce


class HelpScreen(DismissOnce, ModalScreen[None]):
    BINDINGS = [Binding("escape,q,f1", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90; max-width: 100%; height: auto;
                            border: round $primary; background: $surface; }
    /* As tall as the text, up to what leaves the Close button and the footer on screen. */
    HelpScreen VerticalScroll { height: auto; max-height: 70vh; padding: 0 1; }
    HelpScreen Button { width: 100%; }
    """

    def __init__(self, rows: list[tuple[str, str, str | None]]) -> None:
        """rows: (key, what it does, why it is unavailable now or None)."""
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, show_header=True, header_style="bold",
                      pad_edge=False)
        table.add_column("key", no_wrap=True)
        table.add_column("action", no_wrap=True)
        table.add_column("now", ratio=1)
        for key, description, reason in self.rows:
            table.add_row(self._key_display(key), description,
                          Text(shown(reason, self.app.has_class("-ascii")), style="dim")
                          if reason else Text("available"))
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

    def _key_display(self, key: str) -> str:
        """'/' for slash, 'del' for delete: as the footer shows them (ASCII names in
        ASCII mode, where the footer's arrows and symbols cannot be drawn)."""
        shown = self.app.get_key_display(Binding(key, ""))
        return shown if shown.isascii() or not self.app.has_class("-ascii") else key

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
