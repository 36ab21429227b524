"""VolumeLines: how a VolumeTable's lines look, and each one drawn once.

The column widths follow the widest cell (VolumeRows keeps the histograms), capped per
column; sizes have a fixed width. Columns are chosen by the table's width (`relayout`,
`choose_columns`), names cut last ("drop or abbreviate before cutting"). When they do not
all fit: paths and backing stores are shortened in the middle; an empty optional column
goes (not drawn at all); titles and sizes are abbreviated (Cap, Alloc, %; one decimal;
then 2.0G for 2.0 GiB); the optional columns go (Backing store, In use by, and Path
last); and only then are formats and names cut, a name in the middle, keeping the
extension and as much of the start as of the end (cut_name), so vol00001.qcow2 and
vol00002.qcow2 stay apart.
Name, Format, Capacity, Allocation and % are on screen at 80x24. A column that goes is
not lost: it is drawn after the others (Path first), where horizontal scrolling reaches
it (the table's left/right move a column at a time). Cells are escaped (tui.shown) and
padded or cut to their width with an ellipsis; columns are separated by plain spaces, so
ASCII mode needs no box drawing. Every drawn line is cached, keyed by volume name + version +
cursor/mark state + layout generation: a volume's version is bumped when its line must be
drawn again, the generation when widths or styles change, so a refresh that changes one
volume draws one line.

Free extents (cfdisk-like "(free)" rows) are drawn dim: name, format, size in the capacity
column and start-end in the path column.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import count
from typing import Any, NamedTuple

import humanize
from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.strip import Strip

from backends.model import VolumeInfo
from backends.units import human

from ..shown import shown
from .volume_rows import COLUMNS, VolumeRows, backing_cell, cell_width, format_text

SEP = "  "  # between columns: plain spaces, so ASCII mode needs no box drawing
MARK_WIDTH = 2  # marker glyph + space
# Widest size per compactness level: human() "1023.99 KiB"; one decimal "1023.9 KiB";
# one-letter units (as ls -h) "1023.9K".
_SIZE_WIDTHS = (11, 10, 7)
_SIZE_WIDTH = _SIZE_WIDTHS[0]
_PCT_WIDTH = 4  # " 42%", "100%"

# Widest cell shown per column (longer values are truncated with an ellipsis). A name is
# not capped short: it is whole while the table's width allows (255: a file name's limit).
_CAPS = {"name": 255, "format": 24, "backing": 40, "in_use": 30, "path": 80}
# Narrowest a column is shortened to (its title fits too): the optional columns before
# they go, a name only when nothing else is left to give.
_MINS = {"name": 8, "format": 4, "backing": 16, "in_use": 10, "path": 16}
# Who gives way first, in the middle; a format ("linux-swap") and a name are cut only last
_SHRINK_ORDER = ("path", "backing", "in_use")
_LEVELS = (0, 1, 2)  # compactness: full; short titles, one decimal; one-letter units too
_DROP_ORDER = ("backing", "in_use", "path")  # optional columns, the first to go first
# Abbreviated titles, when even the required columns do not fit with the full ones.
_SHORT_TITLES = {"format": "Fmt", "capacity": "Cap", "allocation": "Alloc", "pct": "%",
                 "backing": "Backing", "in_use": "In use"}
_RIGHT = ("capacity", "allocation", "pct")
_MIDDLE = ("backing", "path")  # cut in the middle: the start and the file name both tell
_ERROR_SPAN = ("capacity", "allocation", "pct", "backing", "in_use")  # an error's text
_UNREAD = ("format", "capacity", "pct", "backing")  # unknown until the header is read
_TITLES = dict(COLUMNS)

FREE_NAME = "(free)"  # name cell of a free-extent row
FREE_FORMAT = "free"  # its format cell


class FreeRow(NamedTuple):
    """A free-extent row: bytes [start, end) of `device`, and its path cell."""

    device: str
    start: int
    end: int
    text: str


def free_rows(extents: list[tuple[str, int, int]]) -> list[FreeRow]:
    """Rows for free extents (device, start, end), in that order; the device is named
    only when there are several."""
    several = len({d for d, _, _ in extents}) > 1
    free = []
    for device, start, end in extents:
        text = f"{human(start)}-{human(end)}"
        if several:  # which device, when there is a choice
            text = f"{device.rsplit('/', 1)[-1]}: {text}"
        free.append(FreeRow(device, start, end, text))
    return free


def free_widths(free: list[FreeRow]) -> dict[str, int]:
    """How wide the free rows' cells are, per column."""
    if not free:
        return {}
    return {
        "name": len(FREE_NAME),
        "format": len(FREE_FORMAT),
        "path": max(cell_width(f.text) for f in free),
    }


