"""A logical pool on a kernel without device-mapper, in the TUI (issue 15 item 17): the
header says what does not work, and the keys that need device-mapper are greyed with that
reason (F1 and the palette say it) instead of failing later with lvcreate's stderr."""

from __future__ import annotations

import pytest

from backends.controller import StorageController
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice, VolumeDef
from tests.drivers.test_logical_nodm import DM_WORDS, no_dm_fixture  # noqa: F401
from tests.lvmenv import can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')
from tui.app import PoolkeeperApp
from tui.screens.main import MainScreen
from tui.widgets.volume_table import VolumeTable

from .test_app import header, settle

pytestmark = pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")

MiB = 1 << 20


async def test_greyed_keys_and_header_say_device_mapper_is_missing(state_root, lvm, no_dm):
    dev = lvm.disk(64)
    ctl = StorageController(state_root, create_default=False)
    try:
        ctl.define_pool_def(PoolDef(type="logical", name="vgt", source=PoolSource(
            name="vgt", devices=[SourceDevice(dev)], format="lvm2"),
            target=PoolTarget(path="/dev/vgt")))
        ctl.build_pool("vgt").wait(60)
        ctl.start_pool("vgt")
        ctl.create_volume_def("vgt", VolumeDef(name="lv1", capacity=8 * MiB)).wait(60)
        ctl.stop_pool("vgt")
        lvm.env.set_activation(True)  # LVM as on a real host
        ctl.start_pool("vgt")
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            screen = app.screen
            assert isinstance(screen, MainScreen)
            text = " ".join(header(app).split())
            assert f"{DM_WORDS}: keys c k z w u d unavailable (f1 says why)" in text, text
            table = screen.query_one("#volumes", VolumeTable)
            assert table.visible_names() == ["lv1"]  # the listing works
            table.focus()
            for action in ("create_volume", "resize_volume", "wipe_volume", "clone_volume",
                           "upload", "download"):
                reason = screen.disabled_reason(action)
                assert reason and DM_WORDS in reason, (action, reason)
                assert not screen.check_action(action, ())
            assert screen.disabled_reason("delete_volumes") is None  # lvremove works
            # F1 and the palette list each key with why it is unavailable
            rows = {key: reason for key, _, reason in screen.key_rows()}
            assert DM_WORDS in (rows["c"] or "") and DM_WORDS in (rows["z"] or "")
            await pilot.press("c")
            await settle(app, pilot)
            assert app.screen is screen  # no create dialog, no lvcreate
            assert [v.name for v in ctl.list_volumes("vgt")] == ["lv1"]
    finally:
        lvm.env.set_activation(False)
        if ctl.store.is_active("vgt"):
            ctl.stop_pool("vgt")
        ctl.close()
