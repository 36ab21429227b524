"""F1: every key of the main screen, read from the bindings (tui.keys), named as on the
keyboard, and why the unavailable ones are unavailable now; then the keys of the dialogs,
the XML view and this screen."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from ..dialogs.base import Dialog
from ..keys import KeyRow, class_keys, row_reason
from ..shown import shown
from ..textual_fixes import DismissOnce
from .xml_view import XmlScreen


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

    def __init__(self, rows: list[KeyRow]) -> None:
        """rows: the keys of the screen F1 was pressed on (tui.keys.screen_keys)."""
        super().__init__()
        self.rows = rows
        self.table_rows: list[tuple[str, str, str, str | None]] = []  # for tests

    def _all_rows(self) -> list[tuple[KeyRow, str | None]]:
        """The screen's keys with their reasons now, then the other screens' keys."""
        rows: list[tuple[KeyRow, str | None]] = [(row, row_reason(row)) for row in self.rows]
        for section, cls in (("in a dialog", Dialog), ("XML view", XmlScreen),
                             ("this help", HelpScreen)):
            rows += [(row, None) for row in class_keys(section, cls, self)]
        return rows

    def compose(self) -> ComposeResult:
        ascii = self.app.has_class("-ascii")
        table = Table(box=None, expand=True, show_header=True, header_style="bold",
                      pad_edge=False)
        table.add_column("key", max_width=16)  # a text field's editing keys wrap
        table.add_column("action", no_wrap=True, max_width=26,
                         overflow="crop" if ascii else "ellipsis")  # "…" is not ASCII
        table.add_column("now", ratio=1)
        section = None
        rows = self._all_rows()
        for row, reason in rows:
            if row.section != section:
                section = row.section
                title = section if not row.widget or section in ("in a dialog", "XML view",
                                                                 "this help") \
                    else f"{section} (when it has the focus)"
                table.add_row("", Text(title, style="bold underline"), "")
            names = row.names(ascii)
            self.table_rows.append((row.section, names, row.description, reason))
            table.add_row(names, row.description,
                          Text(shown(reason, ascii), style="dim") if reason
                          else Text("available"))
            if row.section == "in a dialog" and row.keys == ("escape",):
                # bound per dialog, named after its button (Dialog.__init__)
                table.add_row("^s", "Submit (its button)",
                              Text("available"))
                self.table_rows.append(("in a dialog", "^s", "Submit", None))
        with Vertical() as box:
            box.border_title = "poolkeeper keys"
            with VerticalScroll():
                yield Static(table)
                yield Static(
                    "\nDestructive actions ask for the name typed. Esc, q or F1 close "
                    "this help.",
                )
            yield Button("Close", id="close")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
