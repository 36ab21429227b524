"""Every key a screen answers to, read from its bindings (the one source): F1 lists them,
the command palette runs them, the footer names them the same way (key_name), and a key
that cannot act now says why (unavailable_reason) rather than doing nothing.

A key that moves or scrolls says so at an edge too ("last volume (5 of 5)", "already at
the top of the log"): each widget's disabled_reason knows its own cursor, scroll_edge any
scrolling widget's offsets. The notice is said once while it is on screen (say_why): a key
held down at an edge repeats, and twenty stacked notices would hide the screen; the bell
was not chosen because many terminals mute it and it does not say why.

Keys are named as printed on the keyboard: `/`, `Enter`, `Tab`, `Space`, `Home`, `F1`,
`Del`, `Esc`, `PgUp`; ctrl+s is `^s`, as the footer has always shown it; arrows are drawn
as arrows, or spelled (`Up`) in ASCII mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.binding import Binding, BindingsMap
from textual.keys import format_key
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

if TYPE_CHECKING:
    from textual.app import App
    from textual.dom import DOMNode

_NAMES = {"enter": "Enter", "tab": "Tab", "space": "Space", "home": "Home", "end": "End",
          "pageup": "PgUp", "pagedown": "PgDn", "delete": "Del", "escape": "Esc",
          "backspace": "Backspace", "insert": "Ins", "slash": "/"}
_ARROWS = {"up": ("\u2191", "Up"), "down": ("\u2193", "Down"), "left": ("\u2190", "Left"),
           "right": ("\u2192", "Right")}

# Where a widget's keys apply, by its id on the main screen (others: its class name).
SECTIONS = {"pools": "pool list", "volumes": "volume table", "extents": "extent bar",
            "filter": "filter", "jobs": "jobs panel", "log": "log"}
# Why the keys of a hidden widget do nothing now.
_HIDDEN = {"jobs": "the jobs panel is closed: j opens it",
           "log": "the log is closed: l opens it",
           "filter": "the filter is closed: / opens it",
           "extents": "only disk and logical pools have an extent bar"}
_TEXT_EDITING = "Edit the text"


def key_name(key: str, ascii: bool = False) -> str:
    """One key (Textual's name, "ctrl+s") as printed on the keyboard ("^s")."""
    *mods, base = key.split("+") if key != "+" else ["+"]
    if base[:1] == "f" and base[1:].isdigit():
        name = base.upper()
    elif base in _ARROWS:
        name = _ARROWS[base][1 if ascii else 0]
    elif base in _NAMES:
        name = _NAMES[base]
    else:
        name = format_key(base)
        if ascii and not name.isascii():
            name = base
    if "shift" in mods and len(name) == 1 and name.isalpha():  # shift+o is O
        mods.remove("shift")
        name = name.upper()
    if mods == ["ctrl"]:
        return f"^{name}"
    return "+".join([*(m.capitalize() for m in mods), name])


def names(keys: list[str] | tuple[str, ...], ascii: bool = False) -> str:
    """Several keys for one thing: "Home, ^a" (one name once: O and shift+o are both O)."""
    shown: list[str] = []
    for key in keys:
        name = key_name(key, ascii)
        if name not in shown:
            shown.append(name)
    return ", ".join(shown)


@dataclass(frozen=True)
class KeyRow:
    """A binding (or, for a text field, its editing keys) as F1 and the palette show it."""

    section: str  # "anywhere", "volume table", ...
    keys: tuple[str, ...]  # Textual's names
    description: str
    action: str  # as bound ("app.quit", "move(-1)"); "" for text editing (focus the field)
    node: DOMNode  # whose binding: the action runs there
    widget: bool  # a widget's key: it acts when that widget has the focus

    def names(self, ascii: bool = False) -> str:
        return names(self.keys, ascii)


def _rows(section: str, node: DOMNode, bindings: BindingsMap, widget: bool,
          skip: set[str]) -> list[KeyRow]:
    """A row per binding (its keys together), in the order they were declared; keys in
    `skip` are bound nearer the focus and are left out. System bindings are Textual's."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for key, binding in bindings:
        if binding.system or key in skip:
            continue
        grouped.setdefault((binding.action, binding.description), []).append(key)
    rows = []
    for (action, description), keys in grouped.items():
        rows.append(KeyRow(section, tuple(keys), description or action.replace("_", " "),
                           action, node, widget))
    return rows


def _input_rows(section: str, node: Input) -> list[KeyRow]:
    """A text field: its own keys, and Textual's editing keys as one row."""
    own = BindingsMap(type(node).__dict__.get("BINDINGS", []))
    own_keys = {key for key, _ in own}
    editing = [key for key, binding in node._bindings
               if key not in own_keys and not binding.system]
    rows = _rows(section, node, own, True, set())
    if editing:
        rows.append(KeyRow(section, tuple(editing), _TEXT_EDITING, "", node, True))
    return rows


def section_of(node: DOMNode) -> str:
    return SECTIONS.get(node.id or "", type(node).__name__)


def screen_keys(screen: Screen[object]) -> list[KeyRow]:
    """Every key of `screen`: its own and the app's ("anywhere"; the screen's win where
    both bind a key), then each widget's that has keys of its own, in screen order."""
    rows = _rows("anywhere", screen, screen._bindings, False, set())
    mine = {key for row in rows for key in row.keys}
    rows += _rows("anywhere", screen.app, screen.app._bindings, False, mine)
    seen: set[type] = set()
    for node in screen.query("*"):
        if not node.can_focus or not node._bindings.key_to_bindings or type(node) in seen:
            continue
        seen.add(type(node))
        if isinstance(node, Input):
            rows += _input_rows(section_of(node), node)
        else:
            rows += _rows(section_of(node), node, node._bindings, True, set())
    return rows


def class_keys(section: str, cls: type[DOMNode], node: DOMNode) -> list[KeyRow]:
    """The keys of a screen class not open now (F1 lists what a dialog answers to)."""
    return _rows(section, node, cls._merge_bindings(), True, set())


def row_reason(row: KeyRow) -> str | None:
    """Why the row's key does nothing now (None: it acts)."""
    node = row.node
    if row.widget and not node.display:
        return _HIDDEN.get(node.id or "", f"the {row.section} is not shown")
    if not row.action:
        return None
    return action_reason(node, row.action)


def action_reason(node: DOMNode, action: str) -> str | None:
    """Why `action` (as bound on `node`) cannot run now: its target's disabled_reason
    when it has one, else whether its check_action lets it run, and for a widget that
    does not say for itself, whether a scroll key would scroll (scroll_edge)."""
    target, name, parameters = node.app._parse_action(action, node)
    explain = getattr(target, "disabled_reason", None)
    if callable(explain):
        reason = explain(name, *parameters)  # the extent bar's move(-1) and move(1) differ
        if reason:
            return str(reason)
    if not target.check_action(name, parameters):
        return "not available now"
    if name == "copy_text" and isinstance(target, Screen) and \
            target.get_selected_text() is None:  # Textual then said "Press q to quit"
        return "nothing selected to copy (q quits)"
    if not callable(explain) and isinstance(target, Widget):
        return scroll_edge(target, name)
    return None


# Textual's scroll actions: (axis, direction); home and end go to both ends of y then x.
_SCROLLS = {"scroll_up": ("y", -1), "page_up": ("y", -1), "scroll_down": ("y", 1),
            "page_down": ("y", 1), "scroll_left": ("x", -1), "page_left": ("x", -1),
            "scroll_right": ("x", 1), "page_right": ("x", 1), "scroll_home": ("xy", -1),
            "scroll_end": ("xy", 1)}


def scroll_edge(widget: Widget, action: str) -> str | None:
    """Why scroll `action` would not scroll `widget`: all of it is on screen that way, or
    it is at that edge already (None: it scrolls, or `action` is not a scroll)."""
    if action not in _SCROLLS:
        return None
    axis, direction = _SCROLLS[action]
    where = section_of(widget)
    vertical = widget.allow_vertical_scroll and widget.max_scroll_y > 0
    sideways = widget.allow_horizontal_scroll and widget.max_scroll_x > 0
    if not {"y": vertical, "x": sideways, "xy": vertical or sideways}[axis]:
        return f"the {where} is all on screen: nothing to scroll" + (
            " sideways" if axis == "x" else "")
    top = not vertical or widget.scroll_y <= 0
    left = not sideways or widget.scroll_x <= 0
    end = not vertical or widget.scroll_y >= widget.max_scroll_y
    right = not sideways or widget.scroll_x >= widget.max_scroll_x
    at_start = {"y": top, "x": left, "xy": top and left}[axis]
    at_end = {"y": end, "x": right, "xy": end and right}[axis]
    if direction < 0 and at_start:
        return f"already at the {'left edge' if axis == 'x' else 'top'} of the {where}"
    if direction > 0 and at_end:
        return f"already at the {'right edge' if axis == 'x' else 'end'} of the {where}"
    return None


def say_why(app: App[object], reason: str) -> None:
    """A notice of why a key did nothing, unless the same one is on screen still: a key
    held down repeats, and one notice says it (the module docstring)."""
    if any(note.message == reason and not note.has_expired for note in app._notifications):
        return
    app.notify(reason, severity="warning", markup=False)


def unavailable_reason(screen: Screen[object], key: str) -> str | None:
    """`key` was pressed and reached the screen: why no binding will act on it (None: one
    will, or none is bound to it). The first binding's reason, nearest the focus first."""
    reason = None
    for namespace, bindings in screen._modal_binding_chain:
        for binding in bindings.key_to_bindings.get(key, ()):
            if binding.system:
                continue
            why = action_reason(namespace, binding.action)
            if why is None:
                return None
            reason = reason or why
    return reason


def display(binding: Binding, ascii: bool = False) -> str:
    """The footer's name for a binding: the same as F1's (its key_display is not used, so
    that every key is named in one place)."""
    return key_name(binding.key.split(",")[0], ascii)
