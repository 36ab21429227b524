"""The modal dialogs, driven with key presses through Pilot: the exact result handed to the
push_screen callback, the inline messages for bad input, cancel paths, typed-name gates,
per-type pool forms, live XML preview, discovery and path completion; plus snapshots."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, Input, OptionList, Select, SelectionList, Static

from backends.drivers import features, pool_types
from backends.errors import PoolkeeperError, ToolMissing
from backends.model import (
    AuthSecret,
    BackingStore,
    PoolDef,
    PoolSource,
    PoolStatus,
    PoolTarget,
    SourceAuth,
    SourceDevice,
    SourceHost,
    VolumeDef,
    VolumeInfo,
    VolumeTarget,
)
from tests.screentext import screen_text
from tui.dialogs import (
    BuildChoice,
    BuildPoolDialog,
    CloneRequest,
    CloneVolumeDialog,
    ConfirmDialog,
    CreateVolumeDialog,
    DefinePoolDialog,
    DeletePoolChoice,
    DeletePoolDialog,
    DeleteVolumesDialog,
    DeleteVolumesRequest,
    DownloadDialog,
    ErrorDialog,
    ResizeRequest,
    ResizeVolumeDialog,
    TransferRequest,
    UploadDialog,
    WipeRequest,
    WipeVolumeDialog,
)
from tui.dialogs.sources import parse_sources
from tui.dialogs.volume_ops import clone_name

TYPES = {t: features(t) for t in pool_types()}

GiB = 1 << 30
FILE_FORMATS = ["raw", "qcow2", "qcow", "qed", "vmdk", "vpc", "vdi"]


# ------------------------------------------------------------------------------ helpers


class Host(App[None]):
    """An empty app that opens one dialog and records what it returns."""

    def __init__(self, dialog: Screen[Any]) -> None:
        super().__init__()
        self.dialog = dialog
        self.results: list[Any] = []

    def on_mount(self) -> None:
        self.push_screen(self.dialog, self.results.append)


@asynccontextmanager
async def opened(dialog: Screen[Any], size: tuple[int, int] = (80, 24)
                 ) -> AsyncIterator[tuple[Host, Pilot[None]]]:
    app = Host(dialog)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        yield app, pilot


def flat(app: App[Any]) -> str:
    """Screen text with borders and line breaks folded away, for phrase matching."""
    text = screen_text(app)
    for ch in "│|╭╮╰╯+":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def seen(app: App[Any], phrase: str) -> bool:
    """Is `phrase` on screen, wherever the dialog wrapped it (even inside a long path)?"""
    return "".join(phrase.split()) in "".join(flat(app).split())


async def type_in(pilot: Pilot[None], selector: str, text: str) -> None:
    """Focus a field, clear it and type `text` (a long text: set all but its last three
    characters, then press those keys, to keep the tests fast)."""
    widget = pilot.app.screen.query_one(selector, Input)
    widget.focus()
    await pilot.pause()  # let the focus (which selects all the text) happen first
    head, tail = (text[:-3], text[-3:]) if len(text) > 12 else ("", text)
    widget.value = head
    widget.cursor_position = len(head)
    await pilot.press(*tail)
    await pilot.pause()


async def settle(pilot: Pilot[None], app: App[Any]) -> None:
    for _ in range(3):
        await app.workers.wait_for_complete()
        await pilot.pause(0.05)


def shown(widget: Any) -> bool:
    node = widget
    while node is not None and not isinstance(node, Screen):
        if not node.display:
            return False
        node = node.parent
    return True


def shown_inputs(app: App[Any]) -> set[str]:
    return {w.id for w in app.screen.query(Input) if w.id and shown(w)}


def submit_disabled(app: App[Any]) -> bool:
    return app.screen.query_one("#submit", Button).disabled


def pool(name: str = "images", type: str = "dir", available: int | None = int(3.1 * GiB),
         state: str = "running") -> PoolStatus:
    return PoolStatus(name=name, type=type, uuid="0" * 32, state=state, autostart=True,
                      persistent=True, capacity=100 * GiB, allocation=90 * GiB,
                      available=available, target=f"/srv/{name}", source="/dev/sdb",
                      features=TYPES[type])


def vol(name: str = "disk.qcow2", fmt: str = "qcow2", capacity: int = 20 * GiB,
        allocation: int = 2 * GiB) -> VolumeInfo:
    return VolumeInfo(name=name, key=f"/srv/images/{name}", path=f"/srv/images/{name}",
                      format=fmt, capacity=capacity, allocation=allocation)


def create_dialog(**kw: Any) -> CreateVolumeDialog:
    return CreateVolumeDialog(pool(), FILE_FORMATS, "raw",
                              [vol("base.qcow2"), vol("old.img", "raw")],
                              existing={"disk1"}, **kw)


NFS_SOURCES = """<sources>
  <source>
    <host name='nas.example'/>
    <dir path='/export/images'/>
    <format type='nfs'/>
  </source>
  <source>
    <host name='nas.example'/>
    <dir path='/export/iso'/>
    <format type='nfs'/>
  </source>
</sources>
"""
LOGICAL_SOURCES = """<sources>
  <source>
    <device path='/dev/sdb1'/>
    <device path='/dev/sdc1'/>
    <name>vg_data</name>
    <format type='lvm2'/>
  </source>
</sources>
"""
ISCSI_SOURCES = """<sources>
  <source>
    <host name='192.0.2.10' port='3260'/>
    <device path='iqn.2013-06.com.example:target0'/>
  </source>
