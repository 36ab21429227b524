"""VolumeRows: the volumes a VolumeTable shows, in the order and under the filter it shows
them in, which ones are marked, and how wide each column's cells are. No drawing, no Textual:
the table asks it what changed and repaints that.

Data structures:
- `order`: every volume, ascending by the sort key (`(column value, name)`, unique because
  names are unique); `apply_diff` bisects into it instead of re-sorting. `by_name_order`
  holds them in name order too, so a new sort column is one stable sort on its value.
- `rows`: the volumes that pass the filter, in the same order (the same list when there is
  no filter). Reversed sorting only flips the display index, the lists stay ascending.
- A new sort column or a filter over many rows can be computed away from the UI thread:
  `view_task` copies what it reads and returns the work; `install` puts its View in place
  unless `version` (bumped by every change of the volumes) moved meanwhile.
- Many volumes added, changed or removed at once (a streamed listing's batch, the headers
  of a quick listing read) are merged: the old ones filtered out and the new ones, sorted,
  slotted in by bisection, O(k log n + n) with the copying done in C, never a sort of all.
- Column widths come from per-column histograms of cell widths kept up to date on every
  add/remove, so the widest cell is known without scanning rows.
- `pending` counts the volumes whose header is not read yet (VolumeInfo.pending). The back
  end reads a header into the pending info itself: a changed volume that is the very
  object held is such a one (`_completed`): its cells change in place, and when the sort
  column is one the header gives, the order is `stale` until sorted again (`resort`, or
  a View computed away from the UI thread).
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import compress
from operator import attrgetter, not_
from typing import Any, NamedTuple

from rich.cells import cell_len

from backends.model import VolumeInfo

from ..shown import shown

SortKey = Callable[[VolumeInfo], Any]

COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("format", "Format"),
    ("capacity", "Capacity"),
    ("allocation", "Allocation"),
    ("pct", "Alloc%"),
    ("backing", "Backing store"),
    ("in_use", "In use by"),
    ("path", "Path"),
)
"""(key, title) of each column, left to right."""

_NAME_KEY: SortKey = attrgetter("name")
_PATH_KEY: SortKey = attrgetter("path")
_PENDING_KEY: SortKey = attrgetter("pending")
_MEASURED = ("name", "format", "backing", "path")  # columns with a width histogram
_FROM_NAMES = ("name", "path", "in_use")  # sort columns a header read never changes
BULK = 64  # volumes in one diff from which it is merged in one pass, not one at a time

_ESCAPED_RE = re.compile(r"[\x00-\x1f\x7f\\]")  # ASCII that tui.shown escapes


def cell_width(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _width_histogram(texts: list[str], ascii: bool = False) -> Counter[int]:
    """Widths of the cells as drawn (escaped by tui.shown)."""
    # One scan of the joined text lets the common case use C-level len().
    joined = "".join(texts)
    if joined.isascii() and not _ESCAPED_RE.search(joined):
        return Counter(map(len, texts))
    return Counter(cell_width(shown(text, ascii)) for text in texts)


def format_cell(v: VolumeInfo) -> str:
    """The format, with the type's flags when it has some (LV attributes such as
    'Vwi-a-tz--' for thin, 's' for snapshots; partition flags)."""
    if v.error:
        return "!"
    return f"{format_text(v)} {v.attributes}" if v.attributes else format_text(v)


def format_text(v: VolumeInfo) -> str:
    """The format as the table names it: with its encryption (qcow2+luks)."""
    return f"{v.format}+{v.encryption}" if v.encryption else v.format


def backing_cell(v: VolumeInfo) -> str:
    return v.backing.path if v.backing is not None else ""


class View(NamedTuple):
    """A computed order and filter (VolumeRows.view_task), to install."""

    column: str
    text: str
    order: list[VolumeInfo] | None  # None: the sort column did not change
    rows: list[VolumeInfo]


def _filter(rows: list[VolumeInfo], text: str) -> list[VolumeInfo]:
    return [v for v in rows if text in v.name.lower() or text in v.path.lower()]


def merged(rows: list[VolumeInfo], new: list[VolumeInfo], key: SortKey
           ) -> list[VolumeInfo]:
    """`rows` (ascending by `key`, keys unique) with `new` slotted in, as a new list: a
    few new ones each where bisection puts it, the runs between copied by slicing; many
    (more than a sixteenth) by one sort of both, which timsort does as a merge of runs."""
    if len(new) * 16 > len(rows):
        return sorted([*rows, *new], key=key)
    out: list[VolumeInfo] = []
    start = 0
    for v in sorted(new, key=key):
        i = bisect.bisect_left(rows, key(v), lo=start, key=key)
        out += rows[start:i]
        out.append(v)
        start = i
    out += rows[start:]
    return out


class VolumeRows:
    """A table's volumes (read the attributes; change them through the methods)."""

    def __init__(self, ascii: bool = False) -> None:
        self.ascii = ascii
        self.by_name: dict[str, VolumeInfo] = {}
        self.by_name_order: list[VolumeInfo] = []  # kept so re-sorting is one cheap pass
        self.order: list[VolumeInfo] = []
        self.rows: list[VolumeInfo] = self.order
        self.filter_text = ""
        self.in_use: dict[str, str] = {}
        self.marked: set[str] = set()
        self.sort_column = "name"
        self.reverse = False
        self.key: SortKey = _NAME_KEY
        self._primary: SortKey | None = None
        # Histograms of cell widths for the variable-width columns.
        self._hist: dict[str, Counter[int]] = {k: Counter() for k in _MEASURED}
        self.version = 0  # bumped by every change of the volumes (a View of older is stale)
        self.members = 0  # bumped by every change but headers read into pending volumes
        # names of the volumes whose header is not read yet: by name, not by each info's
        # flag, which the back end clears in place before the view hears of it
        self._pending_names: set[str] = set()
        self.stale = False  # headers read into volumes since the order was sorted

    # ------------------------------------------------------------------- reading

    def row(self, index: int) -> VolumeInfo:
        """The volume shown at display row `index` (0 = first row under the header)."""
        if not 0 <= index < len(self.rows):
            raise IndexError(index)
        return self.rows[-1 - index] if self.reverse else self.rows[index]

    def display(self, pos: int) -> int:
        """Display index of list position `pos` (and back: the mapping is its own inverse)."""
        return len(self.rows) - 1 - pos if self.reverse else pos

    def find(
        self, rows: list[VolumeInfo], v: VolumeInfo, key: SortKey | None = None
    ) -> int:
        """Index of `v` in the ascending list `rows`, or -1. O(log n)."""
        key = key or self.key
        i = bisect.bisect_left(rows, key(v), key=key)
        if i < len(rows) and rows[i].name == v.name:
            return i
        # The caller mutated a stored volume in place, so its key moved: look it up.
        for i, row in enumerate(rows):
            if row.name == v.name:
                return i
        return -1

    def content_width(self, column: str) -> int:
        """Widest cell of a variable-width column (name, format, backing, in_use, path)."""
        if column == "in_use":
            return max((cell_width(shown(u, self.ascii)) for u in self.in_use.values()),
                       default=0)
        return max(self._hist[column], default=0)

    # ------------------------------------------------------------------- changing

    def replace(self, volumes: Iterable[VolumeInfo]) -> None:
        """Every volume anew (first load, or another pool); marks of gone names go."""
        self.version += 1
        self.members += 1
        volumes = list(volumes)
        by_name = {v.name: v for v in volumes}
        if len(by_name) != len(volumes):
            volumes = list(by_name.values())  # duplicate names: the last one wins
        self.by_name = by_name
        self.by_name_order = sorted(volumes, key=_NAME_KEY)
        self.order = self._sorted(self.by_name_order)
        self.rows = self.order if not self.filter_text else self._filtered(self.order)
        self._hist = {
            "name": _width_histogram([v.name for v in volumes], self.ascii),
            # (inlined format_cell / backing_cell: a call per row costs more than this)
            "format": _width_histogram([format_cell(v) for v in volumes], self.ascii),
            "backing": _width_histogram(
                [v.backing.path if v.backing is not None else "" for v in volumes], self.ascii
            ),
            "path": _width_histogram([v.path for v in volumes], self.ascii),
        }
        self.marked &= by_name.keys()
        self._pending_names = {v.name for v in volumes if v.pending}
        self.stale = False

    def apply_diff(
        self, added: list[VolumeInfo], removed: list[str], changed: list[VolumeInfo]
    ) -> tuple[list[str], list[str], bool]:
        """Apply an incremental refresh: (names removed, names changed in place, whether
        any row moved, appeared or disappeared)."""
        self.version += 1
        read = [v for v in changed if self.by_name.get(v.name) is v]
        if read:  # pending volumes whose headers were read into them
            self._completed(read)
            changed = [v for v in changed if self.by_name.get(v.name) is not v]
        if added or removed or changed:
            self.members += 1
        if len(added) + len(removed) + len(changed) >= BULK:
            gone, touched, moved = self._apply_bulk(added, removed, changed)
            return gone, [*touched, *(v.name for v in read)], moved
        structural = False
        gone: list[str] = []
        touched: list[str] = [v.name for v in read]
        for name in removed:
            old = self.by_name.pop(name, None)
            if old is None:
                continue
            self._remove_sorted(old)
            self._count(old, -1)
            self.marked.discard(name)
            gone.append(name)
            structural = True
        for v in [*changed, *added]:
            old = self.by_name.get(v.name)
            self.by_name[v.name] = v
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
        return gone, touched, structural

    def add_many(self, volumes: list[VolumeInfo]) -> None:
        """New volumes (none of them here yet) in one merge, not an insort each: a
        streamed listing adds thousands at a time."""
        self.version += 1
        self.members += 1
        self.by_name.update(zip(map(_NAME_KEY, volumes), volumes, strict=True))
        self._merge([], volumes)
        self._count_many(volumes, +1)

    def _apply_bulk(self, added: list[VolumeInfo], removed: list[str],
                    changed: list[VolumeInfo]) -> tuple[list[str], list[str], bool]:
        """apply_diff of many volumes in one merge (see the module docstring)."""
        by_name = self.by_name
        gone_old = [v for v in (by_name.pop(n, None) for n in removed) if v is not None]
        gone = [v.name for v in gone_old]
        self.marked.difference_update(gone)
        key, filtered = self.key, self.rows is not self.order
        fresh: list[VolumeInfo] = []  # names not here before
        replaced: list[VolumeInfo] = []  # the old infos of the changed ones
        moved_old: list[VolumeInfo] = []  # ... of those the change moves in the order
        moved_new: list[VolumeInfo] = []
        incoming = list({v.name: v for v in [*changed, *added]}.values())
        for v in incoming:
            was = by_name.get(v.name)
            by_name[v.name] = v
            if was is None:
                fresh.append(v)
                continue
            replaced.append(was)
            if was is v or key(was) != key(v) or (
                    filtered and self._matches(was) != self._matches(v)):
                moved_old.append(was)
                moved_new.append(v)
        self._merge(gone_old, fresh, moved_old, moved_new, remap=bool(replaced))
        self._count_many([*gone_old, *replaced], -1)
        self._count_many(incoming, +1)
        return gone, [v.name for v in replaced], bool(gone_old or fresh or moved_new)

    def _merge(self, gone: list[VolumeInfo], fresh: list[VolumeInfo],
               moved_old: list[VolumeInfo] | None = None,
               moved_new: list[VolumeInfo] | None = None, remap: bool = False) -> None:
        """The sorted lists without `gone` (these very objects), with `fresh` (new names)
        slotted in; `moved_*`: changed volumes whose place in the order moved (taken out,
        slotted in again); remap: the rest of the changed ones are swapped in where they
        are, by name (by_name holds the new infos). Passes over all rows run in C."""
        by_name = self.by_name

        def fix(rows: list[VolumeInfo], out: list[VolumeInfo], into: list[VolumeInfo],
                key: SortKey) -> list[VolumeInfo]:
            if out:
                ids = {id(v) for v in out}
                rows = list(compress(rows, map(not_, map(ids.__contains__, map(id, rows)))))
            if remap:
                rows = list(map(by_name.__getitem__, map(_NAME_KEY, rows)))
            return merged(rows, into, key)

        filtered = self.rows is not self.order
        moved_old, moved_new = moved_old or [], moved_new or []
        self.by_name_order = fix(self.by_name_order, gone, fresh, _NAME_KEY)
        if self._primary is None:  # sorted by name: the same order (a list of its own)
            order = list(self.by_name_order)
        else:
            order = fix(self.order, [*gone, *moved_old], [*fresh, *moved_new], self.key)
        if filtered:
            self.rows = fix(self.rows, [*gone, *moved_old],
                            [v for v in (*fresh, *moved_new) if self._matches(v)], self.key)
        else:
            self.rows = order
        self.order = order

    @property
    def pending(self) -> int:
        """How many volumes' headers are not read yet."""
        return len(self._pending_names)

    def _completed(self, volumes: list[VolumeInfo]) -> None:
        """Pending volumes whose headers the back end read into them: their format and
        backing cells were empty (width 0) and are not now."""
        for column, cell in (("format", format_cell), ("backing", backing_cell)):
            hist = self._hist[column]
            hist[0] -= len(volumes)
            if hist[0] <= 0:
                del hist[0]
            hist.update(_width_histogram([cell(v) for v in volumes], self.ascii))
        self._pending_names.difference_update(v.name for v in volumes)
        if self.sort_column not in _FROM_NAMES:
            self.stale = True  # their keys changed under the sorted lists

    def _count_many(self, volumes: list[VolumeInfo], sign: int) -> None:
        """_count of many volumes at once (sign: +1 added, -1 taken away); a pending
        volume's format and backing cells are empty (width 0)."""
        pending = sum(map(_PENDING_KEY, volumes))
        read = [v for v in volumes if not v.pending] if pending else volumes
        for column, texts in (("name", list(map(_NAME_KEY, volumes))),
                              ("format", [format_cell(v) for v in read]),
                              ("backing", [backing_cell(v) for v in read]),
                              ("path", list(map(_PATH_KEY, volumes)))):
            counts = _width_histogram(texts, self.ascii)
            if pending and column in ("format", "backing"):
                counts[0] += pending
            hist = self._hist[column]
            if sign > 0:
                hist.update(counts)
                continue
            hist.subtract(counts)
            for width in [w for w, n in hist.items() if n <= 0]:
                del hist[width]
        if sign > 0:
            self._pending_names.update(v.name for v in volumes if v.pending)
        else:
            self._pending_names.difference_update(map(_NAME_KEY, volumes))

    def set_in_use(self, in_use: dict[str, str]) -> set[str]:
        """Who holds each volume open (name -> e.g. "qemu (pid 12)"); the names whose
        entry changed. The order is not touched: `resort` when sorting by it."""
        in_use = dict(in_use)
        old = self.in_use
        changed = {n for n in old.keys() | in_use.keys() if old.get(n) != in_use.get(n)}
        if changed:
            self.in_use = in_use
            self.version += 1  # (the order by who has them open)
            self.members += 1
        return changed

    def resort(self) -> None:
        """Sort again by the same column, whose values changed."""
        self._set_sort_keys(self.sort_column)
        self._resort()

    def sort_by(self, key: str, reverse: bool | None = None) -> bool:
        """Sort by column `key`; reverse=None toggles when it is already the sort column.
        False when that is the order already."""
        if key not in dict(COLUMNS):
            raise ValueError(f"unknown column {key!r}")
        if reverse is None:
            reverse = not self.reverse if key == self.sort_column else False
        if key == self.sort_column and reverse == self.reverse:
            return False
        if key != self.sort_column:
            self.sort_column = key
            self._set_sort_keys(key)
            self._resort()
        self.reverse = reverse
        return True

    def view_task(self, column: str, text: str) -> Callable[[], View]:
        """Sorting by `column` (ascending; reversing is only a flag) under filter `text`, as
        work that may run in another thread: it reads copies taken now. Its View goes in
        with `install`, if `version` has not moved since."""
        text = text.lower()
        if column == self.sort_column and not self.stale:
            narrowing = bool(self.filter_text) and self.filter_text in text
            source = list(self.rows if narrowing else self.order)
            return lambda: View(column, text, None, _filter(source, text) if text else source)
        primary = self._make_primary(column)
        by_name = list(self.by_name_order)

        def sort() -> View:
            order = by_name if primary is None else sorted(by_name, key=primary)
            return View(column, text, order, _filter(order, text) if text else order)

        return sort

    def install(self, view: View, read_since: bool = False) -> None:
        """Put a View computed by view_task in place (the caller checks `version`, or
        `members`: `read_since`, headers were read into pending volumes since, and the
        order is stale again if the sort column is one they give)."""
        if view.order is not None:
            self.sort_column = view.column
            self._set_sort_keys(view.column)
            self.order = view.order
            self.stale = read_since and view.column not in _FROM_NAMES
        self.filter_text = view.text
        self.rows = view.rows if view.text else self.order

    def set_filter(self, text: str) -> bool:
        """Keep only volumes whose name or path contains `text` (case-insensitive).
        False when that is the filter already."""
        text = text.lower()
        if text == self.filter_text:
            return False
        old = self.filter_text
        self.filter_text = text
        if not text:
            self.rows = self.order
        elif old and old in text:
            self.rows = self._filtered(self.rows)  # narrowing: scan only what is shown
        else:
            self.rows = self._filtered(self.order)
        return True

    def toggle_mark(self, name: str) -> None:
        if name in self.marked:
            self.marked.discard(name)
        else:
            self.marked.add(name)

    def clear_marks(self) -> set[str]:
        """Unmark every volume; the names that were marked."""
        names = self.marked
        self.marked = set()
        return names

    # ------------------------------------------------------------------- sorting

    def _make_primary(self, column: str) -> SortKey | None:
        """The column's own value (None for name, whose order is kept in `by_name_order`)."""
        if column == "name":
            return None
        if column in ("capacity", "allocation", "path"):
            return attrgetter(column)
        if column == "format":
            return format_cell
        if column == "pct":
            return lambda v: v.allocation / v.capacity if v.capacity else 0.0
        if column == "backing":
            return backing_cell
        if column == "in_use":
            in_use = self.in_use
            return lambda v: in_use.get(v.name, "")
        raise ValueError(f"unknown column {column!r}")

    def _set_sort_keys(self, column: str) -> None:
        # The full key ends with the (unique) name, so every key is unique and bisect
        # finds rows; attrgetter builds the common tuples in C.
        primary = self._make_primary(column)
        self._primary = primary
        if primary is None:
            self.key = _NAME_KEY
        elif column in ("capacity", "allocation", "path"):
            self.key = attrgetter(column, "name")
        else:
            self.key = lambda v: (primary(v), v.name)

    def _sorted(self, by_name: list[VolumeInfo]) -> list[VolumeInfo]:
        """`by_name` (in name order) in the current order: a stable sort on the column
        value alone keeps ties in name order, and is ~4x cheaper than sorting tuples."""
        primary = self._primary
        return list(by_name) if primary is None else sorted(by_name, key=primary)

    def _resort(self) -> None:
        self.stale = False
        self.order = self._sorted(self.by_name_order)
        if self.filter_text:
            rows = sorted(self.rows, key=_NAME_KEY)
            self.rows = self._sorted(rows)
        else:
            self.rows = self.order

    def _insert_sorted(self, v: VolumeInfo) -> None:
        bisect.insort(self.by_name_order, v, key=_NAME_KEY)
        bisect.insort(self.order, v, key=self.key)
        if self.rows is not self.order and self._matches(v):
            bisect.insort(self.rows, v, key=self.key)

    def _remove_sorted(self, v: VolumeInfo) -> None:
        for rows, key in (
            (self.by_name_order, _NAME_KEY),
            (self.order, self.key),
            (self.rows if self.rows is not self.order else None, self.key),
        ):
            if rows is not None and (i := self.find(rows, v, key)) >= 0:
                del rows[i]

    def _replace_in_place(self, old: VolumeInfo, new: VolumeInfo) -> bool:
        """Swap `new` in where `old` is if neither its sort key nor filter match moved."""
        key = self.key
        if key(old) != key(new) or old is new:
            return False
        filtered = self.rows is not self.order
        if filtered and self._matches(old) != self._matches(new):
            return False
        i = self.find(self.order, old)
        n = self.find(self.by_name_order, old, _NAME_KEY)
        if i < 0 or n < 0:
            return False
        self.order[i] = new
        self.by_name_order[n] = new
        if filtered:
            j = self.find(self.rows, old)
            if j >= 0:
                self.rows[j] = new
        return True

    # ------------------------------------------------------------------- filter

    def _matches(self, v: VolumeInfo) -> bool:
        text = self.filter_text
        return not text or text in v.name.lower() or text in v.path.lower()

    def _filtered(self, rows: list[VolumeInfo]) -> list[VolumeInfo]:
        return _filter(rows, self.filter_text)

    # ------------------------------------------------------------------- widths

    def _count(self, v: VolumeInfo, delta: int) -> None:
        hist = self._hist
        for column, text in (
            ("name", v.name),
            ("format", format_cell(v)),
            ("backing", backing_cell(v)),
            ("path", v.path),
        ):
            counter = hist[column]
            width = cell_width(shown(text, self.ascii))
            counter[width] += delta
            if counter[width] <= 0:
                del counter[width]
        if delta < 0:
            self._pending_names.discard(v.name)
        elif v.pending:
            self._pending_names.add(v.name)
