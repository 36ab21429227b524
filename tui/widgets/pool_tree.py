"""The pool tree: pools grouped by type, each with its state as a word and a usage bar.

Labels are updated in place when sizes or states change; the tree is only rebuilt when
pools appear or disappear, so the cursor never jumps under the user.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from backends.model import PoolStatus

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
