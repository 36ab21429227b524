"""The main screen's host keys (backends.fleet): `H` adds a libvirt connection; on a
host's line in the tree, `e` edits it, `X` removes it (the host and its storage are left
alone: only the saved connection goes) and `r` reconnects. The header then shows the
host: its URI, its state and why, its pools. On a first start with libvirtd on this host,
qemu:///system is offered once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.widgets import Static

from backends.connection_store import SYSTEM_URI
from backends.fleet import THIS_HOST, Fleet

from ..dialogs.confirm import ConfirmDialog
from ..dialogs.connection import ConnectionDialog, ConnectionRequest
from ..shown import shown
from ..widgets.usage import usage_bar

if TYPE_CHECKING:
    from .main_base import MainScreenBase as _Screen
else:
    _Screen = object  # mixed into MainScreen, which is a MainScreenBase

# keys that act on the host whose line the cursor is on (the rest need a pool)
HOST_ACTIONS = {"edit_xml", "delete_pool", "refresh", "define_pool", "add_connection"}
# keys whatever is selected (MainScreenBase.disabled_reason says the same of them)
ALWAYS = {"define_pool", "toggle_jobs", "toggle_log", "toggle_routine_log", "help", "filter",
          "cancel_job"}
NO_FLEET = "libvirt connections are not available here"


class ConnectionActions(_Screen):
    """Mixin for MainScreen: the host keys, and what the header says of a host."""

    fleet: Fleet | None

    # == the host line =================================================================
    def select_connection(self, name: str) -> None:
        """The cursor is on a host's own line: its header; no pool's keys."""
        self.connection = name
        self.selected = None
        self.view = None
        if self.fleet is not None:
            self.fleet.use(name)
        self.table.clear_marks()
        self.table.empty_text = "a host is selected: its pools are below it in the tree"
        self.table.set_volumes([])
        self.table.set_free_extents([])
        self.show_connection_header()
        self._refresh_bindings_if_changed()

    def show_connection_header(self) -> None:
        name = self.connection
        if self.fleet is None or name is None:
            return
        conn = next((c for c in self.fleet.connections() if c.name == name), None)
        if conn is None:
            return
        text = Text()
        text.append(shown(conn.label, self.ascii), style="bold")
        text.append(f" ({shown(conn.uri or 'the native engine', self.ascii)})\n")
        state = conn.state_text()
        text.append(shown(state, self.ascii) + "\n",
                    style="bold red" if conn.state in ("lost", "failed") else "")
        if conn.state == "lost" and conn.detail:
            text.append(shown(conn.detail, self.ascii) + "\n")
        pools = [p for p in self.pools.values()
                 if self.fleet.connection_of(p.name) == name]
        active = [p for p in pools if p.active and p.capacity]
        capacity = sum(p.capacity or 0 for p in active)
        used = sum(p.allocation or 0 for p in active)
        text.append(f"{len(pools)} pool{'' if len(pools) == 1 else 's'}, {len(active)} active")
        if capacity:
            text.append("  ")
            text.append_text(usage_bar(used, capacity, 10, ascii=self.ascii))
        text.append("\n")
        if name == THIS_HOST:
            text.append("n defines a pool here; H adds a libvirt connection")
        else:
            text.append("r reconnects  e edits  X removes the connection  n defines a pool")
        self.query_one("#pool-header", Static).update(text)

    def connection_reason(self, action: str) -> str | None:
        """Why `action` cannot run with the cursor on a host's line (None: it can)."""
        if action not in HOST_ACTIONS:
            return "a host is selected: its pools are below it in the tree"
        if self.connection == THIS_HOST and action in ("edit_xml", "delete_pool"):
            return "this host is poolkeeper's own engine: it has no connection to change"
        return None

    def disabled_reason(self, action: str) -> str | None:
        if action == "add_connection":
            return None if self.fleet is not None else NO_FLEET
        if self.connection is not None and action not in ALWAYS:
            return self.connection_reason(action)
        return super().disabled_reason(action)  # type: ignore[misc]

    # == keys ==========================================================================
    def action_add_connection(self) -> None:
        if self.fleet is None:
            self.app.notify(NO_FLEET, severity="warning", markup=False)
            return
        taken = frozenset(c.name for c in self.fleet.connections())
        self.app.push_screen(ConnectionDialog(taken=taken, ascii=self.ascii),
                             self._connection_added)

    def _connection_added(self, request: ConnectionRequest | None) -> None:
        if request is not None and self.fleet is not None:
            self.run_verb(f"add connection {request.name}",
                          f"connection {request.name} added: connecting to {request.uri}",
                          self.fleet.add_connection, request.name, request.uri)

    def action_edit_xml(self) -> None:
        if self.connection is None:
            super().action_edit_xml()  # type: ignore[misc]
            return
        if self.fleet is None or self.connection == THIS_HOST:
            return
        old = self.connection
        conn = next((c for c in self.fleet.connections() if c.name == old), None)
        if conn is None:
            return
        taken = frozenset(c.name for c in self.fleet.connections())

        def done(request: ConnectionRequest | None) -> None:
            if request is not None and self.fleet is not None:
                self.run_verb(f"change connection {old}",
                              f"connection {request.name} saved: connecting to {request.uri}",
                              self.fleet.edit_connection, old, request.name, request.uri)

        self.app.push_screen(ConnectionDialog(name=old, uri=conn.uri or "", taken=taken,
                                              ascii=self.ascii), done)

    def action_delete_pool(self) -> None:
        if self.connection is None:
            super().action_delete_pool()  # type: ignore[misc]
            return
        name = self.connection
        if self.fleet is None or name == THIS_HOST:
            return

        def done(yes: Any) -> None:
            if yes and self.fleet is not None:
                self.run_verb(f"remove connection {name}", f"connection {name} removed",
                              self.fleet.remove_connection, name)

        self.app.push_screen(ConfirmDialog(
            f"Remove connection '{name}'",
            f"The tree stops showing '{name}' and its pools. Nothing on the host changes: "
            "its pools and volumes stay as they are, and H adds it again.",
            confirm_label="Remove", ascii=self.ascii), done)

    def action_refresh(self) -> None:
        """On a host's line, or on a pool of a host that is not connected: reconnect."""
        host = self.connection
        if host is None and self.fleet is not None and self.selected is not None:
            host = self.fleet.connection_of(self.selected)
            if host != THIS_HOST and any(c.name == host and c.state == "connected"
                                         for c in self.fleet.connections()):
                host = None  # connected: r refreshes the pool, as everywhere
        if host is None and self.fleet is not None and self.selected is not None and \
                self.fleet.connection_of(self.selected) != THIS_HOST:
            # a connected host's pool: libvirt reads it again (its event re-lists it)
            self.run_verb(f"refresh pool {self.selected}", f"pool {self.selected} refreshed",
                          self.fleet.refresh_pool, self.selected)
            super().action_refresh()  # type: ignore[misc]
            return
        if host is None or host == THIS_HOST or self.fleet is None:
            super().action_refresh()  # type: ignore[misc]
            return
        self.run_verb(f"reconnect {host}", f"reconnecting {host}", self.fleet.reconnect, host)

    # == first start ===================================================================
    @work(thread=True, group="offer")
    def offer_system(self) -> None:
        """libvirtd runs here and nothing is saved: offer qemu:///system, once."""
        if self.fleet is None or not self.fleet.store.offer_system():
            return
        self.app.call_from_thread(self._ask_system)

    def _ask_system(self) -> None:
        def done(yes: Any) -> None:
            if yes and self.fleet is not None:
                self.run_verb("add connection system", f"connecting to {SYSTEM_URI}",
                              self.fleet.add_connection, "system", SYSTEM_URI)

        self.app.push_screen(ConfirmDialog(
            "libvirt on this host",
            f"libvirtd runs on this host. Show its pools ({SYSTEM_URI}) beside poolkeeper's "
            "own? H adds connections later; X on a host's line removes one.",
            confirm_label="Add", ascii=self.ascii), done)

