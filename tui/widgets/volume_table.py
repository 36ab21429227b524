"""VolumeTable: a line-API table of volumes that stays fast at 100,000+ rows.

Why not DataTable: DataTable formats and measures every cell of every row when rows are
added, so a pool of 100,000 volumes takes seconds to show. This widget keeps the volumes
themselves in sorted order and formats only the lines on screen, caching each rendered line
(keyed by volume name + version + cursor/mark state + layout generation), so a refresh that
changes one volume re-renders one line.

Data structures:
- `_order`: every volume, ascending by the sort key (`(column value, name)`, unique because
  names are unique); `apply_diff` bisects into it instead of re-sorting. `_by_name_order`
  holds them in name order too, so a new sort column is one stable sort on its value.
- `_rows`: the volumes that pass the filter, in the same order (the same list when there is
  no filter). Reversed sorting only flips the display index, the lists stay ascending.
- Column widths come from per-column histograms of cell widths kept up to date on every
  add/remove, so the widest cell is known without scanning rows; sizes have a fixed width.
- `_free`: free extents of the pool's devices (set_free_extents), shown like cfdisk as dim
  "(free)" rows after every volume, in start order, whatever the sort and the filter. The
  cursor can sit on one (`_cursor_free`, with `_cursor_name` None): it is never marked and
  `cursor_volume` is None there; enter posts FreeRowActivated.

Keys (focused table):
    up / down / pageup / pagedown / home / end   move the cursor
    left / right                                 scroll horizontally
    space                                        mark / unmark the cursor row
    enter                                        activate the cursor row (posts Activated,
                                                 or FreeRowActivated on a free row)
    o                                            sort by the next column
    O                                            reverse the sort order
Mouse: click a header cell to sort by it (again to reverse); click a row to move the cursor;
double-click a row to activate it.

Component classes (for the app's CSS, and so NO_COLOR works through Textual):
    volume-table--header, volume-table--cursor, volume-table--marked,
    volume-table--error, volume-table--dim
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import count
from operator import attrgetter
from typing import Any, ClassVar, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.cache import LRUCache
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBarRender
from textual.strip import Strip

from backends.model import VolumeInfo
from backends.units import human

from ..shown import shown
from .scrollbars import AsciiScrollBarRender

SortKey = Callable[[VolumeInfo], Any]

_NAME_KEY: SortKey = attrgetter("name")
_SEP = "  "  # between columns: plain spaces, so ASCII mode needs no box drawing
_MARK_WIDTH = 2  # marker glyph + space
_SIZE_WIDTH = 11  # widest human() output: "1023.99 KiB" / "1024.00 KiB"
_PCT_WIDTH = 4  # " 42%", "100%"

# Widest cell shown per column (longer values are truncated with an ellipsis).
_CAPS = {"name": 40, "format": 24, "backing": 40, "in_use": 30, "path": 80}

FREE_NAME = "(free)"  # name cell of a free-extent row
FREE_FORMAT = "free"  # its format cell


_ESCAPED_RE = re.compile(r"[\x00-\x1f\x7f\\]")  # ASCII that tui.shown escapes


def _cell_width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _width_histogram(texts: list[str], ascii: bool = False) -> Counter[int]:
    """Widths of the cells as drawn (escaped by tui.shown)."""
    # One scan of the joined text lets the common case use C-level len().
    joined = "".join(texts)
    if joined.isascii() and not _ESCAPED_RE.search(joined):
        return Counter(map(len, texts))
    return Counter(_cell_width(shown(text, ascii)) for text in texts)


def _format_cell(v: VolumeInfo) -> str:
    """The format, with the type's flags when it has some (LV attributes such as
    'Vwi-a-tz--' for thin, 's' for snapshots; partition flags)."""
    if v.error:
        return "!"
    return f"{v.format} {v.attributes}" if v.attributes else v.format


def _backing_cell(v: VolumeInfo) -> str:
    return v.backing.path if v.backing is not None else ""


class _Free(NamedTuple):
    """A free-extent row: bytes [start, end) of `device`, and its path cell."""

    device: str
    start: int
    end: int
    text: str


class _Styles(NamedTuple):
    """Styles resolved once per style change (not per line)."""

    header: Style
    base: Style
    cursor: Style
    marked: Style  # partial
    error: Style  # partial
    dim: Style  # partial


class VolumeTable(ScrollView, can_focus=True, inherit_bindings=False):
    """A sortable, filterable table of volumes that renders only what is on screen."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("name", "Name"),
        ("format", "Format"),
        ("capacity", "Capacity"),
        ("allocation", "Allocation"),
        ("pct", "Alloc%"),
        ("backing", "Backing store"),
        ("in_use", "In use by"),
        ("path", "Path"),
    )

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Up", show=False),
        Binding("down", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("left", "scroll_left", "Scroll left", show=False),
        Binding("right", "scroll_right", "Scroll right", show=False),
        Binding("space", "toggle_mark", "Mark"),
        Binding("enter", "activate", "Open", show=False),
        Binding("o", "cycle_sort", "Sort"),
        Binding("O,shift+o", "reverse_sort", "Reverse", key_display="O"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "volume-table--header",
        "volume-table--cursor",
        "volume-table--marked",
        "volume-table--error",
        "volume-table--dim",
    }

    DEFAULT_CSS = """
    VolumeTable {
        background: $surface;
        color: $foreground;
        & > .volume-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .volume-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
        &:focus > .volume-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .volume-table--marked {
            color: $warning;
            text-style: bold;
        }
        & > .volume-table--error {
            color: $error;
            text-style: bold;
        }
        & > .volume-table--dim {
            color: $text-muted;
        }
    }
    """

    empty_text: reactive[str] = reactive("no volumes")
    """Shown under the header when the table has no volumes at all."""

    class SelectionChanged(Message):
        """The cursor moved to another volume (or to none)."""

        def __init__(self, table: VolumeTable, volume: VolumeInfo | None) -> None:
            super().__init__()
            self.table = table
            self.volume = volume

        @property
        def control(self) -> VolumeTable:
            return self.table

    class Activated(Message):
        """Enter (or a double click) on a row."""

        def __init__(self, table: VolumeTable, volume: VolumeInfo) -> None:
            super().__init__()
            self.table = table
            self.volume = volume

        @property
        def control(self) -> VolumeTable:
            return self.table

    class FreeRowActivated(Message):
        """Enter (or a double click) on a free-extent row: bytes [start, end) of device."""

        def __init__(self, table: VolumeTable, device: str, start: int, end: int) -> None:
            super().__init__()
            self.table = table
            self.device = device
            self.start = start
            self.end = end

        @property
        def control(self) -> VolumeTable:
            return self.table

    def __init__(
        self,
        *,
        ascii: bool = False,
        empty_text: str | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._ascii = ascii
        if empty_text is not None:
            self.set_reactive(VolumeTable.empty_text, empty_text)
        self._by_name: dict[str, VolumeInfo] = {}
        self._by_name_order: list[VolumeInfo] = []  # kept so re-sorting is one cheap pass
        self._order: list[VolumeInfo] = []
        self._rows: list[VolumeInfo] = self._order
        self._filter = ""
        self._in_use: dict[str, str] = {}
        self._marked: set[str] = set()
        self._cursor_name: str | None = None
        self._free: list[_Free] = []
        self._free_widths: dict[str, int] = {}
        self._cursor_free: tuple[str, int, int] | None = None  # (device, start, end)
        self._sort_column = "name"
        self._reverse = False
        self._key: SortKey = _NAME_KEY
        self._primary: SortKey | None = None
        # Histograms of cell widths for the variable-width columns.
        self._hist: dict[str, Counter[int]] = {k: Counter() for k in _CAPS if k != "in_use"}
        self._widths: list[int] = []
        self._offsets: list[int] = []
        self._total_width = 0
        self._layout_gen = 0
        # Per-name version, bumped when a volume's line must be re-rendered.
        self._versions: dict[str, int] = {}
        self._version_counter = count(1)
        self._line_cache: LRUCache[tuple[Any, ...], Strip] = LRUCache(2048)
        self._header_cache: tuple[tuple[Any, ...], Strip] | None = None
        self._styles: _Styles | None = None
        self._style_state: Any = None
        self.strips_built = 0  # row lines rendered from scratch (cache misses); for tests
        self._relayout()

    # ----------------------------------------------------------------- public API

    @property
    def ascii(self) -> bool:
        return self._ascii

    @property
    def row_count(self) -> int:
        """Volume rows shown (after the filter; free-extent rows not counted)."""
        return len(self._rows)

    @property
    def total_count(self) -> int:
        """All volumes in the table."""
        return len(self._order)

    @property
    def sort_column(self) -> str:
        return self._sort_column

    @property
    def sort_reverse(self) -> bool:
        return self._reverse

    @property
    def cursor_volume(self) -> VolumeInfo | None:
        return None if self._cursor_name is None else self._by_name.get(self._cursor_name)

    @property
    def cursor_free(self) -> tuple[str, int, int] | None:
        """(device, start, end) of the free-extent row under the cursor, or None."""
        return self._cursor_free

    @property
    def free_extents(self) -> list[tuple[str, int, int]]:
        """The free-extent rows as (device, start, end), in display order (a copy)."""
        return [(f.device, f.start, f.end) for f in self._free]

    @property
    def cursor_row(self) -> int | None:
        """Display index of the cursor row, or None."""
        return self._cursor_index()

    @property
    def marked(self) -> set[str]:
        """Names of marked volumes (a copy). Marks survive filtering; removed volumes
        lose theirs, so a re-created name is never marked by accident."""
        return set(self._marked)

    def row(self, index: int) -> VolumeInfo:
        """The volume shown at display row `index` (0 = first row under the header)."""
        if not 0 <= index < len(self._rows):
            raise IndexError(index)
        return self._rows[-1 - index] if self._reverse else self._rows[index]

    def visible_names(self) -> list[str]:
        """Names in display order (O(n): for tests and bulk actions, not per frame)."""
        names = [v.name for v in self._rows]
        return names[::-1] if self._reverse else names

    def all_volumes(self) -> list[VolumeInfo]:
        """Every volume, filtered out or not, in name order (a copy: O(n))."""
        return list(self._by_name_order)

    def select(self, name: str) -> bool:
        """Move the cursor to the volume `name` if it is shown."""
        v = self._by_name.get(name)
        if v is None:
            return False
        pos = self._find(self._rows, v)
        if pos < 0:
            return False
        self._move_cursor(self._display(pos))
        return True

    def set_free_extents(self, rows: list[tuple[str, int, int]]) -> None:
        """Show these free extents (device, start, end; end exclusive) as rows after the
        volumes, by start; an empty list removes them. Empty extents are left out."""
        extents = sorted({(d, s, e) for d, s, e in rows if e > s}, key=lambda r: (r[1], r[0], r[2]))
        if extents == self.free_extents:
            return
        old_index = self._cursor_index()
        old_offset = self._cursor_screen_offset()
        several = len({d for d, _, _ in extents}) > 1
        free = []
        for device, start, end in extents:
            text = f"{human(start)}-{human(end)}"
            if several:  # which device, when there is a choice
                text = f"{device.rsplit('/', 1)[-1]}: {text}"
            free.append(_Free(device, start, end, text))
        self._free = free
        self._free_widths = (
            {
                "name": len(FREE_NAME),
                "format": len(FREE_FORMAT),
                "path": max(_cell_width(f.text) for f in free),
            }
            if free
            else {}
        )
        if self._cursor_free is not None and self._cursor_free not in extents:
            self._cursor_free = None  # its extent is gone: _fix_cursor finds a row
        self._relayout()
        self._fix_cursor(old_index, old_offset)
        self.refresh()

    def clear_marks(self) -> None:
        if self._marked:
            names = self._marked
            self._marked = set()
            self._refresh_names(names)

    def set_volumes(self, volumes: Iterable[VolumeInfo]) -> None:
        """Replace every volume (first load, or another pool)."""
        volumes = list(volumes)
        by_name = {v.name: v for v in volumes}
        if len(by_name) != len(volumes):
            volumes = list(by_name.values())  # duplicate names: the last one wins
        old_offset = self._cursor_screen_offset()
        self._by_name = by_name
        self._by_name_order = sorted(volumes, key=_NAME_KEY)
        self._order = self._sorted(self._by_name_order)
        self._rows = self._order if not self._filter else self._filtered(self._order)
        self._hist = {
            "name": _width_histogram([v.name for v in volumes], self._ascii),
            # (inlined _format_cell / _backing_cell: a call per row costs more than this)
            "format": _width_histogram([_format_cell(v) for v in volumes], self._ascii),
            "backing": _width_histogram(
                [v.backing.path if v.backing is not None else "" for v in volumes], self._ascii
            ),
            "path": _width_histogram([v.path for v in volumes], self._ascii),
        }
        self._marked &= by_name.keys()
        self._versions.clear()
        self._line_cache.clear()
        self._relayout()
        self._fix_cursor(None, old_offset)
        self.refresh()

    def apply_diff(
        self, added: list[VolumeInfo], removed: list[str], changed: list[VolumeInfo]
    ) -> None:
        """Apply an incremental refresh; only touched rows are re-rendered."""
        old_index = self._cursor_index()
        old_offset = self._cursor_screen_offset()
        structural = False  # did any row move, appear or disappear?
        touched: list[str] = []
        for name in removed:
            old = self._by_name.pop(name, None)
            if old is None:
                continue
            self._remove_sorted(old)
            self._count(old, -1)
            self._marked.discard(name)
            self._versions.pop(name, None)
            structural = True
        for v in [*changed, *added]:
            old = self._by_name.get(v.name)
            self._by_name[v.name] = v
            self._versions[v.name] = next(self._version_counter)
            if old is None:
                self._insert_sorted(v)
                self._count(v, +1)
                structural = True
                continue
            self._count(old, -1)
            self._count(v, +1)
            touched.append(v.name)
            if not self._replace_in_place(old, v):
                self._remove_sorted(old)
                self._insert_sorted(v)
                structural = True
        layout_changed = self._relayout()
        if structural or layout_changed:
            self._fix_cursor(old_index, old_offset)
            self.refresh()
        else:
            self._refresh_names(touched)

    def set_in_use(self, in_use: dict[str, str]) -> None:
        """Who holds each volume open (name -> e.g. "qemu (pid 12)")."""
        in_use = dict(in_use)
        old = self._in_use
        changed = {n for n in old.keys() | in_use.keys() if old.get(n) != in_use.get(n)}
        if not changed:
            return
        self._in_use = in_use
        for name in changed:
            if name in self._by_name:
                self._versions[name] = next(self._version_counter)
        if self._sort_column == "in_use":
            offset = self._cursor_screen_offset()
            self._set_sort_keys("in_use")
            self._resort()
            self._fix_cursor(None, offset)
            self._relayout()
            self.refresh()
        elif self._relayout():
            self.refresh()
        else:
            self._refresh_names(changed)

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by column `key`; reverse=None toggles when it is already the sort column."""
        if key not in dict(self.COLUMNS):
            raise ValueError(f"unknown column {key!r}")
        if reverse is None:
            reverse = not self._reverse if key == self._sort_column else False
        if key == self._sort_column and reverse == self._reverse:
            return
        offset = self._cursor_screen_offset()
        if key != self._sort_column:
            self._sort_column = key
            self._set_sort_keys(key)
            self._resort()
        self._reverse = reverse
        self._header_cache = None
        self._fix_cursor(None, offset)
        self.refresh()

    def set_filter(self, text: str) -> None:
        """Show only volumes whose name or path contains `text` (case-insensitive)."""
        text = text.lower()
        if text == self._filter:
            return
        old = self._filter
        offset = self._cursor_screen_offset()
        self._filter = text
        if not text:
            self._rows = self._order
        elif old and old in text:
            self._rows = self._filtered(self._rows)  # narrowing: scan only what is shown
        else:
            self._rows = self._filtered(self._order)
        self._relayout()
        self._fix_cursor(None, offset)
        self.refresh()

    # ------------------------------------------------------------------- sorting

    def _make_primary(self, column: str) -> SortKey | None:
        """The column's own value (None for name, whose order is kept in `_by_name_order`)."""
        if column == "name":
            return None
        if column in ("capacity", "allocation", "path"):
            return attrgetter(column)
        if column == "format":
            return _format_cell
        if column == "pct":
            return lambda v: v.allocation / v.capacity if v.capacity else 0.0
        if column == "backing":
            return _backing_cell
        if column == "in_use":
            in_use = self._in_use
            return lambda v: in_use.get(v.name, "")
        raise ValueError(f"unknown column {column!r}")

    def _set_sort_keys(self, column: str) -> None:
        # The full key ends with the (unique) name, so every key is unique and bisect
        # finds rows; attrgetter builds the common tuples in C.
        primary = self._make_primary(column)
        self._primary = primary
        if primary is None:
            self._key = _NAME_KEY
        elif column in ("capacity", "allocation", "path"):
            self._key = attrgetter(column, "name")
        else:
            self._key = lambda v: (primary(v), v.name)

    def _sorted(self, by_name: list[VolumeInfo]) -> list[VolumeInfo]:
        """`by_name` (in name order) in the current order: a stable sort on the column
        value alone keeps ties in name order, and is ~4x cheaper than sorting tuples."""
        primary = self._primary
        return list(by_name) if primary is None else sorted(by_name, key=primary)

    def _resort(self) -> None:
        self._order = self._sorted(self._by_name_order)
        if self._filter:
            rows = sorted(self._rows, key=_NAME_KEY)
            self._rows = self._sorted(rows)
        else:
            self._rows = self._order

    def _find(
        self, rows: list[VolumeInfo], v: VolumeInfo, key: SortKey | None = None
    ) -> int:
        """Index of `v` in the ascending list `rows`, or -1. O(log n)."""
        key = key or self._key
        i = bisect.bisect_left(rows, key(v), key=key)
        if i < len(rows) and rows[i].name == v.name:
            return i
        # The caller mutated a stored volume in place, so its key moved: look it up.
        for i, row in enumerate(rows):
            if row.name == v.name:
                return i
        return -1

    def _insert_sorted(self, v: VolumeInfo) -> None:
        bisect.insort(self._by_name_order, v, key=_NAME_KEY)
        bisect.insort(self._order, v, key=self._key)
        if self._rows is not self._order and self._matches(v):
            bisect.insort(self._rows, v, key=self._key)

    def _remove_sorted(self, v: VolumeInfo) -> None:
        for rows, key in (
            (self._by_name_order, _NAME_KEY),
            (self._order, self._key),
            (self._rows if self._rows is not self._order else None, self._key),
        ):
            if rows is not None and (i := self._find(rows, v, key)) >= 0:
                del rows[i]

    def _replace_in_place(self, old: VolumeInfo, new: VolumeInfo) -> bool:
        """Swap `new` in where `old` is if neither its sort key nor filter match moved."""
        key = self._key
        if key(old) != key(new) or old is new:
            return False
        filtered = self._rows is not self._order
        if filtered and self._matches(old) != self._matches(new):
            return False
        i = self._find(self._order, old)
        n = self._find(self._by_name_order, old, _NAME_KEY)
        if i < 0 or n < 0:
            return False
        self._order[i] = new
        self._by_name_order[n] = new
        if filtered:
            j = self._find(self._rows, old)
            if j >= 0:
                self._rows[j] = new
        return True

    # ------------------------------------------------------------------- filter

    def _matches(self, v: VolumeInfo) -> bool:
        text = self._filter
        return not text or text in v.name.lower() or text in v.path.lower()

    def _filtered(self, rows: list[VolumeInfo]) -> list[VolumeInfo]:
        text = self._filter
        return [v for v in rows if text in v.name.lower() or text in v.path.lower()]

    # ------------------------------------------------------------------- layout

    def _count(self, v: VolumeInfo, delta: int) -> None:
        hist = self._hist
        for column, text in (
            ("name", v.name),
            ("format", _format_cell(v)),
            ("backing", _backing_cell(v)),
            ("path", v.path),
        ):
            counter = hist[column]
            width = _cell_width(shown(text, self._ascii))
            counter[width] += delta
            if counter[width] <= 0:
                del counter[width]

    def _data_width(self, column: str) -> int:
        if column in ("capacity", "allocation"):
            return _SIZE_WIDTH
        if column == "pct":
            return _PCT_WIDTH
        if column == "in_use":
            data = max((_cell_width(shown(u, self._ascii)) for u in self._in_use.values()),
                       default=0)
        else:
            data = max(self._hist[column], default=0)
        data = max(data, self._free_widths.get(column, 0))
        return min(data, _CAPS[column])

    def _relayout(self) -> bool:
        """Recompute column widths and the virtual size; True if the widths changed."""
        widths = [
            max(self._data_width(key), cell_len(title) + 2)  # +2: room for the sort arrow
            for key, title in self.COLUMNS
        ]
        changed = widths != self._widths
        if changed:
            self._widths = widths
            offsets, x = [], _MARK_WIDTH
            for w in widths:
                offsets.append(x)
                x += w + len(_SEP)
            self._offsets = offsets
            self._total_width = x - len(_SEP)
            self._invalidate_all(refresh=False)
        size = Size(self._total_width, max(self._row_total(), 1) + 1)
        if self.virtual_size != size:
            self.virtual_size = size
        return changed

    def _invalidate_all(self, refresh: bool = True) -> None:
        self._layout_gen += 1
        self._line_cache.clear()
        self._header_cache = None
        if refresh:
            self.refresh()

    # ------------------------------------------------------------------- cursor

    def _display(self, pos: int) -> int:
        """Display index of list position `pos` (and back: the mapping is its own inverse)."""
        return len(self._rows) - 1 - pos if self._reverse else pos

    def _row_total(self) -> int:
        """Display rows: the (filtered) volumes, then the free extents."""
        return len(self._rows) + len(self._free)

    def _cursor_index(self) -> int | None:
        if self._cursor_free is not None:
            for i, f in enumerate(self._free):  # few rows: a scan is fine
                if (f.device, f.start, f.end) == self._cursor_free:
                    return len(self._rows) + i
            return None
        v = self.cursor_volume
        if v is None:
            return None
        pos = self._find(self._rows, v)
        return None if pos < 0 else self._display(pos)

    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)  # minus the header

    def _cursor_screen_offset(self) -> int | None:
        """Cursor line relative to the top of the view, if the cursor is on screen."""
        index = self._cursor_index()
        if index is None:
            return None
        offset = index - self.scroll_offset.y
        return offset if 0 <= offset < self._page_height() else None

    def _fix_cursor(self, old_index: int | None, screen_offset: int | None) -> None:
        """After rows moved: keep the cursor on its volume (or the row where it was) and
        keep it on the same screen line when it was on screen."""
        previous = (self._cursor_name, self._cursor_free)
        index = self._cursor_index()
        total = self._row_total()
        if index is None and total:
            index = min(old_index or 0, total - 1)
            self._set_cursor(index)
        elif index is None:
            self._cursor_name = self._cursor_free = None
        if index is not None:
            if screen_offset is not None:
                self._scroll_y_to(index - screen_offset)
            self._scroll_cursor_into_view(index)
        if (self._cursor_name, self._cursor_free) != previous:
            self.post_message(self.SelectionChanged(self, self.cursor_volume))

    def _set_cursor(self, index: int) -> None:
        """Put the cursor state on display row `index` (a volume or a free extent)."""
        n = len(self._rows)
        if index < n:
            self._cursor_name, self._cursor_free = self.row(index).name, None
        else:
            f = self._free[index - n]
            self._cursor_name, self._cursor_free = None, (f.device, f.start, f.end)

    def _move_cursor(self, index: int) -> None:
        total = self._row_total()
        if not total:
            return
        index = max(0, min(index, total - 1))
        old = self._cursor_index()
        if index != old:
            self._set_cursor(index)
            if old is not None:
                self._refresh_index(old)
            self._refresh_index(index)
            self.post_message(self.SelectionChanged(self, self.cursor_volume))
        self._scroll_cursor_into_view(index)

    def _scroll_y_to(self, y: int) -> None:
        if not self.is_mounted:
            return  # no size yet (data set before mount): nothing to scroll
        y = max(0, min(y, self.max_scroll_y))
        if y != self.scroll_offset.y:
            self.scroll_to(y=y, animate=False, force=True)

    def _scroll_cursor_into_view(self, index: int) -> None:
        top, page = self.scroll_offset.y, self._page_height()
        if index < top:
            self._scroll_y_to(index)
        elif index >= top + page:
            self._scroll_y_to(index - page + 1)

    # ------------------------------------------------------------------- refresh

    def _refresh_index(self, index: int) -> None:
        """Repaint the single screen line of display row `index`, if it is on screen."""
        y = index - self.scroll_offset.y
        if 0 <= y < self._page_height():
            self.refresh(Region(0, y + 1, max(self.size.width, 1), 1))

    def _refresh_names(self, names: Iterable[str]) -> None:
        for name in names:
            self._versions[name] = next(self._version_counter)
            v = self._by_name.get(name)
            if v is None:
                continue
            pos = self._find(self._rows, v)
            if pos >= 0:
                self._refresh_index(self._display(pos))

    # ------------------------------------------------------------------- rendering

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if hasattr(self, "_line_cache"):  # may be called before __init__ has finished
            self._styles = None
            self._invalidate_all(refresh=False)

    def _get_styles(self) -> _Styles:
        # Focus changes the cursor style; the pseudo-class state catches that too.
        state = self.get_pseudo_class_state()
        if self._styles is None or state != self._style_state:
            if self._styles is not None:
                self._invalidate_all(refresh=False)
            get = self.get_component_rich_style
            base = self.rich_style
            self._styles = _Styles(
                header=base + get("volume-table--header"),
                base=base,
                cursor=base + get("volume-table--cursor"),
                marked=get("volume-table--marked", partial=True),
                error=get("volume-table--error", partial=True),
                dim=get("volume-table--dim", partial=True),
            )
            self._style_state = state
        return self._styles

    def render_lines(self, crop: Region) -> list[Strip]:
        self._get_styles()  # once per paint, not once per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        styles = self._styles or self._get_styles()
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        if y == 0:
            return self._header_strip(styles).crop_extend(
                scroll_x, scroll_x + width, styles.header
            )
        index = scroll_y + y - 1
        rows = self._rows
        if index >= len(rows):
            free_index = index - len(rows)
            if free_index < len(self._free):
                f = self._free[free_index]
                cursor = (f.device, f.start, f.end) == self._cursor_free
                return self._free_line(f, cursor, styles).crop_extend(
                    scroll_x, scroll_x + width, styles.cursor if cursor else styles.base
                )
            if not rows and not self._free and y == 1:
                return self._empty_strip(styles).crop_extend(0, width, styles.base)
            return Strip.blank(width, styles.base)
        v = rows[-1 - index] if self._reverse else rows[index]
        is_cursor = v.name == self._cursor_name
        is_marked = v.name in self._marked
        key = (v.name, self._versions.get(v.name, 0), is_cursor, is_marked, self._layout_gen)
        strip = self._line_cache.get(key)
        if strip is None:
            strip = self._row_strip(v, is_cursor, is_marked, styles)
            self._line_cache[key] = strip
        return strip.crop_extend(
            scroll_x, scroll_x + width, styles.cursor if is_cursor else styles.base
        )

    def _fit(self, text: str, width: int, align: str = "left", keep_end: bool = False) -> str:
        """`text` made safe and unambiguous for one terminal line (tui.shown, as the CLI's
        tables), padded or truncated to exactly `width` cells (keep_end: cut the start)."""
        text = shown(text, self._ascii)
        ellipsis = "~" if self._ascii else "\u2026"
        if text.isascii():
            n = len(text)
            if n > width:
                return ellipsis + text[n - width + 1:] if keep_end else text[: width - 1] + ellipsis
            return text.rjust(width) if align == "right" else text.ljust(width)
        n = cell_len(text)
        if n > width:
            if keep_end:
                while cell_len(text) > width - 1:
                    text = text[1:]
                return set_cell_size(ellipsis + text, width)
            return set_cell_size(set_cell_size(text, width - 1) + ellipsis, width)
        pad = " " * (width - n)
        return pad + text if align == "right" else text + pad

    def _header_strip(self, styles: _Styles) -> Strip:
        key = (self._layout_gen, self._sort_column, self._reverse)
        if self._header_cache is not None and self._header_cache[0] == key:
            return self._header_cache[1]
        up, down = ("^", "v") if self._ascii else ("\u25b2", "\u25bc")
        cells = []
        for (column, title), width in zip(self.COLUMNS, self._widths, strict=True):
            if column == self._sort_column:
                title = f"{title} {down if self._reverse else up}"
            right = column in ("capacity", "allocation", "pct")
            cells.append(self._fit(title, width, "right" if right else "left"))
        strip = Strip([Segment(" " * _MARK_WIDTH + _SEP.join(cells), styles.header)])
        self._header_cache = (key, strip)
        return strip

    def _empty_strip(self, styles: _Styles) -> Strip:
        if self._order:
            text = f'no volume matches "{self._filter}"'
        else:
            text = self.empty_text
        # a message (a pool's error, say): its names are escaped already
        return Strip([Segment(" " + shown(text, self._ascii), styles.base + styles.dim)])

    def _free_line(self, f: _Free, is_cursor: bool, styles: _Styles) -> Strip:
        """A free-extent row, all dim: name, format, size in the capacity column and
        start-end in the path column. Never marked."""
        key = (None, f.device, f.start, f.end, is_cursor, self._layout_gen)
        strip = self._line_cache.get(key)
        if strip is None:
            self.strips_built += 1
            style = (styles.cursor if is_cursor else styles.base) + styles.dim
            w, fit = self._widths, self._fit
            cells = [
                fit(FREE_NAME, w[0]),
                fit(FREE_FORMAT, w[1]),
                fit(human(f.end - f.start), w[2], "right"),
                *(fit("", width) for width in w[3:7]),
                fit(f.text, w[7], keep_end=True),
            ]
            strip = Strip([Segment(" " * _MARK_WIDTH + _SEP.join(cells), style)])
            self._line_cache[key] = strip
        return strip

    def _row_strip(self, v: VolumeInfo, cursor: bool, marked: bool, styles: _Styles) -> Strip:
        self.strips_built += 1
        base = styles.cursor if cursor else styles.base
        if marked:
            base = base + styles.marked
        dim = base + styles.dim
        error = base + styles.error
        w = self._widths
        fit = self._fit
        mark = ("*" if self._ascii else "\u25cf") if marked else " "
        parts: list[tuple[str, Style]] = [
            (mark + " ", base),
            (fit(v.name, w[0]), error if v.error else base),
            (_SEP, base),
        ]
        if v.error:
            # The error text takes the columns from capacity to in-use: visible, simple.
            span = sum(w[2:7]) + 4 * len(_SEP)
            parts += [
                (fit("!", w[1]), error),
                (_SEP, base),
                (fit(f"error: {v.error}", span), error),
                (_SEP, base),
            ]
        else:
            pct = f"{min(v.allocation * 100 / v.capacity, 999):3.0f}%" if v.capacity else "-"
            parts += [
                (fit(v.format, w[1]), base),
                (_SEP, base),
                (fit(human(v.capacity), w[2], "right"), base),
                (_SEP, base),
                (fit(human(v.allocation), w[3], "right"), base),
                (_SEP, base),
                (fit(pct, w[4], "right"), base),
                (_SEP, base),
                (fit(_backing_cell(v), w[5], keep_end=True), dim),
                (_SEP, base),
                (fit(self._in_use.get(v.name, ""), w[6]), base),
                (_SEP, base),
            ]
        parts.append((fit(v.path, w[7], keep_end=True), dim))
        # Merge neighbours of the same style: fewer segments, cheaper crops.
        segments: list[Segment] = []
        text, style = parts[0]
        for part_text, part_style in parts[1:]:
            if part_style is style:
                text += part_text
            else:
                segments.append(Segment(text, style))
                text, style = part_text, part_style
        segments.append(Segment(text, style))
        return Strip(segments)

    def on_mount(self) -> None:
        # (ScrollView.on_mount runs too: Textual calls the handler of every class.)
        self._set_scrollbar_renderers()

    def _set_scrollbar_renderers(self) -> None:
        renderer = AsciiScrollBarRender if self._ascii else ScrollBarRender
        for scrollbar in (self.vertical_scrollbar, self.horizontal_scrollbar):
            scrollbar.renderer = renderer  # type: ignore[misc]  # per instance, on purpose
            scrollbar.refresh()

    def watch_empty_text(self) -> None:
        if not self._rows:
            self.refresh()

    # ------------------------------------------------------------------- input

    def action_cursor_up(self) -> None:
        index = self._cursor_index()
        self._move_cursor(0 if index is None else index - 1)

    def action_cursor_down(self) -> None:
        index = self._cursor_index()
        self._move_cursor(0 if index is None else index + 1)

    def action_page_up(self) -> None:
        self._page(-1)

    def action_page_down(self) -> None:
        self._page(+1)

    def _page(self, direction: int) -> None:
        index = self._cursor_index()
        page = self._page_height()
        if index is None:
            self._move_cursor(0)
            return
        # Move the view by a page too, so the cursor keeps its line on screen.
        self._scroll_y_to(self.scroll_offset.y + direction * page)
        self._move_cursor(index + direction * page)

    def action_first(self) -> None:
        self._move_cursor(0)

    def action_last(self) -> None:
        self._move_cursor(self._row_total() - 1)

    def action_toggle_mark(self) -> None:
        name = self._cursor_name
        if name is None:
            return
        if name in self._marked:
            self._marked.discard(name)
        else:
            self._marked.add(name)
        index = self._cursor_index()
        if index is not None:
            self._refresh_index(index)

    def action_activate(self) -> None:
        v = self.cursor_volume
        if v is not None:
            self.post_message(self.Activated(self, v))
        elif self._cursor_free is not None and self._cursor_index() is not None:
            self.post_message(self.FreeRowActivated(self, *self._cursor_free))

    def action_cycle_sort(self) -> None:
        keys = [key for key, _ in self.COLUMNS]
        self.sort_by(keys[(keys.index(self._sort_column) + 1) % len(keys)], reverse=False)

    def action_reverse_sort(self) -> None:
        self.sort_by(self._sort_column, reverse=not self._reverse)

    def column_at(self, x: int) -> str | None:
        """The column key under content x (scrolled), or None between/outside columns."""
        x += self.scroll_offset.x
        for (key, _), start, width in zip(self.COLUMNS, self._offsets, self._widths, strict=True):
            if start <= x < start + width + len(_SEP):
                return key
        return None

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            column = self.column_at(offset.x)
            if column is not None:
                self.sort_by(column)
            return
        index = self.scroll_offset.y + offset.y - 1
        if 0 <= index < self._row_total():
            self._move_cursor(index)
            if event.chain >= 2:
                self.action_activate()