class Layout(NamedTuple):
    """Which columns, in which order, how wide; `shown` of them fit the table's width."""

    order: tuple[str, ...]
    widths: dict[str, int]
    shown: int
    compact: int  # a level of _LEVELS: 0 full titles and sizes


def _title(key: str, compact: int) -> str:
    return _SHORT_TITLES.get(key, _TITLES[key]) if compact else _TITLES[key]


def choose_columns(natural: dict[str, int], width: int | None) -> Layout:
    """The columns for a table `width` cells wide (None: any width), from each column's
    `natural` width (its widest cell, capped; 0: every cell empty). Names are cut last:
    first the optional columns are shortened, an empty one goes, then titles and sizes
    abbreviated (more columns matter more than full titles), then the fewest optional
    columns go; only when the required ones do not fit whole are formats and names cut."""
    keys = [key for key, _ in COLUMNS]

    def need(key: str, level: int) -> int:
        title = cell_len(_title(key, level)) + 2  # +2: the sort arrow
        if key in ("capacity", "allocation"):
            return max(_SIZE_WIDTHS[level], title)
        return max(natural[key], title)

    def fit(shown: list[str], level: int, shrink: tuple[str, ...]) -> dict[str, int] | None:
        widths = {key: need(key, level) for key in shown}
        excess = MARK_WIDTH + sum(widths.values()) + len(SEP) * (len(shown) - 1) - width
        for key in shrink:
            if excess <= 0:
                break
            if key in widths:
                floor = max(min(_MINS[key], widths[key]), cell_len(_title(key, level)) + 2)
                cut = min(excess, max(0, widths[key] - floor))
                widths[key] -= cut
                excess -= cut
        return widths if excess <= 0 else None

    def layout(shown: list[str], widths: dict[str, int], level: int) -> Layout:
        # after the shown ones, the last to go first: Path is the nearest; an empty one
        # is not drawn at all (its title alone, half in view at the right edge, said
        # nothing, and Right scrolled to nothing)
        dropped = [key for key in reversed(_DROP_ORDER) if key not in shown and natural[key]]
        if dropped and width is not None:
            # the room left goes to the columns shown (a shortened one back towards its
            # width, then the name), so a dropped column starts past the right edge, not
            # as a sliver of its title: Right scrolls to it
            slack = width - MARK_WIDTH - sum(widths.values()) - len(SEP) * (len(shown) - 1)
            for key in (*_SHRINK_ORDER, "name"):
                if slack > 0 and key in widths:
                    grow = slack if key == "name" else min(slack, need(key, level) - widths[key])
                    widths[key] += grow
                    slack -= grow
        widths.update({key: need(key, level) for key in dropped})
        return Layout((*shown, *dropped), widths, len(shown), level)

    if width is None:
        return layout(keys, {key: need(key, 0) for key in keys}, 0)
    # an empty column goes before any other, and before a title is abbreviated: it tells
    # the least (kept while it fits: it says "none", and an error row's text spans it)
    drops = sorted(_DROP_ORDER, key=lambda key: (natural[key] > 0, _DROP_ORDER.index(key)))
    empty = sum(1 for key in _DROP_ORDER if not natural[key])
    for n in range(len(drops) + 1):
        shown = [key for key in keys if key not in drops[:n]]
        for level in _LEVELS if n >= empty else _LEVELS[:1]:
            widths = fit(shown, level, _SHRINK_ORDER)
            if widths is not None:
                return layout(shown, widths, level)
    # the required columns do not fit whole: only now are formats and names cut
    level = _LEVELS[-1]
    shown = [key for key in keys if key not in _DROP_ORDER]
    widths = fit(shown, level, (*_SHRINK_ORDER, "format", "name"))
    if widths is None:  # narrower still: each at its narrowest, scrolled sideways
        widths = {key: max(min(_MINS[key], need(key, level)),
                           cell_len(_title(key, level)) + 2) if key in _MINS
                  else need(key, level) for key in shown}
    return layout(shown, widths, level)


