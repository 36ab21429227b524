"""Generic yes/no and error dialogs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Button, Static

from ..shown import shown
from .base import Dialog, Evaluation


class ConfirmDialog(Dialog[bool | None]):
    """A question with [confirm_label] and [Cancel]: True when confirmed, None if cancelled."""

    def __init__(self, title: str, message: str, *, confirm_label: str = "OK",
                 ascii: bool = False) -> None:
        self.heading = title
        self.submit_label = confirm_label
        self.message = message
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        yield Static(shown(self.message, self.ascii), markup=False, id="message")

    def evaluate(self) -> Evaluation[bool | None]:
        return Evaluation(result=True)


class ErrorDialog(Dialog[bool | None]):
    """An error to read. With `retry_label` (e.g. "Re-edit") that button returns True;
    "Discard"/"Close" returns False and Esc None: both mean give up."""

    DEFAULT_CSS = """
    ErrorDialog > #dialog { border: round $error; }
    ErrorDialog.ascii > #dialog { border: ascii $error; }
    ErrorDialog #message { color: $text-error; }
    """

    def __init__(self, title: str, message: str, *, retry_label: str | None = None,
                 ascii: bool = False) -> None:
        self.heading = title
        self.message = message
        self.retry_label = retry_label
        self.submit_label = retry_label or "Close"
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        yield Static(shown(self.message, self.ascii), markup=False, id="message")

    def setup(self) -> None:
        cancel = self.query_one("#cancel", Button)
        if self.retry_label is None:
            cancel.display = False  # one way out is enough: Close (and Esc)
        else:
            cancel.label = "Discard"

    def focus_first(self) -> None:
        self.query_one("#submit", Button).focus()

    def evaluate(self) -> Evaluation[bool | None]:
        return Evaluation(result=self.retry_label is not None)

    def action_submit(self) -> None:
        self.dismiss(self.retry_label is not None)

    def cancel_button(self) -> None:
        self.dismiss(False)
