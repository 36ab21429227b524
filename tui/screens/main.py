"""The main screen: pool tree | pool header + volume table, jobs and log panels.

MainScreen is the keys: its bindings, and their actions from one mixin per subject
(pool_actions, volume_actions, xml_actions), on MainScreenBase (tui.screens.main_base:
state, layout, loading in workers, availability, run_verb, the screens a worker opens).

A key that cannot act now says why (on_key, tui.keys.unavailable_reason): a greyed key
used to do nothing at all. `C` cancels a job, here and in the jobs panel alike (`c` is
create everywhere).
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding

from ..keys import say_why, screen_keys, unavailable_reason
from ..widgets.jobs_panel import JobsPanel
from ..widgets.volume_table import VolumeTable
from .connection_actions import ConnectionActions
from .help import HelpScreen
from .main_base import MainScreenBase
from .pool_actions import PoolActions
from .volume_actions import VolumeActions
from .xml_actions import XmlActions

__all__ = ["MainScreen", "MainScreenBase"]


class MainScreen(ConnectionActions, PoolActions, VolumeActions, XmlActions, MainScreenBase):
    """The main screen (module docstring): the keys, and their actions from the mixins."""

    BINDINGS = [
        Binding("f1", "help", "Help"),  # first: the two keys the footer shows at any width
        Binding("q", "app.quit", "Quit"),
        Binding("n", "define_pool", "New pool"),
        Binding("s", "start_stop", "Start/Stop"),
        Binding("b", "build_pool", "Build", show=False),
        Binding("a", "toggle_autostart", "Autostart", show=False),
        Binding("X", "delete_pool", "Delete pool", show=False),
        Binding("r", "refresh", "Refresh"),
        Binding("c", "create_volume", "Create"),
        Binding("k", "clone_volume", "Clone", show=False),
        Binding("z", "resize_volume", "Resize", show=False),
        Binding("w", "wipe_volume", "Wipe", show=False),
        Binding("u", "upload", "Upload", show=False),
        Binding("d", "download", "Download", show=False),
        Binding("delete", "delete_volumes", "Delete", show=False),
        Binding("x", "show_xml", "XML"),
        Binding("e", "edit_xml", "Edit XML", show=False),
        Binding("y", "copy_path", "Copy path", show=False),
        Binding("S", "set_secret", "CHAP secret", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("j", "toggle_jobs", "Jobs"),
        Binding("C", "cancel_job", "Cancel job"),
        Binding("l", "toggle_log", "Log"),
        Binding("L", "toggle_routine_log", "Log: routine reads", show=False),
        Binding("H", "add_connection", "Add a host (libvirt)", show=False),
    ]

    _OWN_ACTIONS = frozenset(b.action for b in BINDINGS)

    def disabled_reason(self, action: str) -> str | None:
        if action not in self._OWN_ACTIONS:
            return None  # not one of these keys (Textual's, a widget's): not ours to say
        if action == "cancel_job":
            return None if self.query_one("#jobs", JobsPanel).running else "no job is running"
        return super().disabled_reason(action)

    def on_key(self, event: events.Key) -> None:
        """A key that reached the screen with every binding of it unavailable: say why,
        rather than nothing (the bindings would skip it silently)."""
        reason = unavailable_reason(self, event.key)
        if reason:
            event.stop()
            event.prevent_default()
            say_why(self.app, reason)  # once while on screen: a held key repeats

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(screen_keys(self)))

    def action_cancel_job(self) -> None:
        """Cancel the job highlighted in the jobs panel; with the panel closed or another
        widget focused or nothing highlighted, first show the panel on the first running job
        (C again cancels it: nothing is cancelled unseen)."""
        panel = self.query_one("#jobs", JobsPanel)
        if not panel.running:
            self.app.notify("no job is running", severity="warning", markup=False)
            return
        if panel.display and panel.has_focus and panel.highlighted is not None:
            panel.action_cancel_job()
            return
        if not panel.display:
            self.action_toggle_jobs()
        else:
            panel.focus()
        panel.highlight_first_running()
        self.app.notify("C again cancels the highlighted job", markup=False)

    def on_volume_table_activated(self, event: VolumeTable.Activated) -> None:
        """Enter on a volume: its details (the XML view: path, sizes, format, backing
        store, permissions), as x shows them."""
        if self.selected is not None and self._prepare("xml"):
            self._load_xml(self.selected, event.volume.name)

    def on_job_event(self) -> None:
        # "C Cancel job" is greyed while no job runs (after the panel has the job)
        self.call_later(self._refresh_bindings_if_changed)
