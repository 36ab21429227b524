"""The pool tree: pools grouped by type, each with its state as a word and a usage bar;
with libvirt connections (backends.fleet), a top level of hosts first: "this host" and each
connection with its state (connecting, connected, lost: reconnecting in N s, failed: why)
and its totals, its pools grouped by type beneath it.

Labels are updated in place when sizes or states change; the tree is only rebuilt when
pools appear or disappear, so the cursor never jumps under the user. A key that would not
move the cursor or fold anything says why (disabled_reason, read by tui.keys): at the top,
at the bottom, on a pool that has nothing to fold.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from backends.fleet import ConnectionStatus
from backends.model import PoolStatus

from ..keys import scroll_edge
from ..shown import shown
from .usage import bar_cells, usage_bar

# Tree guides without box drawing, for --ascii and TERM=linux: "|-- ", "`-- ", "|   ".
ASCII_LINES: dict[str, tuple[str, str, str, str]] = {
    style: ("  ", "| ", "`-", "|-") for style in ("default", "bold", "double")
}


def pool_label(pool: PoolStatus, *, ascii: bool = False, width: int = 40,
               name: str | None = None) -> Text:
    """'name  state  bar pct%' fitted to `width` cells (the name gives way first).
    `name`: what to call it (under its connection: without the '@host')."""
    bar = 8 if width >= 40 else 4 if width >= 32 else 0  # narrow: the % alone
    state_width = 12 if pool.state == "inaccessible" else 8
    name_width = max(6, width - (state_width + 1) - bar_cells(bar, ascii=ascii) - 1)
    name = shown(pool.name if name is None else name, ascii)
    if len(name) > name_width:
        name = name[: name_width - 1] + "~"
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(f"{name:<{name_width}} ")
    label.append(f"{pool.state:<{state_width}} ", style="bold" if pool.active else "")
    label.append_text(usage_bar(pool.allocation, pool.capacity, bar, ascii=ascii))
    if not pool.active:
        label.stylize("dim")
    return label


def connection_label(conn: ConnectionStatus, pools: list[PoolStatus], *,
                     ascii: bool = False, width: int = 40) -> Text:
    """'kvm2  3 pools  bar pct%' when connected; else its state: 'kvm2  connecting',
    'kvm2  lost: reconnecting in 4 s', 'kvm2  failed (retry in 8 s)' (the header, on its
    line, says why)."""
    label = Text(no_wrap=True, overflow="crop")
    label.append(shown(conn.label, ascii), style="bold")
    if conn.state != "connected":
        state = conn.state_text()
        if conn.state == "failed":  # the why is long: the header has it
            wait = state.rsplit(" (", 1)[1] if state.endswith(")") else ""
            state = "failed" + (f" ({wait}" if wait else "")
        label.append(f"  {shown(state, ascii)}",
                     style="bold red" if conn.state in ("lost", "failed") else "yellow")
    if conn.state == "connected" or pools:
        label.append(f"  {len(pools)} pool{'' if len(pools) == 1 else 's'}")
    active = [p for p in pools if p.active and p.capacity]
    capacity = sum(p.capacity or 0 for p in active)
    room = width - label.cell_len - 2
    bar = next((cells for cells in (8, 4, 0) if bar_cells(cells, ascii=ascii) <= room), None)
    if conn.state == "connected" and capacity and bar is not None:
        label.append("  ")
        label.append_text(usage_bar(sum(p.allocation or 0 for p in active), capacity, bar,
                                    ascii=ascii))
    width = max(8, width)
    if label.cell_len > width:  # cut with the pool labels' mark: '~' in ASCII
        label.truncate(width - 1)
        label.append("~" if ascii else "…")
    return label


class PoolTree(Tree[str]):
    """Node data is the pool name (None for the type groups and the connections)."""

    def __init__(self, *, ascii: bool = False, id: str | None = None) -> None:
        super().__init__("pools", id=id)
        self.ascii = ascii
        self.show_root = False
        if ascii:
            # Instance attributes: Tree reads these through self, so only this tree changes.
            self.LINES = ASCII_LINES
            self.ICON_NODE, self.ICON_NODE_EXPANDED = "> ", "v "
            self.guide_depth = 4  # the guide is "|-- " (Tree draws depth - 2 dashes)
        else:
            self.guide_depth = 2
        self._pool_nodes: dict[str, TreeNode[str]] = {}
        # (connection, type, name) of the pools in the tree, and the connections shown
        self._shown: tuple[frozenset[tuple[str, str, str]], tuple[str, ...]] = (
            frozenset(), ())
        self._pools: list[PoolStatus] = []
        self._connections: dict[str, ConnectionStatus] = {}  # none: no host level
        self._conn_nodes: dict[str, TreeNode[str]] = {}
        self._owner: dict[str, str] = {}  # pool -> its connection's name

    def update_pools(self, pools: list[PoolStatus],
                     connections: list[ConnectionStatus] | None = None,
                     owner: dict[str, str] | None = None) -> None:
        """The pools; with `connections` (more than this host) under a level of hosts,
        each pool under the connection `owner` names for it (None: as before)."""
        if connections is None:
            connections, owner = list(self._connections.values()), self._owner
        elif len(connections) < 2:
            connections, owner = [], {}
        owner = owner or {}
        wanted = (frozenset((owner.get(p.name, ""), p.type, p.name) for p in pools),
                  tuple(c.name for c in connections))
        before = {p.name: p for p in self._pools}
        before_conns = self._connections
        self._owner = owner
        self._connections = {c.name: c for c in connections}
        if wanted != self._shown:
            self._rebuild(pools)
            return
        self._pools = pools
        changed = False
        for pool in pools:
            if before.get(pool.name) != pool:  # an unchanged label is not set again: each
                self._pool_nodes[pool.name].set_label(self._label(pool))  # set redraws
                changed = True
        # a host's line sums its pools
        self._update_connection_labels(force=changed or before_conns != self._connections)

    def _update_connection_labels(self, force: bool = True) -> None:
        for name, node in self._conn_nodes.items():
            conn = self._connections.get(name)
            if conn is not None and (force or conn.retry_at is not None):
                node.set_label(self._connection_label(conn))

    def tick(self) -> None:
        """A second went by: the 'reconnecting in N s' countdowns."""
        self._update_connection_labels(force=False)

    @property
    def counting_down(self) -> bool:
        return any(c.retry_at is not None for c in self._connections.values())

    def _label(self, pool: PoolStatus) -> Text:
        # A pool line is its guide (guide_depth cells per level) then the label; keep 2
        # cells spare for a vertical scrollbar when there are more pools than lines.
        levels = 2 if self._connections else 1
        width = self.size.width - self.guide_depth * levels - 2
        conn = self._owner.get(pool.name, "")
        name = pool.name[: -len(conn) - 1] if conn and self._connections else None
        return pool_label(pool, ascii=self.ascii, width=max(20, width), name=name)

    def _connection_label(self, conn: ConnectionStatus) -> Text:
        pools = [p for p in self._pools if self._owner.get(p.name, "") == conn.name]
        return connection_label(conn, pools, ascii=self.ascii,
                                width=max(20, self.size.width - 4))  # (icon, scrollbar)

    def on_resize(self) -> None:
        for pool in self._pools:
            node = self._pool_nodes.get(pool.name)
            if node is not None:
                node.set_label(self._label(pool))
        self._update_connection_labels()

    def _rebuild(self, pools: list[PoolStatus]) -> None:
        selected = self.cursor_node.data if self.cursor_node else None
        on_conn = self.connection_at_cursor()
        self._pools = pools
        self.clear()
        self._pool_nodes.clear()
        self._conn_nodes.clear()
        self._shown = (frozenset((self._owner.get(p.name, ""), p.type, p.name) for p in pools),
                       tuple(self._connections))
        parents: dict[str, TreeNode[str]] = {}
        hosts_with_pools = {self._owner.get(p.name, "") for p in pools}
        for conn in self._connections.values():
            label = self._connection_label(conn)
            parents[conn.name] = self._conn_nodes[conn.name] = (
                self.root.add(label, data=None, expand=True)
                if conn.name in hosts_with_pools else self.root.add_leaf(label, data=None))
        groups: dict[tuple[str, str], TreeNode[str]] = {}
        for pool in sorted(pools, key=lambda p: (p.type, p.name.lower())):
            conn = self._owner.get(pool.name, "") if self._connections else ""
            group = groups.get((conn, pool.type))
            if group is None:
                group = parents.get(conn, self.root).add(pool.type, data=None, expand=True)
                groups[(conn, pool.type)] = group
            self._pool_nodes[pool.name] = group.add_leaf(self._label(pool), data=pool.name)
        if selected in self._pool_nodes:
            self.select_pool(selected)
        elif on_conn is not None:
            self.select_connection(on_conn)

    def connection_at_cursor(self) -> str | None:
        """The connection whose own line the cursor is on (None: a pool or a type)."""
        node = self.cursor_node
        for name, conn_node in self._conn_nodes.items():
            if conn_node is node:
                return name
        return None

    def select_connection(self, name: str) -> None:
        node = self._conn_nodes.get(name)
        if node is not None:
            self._tree_lines  # noqa: B018  (as in select_pool)
            self.move_cursor(node)

    def select_pool(self, name: str) -> None:
        node = self._pool_nodes.get(name)
        if node is not None:
            # move_cursor reads node.line, which is -1 until the tree lines are rebuilt
            # after nodes were added: build them now, or the cursor lands on line 0.
            self._tree_lines  # noqa: B018  (a property that rebuilds the lines)
            self.move_cursor(node)

    @property
    def pool_names(self) -> list[str]:
        return list(self._pool_nodes)

    def _target_line(self, action: str) -> int | None:
        """The line the cursor would go to (as Textual's Tree moves it: a node that is
        not there is line 0); None: `action` does not move the cursor."""
        line, last, node = self.cursor_line, self.last_line, self.cursor_node
        page = self.scrollable_content_region.height - 1
        target: TreeNode[str] | None = None
        if action in ("cursor_up", "cursor_down", "page_up", "page_down"):
            if line < 0:
                return 0 if action in ("cursor_down", "page_down") else last
            step = page if action.startswith("page") else 1
            return line + step * (1 if action.endswith("down") else -1)
        if action in ("scroll_home", "scroll_end"):
            return 0 if action == "scroll_home" else last
        if node is None:
            return None
        if action == "cursor_parent":
            target = node.parent
        elif action == "cursor_parent_next_sibling":
            target = node.parent.next_sibling if node.parent is not None else node
        elif action == "cursor_previous_sibling":
            target = node.previous_sibling or node.parent
        elif action == "cursor_next_sibling":
            target = node.next_sibling or (node.parent.next_sibling
                                           if node.parent is not None else node)
        else:
            return None
        return target.line if target is not None and target.line >= 0 else 0

    def disabled_reason(self, action: str) -> str | None:
        """Why a key of the pool list would do nothing now (the notice, and F1)."""
        if not self._pool_nodes and not self._conn_nodes:
            return "no pools: n defines one"
        node = self.cursor_node
        if action in ("toggle_node", "toggle_expand_all") and node is not None and (
                not node.allow_expand and not (action == "toggle_expand_all" and any(
                    sibling.allow_expand for sibling in node.siblings))):
            return "a pool has nothing to fold: Space folds a pool type"
        if action == "select_cursor" and node is not None and node.data is not None:
            return f"{node.data} is shown already: Tab moves to its volumes"
        target = self._target_line(action)
        if target is None:
            return scroll_edge(self, action)
        target = max(0, min(target, self.last_line))
        if target == self.cursor_line:
            return ("already at the top of the pool list" if target == 0
                    else "already at the bottom of the pool list")
        return None
