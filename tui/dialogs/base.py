"""What every poolkeeper dialog shares: the modal frame, form fields with inline messages,
ASCII-safe toggles, the typed-name confirmation and the submit/cancel flow.

A dialog subclass composes its fields in `compose_body` and implements `evaluate`, a pure
function of the widget values that returns the result (or None) and the message to show
under each field. The base re-evaluates after every change, so messages are live; errors
appear once a field was edited or a submit was tried, warnings and notes at once.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Literal, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Input,
    Label,
    RadioButton,
    RadioSet,
    Select,
    Static,
)

from backends.errors import InvalidSize, PoolkeeperError
from backends.units import parse_size

ResultT = TypeVar("ResultT")
Kind = Literal["error", "warning", "note"]

SIZE_HINT = "use e.g. 10G or 512MiB"


class Invalid(Exception):
    """A field value that cannot be used; its text is shown under the field."""


def bare_message(exc: PoolkeeperError) -> str:
    """The message without the '<element> (line N): ' prefix ValidationError adds."""
    return re.sub(r"^<[^>]+>(?: \(line \d+\))?: ", "", str(exc))


def parse_size_text(text: str, what: str = "size") -> int:
    """A virsh-style size ('10G', '512MiB', '4096'); Invalid with a person's message."""
    text = text.strip()
    try:
        return parse_size(text, what)
    except InvalidSize as exc:
        if "too large" in str(exc):
            raise Invalid(f"'{text}' is too large") from None
        raise Invalid(f"'{text}' is not a size: {SIZE_HINT}") from None


@dataclass
class Evaluation(Generic[ResultT]):
    """What a dialog's fields amount to right now."""

    result: ResultT | None = None
    messages: dict[str, tuple[str, Kind]] = field(default_factory=dict)
    form: tuple[str, Kind] | None = None  # a line above the buttons, for the whole form

    # One message per field: the first error wins, then the first warning, then a note.
    def error(self, control_id: str, text: str) -> None:
        self._put(control_id, text, "error")

    def warn(self, control_id: str, text: str) -> None:
        self._put(control_id, text, "warning")

    def note(self, control_id: str, text: str) -> None:
        self._put(control_id, text, "note")

    def _put(self, control_id: str, text: str, kind: Kind) -> None:
        rank = {"error": 0, "warning": 1, "note": 2}
        old = self.messages.get(control_id)
        if old is None or rank[kind] < rank[old[1]]:
            self.messages[control_id] = (text, kind)

    @property
    def ok(self) -> bool:
        return not any(kind == "error" for _t, kind in self.messages.values()) and (
            self.form is None or self.form[1] != "error"
        )


class InlineMessage(Static):
    """A one-line message under a field (hidden when empty)."""

    DEFAULT_CSS = """
    InlineMessage { height: auto; display: none; padding: 0 0 0 1; }
    InlineMessage.-shown { display: block; }
    InlineMessage.error { color: $text-error; }
    InlineMessage.warning { color: $text-warning; }
    InlineMessage.note { color: $text-muted; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", markup=False, id=id, classes=classes)
        self.text = ""
        self.kind: Kind | None = None

    def show(self, text: str | None, kind: Kind = "error") -> None:
        text = text or ""
        if text == self.text and kind == self.kind:
            return
        self.text, self.kind = text, kind if text else None
        self.update(text)
        self.set_class(bool(text), "-shown")
        for k in ("error", "warning", "note"):
            self.set_class(k == self.kind, k)


class Field(Vertical):
    """A labelled control on one line, with its message line under it."""

    DEFAULT_CSS = """
    Field { height: auto; }
    Field > .row { height: auto; }
    Field > .row > .label { width: 14; padding: 0 1 0 0; }
    Field > .row > Input, Field > .row > Select { width: 1fr; }
    Field > InlineMessage { padding: 0 0 0 14; }
    """

    def __init__(
        self, label: str, *controls: Widget, id: str, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.label_text = label
        self.controls = controls

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label(self.label_text, classes="label", markup=False)
            yield from self.controls
        yield InlineMessage(classes="field-message")

    @property
    def control_ids(self) -> list[str]:
        return [c.id for c in self.controls if c.id]

    def show(self, text: str | None, kind: Kind = "error") -> None:
        self.query_one(InlineMessage).show(text, kind)


def field(label: str, control: Widget, *more: Widget, classes: str | None = None) -> Field:
    """A Field for `control` (whose id must be set): the field's id is 'field-' + that id."""
    assert control.id, "a field's control needs an id"
    return Field(label, control, *more, id=f"field-{control.id}", classes=classes)


def text_input(id: str, value: str = "", placeholder: str = "", **kw: object) -> Input:
    return Input(value, placeholder=placeholder, id=id, compact=True, **kw)  # type: ignore[arg-type]


class Check(Checkbox):
    """A checkbox whose mark shows its state in the glyph itself (NO_COLOR, ASCII)."""

    def __init__(self, label: str, value: bool = False, *, ascii: bool = False,
                 id: str | None = None) -> None:
        super().__init__(label, value, id=id, compact=True)
        self.ascii = ascii

    @property
    def _button(self) -> Content:
        if not self.ascii:
            return super()._button
        return Content("[X]" if self.value else "[ ]")


