"""VolumeLines: how a VolumeTable's lines look, and each one drawn once.

The column widths follow the widest cell (VolumeRows keeps the histograms), capped per
column; sizes have a fixed width. Cells are escaped (tui.shown) and padded or cut to their
width with an ellipsis; columns are separated by plain spaces, so ASCII mode needs no box
drawing. Every drawn line is cached, keyed by volume name + version + cursor/mark state +
layout generation: a volume's version is bumped when its line must be drawn again, the
generation when widths or styles change, so a refresh that changes one volume draws one line.

Free extents (cfdisk-like "(free)" rows) are drawn dim: name, format, size in the capacity
column and start-end in the path column.
"""

from __future__ import annotations

from itertools import count
from typing import Any, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.cache import LRUCache
from textual.strip import Strip

from backends.model import VolumeInfo
from backends.units import human

from ..shown import shown
from .volume_rows import COLUMNS, VolumeRows, backing_cell, cell_width

SEP = "  "  # between columns: plain spaces, so ASCII mode needs no box drawing
MARK_WIDTH = 2  # marker glyph + space
_SIZE_WIDTH = 11  # widest human() output: "1023.99 KiB" / "1024.00 KiB"
_PCT_WIDTH = 4  # " 42%", "100%"

# Widest cell shown per column (longer values are truncated with an ellipsis).
_CAPS = {"name": 40, "format": 24, "backing": 40, "in_use": 30, "path": 80}

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
        self.widths: list[int] = []
        self.offsets: list[int] = []
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

    def relayout(self, rows: VolumeRows, free: dict[str, int]) -> bool:
        """Recompute column widths for `rows` and the free rows' `free` widths; True if
        the widths changed (every line is drawn again then)."""
        widths = [
            max(self._data_width(rows, key, free), cell_len(title) + 2)  # +2: sort arrow
            for key, title in COLUMNS
        ]
        changed = widths != self.widths
        if changed:
            self.widths = widths
            offsets, x = [], MARK_WIDTH
            for w in widths:
                offsets.append(x)
                x += w + len(SEP)
            self.offsets = offsets
            self.total_width = x - len(SEP)
            self.invalidate()
        return changed

    def column_at(self, x: int) -> str | None:
        """The column key at content x, or None between/outside columns."""
        for (key, _), start, width in zip(COLUMNS, self.offsets, self.widths, strict=True):
            if start <= x < start + width + len(SEP):
                return key
        return None

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

    def fit(self, text: str, width: int, align: str = "left", keep_end: bool = False) -> str:
        """`text` made safe and unambiguous for one terminal line (tui.shown, as the CLI's
        tables), padded or truncated to exactly `width` cells (keep_end: cut the start)."""
        text = shown(text, self.ascii)
        ellipsis = "~" if self.ascii else "\u2026"
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
        cells = []
        for (column, title), width in zip(COLUMNS, self.widths, strict=True):
            if column == sort_column:
                title = f"{title} {down if reverse else up}"
            right = column in ("capacity", "allocation", "pct")
            cells.append(self.fit(title, width, "right" if right else "left"))
        strip = Strip([Segment(" " * MARK_WIDTH + SEP.join(cells), styles.header)])
        self._header_cache = (key, strip)
        return strip

    def empty(self, text: str, styles: LineStyles) -> Strip:
        # a message (a pool's error, say): its names are escaped already
        return Strip([Segment(" " + shown(text, self.ascii), styles.base + styles.dim)])

    def free_line(self, f: FreeRow, is_cursor: bool, styles: LineStyles) -> Strip:
        """A free-extent row, all dim: name, format, size in the capacity column and
        start-end in the path column. Never marked."""
        key = (None, f.device, f.start, f.end, is_cursor, self.layout_gen)
        strip = self._line_cache.get(key)
        if strip is None:
            self.strips_built += 1
            style = (styles.cursor if is_cursor else styles.base) + styles.dim
            w, fit = self.widths, self.fit
            cells = [
                fit(FREE_NAME, w[0]),
                fit(FREE_FORMAT, w[1]),
                fit(human(f.end - f.start), w[2], "right"),
                *(fit("", width) for width in w[3:7]),
                fit(f.text, w[7], keep_end=True),
            ]
            strip = Strip([Segment(" " * MARK_WIDTH + SEP.join(cells), style)])
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
        w = self.widths
        fit = self.fit
        mark = ("*" if self.ascii else "\u25cf") if marked else " "
        parts: list[tuple[str, Style]] = [
            (mark + " ", base),
            (fit(v.name, w[0]), error if v.error else base),
            (SEP, base),
        ]
        if v.error:
            # The error text takes the columns from capacity to in-use: visible, simple.
            span = sum(w[2:7]) + 4 * len(SEP)
            parts += [
                (fit("!", w[1]), error),
                (SEP, base),
                (fit(f"error: {v.error}", span), error),
                (SEP, base),
            ]
        else:
            pct = f"{min(v.allocation * 100 / v.capacity, 999):3.0f}%" if v.capacity else "-"
            parts += [
                (fit(v.format, w[1]), base),
                (SEP, base),
                (fit(human(v.capacity), w[2], "right"), base),
                (SEP, base),
                (fit(human(v.allocation), w[3], "right"), base),
                (SEP, base),
                (fit(pct, w[4], "right"), base),
                (SEP, base),
                (fit(backing_cell(v), w[5], keep_end=True), dim),
                (SEP, base),
                (fit(in_use.get(v.name, ""), w[6]), base),
                (SEP, base),
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
