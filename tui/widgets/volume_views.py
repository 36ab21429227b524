"""ViewRequests: the sort and filter a user asks of a VolumeTable, computed in a thread
when the table is big.

A user's sort (keys, clicks) and filter (VolumeTable.request_sort, request_filter) on a
table of ASYNC_ROWS volumes or more is computed in a thread: the old view stays on screen
and keys keep working until the new one is ready; requests made meanwhile are folded into
the next computation (typing a filter fast computes it once more, not once per key). The
table's sort_by and set_filter are the synchronous forms (programs, tests): they drop() a
request being computed, since what is asked now wins.

One thread at a time; its View comes back on the UI thread (App.call_from_thread) and is
shown only if the volumes and the wish are still the ones it was computed for, else it is
computed once more. The table keeps the drawing: `show` (sort_by, then set_filter) for a
view cheap enough to make at once, `install` for a computed one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .volume_rows import COLUMNS, View, VolumeRows

if TYPE_CHECKING:
    from textual.app import App

log = logging.getLogger(__name__)

ASYNC_ROWS = 20_000  # from this many volumes a user's sort or filter runs in a thread

Wish = tuple[str, bool, str]  # (column, reverse, filter text)


class ViewRequests:
    """The view (sort column, order, filter) asked of a table's VolumeRows, and the thread
    that computes it when it is not cheap."""

    def __init__(
        self,
        data: VolumeRows,
        app: Callable[[], App[Any]],
        show: Callable[[str, bool, str], None],
        install: Callable[[View, bool, bool], None],
    ) -> None:
        self._data = data
        self._app = app  # read on the UI thread when a thread starts
        self._show = show  # (column, reverse, text): make the view at once
        self._install = install  # (view, read_since, reverse): show a computed view
        self._wanted: Wish | None = None  # asked, not shown yet
        self._computing = False  # a thread computes a View

    @property
    def pending(self) -> bool:
        """A requested sort or filter is being computed (the old view is shown)."""
        return self._wanted is not None

    def current(self) -> Wish:
        """The view asked last: the one being computed, else the one shown."""
        return self._wanted or self._shown()

    def drop(self) -> None:
        """A synchronous sort or filter took over: a request being computed is dropped."""
        self._wanted = None

    def request_sort(self, key: str, reverse: bool | None = None) -> None:
        if key not in dict(COLUMNS):
            raise ValueError(f"unknown column {key!r}")
        column, was_reverse, text = self.current()
        if reverse is None:
            reverse = not was_reverse if key == column else False
        self._wanted = (key, reverse, text)
        self._update()

    def request_filter(self, text: str) -> None:
        column, reverse, _text = self.current()
        self._wanted = (column, reverse, text.lower())
        self._update()

    def sort_stale(self) -> bool:
        """Headers were read while sorted by what they give: sort again, at once on a small
        table (True: the rows moved), else in a thread (batches that come meanwhile fold
        into it)."""
        if len(self._data.order) < ASYNC_ROWS:
            self._data.resort()
            return True
        self._wanted = self.current()
        self._update()
        return False

    def _shown(self) -> Wish:
        return self._data.sort_column, self._data.reverse, self._data.filter_text

    def _cheap(self, column: str, text: str) -> bool:
        """Can the view asked be shown at once (no pass over many rows)?"""
        data = self._data
        if len(data.order) < ASYNC_ROWS:
            return True
        if column != data.sort_column or data.stale:
            return False
        return not text or text == data.filter_text or (
            bool(data.filter_text) and data.filter_text in text and len(data.rows) < ASYNC_ROWS)

    def _update(self) -> None:
        """Show the view asked, at once when cheap, else from a thread (one at a time)."""
        if self._wanted is None or self._computing:
            return  # (a running computation calls this again when it ends)
        column, reverse, text = self._wanted
        if self._cheap(column, text):
            self._wanted = None
            self._show(column, reverse, text)
            return
        self._computing = True
        task, version = self._data.view_task(column, text), (self._data.version,
                                                             self._data.members)
        threading.Thread(target=self._compute, args=(self._app(), task, version), daemon=True,
                         name="volume-table-view").start()

    def _compute(self, app: App[Any], task: Callable[[], View],
                 version: tuple[int, int]) -> None:
        view = None
        try:
            view = task()
        except Exception:  # a bug: the old view stays
            log.exception("sorting or filtering the volumes failed")
        with contextlib.suppress(RuntimeError):  # the app is gone
            app.call_from_thread(self._view_ready, view, version)

    def _view_ready(self, view: View | None, version: tuple[int, int]) -> None:
        self._computing = False
        if view is None:
            self._wanted = None
        wanted = self._wanted
        if wanted is None:  # a synchronous call took over (or it failed)
            return
        column, reverse, text = wanted
        # the same volumes (headers read into some meanwhile: in, and sorted again after)
        read_since = version[0] != self._data.version
        if (not read_since or version[1] == self._data.members) and (
                view.column, view.text) == (column, text):
            self._wanted = None
            self._install(view, read_since, reverse)
            if self._data.stale:
                self._wanted = self._shown()
                self._update()
        else:
            self._update()  # the volumes or the wish changed meanwhile: once more
