"""The main screen: pool tree | pool header + volume table, jobs and log panels.

MainScreen is the keys: its bindings, and their actions from one mixin per subject
(pool_actions, volume_actions, xml_actions), on MainScreenBase (tui.screens.main_base:
state, layout, loading in workers, availability, run_verb, the screens a worker opens).
"""

from __future__ import annotations

from textual.binding import Binding

from .main_base import MainScreenBase
from .pool_actions import PoolActions
from .volume_actions import VolumeActions
from .xml_actions import XmlActions

__all__ = ["MainScreen", "MainScreenBase"]


class MainScreen(PoolActions, VolumeActions, XmlActions, MainScreenBase):
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
        Binding("l", "toggle_log", "Log"),
        Binding("L", "toggle_routine_log", "Log: routine reads", show=False),
    ]
