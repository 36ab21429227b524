"""A pool's or volume's XML, syntax highlighted, read-only."""

from __future__ import annotations

from rich.color import Color, ColorParseError
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Static

from ..shown import shown, shown_xml
from ..textual_fixes import DismissOnce


class XmlScreen(DismissOnce, ModalScreen[None]):
    BINDINGS = [Binding("escape,q,x", "close", "Close")]
    DEFAULT_CSS = """
    XmlScreen { align: center middle; }
    XmlScreen > Vertical { width: 100; max-width: 95%; height: auto;
                           border: round $primary; background: $surface; }
    /* As tall as the XML, up to what leaves the Close button and the footer on screen. */
    XmlScreen VerticalScroll { height: auto; max-height: 70vh; padding: 0 1; }
    XmlScreen Button { width: 100%; }
    """

    def __init__(self, title: str, xml: str, *, ascii: bool = False) -> None:
        super().__init__()
        self.title_text, self.xml, self.ascii = title, xml, ascii

    @property
    def shown_xml(self) -> str:
        """The XML as drawn: control, bidi and invisible characters (and, in ASCII mode,
        every non-ASCII one) become character references (&#x9b;), which mean the same to
        any XML reader (tui.shown)."""
        return shown_xml(self.xml, self.ascii)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            # Text: a name is never read as markup; escaped: nor drives the terminal
            box.border_title = Text(shown(self.title_text, self.ascii))
            with VerticalScroll():
                yield Static(Syntax(self.shown_xml, "xml", theme="ansi_dark", word_wrap=False,
                                    background_color=self._background()), id="xml")
            yield Button("Close", id="close")
        yield Footer()

    def _background(self) -> str:
        """The dialog's own background, so the text does not sit on stripes of the
        terminal's default colour: the theme's surface, as a colour Rich can parse. The
        ANSI themes' surface is Textual's 'transparent', which Rich cannot (the XML view
        crashed): then the terminal's default."""
        background = self.app.theme_variables.get("surface", "default")
        try:
            Color.parse(background)
        except ColorParseError:
            return "default"
        return background

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
