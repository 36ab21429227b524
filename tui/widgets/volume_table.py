"""VolumeTable: a line-API table of volumes that stays fast at 100,000+ rows.

Why not DataTable: DataTable formats and measures every cell of every row when rows are
added, so a pool of 100,000 volumes takes seconds to show. This widget keeps the volumes
themselves in sorted order (VolumeRows, tui.widgets.volume_rows) and formats only the lines
on screen, caching each rendered line (VolumeLines, tui.widgets.volume_lines), so a refresh
that changes one volume re-renders one line.

Free extents of the pool's devices (set_free_extents) are shown like cfdisk as dim "(free)"
rows after every volume, in start order, whatever the sort and the filter. The cursor can
sit on one (`_cursor_free`, with `_cursor_name` None): it is never marked and
`cursor_volume` is None there; enter posts FreeRowActivated.

Keys (focused table):
    up / down / pageup / pagedown / home / end   move the cursor
    left / right                                 scroll horizontally
    space                                        mark / unmark the cursor row, then down
    enter                                        activate the cursor row (posts Activated,
                                                 or FreeRowActivated on a free row)
    o                                            sort by the next column
    O                                            reverse the sort order
Mouse: click a header cell to sort by it (again to reverse); click a row to move the cursor;
double-click a row to activate it.

A user's sort (keys, clicks) and filter (request_sort, request_filter) on a big table is
computed in a thread while the old view stays and keys keep working (ViewRequests,
tui.widgets.volume_views). sort_by and set_filter are the synchronous forms (programs, tests).

Component classes (for the app's CSS, and so NO_COLOR works through Textual):
    volume-table--header, volume-table--cursor, volume-table--marked,
    volume-table--error, volume-table--dim
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollBarRender
from textual.strip import Strip

from backends.model import VolumeInfo

from .scrollbars import AsciiScrollBarRender
from .volume_lines import FreeRow, LineStyles, VolumeLines, free_rows, free_widths
from .volume_rows import COLUMNS, View, VolumeRows
from .volume_views import ViewRequests

BULK_ADD = 64  # added volumes from which apply_diff merges them in at once


class VolumeTable(ScrollView, can_focus=True, inherit_bindings=False):
    """A sortable, filterable table of volumes that renders only what is on screen."""

    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = COLUMNS

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
        # On a free row, n creates a volume there (as on the extent bar); on a volume
        # row check_action passes it on to the screen's n (define a pool).
        Binding("n", "new_in_free", "New volume here"),
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
        self._data = VolumeRows(ascii)
        self._lines = VolumeLines(ascii)
        self._cursor_name: str | None = None
        self._free: list[FreeRow] = []
        self._free_widths: dict[str, int] = {}
        self._cursor_free: tuple[str, int, int] | None = None  # (device, start, end)
        self._styles: LineStyles | None = None
        self._style_state: Any = None
        self._views = ViewRequests(self._data, lambda: self.app, self._show_view,
                                   self._install_view)
        self._relayout()

    # ----------------------------------------------------------------- public API

    @property
    def ascii(self) -> bool:
        return self._ascii

    @property
    def row_count(self) -> int:
        """Volume rows shown (after the filter; free-extent rows not counted)."""
        return len(self._data.rows)

    @property
    def total_count(self) -> int:
        """All volumes in the table."""
        return len(self._data.order)

    @property
    def pending_count(self) -> int:
        """Volumes whose header is not read yet (VolumeInfo.pending)."""
        return self._data.pending

    def pending_in_view(self) -> list[str]:
        """The pending volumes on screen, then those a page above and below."""
        rows, top, page = self._data.rows, self.scroll_offset.y, self._page_height()
        shown = [*range(top, top + page), *range(top - page, top),
                 *range(top + page, top + 2 * page)]
        return [v.name for i in shown if 0 <= i < len(rows) and (v := self.row(i)).pending]

    @property
    def sort_column(self) -> str:
        return self._data.sort_column

    @property
    def sort_reverse(self) -> bool:
        return self._data.reverse

    @property
    def cursor_volume(self) -> VolumeInfo | None:
        return None if self._cursor_name is None else self._data.by_name.get(self._cursor_name)

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
        return set(self._data.marked)

    @property
    def strips_built(self) -> int:
        """Row lines rendered from scratch (cache misses); for tests."""
        return self._lines.strips_built

    def row(self, index: int) -> VolumeInfo:
        """The volume shown at display row `index` (0 = first row under the header)."""
        return self._data.row(index)

    def visible_names(self) -> list[str]:
        """Names in display order (O(n): for tests and bulk actions, not per frame)."""
        names = [v.name for v in self._data.rows]
        return names[::-1] if self._data.reverse else names

    def all_volumes(self) -> list[VolumeInfo]:
        """Every volume, filtered out or not, in name order (a copy: O(n))."""
        return list(self._data.by_name_order)

    def select(self, name: str) -> bool:
        """Move the cursor to the volume `name` if it is shown."""
        data = self._data
        v = data.by_name.get(name)
        if v is None:
            return False
        pos = data.find(data.rows, v)
        if pos < 0:
            return False
        self._move_cursor(data.display(pos))
        return True

    def set_free_extents(self, rows: list[tuple[str, int, int]]) -> None:
        """Show these free extents (device, start, end; end exclusive) as rows after the
        volumes, by start; an empty list removes them. Empty extents are left out."""
        extents = sorted({(d, s, e) for d, s, e in rows if e > s}, key=lambda r: (r[1], r[0], r[2]))
        if extents == self.free_extents:
            return
        old_index = self._cursor_index()
        old_offset = self._cursor_screen_offset()
        self._free = free_rows(extents)
        self._free_widths = free_widths(self._free)
        if self._cursor_free is not None and self._cursor_free not in extents:
            self._cursor_free = None  # its extent is gone: _fix_cursor finds a row
        self._relayout()
        self._fix_cursor(old_index, old_offset)
        self.refresh()

    def clear_marks(self) -> None:
        names = self._data.clear_marks()
        if names:
            self._refresh_names(names)

    def set_volumes(self, volumes: Iterable[VolumeInfo]) -> None:
        """Replace every volume (first load, a whole listing, or another pool). A cursor
        on the first row stays on the first row: a first listing's whole result can reach
        the table before its last batches, with rows that sort above the one shown first
        (elsewhere the cursor stays on its volume)."""
        old_index = self._cursor_index()
        old_offset = self._cursor_screen_offset()
        self._data.replace(volumes)
        self._lines.forget_all()
        self._relayout()
        if old_index == 0 and self._row_total():
            self._set_cursor(0)
        self._fix_cursor(None, old_offset)
        self.refresh()

    def apply_diff(
        self, added: list[VolumeInfo], removed: list[str], changed: list[VolumeInfo], *,
        listing: bool = False,
    ) -> None:
        """Apply an incremental refresh; only touched rows are re-rendered. listing: the
        rows are a first listing's, coming in (see below)."""
        old_index = self._cursor_index()
        old_offset = self._cursor_screen_offset()
        bulk = len(added) >= BULK_ADD
        if bulk:  # a streamed listing's batch: one merge, not an insort per volume
            known = self._data.by_name
            changed = [*changed, *(v for v in added if v.name in known)]
            self._data.add_many([v for v in added if v.name not in known])
            added = []
        gone, touched, structural = self._data.apply_diff(added, removed, changed)
        if (bulk or listing) and old_index == 0 and self._row_total():
            # On the first row, the cursor stays there as a listing's rows come in, small
            # batches too (else rows sorted before the first one shown come in above it,
            # the view follows it, and the pool seems to start there). A volume made later
            # (live refresh) does not take the cursor from the one it is on.
            self._set_cursor(0)
        structural = structural or bulk
        if self._data.stale:  # headers read while sorted by what they give: sort again
            structural = self._views.sort_stale() or structural
        for name in gone:
            self._lines.forget(name)
        if len(changed) + len(added) > self._page_height():  # (headers read): draw anew,
            self._lines.invalidate()  # rather than keep a version for 100,000 names
        else:
            for v in [*changed, *added]:
                self._lines.touch(v.name)
        layout_changed = self._relayout()
        if structural or layout_changed:
            self._fix_cursor(old_index, old_offset)
            self.refresh()
        elif len(touched) > self._page_height():  # (headers read): look at the rows on
            self._refresh_shown(set(touched))  # screen, not where each one is
        else:
            self._refresh_names(touched)

    def set_in_use(self, in_use: dict[str, str]) -> None:
        """Who holds each volume open (name -> e.g. "qemu (pid 12)")."""
        changed = self._data.set_in_use(in_use)
        if not changed:
            return
        for name in changed:
            if name in self._data.by_name:
                self._lines.touch(name)
        if self._data.sort_column == "in_use":
            offset = self._cursor_screen_offset()
            self._data.resort()
            self._fix_cursor(None, offset)
            self._relayout()
            self.refresh()
        elif self._relayout():
            self.refresh()
        else:
            self._refresh_names(changed)

    @property
    def view_pending(self) -> bool:
        """A requested sort or filter is being computed (the old view is shown)."""
        return self._views.pending

    def request_sort(self, key: str, reverse: bool | None = None) -> None:
        """sort_by for a user's key or click: see tui.widgets.volume_views."""
        self._views.request_sort(key, reverse)

    def request_filter(self, text: str) -> None:
        """set_filter for what a user types: see tui.widgets.volume_views."""
        self._views.request_filter(text)

    def _show_view(self, column: str, reverse: bool, text: str) -> None:
        self.sort_by(column, reverse)
        self.set_filter(text)

    def _install_view(self, view: View, read_since: bool, reverse: bool) -> None:
        """Show a view computed in a thread (ViewRequests), the cursor on its volume."""
        offset = self._cursor_screen_offset()
        self._data.install(view, read_since)
        self._data.reverse = reverse
        self._lines.invalidate_header()
        self._relayout()
        self._fix_cursor(None, offset)
        self.refresh()

    def sort_by(self, key: str, reverse: bool | None = None) -> None:
        """Sort by column `key`; reverse=None toggles when it is already the sort column."""
        self._views.drop()  # what is asked now wins over a request being computed
        offset = self._cursor_screen_offset()
        if not self._data.sort_by(key, reverse):
            return
        self._lines.invalidate_header()
        self._fix_cursor(None, offset)
        self.refresh()

    def set_filter(self, text: str) -> None:
        """Show only volumes whose name or path contains `text` (case-insensitive)."""
        self._views.drop()
        offset = self._cursor_screen_offset()
        if not self._data.set_filter(text):
            return
        self._relayout()
        self._fix_cursor(None, offset)
        self.refresh()

    # ------------------------------------------------------------------- layout

    def on_resize(self) -> None:
        # the columns are chosen by the width (VolumeLines): a new width, a new choice
        if self._lines.set_width(self.scrollable_content_region.width) and self._relayout():
            self.refresh()

    def _relayout(self) -> bool:
        """Recompute column widths and the virtual size; True if the widths changed."""
        changed = self._lines.relayout(self._data, self._free_widths)
        size = Size(self._lines.total_width, max(self._row_total(), 1) + 1)
        if self.virtual_size != size:
            self.virtual_size = size
        return changed

    # ------------------------------------------------------------------- cursor

    def _row_total(self) -> int:
        """Display rows: the (filtered) volumes, then the free extents."""
        return len(self._data.rows) + len(self._free)

    def _cursor_index(self) -> int | None:
        if self._cursor_free is not None:
            for i, f in enumerate(self._free):  # few rows: a scan is fine
                if (f.device, f.start, f.end) == self._cursor_free:
                    return len(self._data.rows) + i
            return None
        v = self.cursor_volume
        if v is None:
            return None
        pos = self._data.find(self._data.rows, v)
        return None if pos < 0 else self._data.display(pos)

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
        n = len(self._data.rows)
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

    def _refresh_shown(self, names: set[str]) -> None:
        """Repaint the lines on screen whose volume is one of `names` (none on screen:
        nothing; a big pool's sizes filled in batches are mostly off screen, and a whole
        repaint per batch was most of the TUI's time while they came)."""
        data, top = self._data, int(self.scroll_offset.y)
        for index in range(top, min(top + self._page_height(), len(data.rows))):
            if data.row(index).name in names:
                self._refresh_index(index)

    def _refresh_names(self, names: Iterable[str]) -> None:
        data = self._data
        for name in names:
            self._lines.touch(name)
            v = data.by_name.get(name)
            if v is None:
                continue
            pos = data.find(data.rows, v)
            if pos >= 0:
                self._refresh_index(data.display(pos))

    # ------------------------------------------------------------------- rendering

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if hasattr(self, "_lines"):  # may be called before __init__ has finished
            self._styles = None
            self._lines.invalidate()

    def _get_styles(self) -> LineStyles:
        # Focus changes the cursor style; the pseudo-class state catches that too.
        state = self.get_pseudo_class_state()
        if self._styles is None or state != self._style_state:
            if self._styles is not None:
                self._lines.invalidate()
            get = self.get_component_rich_style
            base = self.rich_style
            self._styles = LineStyles(
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
        data = self._data
        if y == 0:
            return self._lines.header(data.sort_column, data.reverse, styles).crop_extend(
                scroll_x, scroll_x + width, styles.header
            )
        index = scroll_y + y - 1
        rows = data.rows
        if index >= len(rows):
            free_index = index - len(rows)
            if free_index < len(self._free):
                f = self._free[free_index]
                cursor = (f.device, f.start, f.end) == self._cursor_free
                return self._lines.free_line(f, cursor, styles).crop_extend(
                    scroll_x, scroll_x + width, styles.cursor if cursor else styles.base
                )
            if not rows and not self._free and y == 1:
                return self._empty_strip(styles).crop_extend(0, width, styles.base)
            return Strip.blank(width, styles.base)
        v = rows[-1 - index] if data.reverse else rows[index]
        is_cursor = v.name == self._cursor_name
        strip = self._lines.row(v, is_cursor, v.name in data.marked, data.in_use, styles)
        return strip.crop_extend(
            scroll_x, scroll_x + width, styles.cursor if is_cursor else styles.base
        )

    def _empty_strip(self, styles: LineStyles) -> Strip:
        if self._data.order:
            text = f'no volume matches "{self._data.filter_text}"'
        else:
            text = self.empty_text
        return self._lines.empty(text, styles)

    def on_mount(self) -> None:
        # (ScrollView.on_mount runs too: Textual calls the handler of every class.)
        self._set_scrollbar_renderers()

    def _set_scrollbar_renderers(self) -> None:
        renderer = AsciiScrollBarRender if self._ascii else ScrollBarRender
        for scrollbar in (self.vertical_scrollbar, self.horizontal_scrollbar):
            scrollbar.renderer = renderer  # type: ignore[misc]  # per instance, on purpose
            scrollbar.refresh()

    def watch_empty_text(self) -> None:
        if not self._data.rows:
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
        """The first row, and the first column again (back from a scroll to the right)."""
        self._move_cursor(0)
        self.scroll_to(x=0, animate=False)

    def action_last(self) -> None:
        self._move_cursor(self._row_total() - 1)

    def action_scroll_left(self) -> None:
        # a column at a time: Path was some sixty presses away a cell at a time
        self.scroll_to(x=self._lines.column_x(self.scroll_offset.x, -1), animate=False)

    def action_scroll_right(self) -> None:
        self.scroll_to(x=self._lines.column_x(self.scroll_offset.x, +1), animate=False)

    def action_toggle_mark(self) -> None:
        """Mark or unmark the cursor's volume and move down, so space space space marks a
        run of volumes (as in mc); a free row is never marked."""
        index = self._cursor_index()
        name = self._cursor_name
        if name is not None:
            self._data.toggle_mark(name)
            if index is not None:
                self._refresh_index(index)
        if index is not None and index + 1 < self._row_total():
            self._move_cursor(index + 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "new_in_free":
            return self._cursor_free is not None and self._cursor_index() is not None
        if action in ("toggle_mark", "activate") and self.disabled_reason(action):
            return None  # the screen says why (tui.keys)
        return super().check_action(action, parameters)

    def disabled_reason(self, action: str) -> str | None:
        """Why a key of the table does nothing now (F1, and the notice when pressed)."""
        free = self._cursor_free is not None and self._cursor_index() is not None
        if action == "new_in_free" and not free:
            return "only on a free row (disk and logical pools); elsewhere n defines a pool"
        if action in ("toggle_mark", "activate") and self.cursor_volume is None and not (
                action == "activate" and free):
            return "a free row is never marked" if free else "no volume under the cursor"
        return self._edge_reason(action)

    def _edge_reason(self, action: str) -> str | None:
        """Why a cursor or scroll key would not move: at that edge already (it said
        nothing: issue 15 item 15)."""
        if action in ("scroll_left", "scroll_right"):
            x = self.scroll_offset.x
            if self.max_scroll_x <= 0:
                return "every column is on screen"
            if action == "scroll_left" and x <= 0:
                return "the first column is on screen already"
            if action == "scroll_right" and min(self.max_scroll_x,
                                                self._lines.column_x(x, 1)) <= x:
                return "the last column is on screen already"
            return None
        if action not in ("cursor_up", "cursor_down", "page_up", "page_down", "first",
                          "last") or action == "first" and self.scroll_offset.x:
            return None  # Home brings the first column back too
        total, index = self._row_total(), self._cursor_index()
        if not total:
            return (f'no volume matches "{self._data.filter_text}"' if self._data.order
                    else self.empty_text)
        noun = "row" if self._free else "volume"
        if index == 0 and action in ("cursor_up", "page_up", "first"):
            return f"first {noun} already (1 of {total})"
        if index == total - 1 and action in ("cursor_down", "page_down", "last"):
            return f"last {noun} already ({total} of {total})"
        return None

    def action_new_in_free(self) -> None:
        if self._cursor_free is not None and self._cursor_index() is not None:
            self.post_message(self.FreeRowActivated(self, *self._cursor_free))

    def action_activate(self) -> None:
        v = self.cursor_volume
        if v is not None:
            self.post_message(self.Activated(self, v))
        elif self._cursor_free is not None and self._cursor_index() is not None:
            self.post_message(self.FreeRowActivated(self, *self._cursor_free))

    def action_cycle_sort(self) -> None:
        keys = [key for key, _ in self.COLUMNS]
        column = self._views.current()[0]
        self.request_sort(keys[(keys.index(column) + 1) % len(keys)], reverse=False)

    def action_reverse_sort(self) -> None:
        column, reverse, _text = self._views.current()
        self.request_sort(column, reverse=not reverse)

    def column_at(self, x: int) -> str | None:
        """The column key under content x (scrolled), or None between/outside columns."""
        return self._lines.column_at(x + self.scroll_offset.x)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            column = self.column_at(offset.x)
            if column is not None:
                self.request_sort(column)
            return
        index = self.scroll_offset.y + offset.y - 1
        if 0 <= index < self._row_total():
            self._move_cursor(index)
            if event.chain >= 2:
                self.action_activate()