def _head(text: str, cells: int) -> str:
    """The start of `text`, `cells` wide (a wide character cut in two: a space)."""
    return text[:cells] if text.isascii() else set_cell_size(text, cells)


def _tail(text: str, cells: int) -> str:
    """The end of `text`, `cells` wide (a wide character cut in two: a space)."""
    if text.isascii():
        return text[len(text) - cells:] if cells > 0 else ""
    end = ""
    for char in reversed(text):
        if cell_len(char + end) > cells:
            break
        end = char + end
    return " " * (cells - cell_len(end)) + end


def cut_name(text: str, width: int, ellipsis: str) -> str:
    """A (shown) name cut to `width` cells in the middle, keeping its extension and as
    much of its start as of its end (the end gets the odd cell). Volumes of a series
    differ at the end (vol00001, web-2) or at the start (web01-frontend): both are kept,
    and the extension says what the file is (the Finder's and mc's rule). Shorter names
    are returned as they are."""
    if cell_len(text) <= width:
        return text
    stem, dot, ext = text.rpartition(".")
    ext = dot + ext
    if not stem or not ext[1:].isalnum() or len(ext) > 7 or width - cell_len(ext) < 6:
        stem, ext = text, ""  # no extension, or no room for one
    room = width - cell_len(ext) - 1  # the stem's start and end, around the ellipsis
    head = room // 2
    return _head(stem, head) + ellipsis + _tail(stem, room - head) + ext


class LineStyles(NamedTuple):
    """Styles resolved once per style change (not per line)."""

    header: Style
    base: Style
    cursor: Style
    marked: Style  # partial
    error: Style  # partial
    dim: Style  # partial


