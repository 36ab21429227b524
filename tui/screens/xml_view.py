"""A pool's or volume's XML, syntax highlighted, read-only."""

from __future__ import annotations

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static


class XmlScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,x", "close", "Close")]
    DEFAULT_CSS = """
    XmlScreen { align: center middle; }
    XmlScreen > Vertical { width: 90%; height: 90%; border: round $primary;
                           background: $surface; }
    XmlScreen VerticalScroll { height: 1fr; }
    XmlScreen Button { dock: bottom; width: 100%; }
    """

    def __init__(self, title: str, xml: str, *, ascii: bool = False) -> None:
        super().__init__()
        self.title_text, self.xml, self.ascii = title, xml, ascii

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = self.title_text
            with VerticalScroll():
                yield Static(Syntax(self.xml, "xml", theme="ansi_dark", word_wrap=False,
                                    background_color="default"), id="xml")
            yield Button("Close", id="close")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
