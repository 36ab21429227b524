"""The Textual front end (first cut): pools on the left, the selected pool's volumes on
the right, refreshed live from the controller's monitor. All I/O runs in worker
threads; the UI thread only receives results and events.
"""

from __future__ import annotations

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static, Tree

from backends.controller import StorageController
from backends.errors import PoolkeeperError
from backends.events import Event, PoolChanged, VolumesChanged
from backends.model import PoolStatus, VolumeInfo
from backends.units import human


class PoolkeeperApp(App[None]):
    TITLE = "poolkeeper"
    CSS = """
    #pools { width: 34; border-right: solid $primary; }
    #header { height: auto; padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh", "Refresh"),
        Binding("s", "start_stop", "Start/stop"),
    ]

    def __init__(self, controller: StorageController) -> None:
        super().__init__()
        self.ctl = controller
        self.selected: str | None = None
        self._unsubscribe = controller.subscribe(self._on_controller_event)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield Tree("pools", id="pools")
            with Vertical():
                yield Static("", id="header")
                yield DataTable(id="volumes", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#volumes", DataTable)
        for label in ("Name", "Format", "Capacity", "Allocation", "% alloc", "Backing", "Path"):
            table.add_column(label, key=label.lower())
        self.query_one("#pools", Tree).show_root = False
        self.load_pools()
        self.ctl.start_monitor()

    def on_unmount(self) -> None:
        self._unsubscribe()

    # -- controller events arrive on worker threads ------------------------------------
    def _on_controller_event(self, event: Event) -> None:
        if isinstance(event, PoolChanged | VolumesChanged):
            self.call_from_thread(self._changed, event.pool)

    def _changed(self, pool: str) -> None:
        self.load_pools()
        if pool == self.selected:
            self.load_volumes(pool)

    # -- loading -----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="pools")
    def load_pools(self) -> None:
        pools = self.ctl.list_pools()
        self.call_from_thread(self._show_pools, pools)

    def _show_pools(self, pools: list[PoolStatus]) -> None:
        tree = self.query_one("#pools", Tree)
        tree.clear()
        by_type: dict[str, list[PoolStatus]] = {}
        for p in pools:
            by_type.setdefault(p.type, []).append(p)
        for pool_type, members in sorted(by_type.items()):
            branch = tree.root.add(pool_type, expand=True)
            for p in members:
                used = f"{100 * p.allocation / p.capacity:.0f}%" if p.capacity else "-"
                branch.add_leaf(f"{p.name}  {p.state}  {used}", data=p.name)
        if not pools:
            self.query_one("#header", Static).update("no pools: define one with the CLI "
                                                     "(poolkeeper pool-define-as ...)")
            return
        if self.selected is None:
            first = next((p for p in pools if p.name == "default"), pools[0])
            self.select(first.name)

    def select(self, name: str) -> None:
        self.selected = name
        self.load_volumes(name)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        if event.node.data:
            self.select(event.node.data)

    @work(thread=True, exclusive=True, group="volumes")
    def load_volumes(self, name: str) -> None:
        try:
            info = self.ctl.pool_info(name)
            volumes = self.ctl.list_volumes(name) if info.active else []
        except PoolkeeperError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")
            return
        self.call_from_thread(self._show_volumes, info, volumes)

    def _show_volumes(self, info: PoolStatus, volumes: list[VolumeInfo]) -> None:
        header = self.query_one("#header", Static)
        if info.active:
            header.update(
                f"[b]{info.name}[/b]  {info.type}  {info.state}  autostart: "
                f"{'yes' if info.autostart else 'no'}\ncapacity {human(info.capacity)}  "
                f"allocation {human(info.allocation)}  available {human(info.available)}  "
                f"target {info.target}"
            )
        else:
            header.update(f"[b]{info.name}[/b]  {info.type}  {info.state}: press s to start it")
        table = self.query_one("#volumes", DataTable)
        table.clear()
        for v in sorted(volumes, key=lambda v: v.name):
            table.add_row(
                v.name, v.format, human(v.capacity), human(v.allocation),
                f"{v.percent_allocated:.0f}%", v.backing.path if v.backing else "", v.path,
                key=v.name,
            )

    # -- actions -----------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.load_pools()
        if self.selected:
            self.load_volumes(self.selected)

    @work(thread=True, group="actions")
    def action_start_stop(self) -> None:
        name = self.selected
        if not name:
            return
        try:
            if self.ctl.pool_info(name).active:
                self.ctl.stop_pool(name)
            else:
                self.ctl.start_pool(name)
        except PoolkeeperError as exc:
            self.call_from_thread(self.notify, str(exc), severity="error")


def run_app(root: str | None) -> int:
    controller = StorageController(root)
    try:
        PoolkeeperApp(controller).run()
    finally:
        controller.close()
    return 0
