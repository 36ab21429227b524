"""The pool tree: pools grouped by type, each with its state as a word and a usage bar.

Labels are updated in place when sizes or states change; the tree is only rebuilt when
pools appear or disappear, so the cursor never jumps under the user. A key that would not
move the cursor or fold anything says why (disabled_reason, read by tui.keys): at the top,
at the bottom, on a pool that has nothing to fold.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from backends.model import PoolStatus

from ..keys import scroll_edge
from ..shown import shown
from .usage import bar_cells, usage_bar

# Tree guides without box drawing, for --ascii and TERM=linux: "|-- ", "`-- ", "|   ".
ASCII_LINES: dict[str, tuple[str, str, str, str]] = {
    style: ("  ", "| ", "`-", "|-") for style in ("default", "bold", "double")
}


def pool_label(pool: PoolStatus, *, ascii: bool = False, width: int = 40) -> Text:
    """'name  state  bar pct%' fitted to `width` cells (the name gives way first)."""
    bar = 8 if width >= 40 else 4 if width >= 32 else 0  # narrow: the % alone
    state_width = 12 if pool.state == "inaccessible" else 8
    name_width = max(6, width - (state_width + 1) - bar_cells(bar, ascii=ascii) - 1)
    name = shown(pool.name, ascii)
    if len(name) > name_width:
        name = name[: name_width - 1] + "~"
    label = Text(no_wrap=True, overflow="ellipsis")
    label.append(f"{name:<{name_width}} ")
    label.append(f"{pool.state:<{state_width}} ", style="bold" if pool.active else "")
    label.append_text(usage_bar(pool.allocation, pool.capacity, bar, ascii=ascii))
    if not pool.active:
        label.stylize("dim")
    return label


class PoolTree(Tree[str]):
    """Node data is the pool name (None for the type groups)."""

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
        self._shown: set[tuple[str, str]] = set()  # (type, name) of the pools in the tree
        self._pools: list[PoolStatus] = []

    def update_pools(self, pools: list[PoolStatus]) -> None:
        wanted = {(p.type, p.name) for p in pools}
        if wanted != self._shown:
            self._rebuild(pools)
            return
        before = {p.name: p for p in self._pools}
        self._pools = pools
        for pool in pools:
            if before.get(pool.name) != pool:  # an unchanged label is not set again: each
                self._pool_nodes[pool.name].set_label(self._label(pool))  # set redraws

    def _label(self, pool: PoolStatus) -> Text:
        # A pool line is its guide (guide_depth cells) then the label; keep 2 cells spare
        # for a vertical scrollbar when there are more pools than lines.
        width = self.size.width - self.guide_depth - 2
        return pool_label(pool, ascii=self.ascii, width=max(20, width))

    def on_resize(self) -> None:
        for pool in self._pools:
            node = self._pool_nodes.get(pool.name)
            if node is not None:
                node.set_label(self._label(pool))

    def _rebuild(self, pools: list[PoolStatus]) -> None:
        selected = self.cursor_node.data if self.cursor_node else None
        self._pools = pools
        self.clear()
        self._pool_nodes.clear()
        self._shown = {(p.type, p.name) for p in pools}
        groups: dict[str, TreeNode[str]] = {}
        for pool in sorted(pools, key=lambda p: (p.type, p.name.lower())):
            group = groups.get(pool.type)
            if group is None:
                group = self.root.add(pool.type, data=None, expand=True)
                groups[pool.type] = group
            self._pool_nodes[pool.name] = group.add_leaf(self._label(pool), data=pool.name)
        if selected in self._pool_nodes:
            self.select_pool(selected)

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
        if not self._pool_nodes:
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
