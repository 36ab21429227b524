"""Form pieces the dialogs share: a labelled field with its message line, ASCII-safe
toggles, the typed-name confirmation, and the parsing helpers behind their messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.style import Style
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, RadioButton, RadioSet, Static

from backends.errors import InvalidSize, PoolkeeperError
from backends.units import parse_size

from ..shown import shown

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
        self.message_text = ""
        self.kind: Kind | None = None

    def show(self, text: str | None, kind: Kind = "error") -> None:
        text = text or ""
        if text == self.message_text and kind == self.kind:
            return
        self.message_text, self.kind = text, kind if text else None
        self.update(shown(text, self.app.has_class("-ascii")))
        self.set_class(bool(text), "-shown")
        for k in ("error", "warning", "note"):
            self.set_class(k == self.kind, k)


MARK = ">"  # before the label of the field that has the focus (FocusMark)


class FocusMark(Static):
    """'>' in front of a field (or a typed confirmation) while focus is inside it: the
    focused field is seen without colour (NO_COLOR, --ascii, the Linux console), where a
    slightly different background is all Textual shows. Dialog gives the field that
    holds the focus the class -has-focus (Textual 8.2.8's :focus-within did not follow
    Tab from an Input to a Select)."""

    SCOPED_CSS = False  # the rule below starts at the field, not at FocusMark
    DEFAULT_CSS = """
    FocusMark { width: 2; height: 1; visibility: hidden; text-style: bold; }
    .-has-focus > .row > FocusMark { visibility: visible; }
    """

    def __init__(self) -> None:
        super().__init__(MARK, markup=False, classes="mark")


class Field(Vertical):
    """A labelled control on one line, with its message line under it; a '>' marks it
    while it has the focus (FocusMark)."""

    DEFAULT_CSS = """
    Field { height: auto; }
    Field > .row { height: auto; }
    Field > .row > .label { width: 14; padding: 0 1 0 0; }
    Field > .row > Input, Field > .row > Select { width: 1fr; }
    Field > InlineMessage { padding: 0 0 0 16; }
    """

    def __init__(
        self, label: str, *controls: Widget, id: str, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.label_text = label
        self.controls = controls

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield FocusMark()
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


def marked_button(toggle: Checkbox | RadioButton, ascii: bool, on: str, off: str
                  ) -> Content | None:
    """The mark of a toggle whose state shows in the glyph itself, not only in colour.
    ASCII mode: `on` or `off` ("[X]"/"[ ]", "(*)"/"( )"). Otherwise Textual draws the same
    glyph on and off (a radio's dot, a checkbox's X), told apart by colour only, which is
    gone under NO_COLOR and faint on many terminals: off, the glyph is left blank. None:
    Textual's own mark (on)."""
    if ascii:
        return Content(on if toggle.value else off)
    if toggle.value:
        return None
    button_style = toggle.get_visual_style("toggle--button")
    side_style = Style(foreground=button_style.background,
                       background=toggle.background_colors[1])
    return Content.assemble((toggle.BUTTON_LEFT, side_style), (" ", button_style),
                            (toggle.BUTTON_RIGHT, side_style))


class Check(Checkbox):
    """A checkbox whose mark shows its state in the glyph itself (NO_COLOR, ASCII)."""

    def __init__(self, label: str, value: bool = False, *, ascii: bool = False,
                 id: str | None = None) -> None:
        super().__init__(label, value, id=id, compact=True)
        self.ascii = ascii

    @property
    def _button(self) -> Content:
        return marked_button(self, self.ascii, "[X]", "[ ]") or super()._button


class Radio(RadioButton):
    """A radio button whose mark shows its state in the glyph itself, like Check."""

    def __init__(self, label: str, value: bool = False, *, ascii: bool = False,
                 id: str | None = None) -> None:
        super().__init__(label, value, id=id, compact=True)
        self.ascii = ascii

    @property
    def _button(self) -> Content:
        return marked_button(self, self.ascii, "(*)", "( )") or super()._button


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

    `confirmed` is True only when the typed text equals `expected` exactly, or the name
    as the prompt shows it (escaped by tui.shown, in ASCII mode too: a name holding a
    backslash is shown with two, and typing what is shown must work).
    """

    DEFAULT_CSS = """
    TypedConfirm { height: auto; margin: 1 0 0 0; }
    TypedConfirm > .row { height: auto; }
    TypedConfirm > .row > .prompt { color: $text-warning; }
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
        self.shown_name = shown(expected)
        self.prompt = prompt or f"type '{expected}' to confirm"  # raw: escaped when drawn

    def compose(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield FocusMark()
            yield Label(shown(self.prompt, self.app.has_class("-ascii")),
                        classes="prompt", markup=False)
        yield Input(compact=True, classes="typed")
        yield InlineMessage(classes="field-message")

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def confirmed(self) -> bool:
        return self.input.value in (self.expected, self.shown_name, shown(self.expected, True))

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        self.query_one(InlineMessage).show(None)
        self.post_message(self.Changed(self, self.confirmed))

    def refuse(self) -> None:
        self.query_one(InlineMessage).show(f"type '{self.expected}' exactly to confirm")
