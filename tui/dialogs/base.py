"""The modal frame every poolkeeper dialog shares, and its submit/cancel flow.

A dialog subclass composes its fields in `compose_body` and implements `evaluate`, a pure
function of the widget values that returns the result (or None) and the message to show
under each field. The base re-evaluates after every change, so messages are live; errors
appear once a field was edited or a submit was tried, warnings and notes at once.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import ClassVar, Generic, TypeVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Footer, Input, RadioSet, Select, Static

from ..shown import shown
from ..textual_fixes import DismissOnce
from .fields import Field, InlineMessage, Kind, TypedConfirm

ResultT = TypeVar("ResultT")
_MAX_PASSES = 3  # refresh_form: evaluations per change (a hook may ask for one more)


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


class Dialog(DismissOnce, ModalScreen[ResultT]):
    """A modal form: fields, a message line, [primary] [Cancel], and a Footer of keys.

    Esc and the Cancel button dismiss with None. Ctrl+S, Enter in the last input or the
    primary button submit; a submit is refused (fields keep their text) while `evaluate`
    reports an error or a shown TypedConfirm is not confirmed. A dialog is dismissed once:
    keys queued behind the submit (Enter twice) do nothing more (tui.textual_fixes).
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
    /* Focus and cursor seen without colour (NO_COLOR, --ascii, TERM=linux): reverse
       video, with the colours given swapped so that colour terminals look as before.
       The field that has the focus is also marked '>' (fields.FocusMark). */
    Dialog Input > .input--cursor {
        background: $input-cursor-foreground; color: $input-cursor-background;
        text-style: reverse;
    }
    Dialog RadioSet:focus > RadioButton.-selected > .toggle--label,
    Dialog OptionList:focus > .option-list--option-highlighted {
        background: $foreground; color: $block-cursor-background;
        text-style: bold reverse;
    }
    Dialog Button:focus { text-style: bold reverse; }
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
        self._refreshing = False  # refresh_form is running: a nested call asks for a pass
        self._refresh_again = False
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

    def set_submit_label(self, label: str) -> None:
        """Rename the primary action: its button and its footer key ("^s Destroy")."""
        submit = self.query_one("#submit", Button)
        if str(submit.label) == label:
            return
        submit.label = label
        self.sync_footer()

    def sync_footer(self) -> None:
        """The footer names each key as the button that does the same is named: ^s as
        the primary button, esc as the cancel button ("Discard"), or, with no cancel
        button shown, as the one way out there is ("Close"). Call after relabelling or
        hiding a button (tests/tui/test_dialog_footer.py checks every dialog)."""
        submit = self.query_one("#submit", Button)
        cancel = self.query_one("#cancel", Button)
        escape = str(cancel.label) if cancel.display else str(submit.label)
        wanted = {"ctrl+s": Binding("ctrl+s", "submit", str(submit.label), key_display="^s",
                                    priority=True),
                  "escape": Binding("escape", "cancel", escape, key_display="esc")}
        changed = False
        for key, binding in wanted.items():
            now = self._bindings.key_to_bindings.get(key, [])
            if [b.description for b in now] != [binding.description]:
                self._bindings.key_to_bindings[key] = [binding]
                changed = True
        if changed:
            self.refresh_bindings()

    def on_mount(self) -> None:
        box = self.query_one("#dialog")
        # plain text (names may hold '['), escaped: the heading names a pool or volume
        box.border_title = Content(shown(self.heading, self.ascii))
        if self.ascii:
            # Select draws its arrows with triangles; ASCII terminals get v and ^.
            for arrow in self.query("SelectCurrent .down-arrow").results(Static):
                arrow.update("v")
            for arrow in self.query("SelectCurrent .up-arrow").results(Static):
                arrow.update("^")
        for field_input in self.query(Input):
            # A steady cursor: a blinking one is not there half the time (nor in a
            # screenshot), and on the Linux console it is the only sign of the focus.
            field_input.cursor_blink = False
        self.setup()
        self.sync_footer()  # setup may have relabelled or hidden a button
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
        """Evaluate and show the result. An after_refresh hook that changes what is shown
        (a TypedConfirm appears) calls this again: that asks for one more pass, run here
        after the hook returns, never inside it. Before, the hook recursed directly, and on
        a dialog being closed (keys still queued for it) a hidden widget's display reads
        False whatever it is set to, so it recursed until RecursionError killed the app.
        A dismissed dialog is not evaluated again."""
        if not self._ready or self._dismissed:
            return self.last_evaluation
        if self._refreshing:
            self._refresh_again = True
            return self.last_evaluation
        self._refreshing = True
        try:
            for _ in range(_MAX_PASSES):  # a hook that keeps changing its mind is cut short
                self._refresh_again = False
                ev = self._refresh_once()
                if not self._refresh_again:
                    break
        finally:
            self._refreshing = False
        return ev

    def _refresh_once(self) -> Evaluation[ResultT]:
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

    # -- the focus marker (fields.FocusMark) ---------------------------------------------
    @on(events.DescendantFocus)
    @on(events.DescendantBlur)
    def _mark_focus(self, event: events.Event) -> None:
        holder: Widget | None = None
        node = self.focused
        while node is not None and node is not self:
            if isinstance(node, (Field, TypedConfirm)):
                holder = node
                break
            parent = node.parent
            node = parent if isinstance(parent, Widget) else None
        for marked in self.query(".-has-focus").results(Widget):
            if marked is not holder:
                marked.remove_class("-has-focus")
        if holder is not None:
            holder.add_class("-has-focus")

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
        if self._dismissed:
            return  # an Enter queued behind the one that submitted
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
