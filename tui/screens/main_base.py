"""What the main screen stands on (MainScreenBase): its state and layout, loading in
workers, controller events, availability (disabled_reason), run_verb and the screens a
worker opens. tui.screens.main puts the keys and their actions (the mixins) on top.

The UI thread never does I/O: every controller call runs in a thread worker and comes
back through call_from_thread; controller events arrive as messages (tui.bridge).
Names, paths and messages are drawn escaped (tui.shown); notifications are plain text
(markup=False: a name may hold '[b]') and PoolkeeperApp.notify escapes them.

Screens a worker opens: tui.screens.prepared.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer, Input, Static, Tree

from backends.api import Controller
from backends.errors import PoolkeeperError, ToolFailed
from backends.fleet import ConnectionStatus, Fleet
from backends.jobs import Job
from backends.model import DeviceLayout, PoolFeatures, PoolStatus, VolumeInfo
from backends.units import human

from ..bridge import (
    CommandEvent,
    ConnectionEvent,
    JobEvent,
    Outcome,
    PoolEvent,
    VolumeEvent,
    connect,
)
from ..shown import shown
from ..widgets.extent_bar import ExtentBar, free_rows
from ..widgets.jobs_panel import JobsPanel
from ..widgets.log_panel import LogPanel
from ..widgets.pool_tree import PoolTree
from ..widgets.usage import level, usage_bar
from ..widgets.volume_table import VolumeTable
from .help import HelpScreen
from .prepared import _WHAT, PreparedScreens, Preparing

HEADER_EVERY = 0.25  # seconds between the header's counts while volumes come in
POOL_ACTIONS = {"build_pool", "start_stop", "toggle_autostart", "delete_pool", "refresh",
                "edit_xml"}
# What a pool's volume_limit (e.g. no device-mapper under a logical pool) rules out.
NEEDS_VOLUME_IO = {"create_volume", "clone_volume", "resize_volume", "wipe_volume", "upload",
                   "download"}
# keys whose dialogs show or use what a volume's header says (format, capacity, backing)
NEEDS_HEADER = {"clone_volume", "resize_volume", "wipe_volume", "upload", "download",
                "delete_volumes"}


@dataclass
class PoolView:
    """What the header shows for the selected pool (computed in a worker)."""

    status: PoolStatus
    features: PoolFeatures | None
    committed: int  # sum of the volumes' capacities
    count: int
    layout: list[DeviceLayout] | None = None  # disk and logical pools: the extent bar
    secret_usage: str | None = None  # the CHAP secret the pool names (iSCSI)
    pending: int = 0  # volumes whose header is still being read (committed leaves them out)



class FilterInput(Input):
    """The volume filter: escape clears and closes it (MainScreenBase.close_filter)."""

    BINDINGS = [Binding("escape", "close_filter", "Close filter", show=False)]

    def action_close_filter(self) -> None:
        screen = self.screen
        if isinstance(screen, MainScreenBase):
            screen.close_filter()


class MainScreenBase(PreparedScreens, Screen[None]):
    """What the main screen's actions stand on: its state and layout, loading in workers,
    controller events, availability (disabled_reason), run_verb and the screens a worker
    opens. MainScreen adds the keys and their actions."""

    def __init__(self, controller: Controller, *, ascii: bool = False) -> None:
        super().__init__()
        self.ctl = controller
        # several hosts (backends.fleet): the tree's top level is hosts
        self.fleet: Fleet | None = controller if isinstance(controller, Fleet) else None
        self.ascii = ascii
        self.pools: dict[str, PoolStatus] = {}
        self.selected: str | None = None
        self.connection: str | None = None  # the host whose own line the cursor is on
        self.view: PoolView | None = None
        self.refreshed_at: float | None = None
        self._probe_asked: list[str] = []  # the names last asked to be read first
        self._users_due: str | None = None  # the pool whose users are read once it is
        self._disconnect: Callable[[], None] | None = None
        self.in_use: dict[str, str] = {}  # volume -> "process (pid N)" of the selected pool
        self._preparing: Preparing | None = None  # a screen a worker prepares for a key
        self._binding_state: tuple[bool | None, ...] | None = None  # footer keys shown
        # What each pool type is (the define form), read once in a worker: it loads the
        # drivers, which is not the UI thread's work.
        self.pool_types: dict[str, PoolFeatures] | None = None
        self._filters: dict[str, str] = {}  # pool -> its filter: one pool's is not another's
        self._focus_before_panel: Widget | None = None  # where focus goes back to
        # Pools whose first listing is coming in (PoolChanged listing .. listed), and those
        # whose rows came that way since they started (no second listing on 'started').
        self._listing: set[str] = set()
        self._streamed: set[str] = set()
        self._header_at = 0.0  # when the header's counts were last shown (_header_soon)
        self._header_timer: Timer | None = None

    # == layout ========================================================================
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield PoolTree(ascii=self.ascii, id="pools")
            with Vertical(id="right"):
                yield Static("", id="pool-header")
                yield ExtentBar(ascii=self.ascii, id="extents")
                yield FilterInput(placeholder="filter volumes by name", id="filter")
                yield VolumeTable(id="volumes", ascii=self.ascii)
                yield Static("", id="status")
                yield JobsPanel(ascii=self.ascii, id="jobs")
                yield LogPanel(id="log")
        yield Footer()

    def on_mount(self) -> None:
        self._disconnect = connect(self, self.ctl.subscribe)
        for widget_id in ("#filter", "#jobs", "#log", "#extents"):
            self.query_one(widget_id).display = False
        self.set_interval(5, self._update_status)
        # 'reconnecting in N s': ticks only while a host counts down (idle CPU)
        self._tick_timer = self.set_interval(1, self._tick_connections, pause=True)
        # the headers of the rows on screen are read first (while some are unread)
        self._probe_timer = self.set_interval(0.2, self._probe_shown, pause=True)
        self.load_pools()
        if self.fleet is not None:
            self.offer_system()  # type: ignore[attr-defined]  (ConnectionActions)
        for problem in self.ctl.startup_problems():  # an autostart that failed, say
            self.notify(problem, severity="error", timeout=20, markup=False)

    def on_unmount(self) -> None:
        if self._disconnect:
            self._disconnect()

    def calls_for(self, pool: str | None = None) -> Any:
        """The calls that name no pool (define, secrets, sources, devices), bound now to
        the host of `pool` (None: the host the cursor is on), so that what a dialog
        submits goes to that host wherever the cursor is by then (Fleet.on)."""
        if self.fleet is None:
            return self.ctl
        return self.fleet.on(self.fleet.connection_of(pool) if pool is not None
                             else self.fleet.current)

    def host_words(self, pool: str | None = None) -> str:
        """' on kvm2' for a dialog's title when there are several hosts ('' else)."""
        if self.fleet is None or len(self.fleet.connections()) < 2:
            return ""
        host = self.fleet.connection_of(pool) if pool is not None else self.fleet.current
        return " on this host" if host == "" else f" on {host}"

    @property
    def table(self) -> VolumeTable:
        return self.query_one("#volumes", VolumeTable)

    @property
    def tree(self) -> PoolTree:
        return self.query_one("#pools", PoolTree)

    # == loading (workers) =============================================================
    @work(thread=True, exclusive=True, group="pools")
    def load_pools(self) -> None:
        if self.pool_types is None:
            types = self.ctl.pool_types()
            self.app.call_from_thread(setattr, self, "pool_types", types)
        pools = self.ctl.list_pools()
        connections = owner = None
        if self.fleet is not None:  # (memory only)
            connections = self.fleet.connections()
            owner = {p.name: self.fleet.connection_of(p.name) for p in pools}
        self.app.call_from_thread(self._show_pools, pools, connections, owner)

    def _show_pools(self, pools: list[PoolStatus],
                    connections: list[ConnectionStatus] | None = None,
                    owner: dict[str, str] | None = None) -> None:
        if not self.query("#pools"):  # the app is closing: the widgets went meanwhile
            return
        self.pools = {p.name: p for p in pools}
        self.tree.update_pools(pools, connections, owner)
        if self.tree.counting_down:
            self._tick_timer.resume()
        if self.connection is not None:
            if connections and len(connections) > 1 and any(
                    c.name == self.connection for c in connections):
                self.tree.select_connection(self.connection)
                self.show_connection_header()  # type: ignore[attr-defined]
                self._refresh_bindings_if_changed()
                return
            self.connection = None  # removed: a pool is selected again
        if not pools:
            self.selected = self.view = None
            self.query_one("#pool-header", Static).update(
                "no pools: press n to define one")
            self.table.empty_text = "no pools: press n to define one"
            self.table.set_volumes([])
            self._refresh_bindings_if_changed()
            return
        if self.selected not in self.pools:
            first = "default" if "default" in self.pools else sorted(self.pools)[0]
            self.select_pool(first)
        else:
            self.load_header(self.selected)

    def select_pool(self, name: str) -> None:
        if self.fleet is not None:
            self.fleet.use(self.fleet.connection_of(name))  # where define, secrets go
        self.connection = None
        if name != self.selected:
            self.selected = name
            self.in_use = {}
            self.table.clear_marks()
            self.tree.select_pool(name)
            self._show_filter_of(name)
            if self.view is not None and self.view.status.name != name:
                # Not the last pool's rows and header under this pool's name: until
                # they come, no key acts on a volume (the same name on another pool, or
                # on another host, is another volume)
                self.view = None
                self.table.empty_text = "reading the pool..."
                self.table.set_volumes([])
                self.table.set_free_extents([])
                self.query_one("#extents", ExtentBar).display = False
                self.query_one("#pool-header", Static).update(
                    Text(f"{shown(name, self.ascii)}: reading the pool...", style="bold"))
                self._refresh_bindings_if_changed()
        self.load_volumes(name)

    def _show_filter_of(self, pool: str) -> None:
        """The filter box shows the pool's own filter (none: closed)."""
        text = self._filters.get(pool, "")
        box = self.query_one("#filter", FilterInput)
        with box.prevent(Input.Changed):
            box.value = text
        box.display = bool(text)
        self.table.set_filter(text)

    @work(thread=True, exclusive=True, group="volumes")
    def load_volumes(self, name: str) -> None:
        try:
            status = self.ctl.pool_info(name)
            volumes = self.ctl.list_volumes(name) if status.active else []
        except PoolkeeperError as exc:
            self.app.call_from_thread(self._pool_failed, name, str(exc))
            return
        view = self._make_view(status, volumes)
        self.app.call_from_thread(self._show_volumes, name, view, volumes)
        if status.active:
            self._load_users(name)

    def _make_view(self, status: PoolStatus, volumes: list[VolumeInfo]) -> PoolView:
        """Worker side: everything the header and the extent bar show (I/O allowed)."""
        try:
            features = self.ctl.pool_features(status.type)
        except PoolkeeperError:
            features = None
        layout = None
        if status.active and features is not None and features.has_layout:
            try:
                layout = self.ctl.pool_layout(status.name)
            except PoolkeeperError:
                layout = []
        usage = None
        with contextlib.suppress(PoolkeeperError):
            auth = self.ctl.pool_def(status.name).source.auth
            usage = auth.secret.usage if auth is not None else None
        committed = sum(map(attrgetter("capacity"), volumes))  # (C loops: 100,000 volumes)
        pending = sum(map(attrgetter("pending"), volumes))
        return PoolView(status, features, committed, len(volumes), layout, usage, pending)

    def _load_users(self, name: str) -> None:
        try:
            users = self.ctl.volume_users(name)
        except PoolkeeperError:
            return
        self.app.call_from_thread(self._show_users, name, users)

    def _show_users(self, name: str, users: dict[str, str]) -> None:
        if name == self.selected:
            self.in_use = users
            self.table.set_in_use(users)

    @work(thread=True, exclusive=True, group="header")
    def load_header(self, name: str) -> None:
        try:
            status = self.ctl.pool_info(name)
        except PoolkeeperError as exc:
            self.app.call_from_thread(self._pool_failed, name, str(exc))
            return
        volumes = self.ctl.cached_volumes(name) if status.active else []
        view = self._make_view(status, volumes)
        self.app.call_from_thread(self._show_header, name, view)

    def _pool_failed(self, name: str, message: str) -> None:
        if name == self.selected:
            self.query_one("#pool-header", Static).update(
                Text(shown(message, self.ascii), style="red"))
            self.table.empty_text = message
            self.table.set_volumes([])
            self.table.set_free_extents([])  # (free-extent rows belong to a layout)

    def _show_volumes(self, name: str, view: PoolView, volumes: list[VolumeInfo]) -> None:
        if name != self.selected:
            return
        if not view.status.active:
            self.table.empty_text = f"pool {view.status.state}: press s to start it"
        else:
            self.table.empty_text = "no volumes: press c to create one"
        self.table.set_volumes(volumes)
        self.refreshed_at = time.monotonic()
        self._show_header(name, view)

    def _show_header(self, name: str, view: PoolView) -> None:
        if name != self.selected:
            return
        self.view = view
        self.pools[name] = view.status
        self.query_one("#pool-header", Static).update(self._header_text(view))
        bar = self.query_one("#extents", ExtentBar)
        bar.display = view.layout is not None
        if view.layout is not None:
            bar.set_layout(view.layout)
        # free-extent rows in the volume table (cfdisk-like); none without a layout
        self.table.set_free_extents([(d, s, e) for d, s, e, _ in free_rows(view.layout or [])])
        self.tree.update_pools(list(self.pools.values()))
        self._update_status()
        self._refresh_bindings_if_changed()

    def _header_text(self, view: PoolView) -> Text:
        """Short lines that fit the right pane at 80x24; each fact labelled in words."""
        p = view.status
        text = Text()
        text.append(shown(p.name, self.ascii), style="bold")
        text.append(f" ({p.type}) ")
        text.append(p.state, style="bold" if p.active else "dim")
        text.append(f"  autostart {'yes' if p.autostart else 'no'}")
        text.append("\n" if p.persistent else "  transient\n")
        if p.active and p.capacity:
            text.append_text(usage_bar(p.allocation, p.capacity, 10, ascii=self.ascii))
            state = level((p.allocation or 0) / p.capacity)
            if state != "ok":
                text.append(f" {state}", style="bold red" if state == "critical" else "yellow")
            text.append(f"  available {human(p.available)}\n")
            if p.largest_free is not None:  # a disk pool: one partition fits in one extent
                text.append(f"largest free extent {human(p.largest_free)}\n")
            text.append(f"allocation {human(p.allocation)} of capacity {human(p.capacity)}\n")
            if p.name in self._listing:
                text.append(f"listing... {view.count:,} volumes so far")
            elif view.pending:  # not a sum of guesses
                text.append(f"{view.count} volumes, reading headers: {view.pending:,} to go")
            else:
                text.append(f"{view.count} volume{'' if view.count == 1 else 's'}, "
                            f"{human(view.committed)} provisioned")
            if view.committed > p.capacity:
                text.append("  OVERCOMMITTED", style="bold yellow")
            text.append("\n")
        else:
            text.append("inactive: press s to start it\n" if p.state == "inactive"
                        else f"{p.state}: the storage is not reachable\n")
        if p.detail:  # why the pool is inaccessible: a message
            text.append(f"{shown(p.detail, self.ascii)}\n")
        if p.active and p.volume_limit:  # what this host cannot do; F1 has all of it
            cause = p.volume_limit.split(": ", 1)[0]
            keys = " ".join(b.key for b in self.BINDINGS
                            if isinstance(b, Binding) and b.action in NEEDS_VOLUME_IO)
            text.append(f"{shown(cause, self.ascii)}: keys {keys} unavailable (f1 says why)\n",
                        style="yellow")
        if p.source:
            text.append(f"source {shown(p.source, self.ascii)}  ")
        if p.target:
            text.append(f"target {shown(p.target, self.ascii)}")
        return text

    def _update_status(self) -> None:
        parts = []
        if self._preparing is not None:  # keys wait for it: say so, and how to stop it
            # (the short name: the whole line fits the right pane at 80 columns)
            kind = self._preparing.kind
            parts.append(f"preparing {_WHAT.get(kind, kind)}... (Esc cancels)")
        if self.refreshed_at is not None:
            parts.append(f"refreshed {time.monotonic() - self.refreshed_at:.0f} s ago")
        running = self.query_one("#jobs", JobsPanel).running
        if running:
            parts.append(f"{len(running)} job(s) running: j shows them")
        self.query_one("#status", Static).update("  ".join(parts))

    # == controller events (messages from tui.bridge) ==================================
    def on_pool_event(self, event: PoolEvent) -> None:
        if event.reason == "sizes" and event.pool != self.selected:
            self.load_pools()
            return
        if event.reason in ("listing", "listed"):
            self._listing_event(event.pool, event.reason == "listing")
            return
        if event.pool == self.selected and event.reason in ("started", "stopped", "deleted"):
            if event.reason == "started" and event.pool in self._streamed:
                self.load_header(event.pool)  # its rows came as it was listed
            else:
                self.load_volumes(event.pool)
        if event.reason not in ("started", "sizes"):  # (sizes may come while it lists)
            self._streamed.discard(event.pool)
        self.load_pools()

    def _listing_event(self, pool: str, begins: bool) -> None:
        """A first listing starts (its batches come as VolumeEvents) or is over. The
        header says it is listing until it is; the table shows the cache as it fills."""
        if begins:
            self._listing.add(pool)
            self._streamed.add(pool)
        else:
            self._listing.discard(pool)
        if pool != self.selected:
            self.load_pools()
            return
        self._probe_timer.resume()  # (it pauses itself when no row is pending)
        table = self.table
        if begins:
            table.empty_text = "listing volumes..."
            table.set_volumes(self.ctl.cached_volumes(pool))  # memory only
            self.load_pools()
        else:
            table.empty_text = "no volumes: press c to create one"
            cached = self.ctl.cached_volumes(pool)
            if len(cached) != table.total_count:  # a batch missed (a reload in between),
                table.set_volumes(cached)  # or is still on its way here
            self.refreshed_at = time.monotonic()
            self.load_header(pool)
            # who has what open: a walk of /proc, after the headers (_probe_shown), as
            # every Python thread slows the others down
            self._users_due = pool

    @work(thread=True, exclusive=True, group="users")
    def _load_users_later(self, name: str) -> None:
        self._load_users(name)

    def on_volume_event(self, event: VolumeEvent) -> None:
        if event.pool != self.selected:
            return
        # Memory only: the controller's cache already holds the new infos.
        added = self.ctl.cached_volumes(event.pool, event.added)
        changed = self.ctl.cached_volumes(event.pool, event.changed)
        self.table.apply_diff(added, list(event.removed), changed,
                              listing=event.pool in self._listing)
        self.refreshed_at = time.monotonic()
        view = self.view
        if (event.pool in self._listing or self.table.pending_count) and view is not None \
                and view.status.name == event.pool and view.status.active:
            # listing, or reading headers: the count is the table's (no worker reading
            # it all again, which would slow the reading down); the rest once it is over
            self.view = replace(view, count=self.table.total_count,
                                pending=self.table.pending_count)
            self._header_soon()
            self._refresh_bindings_if_changed()  # (a key waits for the cursor row's header)
        else:
            self.load_header(event.pool)
        if self.table.pending_count:
            self._probe_timer.resume()

    def _header_soon(self) -> None:
        """The header's counts, at most every HEADER_EVERY seconds while batches come in
        (each update lays out the screen: per batch, that was most of the TUI's time while
        a big pool's sizes came in), the last one always shown."""
        now = time.monotonic()
        if self._header_timer is not None:
            return  # one is due: it shows the counts as they are then
        wait = self._header_at + HEADER_EVERY - now
        if wait > 0:
            self._header_timer = self.set_timer(wait, self._header_now)
        else:
            self._header_now()

    def _header_now(self) -> None:
        self._header_timer = None
        self._header_at = time.monotonic()
        if self.view is not None and self.view.status.name == self.selected:
            self.query_one("#pool-header", Static).update(self._header_text(self.view))

    def _probe_shown(self) -> None:
        """Ask for the headers of the unread rows on screen (and a page around) first."""
        if not self.table.pending_count or self.selected is None:
            self._probe_timer.pause()
            if self._users_due is not None and self._users_due == self.selected:
                self._load_users_later(self._users_due)
            self._users_due = None
            return
        names = self.table.pending_in_view()
        if names and names != self._probe_asked:
            self._probe_asked = names
            self.ctl.probe_first(self.selected, names)  # memory only

    def on_job_event(self, event: JobEvent) -> None:
        jobs = self.query_one("#jobs", JobsPanel)
        jobs.update_job(event.job)
        if event.finished:
            self._job_finished(event.job)
        self._update_status()

    def on_connection_event(self, event: ConnectionEvent) -> None:
        self.load_pools()

    def _tick_connections(self) -> None:
        if not self.tree.counting_down:
            self._tick_timer.pause()  # resumed when a host counts down again
            return
        self.tree.tick()
        if self.connection is not None:
            self.show_connection_header()  # type: ignore[attr-defined]

    def on_command_event(self, event: CommandEvent) -> None:
        self.query_one("#log", LogPanel).add_command(event.command)

    def _job_finished(self, job: Job) -> None:
        description = job.description  # names its volume (notify escapes it)
        if job.state == "done":
            # a clone says how it copied, and whether it renamed or flattened a backing file
            how = f" ({job.result})" if job.kind == "clone" and isinstance(job.result, str) \
                else ""
            self.notify(f"done: {description}{how}", markup=False)
            for warning in job.warnings:
                self.notify(warning, severity="warning", markup=False)
        elif job.state == "cancelled":
            self.notify(f"cancelled: {description}", severity="warning", markup=False)
        else:
            error = str(job.error)
            # errors usually say what failed already ("cannot create v in p: ...")
            lines = [error if job.description in error else f"{description} failed: {error}"]
            if isinstance(job.error, ToolFailed) and job.error.stderr.strip():
                tail = job.error.stderr.strip().splitlines()[-5:]  # the tool's own words
                lines += [line[:200] for line in tail]
            self.app.notify_lines(lines, severity="error", timeout=15)

    # == selection =====================================================================
    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        if event.node is not self.tree.cursor_node:
            # Stale: the cursor moved on before this was handled (Down pressed twice
            # quickly). Selecting its pool would move the cursor back and queue another
            # highlight, and two of them would flip between two pools forever.
            return
        name = event.node.data
        if name and name in self.pools and (name != self.selected or self.connection):
            self.select_pool(name)
        elif name is None and (host := self.tree.connection_at_cursor()) is not None:
            self.select_connection(host)  # type: ignore[attr-defined]  (ConnectionActions)

    def on_volume_table_selection_changed(self, event: VolumeTable.SelectionChanged) -> None:
        self._refresh_bindings_if_changed()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self.selected is not None:
            self._filters[self.selected] = event.value
        self.table.request_filter(event.value)  # a big table filters in a thread

    def close_filter(self) -> None:
        """Escape in the filter: cleared and closed, the table has the keys again."""
        box = self.query_one("#filter", FilterInput)
        box.value = ""  # Input.Changed clears the table's filter and the pool's
        box.display = False
        self.table.focus()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.table.focus()

    # == availability ==================================================================
    def disabled_reason(self, action: str) -> str | None:
        """Why `action` cannot run now (None: it can)."""
        if action in ("define_pool", "toggle_jobs", "toggle_log", "toggle_routine_log", "help",
                      "filter"):
            return None
        if self.selected is None:
            return "no pool selected"
        if self.view is None or self.view.status.name != self.selected:
            return f"'{self.selected}' is being read; a moment"
        status, features = self.view.status, self.view.features
        if features is None:
            return f"'{status.type}' pools are not available in this version"
        if action == "build_pool":
            if not features.can_build:
                return f"{status.type} pools have nothing to build"
            if status.started:
                return "stop the pool before building it (s)"
        if action == "set_secret":
            return None if self.view.secret_usage else (
                "the pool names no CHAP secret (<auth><secret usage=.../></auth>)")
        if action == "delete_pool" and status.started:  # (e edits a running one too)
            return "stop the pool first (s)"
        if action in POOL_ACTIONS or action == "show_xml":
            return None
        if not status.active:
            return "the pool is not active: press s to start it"
        if status.volume_limit and action in NEEDS_VOLUME_IO:
            return status.volume_limit
        if action == "create_volume":
            return None if features.can_create_volumes else (
                f"{status.type} pools cannot create volumes")
        volume = self.table.cursor_volume
        if action == "delete_volumes":
            if not features.can_delete_volumes:
                return f"{status.type} pools cannot delete volumes"
            return None if (volume or self.table.marked) else "no volume selected"
        if volume is None:
            return "no volume selected"
        if volume.pending and action in NEEDS_HEADER:  # nothing acts on a guess
            return f"'{volume.name}': its header is being read; a moment"
        if action == "resize_volume" and not features.can_resize_volumes:
            return f"{status.type} pools cannot resize volumes"
        if action == "clone_volume" and not features.can_create_volumes:
            return f"{status.type} pools cannot create volumes"
        if volume.error and action != "copy_path":
            return f"'{volume.name}': {volume.error}"
        return None

    def _refresh_bindings_if_changed(self) -> None:
        """Refresh the footer only when a key became available or unavailable: a refresh
        rebuilds the footer and restyles the screen, which was most of an idle TUI's CPU
        while the monitor reported free-space changes every few seconds."""
        state = tuple(self.check_action(b.action, ()) for b in self.BINDINGS
                      if isinstance(b, Binding))
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in {b.action for b in self.BINDINGS if isinstance(b, Binding)}:
            return None if self.disabled_reason(action) else True
        return True

    def key_rows(self) -> list[tuple[str, str, str | None]]:
        rows = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding):
                rows.append((binding.key, binding.description,
                             self.disabled_reason(binding.action)))
        return rows

    # == running verbs =================================================================
    @work(thread=True, group="verbs")
    def run_verb(self, action: str, done: str, fn: Callable[..., Any], *args: Any,
                 **kwargs: Any) -> None:
        """Run a controller verb off the UI thread. `action` says what it does ("remove
        pool p"): a failure is notified as "could not <action>: <why>". `done` is said
        only once the verb succeeded ("pool p removed"); a verb that starts a job says
        nothing (the jobs panel shows it, and the job's end is notified); one that did
        only part of its work returns an Outcome, said instead of `done`."""
        try:
            result = fn(*args, **kwargs)
        except PoolkeeperError as exc:
            self.app.notify(f"could not {action}: {exc}", severity="error", timeout=10,
                            markup=False)
            return
        except OSError as exc:
            self.app.notify(f"could not {action}: {exc.strerror or exc}", severity="error",
                            timeout=10, markup=False)
            return
        if isinstance(result, Job):
            self.app.call_from_thread(self._job_started, result)
        elif isinstance(result, Outcome):  # part of it done: says which part
            self.app.notify(result.text, severity=result.severity, markup=False,
                            timeout=None if result.severity == "information" else 15)
        else:
            self.app.notify(done, markup=False)

    def _job_started(self, job: Job) -> None:
        self.query_one("#jobs", JobsPanel).update_job(job)
        self._update_status()

    # == the view's own keys: refresh, filter, panels, help ============================
    def action_refresh(self) -> None:
        self.load_pools()
        if self.selected:
            self.load_volumes(self.selected)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_toggle_jobs(self) -> None:
        panel = self.query_one("#jobs", JobsPanel)
        panel.display = not panel.display
        if panel.display:
            self._focus_before_panel = self.focused
            if panel.option_count:  # on the first row: running jobs come first
                panel.highlighted = 0
            panel.scroll_home(animate=False)
            panel.focus()
        else:  # focus goes back where it was, not to the next focusable (the filter)
            back = self._focus_before_panel
            self._focus_before_panel = None
            if back is not None and back.is_attached and back.display and back.focusable:
                back.focus()
            else:
                self.table.focus()

    def action_toggle_log(self) -> None:
        panel = self.query_one("#log", LogPanel)
        panel.display = not panel.display

    def action_toggle_routine_log(self) -> None:
        """The log shows the monitor's and the views' routine reads too, or not."""
        panel = self.query_one("#log", LogPanel)
        panel.set_show_routine(not panel.show_routine)
        panel.display = True
        self.app.notify("the log shows routine reads too (L hides them)" if panel.show_routine
                        else "the log shows what actions ran (L shows routine reads too)")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.key_rows()))