</sources>
"""


class FakeDiscover:
    """Stands in for controller.find_pool_sources; records calls and their thread."""

    def __init__(self, answer: str | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str | None]] = []
        self.threads: list[threading.Thread] = []

    def __call__(self, pool_type: str, host: str | None) -> str:
        self.calls.append((pool_type, host))
        self.threads.append(threading.current_thread())
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def no_discover(pool_type: str, host: str | None) -> str:
    raise AssertionError("discover must not be called")


async def set_type(pilot: Pilot[None], pool_type: str) -> None:
    pilot.app.screen.query_one("#type", Select).value = pool_type
    await pilot.pause()


# ------------------------------------------------------------------------ confirm / error


async def test_confirm_enter_confirms_and_both_cancels_give_none() -> None:
    async with opened(ConfirmDialog("Stop pool", "Stop pool 'images'?",
                                    confirm_label="Stop")) as (app, pilot):
        assert "Stop pool 'images'?" in screen_text(app)
        await pilot.press("enter")
        assert app.results == [True]
    async with opened(ConfirmDialog("Stop pool", "Stop?")) as (app, pilot):
        await pilot.press("escape")
        assert app.results == [None]
    async with opened(ConfirmDialog("Stop pool", "Stop?")) as (app, pilot):
        await pilot.click("#cancel")
        assert app.results == [None]


async def test_error_dialog_retry_discard_close() -> None:
    async with opened(ErrorDialog("Invalid XML", "<name>: bad", retry_label="Re-edit")
                      ) as (app, pilot):
        assert "<name>: bad" in screen_text(app)
        await pilot.press("enter")
        assert app.results == [True]
    async with opened(ErrorDialog("Invalid XML", "bad", retry_label="Re-edit")) as (app, pilot):
        await pilot.click("#cancel")  # "Discard"
        assert app.results == [False]
    async with opened(ErrorDialog("Failed", "bad")) as (app, pilot):
        assert not shown(app.screen.query_one("#cancel"))
        await pilot.click("#submit")  # "Close"
        assert app.results == [False]
    async with opened(ErrorDialog("Failed", "bad")) as (app, pilot):
        await pilot.press("escape")
        assert app.results == [None]


# --------------------------------------------------------------------------- create volume


async def test_create_volume_name_with_slash_is_refused_inline() -> None:
    async with opened(create_dialog()) as (app, pilot):
        await type_in(pilot, "#name", "a/b")
        await type_in(pilot, "#capacity", "1G")
        assert seen(app, "name 'a/b' must not contain '/'")
        await pilot.press("ctrl+s")
        assert app.results == []
        # Nothing is lost: the fields keep their text, the name field has the focus.
        assert app.screen.query_one("#name", Input).value == "a/b"
        assert app.screen.query_one("#capacity", Input).value == "1G"
        assert app.screen.focused is app.screen.query_one("#name")
        await pilot.click("#submit")
        assert app.results == []


async def test_create_volume_bad_size_and_existing_name() -> None:
    async with opened(create_dialog()) as (app, pilot):
        await type_in(pilot, "#name", "disk1")
        await type_in(pilot, "#capacity", "12 potatoes")
        assert seen(app, "'12 potatoes' is not a size: use e.g. 10G or 512MiB")
        assert seen(app, "a volume named 'disk1' already exists in pool 'images'")
        await pilot.press("ctrl+s")
        assert app.results == []


async def test_create_volume_errors_wait_for_edit_or_submit() -> None:
    async with opened(create_dialog()) as (app, pilot):
        assert "required" not in flat(app) and "give the capacity" not in flat(app)
        await pilot.click("#submit")
        assert app.results == []
        assert seen(app, "give the capacity, e.g. 10G or 512MiB")
        assert seen(app, "name must not be empty")


async def test_create_volume_larger_than_pool_is_refused_unless_sparse() -> None:
    async with opened(create_dialog()) as (app, pilot):
        assert seen(app, "available: 3.10 GiB")
        await type_in(pilot, "#name", "big.img")
        await type_in(pilot, "#capacity", "20G")
        assert seen(app, "20.00 GiB is more than the 3.10 GiB available; make it sparse or "
                         "smaller")
        await pilot.press("ctrl+s")
        assert app.results == []
        app.screen.query_one("#sparse").focus()
        await pilot.press("space")
        assert not shown(app.screen.query_one("#allocation"))
        assert seen(app, "the pool is overcommitted")
        await pilot.press("ctrl+s")
        assert app.results == [VolumeDef(name="big.img", capacity=20 * GiB, allocation=0,
                                         target=VolumeTarget(format="raw"))]


async def test_create_volume_allocation_field() -> None:
    async with opened(create_dialog()) as (app, pilot):
        await type_in(pilot, "#name", "part.img")
        await type_in(pilot, "#capacity", "2G")
        await type_in(pilot, "#allocation", "3G")
        assert seen(app, "the allocation cannot be more than the capacity (2.00 GiB)")
        await type_in(pilot, "#allocation", "512MiB")
        await pilot.press("enter")  # Enter in the last field submits
        assert app.results == [VolumeDef(name="part.img", capacity=2 * GiB,
                                         allocation=512 << 20,
                                         target=VolumeTarget(format="raw"))]


async def test_create_volume_fully_allocated_by_default() -> None:
    async with opened(create_dialog()) as (app, pilot):
        await type_in(pilot, "#name", "d.img")
        await type_in(pilot, "#capacity", "1G")
        await pilot.click("#submit")
        assert app.results == [VolumeDef(name="d.img", capacity=GiB, allocation=GiB,
                                         target=VolumeTarget(format="raw"))]


async def test_create_volume_qcow2_on_backing_takes_its_size() -> None:
    async with opened(create_dialog()) as (app, pilot):
        assert not shown(app.screen.query_one("#backing"))
        app.screen.query_one("#format", Select).value = "qcow2"
        await pilot.pause()
        assert shown(app.screen.query_one("#backing"))
        assert not shown(app.screen.query_one("#sparse"))  # qcow2 is always sparse
        assert not shown(app.screen.query_one("#allocation"))
        app.screen.query_one("#backing", Select).value = 0
        await type_in(pilot, "#name", "overlay.qcow2")
        assert seen(app, "empty: the backing volume's 20.00 GiB")
        await pilot.press("ctrl+s")
        assert app.results == [VolumeDef(
            name="overlay.qcow2", capacity=None, allocation=None,
            target=VolumeTarget(format="qcow2"),
            backing=BackingStore(path="/srv/images/base.qcow2", format="qcow2"))]


async def test_create_volume_cancel_halfway_with_esc_and_button() -> None:
    async with opened(create_dialog()) as (app, pilot):
        await type_in(pilot, "#name", "half")
        await pilot.press("escape")
        assert app.results == [None]
    async with opened(create_dialog()) as (app, pilot):
        await type_in(pilot, "#name", "half")
        await type_in(pilot, "#capacity", "3G")
        await pilot.click("#cancel")
        assert app.results == [None]


async def test_create_volume_in_disk_pool_has_no_allocation() -> None:
    formats = ["none", "linux", "fat16", "fat32", "linux-swap", "linux-lvm", "linux-raid",
               "extended"]
    dialog = CreateVolumeDialog(pool("sdb", "disk", available=GiB), formats, "none", [])
    async with opened(dialog) as (app, pilot):
        assert not shown(app.screen.query_one("#sparse"))
        await type_in(pilot, "#name", "sdb1")
        await type_in(pilot, "#capacity", "2G")
        assert seen(app, "2.00 GiB is more than the 1.00 GiB available; make it smaller")
        await type_in(pilot, "#capacity", "512M")
        await pilot.press("ctrl+s")
        assert app.results == [VolumeDef(name="sdb1", capacity=512 << 20, allocation=None,
                                         target=VolumeTarget(format="none"))]


# ------------------------------------------------------------------------------- define pool


@pytest.mark.parametrize("pool_type", list(TYPES))
async def test_define_pool_shows_only_the_fields_of_the_type(pool_type: str) -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, pool_type)
        assert shown_inputs(app) == set(TYPES[pool_type].form_fields) - {"format"}
        assert shown(app.screen.query_one("#format")) == ("format" in TYPES[pool_type].form_fields)
        assert shown(app.screen.query_one("#discover")) == (pool_type != "dir")


async def test_define_pool_live_preview_follows_typing() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES)) as (app, pilot):
        preview = app.screen.query_one("#preview", Static)
        assert preview.has_class("error")
        assert "Name: the pool name is required" in str(preview.render())
        await type_in(pilot, "#name", "pool1")
        assert "Target path: the target path is required" in str(preview.render())
        await type_in(pilot, "#target", "/srv/pool1/")
        assert not preview.has_class("error")
        assert str(preview.render()) == (
            "<pool type='dir'>\n  <name>pool1</name>\n  <source>\n  </source>\n"
            "  <target>\n    <path>/srv/pool1</path>\n  </target>\n</pool>")
        await pilot.press(*"x")
        assert "<path>/srv/pool1/x</path>" in str(preview.render())
        await type_in(pilot, "#name", "po/ol")
        assert preview.has_class("error")
        assert "must not contain '/'" in str(preview.render())
        assert seen(app, "name 'po/ol' must not contain '/'")


async def test_define_dir_pool_result() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES)) as (app, pilot):
        await type_in(pilot, "#name", "pool1")
        await type_in(pilot, "#target", "/srv//pool1")
        await pilot.press("enter")
        assert app.results == [PoolDef(type="dir", name="pool1",
                                       target=PoolTarget(path="/srv/pool1"))]


async def test_define_pool_refuses_submit_while_invalid() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES)) as (app, pilot):
        await set_type(pilot, "netfs")
        await type_in(pilot, "#name", "nfs1")
        await pilot.press("ctrl+s")
        assert app.results == []
        assert seen(app, "the target path is required")
        assert seen(app, "the server's host name or address is required")
        await type_in(pilot, "#port", "99999")
        assert seen(app, "port '99999' must be a number from 1 to 65535")


async def test_define_netfs_pool_with_discovery() -> None:
    fake = FakeDiscover(NFS_SOURCES)
    async with opened(DefinePoolDialog(fake, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, "netfs")
        await type_in(pilot, "#name", "nfs1")
        await type_in(pilot, "#target", "/mnt/nfs1")
        await pilot.click("#discover")
        assert seen(app, "enter the host to discover what it offers")
        assert fake.calls == []
        await type_in(pilot, "#host", "nas.example")
        await pilot.click("#discover")
        await settle(pilot, app)
        assert fake.calls == [("netfs", "nas.example")]
        assert fake.threads[0] is not threading.main_thread()
        found = app.screen.query_one("#found", OptionList)
        assert shown(found) and found.option_count == 2
        assert seen(app, "found 2 sources: choose one")
        assert seen(app, "nas.example:/export/iso (nfs)")
        await pilot.press("down", "enter")  # the second one
        assert app.screen.query_one("#srcdir", Input).value == "/export/iso"
        assert app.screen.query_one("#format", Select).value == "nfs"
        preview = str(app.screen.query_one("#preview", Static).render())
        assert "<dir path='/export/iso'/>" in preview
        await pilot.press("ctrl+s")
        assert app.results == [PoolDef(
            type="netfs", name="nfs1",
            source=PoolSource(hosts=[SourceHost("nas.example")], dir="/export/iso",
                              format="nfs"),
            target=PoolTarget(path="/mnt/nfs1"))]


async def test_define_pool_discovery_error_is_shown_inline() -> None:
    fake = FakeDiscover(ToolMissing("showmount", "nfs-common"))
    async with opened(DefinePoolDialog(fake, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, "netfs")
        await type_in(pilot, "#host", "nas.example")
        await pilot.click("#discover")
        await settle(pilot, app)
        status = app.screen.query_one("#discover-status", Static)
        assert status.has_class("error")
        assert seen(app, "discovery failed: the program 'showmount' is not installed; "
                         "install it with: apt-get install nfs-common")
        assert not shown(app.screen.query_one("#found"))
        assert app.is_running  # the worker's exception did not take the app down


async def test_define_pool_discovery_shows_progress_while_running() -> None:
    gate = threading.Event()

    def slow(pool_type: str, host: str | None) -> str:
        gate.wait(5)
        return "<sources/>"

    async with opened(DefinePoolDialog(slow, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, "logical")
        await pilot.click("#discover")
        await pilot.pause()
        assert seen(app, "discovering\u2026")
        assert app.screen.query_one("#discover", Button).disabled
        gate.set()
        await settle(pilot, app)
        assert seen(app, "no sources found")
        assert not app.screen.query_one("#discover", Button).disabled


async def test_define_logical_pool_from_discovery() -> None:
    fake = FakeDiscover(LOGICAL_SOURCES)
    async with opened(DefinePoolDialog(fake, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, "logical")
        await pilot.click("#discover")
        await settle(pilot, app)
        assert fake.calls == [("logical", None)]
        assert seen(app, "vg_data on /dev/sdb1, /dev/sdc1 (lvm2)")
        await pilot.press("enter")
        assert app.screen.query_one("#device", Input).value == "/dev/sdb1, /dev/sdc1"
        assert app.screen.query_one("#name", Input).value == "vg_data"
        await pilot.press("ctrl+s")
        assert app.results == [PoolDef(
            type="logical", name="vg_data",
            source=PoolSource(devices=[SourceDevice("/dev/sdb1"), SourceDevice("/dev/sdc1")],
                              name="vg_data", format="lvm2"),
            target=PoolTarget(path="/dev/vg_data"))]


async def test_define_iscsi_pool_with_chap() -> None:
    fake = FakeDiscover(ISCSI_SOURCES)
    async with opened(DefinePoolDialog(fake, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, "iscsi")
        assert app.screen.query_one("#target", Input).value == "/dev/disk/by-path"
        await type_in(pilot, "#name", "san")
        await type_in(pilot, "#host", "192.0.2.10")
        await pilot.click("#discover")
        await settle(pilot, app)
        await pilot.press("enter")
        assert app.screen.query_one("#target_iqn", Input).value == \
            "iqn.2013-06.com.example:target0"
        assert app.screen.query_one("#port", Input).value == "3260"
        await type_in(pilot, "#chap_user", "admin")
        await pilot.press("ctrl+s")
        assert app.results == []
        assert seen(app, "give the secret's usage name too (or clear the user)")
        await type_in(pilot, "#chap_secret", "san-secret")
        await pilot.press("enter")
        assert app.results == [PoolDef(
            type="iscsi", name="san",
            source=PoolSource(hosts=[SourceHost("192.0.2.10", 3260)],
                              devices=[SourceDevice("iqn.2013-06.com.example:target0")],
                              auth=SourceAuth("chap", "admin", AuthSecret(usage="san-secret"))),
            target=PoolTarget(path="/dev/disk/by-path"))]


async def test_define_iscsi_direct_needs_initiator() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, "iscsi-direct")
        await type_in(pilot, "#name", "direct")
        await type_in(pilot, "#host", "192.0.2.10")
        await type_in(pilot, "#target_iqn", "iqn.2013-06.com.example:t0")
        await pilot.press("ctrl+s")
        assert app.results == []
        assert seen(app, "the initiator IQN is required for iscsi-direct")
        await type_in(pilot, "#initiator", "iqn.2013-06.com.example:host1")
        await pilot.press("ctrl+s")
        assert app.results == [PoolDef(
            type="iscsi-direct", name="direct",
            source=PoolSource(hosts=[SourceHost("192.0.2.10")],
                              devices=[SourceDevice("iqn.2013-06.com.example:t0")],
                              initiator_iqn="iqn.2013-06.com.example:host1"))]


async def test_define_fs_pool_takes_one_device_and_a_format() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, "fs")
        await type_in(pilot, "#name", "fs1")
        await type_in(pilot, "#target", "/mnt/fs1")
        await type_in(pilot, "#device", "/dev/sdb, /dev/sdc")
        assert seen(app, "an fs pool takes one device")
        await type_in(pilot, "#device", "/dev/sdb")
        app.screen.query_one("#format", Select).value = "xfs"
        await pilot.pause()
        await pilot.press("ctrl+s")
        assert app.results == [PoolDef(
            type="fs", name="fs1",
            source=PoolSource(devices=[SourceDevice("/dev/sdb")], format="xfs"),
            target=PoolTarget(path="/mnt/fs1"))]


async def test_define_pool_cancel() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES)) as (app, pilot):
        await type_in(pilot, "#name", "half")
        await pilot.press("escape")
        assert app.results == [None]
    async with opened(DefinePoolDialog(no_discover, types=TYPES)) as (app, pilot):
        await pilot.click("#cancel")
        assert app.results == [None]


DEVICES = [
    ("/dev/sdb", 8 * GiB, "empty"),
    ("/dev/sdc", 16 * GiB, "an ext4 filesystem (label 'data')"),
    ("/dev/sda1", 100 * GiB, "mounted at /; an ext4 filesystem"),
]


class FakeDevices:
    """Stands in for controller.block_devices; records the threads it ran in."""

    def __init__(self, answer: list[tuple[str, int, str]] | Exception = DEVICES) -> None:
        self.answer = answer
        self.threads: list[threading.Thread] = []

    def __call__(self) -> list[tuple[str, int, str]]:
        self.threads.append(threading.current_thread())
        if isinstance(self.answer, Exception):
            raise self.answer
        return list(self.answer)


async def pick_devices(pilot: Pilot[None], app: App[Any]) -> SelectionList[str]:
    await pilot.click("#pick")
    await settle(pilot, app)
    picker = app.screen.query_one("#device-list", SelectionList)
    assert shown(picker)
    return picker


@pytest.mark.parametrize("pool_type", list(TYPES))
async def test_define_pool_device_picker_only_for_device_pools(pool_type: str) -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES, devices=FakeDevices()),
                      size=(120, 40)) as (app, pilot):
        await set_type(pilot, pool_type)
        assert shown(app.screen.query_one("#pick")) == (pool_type in ("fs", "logical", "disk"))
    async with opened(DefinePoolDialog(no_discover, types=TYPES), size=(120, 40)) as (app, pilot):
        await set_type(pilot, pool_type)
        assert not shown(app.screen.query_one("#pick"))  # no devices callable: no picker


async def test_define_logical_pool_picks_several_devices() -> None:
    fake = FakeDevices()
    async with opened(DefinePoolDialog(no_discover, types=TYPES, devices=fake),
                      size=(120, 40)) as (app, pilot):
        await set_type(pilot, "logical")
        await type_in(pilot, "#name", "vg1")
        picker = await pick_devices(pilot, app)
        assert fake.threads and fake.threads[0] is not threading.main_thread()
        assert picker.option_count == 3
        assert seen(app, "/dev/sdb  8.00 GiB  empty")
        assert seen(app, "/dev/sdc  16.00 GiB  an ext4 filesystem (label 'data')")
        assert seen(app, "/dev/sda1  100.00 GiB  in use: mounted at /; an ext4 filesystem")
        assert picker.get_option_at_index(2).disabled  # in use: shown, not choosable
        assert app.screen.focused is picker
        await pilot.press("space", "down", "space")
        assert app.screen.query_one("#device", Input).value == "/dev/sdb, /dev/sdc"
        preview = str(app.screen.query_one("#preview", Static).render())
        assert preview.count("<device ") == 2
        assert "<device path='/dev/sdb'/>" in preview and "<device path='/dev/sdc'/>" in preview
        await pilot.press("ctrl+s")
        assert app.results == [PoolDef(
            type="logical", name="vg1",
            source=PoolSource(devices=[SourceDevice("/dev/sdb"), SourceDevice("/dev/sdc")],
                              name="vg1", format="lvm2"),  # libvirt's default, filled in
            target=PoolTarget(path="/dev/vg1"))]


async def test_define_fs_pool_picks_one_device() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES, devices=FakeDevices()),
                      size=(120, 40)) as (app, pilot):
        await set_type(pilot, "fs")
        picker = await pick_devices(pilot, app)
        device = app.screen.query_one("#device", Input)
        await pilot.press("space")
        assert device.value == "/dev/sdb"
        await pilot.press("down", "space")  # another one replaces it
        assert device.value == "/dev/sdc"
        assert picker.selected == ["/dev/sdc"]
        await pilot.press("space")
        assert device.value == "" and picker.selected == []
        await type_in(pilot, "#device", "/dev/sdb")  # the marks follow the field
        assert picker.selected == ["/dev/sdb"]
        await set_type(pilot, "netfs")
        assert not shown(picker) and picker.option_count == 0


async def test_define_pool_device_listing_error_is_shown_inline() -> None:
    fake = FakeDevices(PoolkeeperError("lsblk failed: no /sys"))
    async with opened(DefinePoolDialog(no_discover, types=TYPES, devices=fake),
                      size=(120, 40)) as (app, pilot):
        await set_type(pilot, "disk")
        await pilot.click("#pick")
        await settle(pilot, app)
        assert app.screen.query_one("#pick-status", Static).has_class("error")
        assert seen(app, "could not list the devices: lsblk failed: no /sys")
        assert not shown(app.screen.query_one("#device-list"))
        assert not app.screen.query_one("#pick", Button).disabled
        assert app.is_running


async def test_define_pool_device_picker_in_ascii_mode() -> None:
    async with opened(DefinePoolDialog(no_discover, types=TYPES, devices=FakeDevices(), ascii=True),
                      size=(120, 40)) as (app, pilot):
        await set_type(pilot, "logical")
        await pick_devices(pilot, app)
        await pilot.press("space")
        assert {ch for ch in screen_text(app) if not ch.isascii()} == set()


def test_parse_sources_is_lenient_but_hardened() -> None:
    assert parse_sources(ISCSI_SOURCES)[0].hosts == [SourceHost("192.0.2.10", 3260)]
    assert parse_sources("<sources/>") == []
    with pytest.raises(PoolkeeperError, match="DOCTYPE"):
        parse_sources('<!DOCTYPE x [<!ENTITY a "b">]><sources>&a;</sources>')
    with pytest.raises(PoolkeeperError, match="not XML"):
        parse_sources("<sources>")


# --------------------------------------------------------------------------- pool build/delete


async def test_build_pool_default_and_no_overwrite() -> None:
    async with opened(BuildPoolDialog(pool(type="fs"), None)) as (app, pilot):
        assert not shown(app.screen.query_one("#confirm"))
        await pilot.press("enter")  # the radio set has the focus: Enter presses 'default'
        await pilot.press("ctrl+s")
        assert app.results == [BuildChoice(None)]
    async with opened(BuildPoolDialog(pool(type="fs"), None)) as (app, pilot):
        await pilot.press("down", "enter", "ctrl+s")
        assert app.results == [BuildChoice(False)]


async def test_build_pool_overwrite_needs_the_name_typed() -> None:
    dialog = BuildPoolDialog(pool("data", "fs"), "an ext4 filesystem (label 'data')")
    async with opened(dialog) as (app, pilot):
        assert seen(app, "WARNING: the source holds an ext4 filesystem (label 'data')")
        await pilot.press("down", "down", "enter")
        assert seen(app, "type 'data' to confirm")
        assert submit_disabled(app)
        await pilot.press("ctrl+s")
        assert app.results == []
        assert seen(app, "type 'data' exactly to confirm")
        assert app.screen.focused is app.screen.query_one("#confirm Input")
        await pilot.press(*"dat")
        assert submit_disabled(app)
        await pilot.press("enter")
        assert app.results == []
        await pilot.press("a")
        assert not submit_disabled(app)
        await pilot.press("enter")
        assert app.results == [BuildChoice(True)]


async def test_delete_pool_undefine_only_needs_no_typing() -> None:
    async with opened(DeletePoolDialog(pool())) as (app, pilot):
        assert seen(app, "its storage (/srv/images) and volumes stay as they are")
        await pilot.press("ctrl+s")
        assert app.results == [DeletePoolChoice(False)]


async def test_delete_pool_destroy_needs_the_name() -> None:
    async with opened(DeletePoolDialog(pool("vg0", "logical"))) as (app, pilot):
        await pilot.press("down", "enter")
        assert seen(app, "Destroying the storage of this logical pool removes the volume "
                         "group")
        assert submit_disabled(app)
        await pilot.press("tab", *"vg0", "enter")
        assert app.results == [DeletePoolChoice(True)]
    async with opened(DeletePoolDialog(pool("vg0", "logical"))) as (app, pilot):
        await pilot.press("down", "enter", "escape")
        assert app.results == [None]


async def test_delete_pool_names_what_it_holds_and_forces_only_with_the_name() -> None:
    held = [f"lv{i}" for i in range(10)]
    async with opened(DeletePoolDialog(pool("vg0", "logical"), held=held)) as (app, pilot):
        assert seen(app, "Its storage still holds 10 volumes: lv0, lv1, lv2, lv3, lv4, lv5, "
                         "lv6, lv7 and 2 more. Destroying it erases them.")
        await pilot.press("ctrl+s")  # undefine only: no force, nothing destroyed
        assert app.results == [DeletePoolChoice(False, force=False)]
    async with opened(DeletePoolDialog(pool("vg0", "logical"), held=held)) as (app, pilot):
        await pilot.press("down", "enter")
        assert submit_disabled(app)
        await pilot.press("tab", *"vg0", "enter")
        # the names shown go back: a volume made meanwhile makes the delete refuse
        assert app.results == [DeletePoolChoice(True, force=True, expected=tuple(held))]


async def test_delete_pool_with_nothing_held_does_not_force() -> None:
    async with opened(DeletePoolDialog(pool("d", "disk"), held=[])) as (app, pilot):
        assert seen(app, "Its storage holds no volumes.")
        await pilot.press("down", "enter", "tab", "d", "enter")
        assert app.results == [DeletePoolChoice(True, force=False, expected=())]


async def test_delete_pool_that_could_not_be_looked_into_forces_with_the_name() -> None:
    async with opened(DeletePoolDialog(pool("f", "fs"), held_error="it is busy")) as (app,
                                                                                     pilot):
        assert seen(app, "Could not tell what its storage holds: it is busy.")
        await pilot.press("down", "enter", "tab", "f", "enter")
        assert app.results == [DeletePoolChoice(True, force=True)]


async def test_delete_iscsi_pool_offers_undefine_only() -> None:
    async with opened(DeletePoolDialog(pool("san", "iscsi"))) as (app, pilot):
        assert "destroy the storage" not in flat(app)


# ------------------------------------------------------------------------------- volume ops


def test_clone_name() -> None:
    assert clone_name("disk.qcow2") == "disk-clone.qcow2"
    assert clone_name("disk") == "disk-clone"


async def test_clone_volume_defaults_and_result() -> None:
    pools = [pool(), pool("fast", available=50 * GiB), pool("off", state="inactive")]
    dialog = CloneVolumeDialog(vol(), pools, "images", {"disk.qcow2", "taken"})
    async with opened(dialog) as (app, pilot):
        assert app.screen.query_one("#new_name", Input).value == "disk-clone.qcow2"
        select = app.screen.query_one("#pool", Select)
        assert [v for _label, v in select._options] == ["fast", "images"]  # active only
        await type_in(pilot, "#new_name", "taken")
        assert seen(app, "a volume named 'taken' already exists in pool 'images'")
        await pilot.press("ctrl+s")
        assert app.results == []
        select.value = "fast"
        await pilot.pause()
        app.screen.query_one("#format", Select).value = "raw"
        await pilot.pause()
        await pilot.press("ctrl+s")
        assert app.results == [CloneRequest(new_name="taken", target_pool="fast",
                                            format="raw")]


async def test_clone_refused_when_target_is_too_small() -> None:
    dialog = CloneVolumeDialog(vol(allocation=5 * GiB), [pool()], "images", set())
    async with opened(dialog) as (app, pilot):
        await pilot.press("ctrl+s")
        assert app.results == []
        assert seen(app, "the clone needs up to 5.00 GiB; 'images' has 3.10 GiB available")


async def test_resize_grow_by_delta() -> None:
    async with opened(ResizeVolumeDialog(vol(fmt="raw"), 3 * GiB)) as (app, pilot):
        assert seen(app, "maximum 23.00 GiB")
        await type_in(pilot, "#size", "+2G")
        assert seen(app, "= 22.00 GiB")
        await pilot.press("enter")
        assert app.results == [ResizeRequest(capacity=22 * GiB, shrink=False, allocate=False)]


async def test_resize_bad_size_and_allocate_only_for_raw() -> None:
    async with opened(ResizeVolumeDialog(vol(), 3 * GiB)) as (app, pilot):
        assert not shown(app.screen.query_one("#allocate"))
        await type_in(pilot, "#size", "12 potatoes")
        assert seen(app, "'12 potatoes' is not a size: use e.g. 10G or 512MiB")
        await type_in(pilot, "#size", "30G")
        assert seen(app, "the pool is overcommitted")
        await pilot.press("ctrl+s")
        assert app.results == [ResizeRequest(capacity=30 * GiB, shrink=False, allocate=False)]
    full = vol(fmt="raw", allocation=20 * GiB)
    async with opened(ResizeVolumeDialog(full, 3 * GiB)) as (app, pilot):
        await type_in(pilot, "#size", "30G")
        app.screen.query_one("#allocate").focus()
        await pilot.press("space")
        assert seen(app, "allocating 10.00 GiB more is more than the 3.00 GiB available")
        await type_in(pilot, "#size", "21G")
        await pilot.press("ctrl+s")
        assert app.results == [ResizeRequest(capacity=21 * GiB, shrink=False, allocate=True)]


async def test_resize_shrink_needs_checkbox_and_name() -> None:
    async with opened(ResizeVolumeDialog(vol(), 3 * GiB)) as (app, pilot):
        await type_in(pilot, "#size", "-1G")
        assert seen(app, "19.00 GiB is smaller than 20.00 GiB: tick shrink")
        assert seen(app, "type 'disk.qcow2' to confirm")
        assert submit_disabled(app)
        await pilot.press("ctrl+s")
        assert app.results == []
        app.screen.query_one("#shrink").focus()
        await pilot.press("space")
        assert submit_disabled(app)
        await pilot.press("tab", *"disk.qcow2")  # shrink -> the name (no allocate: qcow2)
        assert not submit_disabled(app)
        await pilot.press("enter")
        assert app.results == [ResizeRequest(capacity=19 * GiB, shrink=True, allocate=False)]


async def test_wipe_needs_exact_name_and_offers_every_algorithm() -> None:
    async with opened(WipeVolumeDialog(vol())) as (app, pilot):
        text = flat(app)
        for algorithm in ("zero", "nnsa", "gutmann", "pfitzner33", "random", "trim"):
            assert algorithm in text
        assert "needs scrub" in text and "punch holes" in text
        await pilot.press(*["down"] * 9, "enter")  # trim
        assert submit_disabled(app)
        await pilot.press("tab", *"disk.qcow")
        await pilot.press("enter")
        assert app.results == []
        assert seen(app, "type 'disk.qcow2' exactly to confirm")
        await pilot.press(*"2")
        await pilot.click("#submit")
        assert app.results == [WipeRequest("trim")]


async def test_wipe_offers_only_what_the_pool_type_can_do() -> None:
    async with opened(WipeVolumeDialog(vol(), ("zero",))) as (app, pilot):
        text = flat(app)
        assert "zero" in text and "gutmann" not in text and "trim" not in text
        await pilot.press("tab", *"disk.qcow2", "enter")
        assert app.results == [WipeRequest("zero")]


async def test_wipe_cancel_with_button() -> None:
    async with opened(WipeVolumeDialog(vol())) as (app, pilot):
        await pilot.press("tab", *"disk")
        await pilot.click("#cancel")
        assert app.results == [None]


async def test_delete_one_volume_types_its_name() -> None:
    async with opened(DeleteVolumesDialog([vol("a.img", "raw")], {})) as (app, pilot):
        assert seen(app, "type 'a.img' to confirm")
        await pilot.press(*"a.im", "enter")
        assert app.results == []
        await pilot.press("g", "enter")
        assert app.results == [DeleteVolumesRequest(["a.img"])]


async def test_delete_several_volumes_types_the_count_and_skips_in_use() -> None:
    volumes = [vol("a.img"), vol("b.img"), vol("c.img"), vol("d.img")]
    in_use = {"b.img": "qemu-system-x86 (pid 123)"}
    async with opened(DeleteVolumesDialog(volumes, in_use)) as (app, pilot):
        assert seen(app, "b.img REFUSED: in use by qemu-system-x86 (pid 123)")
        assert seen(app, "type '3' (the number of volumes) to confirm")
        await pilot.press("4", "enter")
        assert app.results == []
        await pilot.press("backspace", "3", "enter")
        assert app.results == [DeleteVolumesRequest(["a.img", "c.img", "d.img"])]


async def test_delete_volumes_all_in_use_cannot_submit() -> None:
    dialog = DeleteVolumesDialog([vol("a.img")], {"a.img": "qemu (pid 9)"})
    async with opened(dialog) as (app, pilot):
        assert submit_disabled(app)
        await pilot.press("ctrl+s")
        assert app.results == []
        await pilot.press("escape")
        assert app.results == [None]


# -------------------------------------------------------------------------------- transfer


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "alpha.img").write_bytes(b"x" * 4096)
    (tmp_path / "alps.iso").write_bytes(b"")
    (tmp_path / "beta.raw").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").write_bytes(b"")
    return tmp_path


async def test_upload_path_completion_suggests_files_of_the_directory(files: Path) -> None:
    async with opened(UploadDialog(vol())) as (app, pilot):
        path = app.screen.query_one("#path", Input)
        await type_in(pilot, "#path", f"{files}/al")
        await settle(pilot, app)
        completions = str(app.screen.query_one("#completions", Static).render())
        assert completions == "alpha.img  alps.iso"
        assert path._suggestion == f"{files}/alp"  # the common prefix
        await pilot.press("p", "h")
        await settle(pilot, app)
        assert path._suggestion == f"{files}/alpha.img"
        await pilot.press("right")  # accept the suggestion
        assert path.value == f"{files}/alpha.img"
        await type_in(pilot, "#path", f"{files}/")
        await settle(pilot, app)
        shown_names = str(app.screen.query_one("#completions", Static).render())
        assert shown_names == "alpha.img  alps.iso  beta.raw  sub/"  # no hidden files


async def test_upload_needs_an_existing_file(files: Path) -> None:
    async with opened(UploadDialog(vol())) as (app, pilot):
        await type_in(pilot, "#path", f"{files}/missing.img")
        await settle(pilot, app)
        assert seen(app, f"no such file: {files}/missing.img")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.results == []
        await type_in(pilot, "#path", f"{files}/sub")
        await settle(pilot, app)
        assert seen(app, f"{files}/sub is a directory")
        await type_in(pilot, "#path", f"{files}/alpha.img")
        await settle(pilot, app)
        assert seen(app, "4.00 KiB to upload")
        await type_in(pilot, "#offset", "1M")
        await type_in(pilot, "#length", "4KiB")
        await pilot.press("enter")
        await settle(pilot, app)
        assert app.results == [TransferRequest(path=f"{files}/alpha.img", offset=1 << 20,
                                               length=4096, sparse=False)]


async def test_upload_checks_the_file_again_on_submit(files: Path) -> None:
    async with opened(UploadDialog(vol())) as (app, pilot):
        app.screen.query_one("#path", Input).value = f"{files}/late.img"
        await pilot.press("ctrl+s")  # before any debounced check ran
        await settle(pilot, app)
        assert app.results == []
        assert seen(app, "no such file")


async def test_download_warns_about_overwriting_and_offers_sparse(files: Path) -> None:
    async with opened(DownloadDialog(vol())) as (app, pilot):
        await type_in(pilot, "#path", f"{files}/beta.raw")
        await settle(pilot, app)
        assert seen(app, "beta.raw exists and will be overwritten")
        await type_in(pilot, "#offset", "12 potatoes")
        assert seen(app, "'12 potatoes' is not a size")
        await type_in(pilot, "#offset", "0")
        app.screen.query_one("#sparse").focus()
        await pilot.press("space", "ctrl+s")
        await settle(pilot, app)
        assert app.results == [TransferRequest(path=f"{files}/beta.raw", offset=0,
                                               length=None, sparse=True)]


async def test_download_into_missing_directory_is_refused(files: Path) -> None:
    async with opened(DownloadDialog(vol())) as (app, pilot):
        await type_in(pilot, "#path", f"{files}/nodir/out.img")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert app.results == []
        assert seen(app, f"the directory {files}/nodir does not exist")
        await type_in(pilot, "#path", "relative.img")
        assert seen(app, "give an absolute path (starting with / or ~)")


# ------------------------------------------------------------------------- every dialog


def all_dialogs(ascii: bool) -> list[Screen[Any]]:
    pools = [pool(), pool("fast")]
    return [
        ConfirmDialog("Stop", "Stop pool 'images'?", ascii=ascii),
        ErrorDialog("Error", "it failed", retry_label="Retry", ascii=ascii),
        DefinePoolDialog(no_discover, types=TYPES, ascii=ascii),
        DefinePoolDialog(no_discover, types=TYPES, pool_type="iscsi", ascii=ascii),
        BuildPoolDialog(pool(type="fs"), "an ext4 filesystem", ascii=ascii),
        DeletePoolDialog(pool(), ascii=ascii),
        DeletePoolDialog(pool(type="fs"), held=["a.img"], ascii=ascii),
        create_dialog(ascii=ascii),
        CloneVolumeDialog(vol(), pools, "images", set(), ascii=ascii),
        ResizeVolumeDialog(vol(fmt="raw"), GiB, ascii=ascii),
        WipeVolumeDialog(vol(), ascii=ascii),
        UploadDialog(vol(), ascii=ascii),
        DownloadDialog(vol(), ascii=ascii),
        DeleteVolumesDialog([vol(), vol("b.img")], {"b.img": "qemu (pid 1)"}, ascii=ascii),
    ]


@pytest.mark.parametrize("index", range(len(all_dialogs(False))))
async def test_ascii_mode_renders_only_ascii(index: int) -> None:
    dialog = all_dialogs(True)[index]
    async with opened(dialog) as (app, pilot):
        # Show the optional parts too: typed confirmations, select overlays.
        for widget in app.screen.query("TypedConfirm"):
            widget.display = True
        await pilot.pause()
        text = screen_text(app)
        bad = sorted({ch for ch in text if not ch.isascii()})
        assert bad == [], f"non-ASCII in {type(dialog).__name__}: {bad}"
        if app.screen.query("#type"):
            app.screen.query_one("#type").focus()
            await pilot.press("enter")
            await pilot.pause()
            assert {ch for ch in screen_text(app) if not ch.isascii()} == set()


@pytest.mark.parametrize("index", range(len(all_dialogs(False))))
async def test_fits_80x24_with_buttons_reachable(index: int) -> None:
    dialog = all_dialogs(False)[index]
    async with opened(dialog) as (app, pilot):
        screen_region = app.screen.region
        for button_id in ("#submit", "#cancel"):
            button = app.screen.query_one(button_id, Button)
            if shown(button):
                assert screen_region.contains_region(button.region), button_id
        box = app.screen.query_one("#dialog")
        assert screen_region.contains_region(box.region)


async def test_small_terminal_scrolls_the_form_and_keeps_the_buttons() -> None:
    async with opened(WipeVolumeDialog(vol()), size=(80, 16)) as (app, pilot):
        await pilot.press("tab")  # to the typed name, below the fold
        typed = app.screen.query_one("#confirm Input", Input)
        assert app.screen.focused is typed
        await pilot.pause()
        screen_region = app.screen.region
        assert screen_region.contains_region(typed.region)
        for button_id in ("#submit", "#cancel"):
            assert screen_region.contains_region(app.screen.query_one(button_id).region)
        await pilot.press(*"disk.qcow2", "enter")
        assert app.results == [WipeRequest("zero")]


# ------------------------------------------------------------------------------ snapshots


def snapshot_app(dialog: Screen[Any]) -> Host:
    return Host(dialog)


async def _fill_dir(pilot: Pilot[None]) -> None:
    await type_in(pilot, "#name", "images")
    await type_in(pilot, "#target", "/var/lib/libvirt/images")


async def _fill_netfs(pilot: Pilot[None]) -> None:
    await set_type(pilot, "netfs")
    await type_in(pilot, "#name", "nfs-images")
    await type_in(pilot, "#target", "/mnt/nfs-images")
    await type_in(pilot, "#host", "nas.example")
    await type_in(pilot, "#srcdir", "/export/images")
    pilot.app.screen.query_one("#format", Select).value = "nfs"
    await pilot.pause()


async def _fill_create(pilot: Pilot[None]) -> None:
    await type_in(pilot, "#name", "big.img")
    await type_in(pilot, "#capacity", "20G")


async def _fill_wipe(pilot: Pilot[None]) -> None:
    await pilot.press("down", "down", "enter")


async def _choose_destroy(pilot: Pilot[None]) -> None:
    await pilot.press("down", "enter")


SNAPSHOTS: dict[str, tuple[Callable[[], Screen[Any]], Callable[[Pilot[None]], Any]]] = {
    "define_dir": (lambda: DefinePoolDialog(no_discover, types=TYPES), _fill_dir),
    "define_netfs": (lambda: DefinePoolDialog(no_discover, types=TYPES), _fill_netfs),
    "create_volume": (create_dialog, _fill_create),
    "wipe_volume": (lambda: WipeVolumeDialog(vol()), _fill_wipe),
    "delete_pool_held": (lambda: DeletePoolDialog(pool("data", "fs"), held=[
        "guest.img", "win10.qcow2", "scratch.raw"]), _choose_destroy),
}


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
@pytest.mark.parametrize("name", list(SNAPSHOTS))
def test_snapshot(snap_compare: Any, name: str, size: tuple[int, int]) -> None:
    make, fill = SNAPSHOTS[name]

    async def run_before(pilot: Pilot[None]) -> None:
        await fill(pilot)
        for widget in pilot.app.screen.query(Input):
            widget.cursor_blink = False  # a blinking cursor would make the image flaky
        await pilot.pause()

    assert snap_compare(snapshot_app(make()), terminal_size=size, run_before=run_before)


async def test_define_pool_starts_on_the_name_and_keys_go_there() -> None:
    """The define form opened on the Type list, so the first keys typed went nowhere."""
    async with opened(DefinePoolDialog(no_discover, types=TYPES), size=(120, 40)) as (app,
                                                                                      pilot):
        assert app.screen.focused is app.screen.query_one("#name")
        await pilot.press("v", "m", "s")
        assert app.screen.query_one("#name", Input).value == "vms"
        await pilot.press("shift+tab")
        assert app.screen.focused is app.screen.query_one("#type")


async def test_create_volume_says_what_the_sparse_choice_allocates() -> None:
    """A volume meant to be sparse was written as 10 GiB: the choice now says, next to it,
    how much it allocates, and changes as it is ticked."""
    async with opened(create_dialog(), size=(100, 30)) as (app, pilot):
        await type_in(pilot, "#name", "v.img")
        await type_in(pilot, "#capacity", "2G")
        assert seen(app, "allocates 2.00 GiB now")
        app.screen.query_one("#sparse").focus()
        await pilot.press("space")
        assert seen(app, "allocates nothing now") and not seen(app, "allocates 2.00 GiB")
        await pilot.press("space")
        await type_in(pilot, "#allocation", "512M")
        assert seen(app, "allocates 512.00 MiB now")
