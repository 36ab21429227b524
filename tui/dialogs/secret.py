"""The value of a CHAP secret: typed without echo, never shown or logged."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.widgets import Input, Static

from ..shown import shown
from .base import Dialog, Evaluation
from .fields import field, text_input


@dataclass(frozen=True)
class SecretValue:
    usage: str
    value: str


class SecretDialog(Dialog[SecretValue | None]):
    """Set the secret a pool names with <secret usage='USAGE'/>."""

    def __init__(self, usage: str, *, exists: bool = False, ascii: bool = False) -> None:
        self.heading = f"CHAP secret '{usage}'"
        self.submit_label = "Save"
        self.usage = usage
        self.exists = exists
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        state = "is set; saving replaces it" if self.exists else "is not set yet"
        yield Static(f"The secret '{shown(self.usage, self.ascii)}' {state}. It is stored in a "
                     "file only root "
                     "can read and is never shown or logged.", markup=False, classes="intro")
        yield field("Value", text_input("value", password=True))
        yield field("Again", text_input("again", password=True))

    def evaluate(self) -> Evaluation[SecretValue | None]:
        ev: Evaluation[SecretValue | None] = Evaluation()
        value = self.query_one("#value", Input).value
        again = self.query_one("#again", Input).value
        if not value:
            ev.error("value", "type the secret")
        elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            ev.error("value", "the secret must not contain control characters")
        elif value != again:
            ev.error("again", "the two values differ")
        else:
            ev.result = SecretValue(self.usage, value)
        return ev
