"""A form whose submit is checked by the back end before it closes, and reopened with what
was typed when the back end refuses it anyway.

The check is the controller's (check_volume_def, check_clone, check_resize,
check_pool_def): the same rules the verb applies, from the pool type's driver, run in a
thread (they read the storage). A refusal is
shown beside the field it names (Refusal.element, mapped by the form's `refusal_field`)
and holds while the form asks for the same thing; the dialog stays open. What was typed is
kept (`typed`, the values of the form's inputs, choices and check boxes by id), so a form
opened again after a refusal from the verb itself (a race) starts where the user was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from textual.widgets import Checkbox, Input, Select
from textual.widgets._select import InvalidSelectValueError

from backends.volume_requests import Refusal

from .base import Evaluation

R = TypeVar("R")
Check = Callable[[Any], Refusal | None]  # (the form's result) -> why it would be refused


def typed_values(screen: Any) -> dict[str, object]:
    """The values of the form's inputs, choices and check boxes, by id."""
    values: dict[str, object] = {}
    for widget in screen.query("Input, Select, Checkbox"):
        if widget.id and isinstance(widget, Input | Select | Checkbox):
            values[widget.id] = widget.value
    return values


def put_values(screen: Any, values: Mapping[str, object]) -> None:
    """Put back what typed_values read (ids the form no longer has are left out)."""
    for control_id, value in values.items():
        found = screen.query(f"#{control_id}")
        widget = found.first() if found else None
        if (isinstance(widget, Input) and isinstance(value, str)) or (
                isinstance(widget, Checkbox) and isinstance(value, bool)):
            widget.value = value
        elif isinstance(widget, Select):
            with contextlib.suppress(InvalidSelectValueError):  # its options changed
                widget.value = value


class CheckedForm(Generic[R]):
    """Mixin for a Dialog[R | None]: call `init_checked` in __init__, `restore_typed` in
    setup, `show_refusal` at the end of evaluate, and return `checked(result)` from
    finish. `refusal_field` maps a Refusal's element to the control id that shows it
    (None: the line above the buttons)."""

    back_end_check: Check | None
    refused: tuple[R, Refusal] | None
    typed: dict[str, object]

    def init_checked(self, check: Check | None, typed: Mapping[str, object] | None,
                     refused: tuple[R, Refusal] | None) -> None:
        self.back_end_check = check
        self.typed = dict(typed or {})
        self.refused = refused
        self._restore = bool(typed)

    def restore_typed(self) -> None:
        if self._restore:
            put_values(self, self.typed)
            self.tried = True  # the refusal is shown at once, as after a submit

    def refusal_field(self, refusal: Refusal) -> str | None:
        return None

    def show_refusal(self, ev: Evaluation[R | None]) -> None:
        """The back end's refusal, beside its field, while the form asks for the same."""
        if self.refused is None or ev.result is None:
            return
        asked, refusal = self.refused
        if ev.result != asked:
            return
        control_id = self.refusal_field(refusal)
        if control_id is None:
            ev.form = (refusal.message, "error")
        else:
            ev.error(control_id, refusal.message)
        ev.result = None

    async def checked(self, result: R) -> R | None:
        """`result` once the back end's check passes (the form's values kept in `typed`);
        None while it refuses it (the refusal shown, the form open)."""
        self.typed = typed_values(self)
        if self.back_end_check is None:
            return result
        try:
            refusal = await asyncio.to_thread(self.back_end_check, result)
        except Exception:  # the check could not run: the verb checks again, and says why
            return result
        if refusal is None:
            return result
        self.refused = (result, refusal)
        ev = self.refresh_form()  # type: ignore[attr-defined]
        self._focus_problem(ev)  # type: ignore[attr-defined]
        return None