class Radio(RadioButton):
    """A radio button, ASCII-safe like Check."""

    def __init__(self, label: str, value: bool = False, *, ascii: bool = False,
                 id: str | None = None) -> None:
        super().__init__(label, value, id=id, compact=True)
        self.ascii = ascii

    @property
    def _button(self) -> Content:
        if not self.ascii:
            return super()._button
        return Content("(*)" if self.value else "( )")


def radio_set(options: Iterable[tuple[str, str]], selected: str, *, id: str,
              ascii: bool) -> RadioSet:
    """A compact RadioSet of (key, label) options; each button's id is 'opt-' + key."""
    buttons = [
        Radio(label, key == selected, ascii=ascii, id=f"opt-{key}") for key, label in options
    ]
    return RadioSet(*buttons, id=id, compact=True)


def radio_value(rs: RadioSet) -> str | None:
    """The key of the pressed button of a set made by radio_set."""
    pressed = rs.pressed_button
    if pressed is None or not pressed.id:
        return None
    return pressed.id.removeprefix("opt-")


class TypedConfirm(Vertical):
    """'type NAME to confirm': an input that gates a destructive submit.

    `confirmed` is True only when the typed text equals `expected` exactly.
    """

    DEFAULT_CSS = """
    TypedConfirm { height: auto; margin: 1 0 0 0; }
    TypedConfirm > .prompt { color: $text-warning; }
    TypedConfirm > Input { width: 1fr; }
    """

    class Changed(Message):
        def __init__(self, typed_confirm: TypedConfirm, confirmed: bool) -> None:
            super().__init__()
            self.typed_confirm = typed_confirm
            self.confirmed = confirmed

        @property
        def control(self) -> TypedConfirm:
            return self.typed_confirm

    def __init__(self, expected: str, *, prompt: str | None = None,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.expected = expected
        self.prompt = prompt or f"type '{expected}' to confirm"

    def compose(self) -> ComposeResult:
        yield Label(self.prompt, classes="prompt", markup=False)
        yield Input(compact=True, classes="typed")
        yield InlineMessage(classes="field-message")

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def confirmed(self) -> bool:
        return self.input.value == self.expected

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_one(InlineMessage).show(None)
        self.post_message(self.Changed(self, self.confirmed))

    def refuse(self) -> None:
        self.query_one(InlineMessage).show(f"type '{self.expected}' exactly to confirm")


class Dialog(ModalScreen[ResultT]):
    """A modal form: fields, a message line, [primary] [Cancel], and a Footer of keys.

    Esc and the Cancel button dismiss with None. Ctrl+S, Enter in the last input or the
    primary button submit; a submit is refused (fields keep their text) while `evaluate`
    reports an error or a shown TypedConfirm is not confirmed.
    """

    DEFAULT_CSS = """
    Dialog { align: center middle; }
    Dialog > #dialog {
        width: 74; max-width: 100%;
        height: auto; max-height: 100%;
        border: round $primary;
        border-title-color: $text;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    Dialog.ascii > #dialog { border: ascii $primary; }
    Dialog #body { height: auto; max-height: 100%; }
    Dialog #footer-area { dock: bottom; height: auto; }
    Dialog #form-message { margin: 1 0 0 0; }
    Dialog #buttons { height: 1; margin: 1 0 0 0; align-horizontal: right; }
    Dialog #buttons > Button { margin: 0 0 0 2; min-width: 10; }
    Dialog .intro { margin: 0 0 1 0; }
    Dialog .warning-text { color: $text-warning; }
    Dialog Select > SelectOverlay { border: round $border; }
    Dialog.ascii Select > SelectOverlay { border: ascii $border; }
    Dialog RadioSet { width: 1fr; }
    Dialog Input.-textual-compact { background: $panel; }
    Dialog Input.-textual-compact:focus { background: $primary 25%; }
    Dialog Input.-textual-compact.-invalid { background: $error 25%; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", key_display="esc"),
        Binding("tab", "app.focus_next", "Next field", key_display="tab"),
        Binding("shift+tab", "app.focus_previous", "Previous", show=False),
    ]

    heading: str = ""
    submit_label: str = "OK"
    submit_variant: str = "primary"

    def __init__(self, *, ascii: bool = False) -> None:
        super().__init__(classes="ascii" if ascii else None)
        self.ascii = ascii
        self.touched: set[str] = set()
        self.tried = False  # a submit was attempted: show every error from now on
        self.last_evaluation: Evaluation[ResultT] = Evaluation()
        self._ready = False  # set once mounted: evaluations before that see no widgets
        # Bound per instance so that the footer names the action ("^s Create").
        self._bindings.bind("ctrl+s", "submit", self.submit_label, key_display="^s",
                            priority=True)

    # -- layout ------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            with VerticalScroll(id="body"):
                yield from self.compose_body()
            with Vertical(id="footer-area"):
                yield InlineMessage(id="form-message")
                with Horizontal(id="buttons"):
                    yield Button(self.submit_label, id="submit",
                                 variant=self.submit_variant,  # type: ignore[arg-type]
                                 compact=True)
                    yield Button("Cancel", id="cancel", compact=True)
        yield Footer(show_command_palette=False)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def on_mount(self) -> None:
        box = self.query_one("#dialog")
        box.border_title = Content(self.heading)  # plain text: names may hold '['
        if self.ascii:
            # Select draws its arrows with triangles; ASCII terminals get v and ^.
            for arrow in self.query("SelectCurrent .down-arrow").results(Static):
                arrow.update("v")
            for arrow in self.query("SelectCurrent .up-arrow").results(Static):
                arrow.update("^")
        self.setup()
        self._ready = True
        self.refresh_form()
        self.focus_first()

    def setup(self) -> None:
        """Subclass hook run once mounted, before the first evaluation (not a handler:
        Textual calls every on_mount along the MRO)."""

    def focus_first(self) -> None:
        for widget in self.query("#body *").results(Widget):
            if widget.focusable and self._shown(widget):
                widget.focus()
                return
        self.query_one("#submit", Button).focus()

    # -- to override -------------------------------------------------------------------
    def evaluate(self) -> Evaluation[ResultT]:
        """Read the fields; return the result (if valid) and the messages to show."""
        return Evaluation()

    def can_submit(self) -> bool:
        """Extra gate besides errors and typed confirmations."""
        return True

    def after_refresh(self, ev: Evaluation[ResultT]) -> None:
        """Hook run after every evaluation (preview panes, showing/hiding fields)."""

    # -- live evaluation ---------------------------------------------------------------
    def refresh_form(self) -> Evaluation[ResultT]:
        if not self._ready:
            return self.last_evaluation
        ev = self.evaluate()
        self.last_evaluation = ev
        for fld in self.query(Field):
            shown: tuple[str, Kind] | None = None
            for cid in fld.control_ids:
                msg = ev.messages.get(cid)
                if msg and (msg[1] != "error" or self.tried or cid in self.touched):
                    shown = msg
                    break
            fld.show(*(shown or (None,)))
        form = ev.form
        if form and form[1] == "error" and not self.tried:
            form = None
        self.query_one("#form-message", InlineMessage).show(*(form or (None,)))
        self.query_one("#submit", Button).disabled = not self._gate_open()
        self.after_refresh(ev)
        return ev

    def _typed_confirms(self) -> list[TypedConfirm]:
        return [tc for tc in self.query(TypedConfirm) if self._shown(tc)]

    def _gate_open(self) -> bool:
        return self.can_submit() and all(tc.confirmed for tc in self._typed_confirms())

    def _shown(self, widget: Widget) -> bool:
        node: Widget | None = widget
        while node is not None and node is not self:
            if not node.display:
                return False
            parent = node.parent
            node = parent if isinstance(parent, Widget) else None
        return True

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        if event.input.id and event.input.has_focus:
            self.touched.add(event.input.id)
        self.on_form_change(event.input)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        self.on_form_change(event.select)

    @on(Checkbox.Changed)
    def _check_changed(self, event: Checkbox.Changed) -> None:
        self.on_form_change(event.checkbox)

    @on(RadioSet.Changed)
    def _radio_changed(self, event: RadioSet.Changed) -> None:
        self.on_form_change(event.radio_set)

    @on(TypedConfirm.Changed)
    def _confirm_changed(self, event: TypedConfirm.Changed) -> None:
        self.on_form_change(event.typed_confirm)

    def on_form_change(self, widget: Widget) -> None:
        self.refresh_form()

    # -- submit / cancel ---------------------------------------------------------------
    @on(Input.Submitted)
    def _enter(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = [w for w in self.focus_chain if isinstance(w, Input)]
        if inputs and event.input is inputs[-1]:
            self.action_submit()
        else:
            self.focus_next()

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.cancel_button()

    def cancel_button(self) -> None:
        self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        self.tried = True
        ev = self.refresh_form()
        for tc in self._typed_confirms():
            if not tc.confirmed:
                tc.refuse()
        if ev.result is None or not ev.ok or not self._gate_open():
            self._focus_problem(ev)
            return
        final = self.finish(ev.result)
        if inspect.isawaitable(final):
            self.run_worker(self._finish_async(final), group="submit", exclusive=True)
        elif final is not None:
            self.dismiss(final)

    async def _finish_async(self, final: Awaitable[ResultT | None]) -> None:
        result = await final
        if result is not None:
            self.dismiss(result)

    def finish(self, result: ResultT) -> ResultT | None | Awaitable[ResultT | None]:
        """Last step of a valid submit; may check something off the UI thread first."""
        return result

    def _focus_problem(self, ev: Evaluation[ResultT]) -> None:
        for fld in self.query(Field):
            if not self._shown(fld):
                continue
            for cid in fld.control_ids:
                msg = ev.messages.get(cid)
                if msg and msg[1] == "error":
                    self.query_one(f"#{cid}").focus()
                    return
        for tc in self._typed_confirms():
            if not tc.confirmed:
                tc.input.focus()
                return