class VolumeLines:
    """A table's column layout and its drawn lines."""

    def __init__(self, ascii: bool = False) -> None:
        self.ascii = ascii
        self.width: int | None = None  # the table's: None until it has one
        self.layout: Layout | None = None
        self.offsets: dict[str, int] = {}
        self.total_width = 0
        self.layout_gen = 0
        # Per-name version, bumped when a volume's line must be re-rendered.
        self._versions: dict[str, int] = {}
        self._version_counter = count(1)
        self._line_cache: LRUCache[tuple[Any, ...], Strip] = LRUCache(2048)
        self._header_cache: tuple[tuple[Any, ...], Strip] | None = None
        self.strips_built = 0  # row lines rendered from scratch (cache misses); for tests

    # ------------------------------------------------------------------- layout

    def _data_width(self, rows: VolumeRows, column: str, free: dict[str, int]) -> int:
        if column in ("capacity", "allocation"):
            return _SIZE_WIDTH
        if column == "pct":
            return _PCT_WIDTH
        data = max(rows.content_width(column), free.get(column, 0))
        return min(data, _CAPS[column])

    @property
    def widths(self) -> dict[str, int]:
        return self.layout.widths if self.layout else {}

    @property
    def order(self) -> tuple[str, ...]:
        """Column keys, left to right: those that fit the width, then those that do not."""
        return self.layout.order if self.layout else ()

    @property
    def shown(self) -> tuple[str, ...]:
        """The columns that fit the table's width (on screen without scrolling)."""
        return self.layout.order[: self.layout.shown] if self.layout else ()

    def set_width(self, width: int) -> bool:
        """The table is `width` cells wide now; True if that is new (relayout then)."""
        width_or_none = width if width > 0 else None
        if width_or_none == self.width:
            return False
        self.width = width_or_none
        return True

    def relayout(self, rows: VolumeRows, free: dict[str, int]) -> bool:
        """Choose the columns and their widths for `rows`, the free rows' `free` widths and
        the table's width; True if they changed (every line is drawn again then)."""
        natural = {key: self._data_width(rows, key, free) for key, _ in COLUMNS}
        layout = choose_columns(natural, self.width)
        changed = layout != self.layout
        if changed:
            self.layout = layout
            offsets, x = {}, MARK_WIDTH
            for key in layout.order:
                offsets[key] = x
                x += layout.widths[key] + len(SEP)
            self.offsets = offsets
            self.total_width = x - len(SEP)
            self.invalidate()
        return changed

    def column_at(self, x: int) -> str | None:
        """The column key at content x, or None between/outside columns."""
        for key in self.order:
            start = self.offsets[key]
            if start <= x < start + self.widths[key] + len(SEP):
                return key
        return None

    def column_x(self, x: int, direction: int) -> int:
        """Where the next column starts right of content x (direction 1), or the one
        before (-1): horizontal scrolling a column at a time. 0 is the first column."""
        starts = [0] + [self.offsets[key] for key in self.order[1:]]
        if direction > 0:
            return next((s for s in starts if s > x), starts[-1])
        return next((s for s in reversed(starts) if s < x), 0)

    # ------------------------------------------------------------------- cache

    def touch(self, name: str) -> None:
        """The volume `name` changed: draw its line again."""
        self._versions[name] = next(self._version_counter)

    def forget(self, name: str) -> None:
        self._versions.pop(name, None)

    def forget_all(self) -> None:
        """Every volume is new."""
        self._versions.clear()
        self._line_cache.clear()

    def invalidate(self) -> None:
        """Widths or styles changed: draw every line again."""
        self.layout_gen += 1
        self._line_cache.clear()
        self._header_cache = None

    def invalidate_header(self) -> None:
        self._header_cache = None

    # ------------------------------------------------------------------- drawing

    def fit(self, text: str, width: int, align: str = "left", keep_end: bool = False,
            middle: bool = False, name: bool = False) -> str:
        """`text` made safe and unambiguous for one terminal line (tui.shown, as the CLI's
        tables), padded or truncated to exactly `width` cells (keep_end: cut the start;
        middle: cut the middle, keeping a third at the start and the rest at the end;
        name: cut as a name, see cut_name)."""
        text = shown(text, self.ascii)
        if name:
            text = cut_name(text, width, "~" if self.ascii else "\u2026")
        return self._cut(text, width, align, keep_end, middle)

    def _cut(self, text: str, width: int, align: str, keep_end: bool, middle: bool) -> str:
        """Already shown (escaped) `text` padded or cut to `width` cells (see fit)."""
        ellipsis = "~" if self.ascii else "\u2026"
        if middle and cell_width(text) > width >= 8:
            head = (width - 1) // 3
            start = set_cell_size(text, head) if not text.isascii() else text[:head]
            return start + ellipsis + self._cut(text, width - head, "left", True, False)[1:]
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

    def header(self, sort_column: str, reverse: bool, styles: LineStyles) -> Strip:
        key = (self.layout_gen, sort_column, reverse)
        if self._header_cache is not None and self._header_cache[0] == key:
            return self._header_cache[1]
        up, down = ("^", "v") if self.ascii else ("\u25b2", "\u25bc")
        compact = self.layout.compact if self.layout else 0
        cells = []
        for column in self.order:
            title = _title(column, compact)
            if column == sort_column:
                title = f"{title} {down if reverse else up}"
            cells.append(self.fit(title, self.widths[column],
                                  "right" if column in _RIGHT else "left"))
        strip = Strip([Segment(" " * MARK_WIDTH + SEP.join(cells), styles.header)])
        self._header_cache = (key, strip)
        return strip

    def empty(self, text: str, styles: LineStyles) -> Strip:
        # a message (a pool's error, say): its names are escaped already
        return Strip([Segment(" " + shown(text, self.ascii), styles.base + styles.dim)])

    def size(self, size: int) -> str:
        """A size as the capacity and allocation columns show it (one decimal when the
        columns were narrowed, then one-letter units: 2.0G)."""
        compact = self.layout.compact if self.layout is not None else 0
        if compact == 2:
            return humanize.naturalsize(size, gnu=True, format="%.1f")
        if compact:
            return humanize.naturalsize(size, binary=True, format="%.1f")
        return human(size)

    def _cells(self, texts: dict[str, str]) -> Iterable[tuple[str, str]]:
        """(column, cell text fitted to its width) in the layout's order; `texts` has the
        text of each column ('' for the missing ones)."""
        for column in self.order:
            yield column, self.fit(texts.get(column, ""), self.widths[column],
                                   "right" if column in _RIGHT else "left",
                                   middle=column in _MIDDLE, name=column == "name")

    def free_line(self, f: FreeRow, is_cursor: bool, styles: LineStyles) -> Strip:
        """A free-extent row, all dim: name, format, size in the capacity column and
        start-end in the path column. Never marked."""
        key = (None, f.device, f.start, f.end, is_cursor, self.layout_gen)
        strip = self._line_cache.get(key)
        if strip is None:
            self.strips_built += 1
            style = (styles.cursor if is_cursor else styles.base) + styles.dim
            texts = {"name": FREE_NAME, "format": FREE_FORMAT,
                     "capacity": self.size(f.end - f.start), "path": f.text}
            line = SEP.join(cell for _, cell in self._cells(texts))
            strip = Strip([Segment(" " * MARK_WIDTH + line, style)])
            self._line_cache[key] = strip
        return strip

    def row(self, v: VolumeInfo, is_cursor: bool, is_marked: bool, in_use: dict[str, str],
            styles: LineStyles) -> Strip:
        """The line of volume `v` (`in_use`: who holds each volume open)."""
        key = (v.name, self._versions.get(v.name, 0), is_cursor, is_marked, self.layout_gen)
        strip = self._line_cache.get(key)
        if strip is None:
            strip = self._row_strip(v, is_cursor, is_marked, in_use, styles)
            self._line_cache[key] = strip
        return strip

    def _row_strip(self, v: VolumeInfo, cursor: bool, marked: bool, in_use: dict[str, str],
                   styles: LineStyles) -> Strip:
        self.strips_built += 1
        base = styles.cursor if cursor else styles.base
        if marked:
            base = base + styles.marked
        dim = base + styles.dim
        error = base + styles.error
        mark = ("*" if self.ascii else "\u25cf") if marked else " "
        parts: list[tuple[str, Style]] = [(mark + " ", base)]
        if v.error:
            texts = {"name": v.name, "format": "!", "path": v.path}
            styled = {"name": error, "format": error, "path": dim}
        else:
            pct = f"{min(v.allocation * 100 / v.capacity, 999):3.0f}%" if v.capacity else "-"
            texts = {"name": v.name, "format": format_text(v), "capacity": self.size(v.capacity),
                     "allocation": self.size(v.allocation), "pct": pct,
                     "backing": backing_cell(v), "in_use": in_use.get(v.name, "")}
            texts["path"] = v.path
            styled = {"backing": dim, "path": dim}
            if v.pending:  # its header is being read: said so, not guessed
                texts.update(dict.fromkeys(_UNREAD, "?" if self.ascii else "\u2026"))
        order = self.order
        span: list[str] = []  # an error's text: the run of its columns after the format
        if v.error and "format" in order:
            for column in order[order.index("format") + 1:]:
                if column not in _ERROR_SPAN:
                    break
                span.append(column)
        first = True
        for column, cell in self._cells(texts):
            if column in span:
                if column == span[0]:
                    width = sum(self.widths[c] for c in span) + len(SEP) * (len(span) - 1)
                    parts += [(SEP, base), (self.fit(f"error: {v.error}", width), error)]
                continue
            if not first:
                parts.append((SEP, base))
            first = False
            parts.append((cell, styled.get(column, base)))
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
