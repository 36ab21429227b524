"""Every dialog driven from the main screen with key presses, against a real dir pool:
the assertions are on the files, the XML and the screen that result."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from textual.widgets import Input

from backends.controller import StorageController
from backends.model import VolumeDef
from tui.app import PoolkeeperApp
from tui.dialogs import ErrorDialog
from tui.widgets.volume_table import VolumeTable

from .test_app import settle

MiB = 1 << 20


@pytest.fixture
def controller(state_root: Path):
    ctl = StorageController(state_root)
    ctl.create_volume_def("default", VolumeDef(name="disk.img", capacity=8 * MiB,
                                               allocation=None)).wait(30)
    (state_root / "images" / "disk.img").write_bytes(b"\x5a" * (8 * MiB))
    try:
        yield ctl
    finally:
        ctl.close()


async def wait_for(pilot, app, condition, rounds: int = 100) -> None:
    for _ in range(rounds):
        await settle(app, pilot, 1)
        if condition():
            return
    raise AssertionError("condition never became true")


async def type_confirm(pilot, dialog, text: str) -> None:
    dialog.query_one("#confirm Input", Input).focus()
    await pilot.press(*text)


async def open_on_disk(app, pilot) -> VolumeTable:
    await settle(app, pilot)
    table = app.screen.query_one("#volumes", VolumeTable)
    table.focus()
    table.select("disk.img")
    await pilot.pause()
    return table


async def test_clone_resize_wipe_download_delete(controller, state_root, tmp_path):
    images = state_root / "images"
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        table = await open_on_disk(app, pilot)

        await pilot.press("k")  # clone
        await settle(app, pilot)
        app.screen.query_one("#new_name", Input).value = "copy.img"
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: "copy.img" in table.visible_names())
        assert (images / "copy.img").read_bytes() == (images / "disk.img").read_bytes()
        # the notice says how it copied (and would say a backing file was renamed)
        await wait_for(pilot, app, lambda: any(
            n.message.startswith("done: clone disk.img to copy.img (") and "copy)" in n.message
            for n in app._notifications))

        table.select("copy.img")
        await pilot.press("z")  # resize: a smaller size needs shrink and the name typed
        await settle(app, pilot)
        dialog = app.screen
        dialog.query_one("#size", Input).value = "+8M"
        await type_confirm(pilot, dialog, "copy.img")
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: os.stat(images / "copy.img").st_size == 16 * MiB)

        await pilot.press("w")  # wipe: zero, name typed
        await settle(app, pilot)
        await type_confirm(pilot, app.screen, "copy.img")
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: (images / "copy.img").read_bytes()[:MiB]
                       == bytes(MiB))

        table.focus()
        await pilot.press("d")  # download
        await settle(app, pilot)
        out = tmp_path / "backup.img"
        app.screen.query_one("#path", Input).value = str(out)
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: out.exists() and out.stat().st_size == 16 * MiB)

        table.focus()
        await pilot.press("delete")
        await settle(app, pilot)
        await type_confirm(pilot, app.screen, "copy.img")
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: not (images / "copy.img").exists())
        await wait_for(pilot, app, lambda: "copy.img" not in table.visible_names())
        assert (images / "disk.img").read_bytes() == b"\x5a" * (8 * MiB)  # source untouched


async def test_define_and_delete_a_pool(controller, tmp_path):
    target = tmp_path / "newpool"
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        await settle(app, pilot)
        dialog = app.screen
        dialog.query_one("#name", Input).value = "newpool"
        dialog.query_one("#target", Input).value = str(target)
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: "newpool" in controller.pool_names())
        xml = controller.pool_xml("newpool")
        assert f"<path>{target}</path>" in xml and "type='dir'" in xml.replace('"', "'")
        screen = app.screen
        await wait_for(pilot, app, lambda: "newpool" in screen.pools)
        screen.select_pool("newpool")
        await settle(app, pilot)
        await pilot.press("b")  # build
        await settle(app, pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, target.is_dir)
        await pilot.press("X")  # delete: destroy the storage too, name typed
        await settle(app, pilot)
        app.screen.query_one("#opt-destroy").value = True
        await type_confirm(pilot, app.screen, "newpool")
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: "newpool" not in controller.pool_names())
        assert not target.exists()


async def test_broken_xml_edit_is_offered_again_and_kept(controller, state_root, tmp_path,
                                                         monkeypatch):
    """$EDITOR breaks the schema: the error is shown, Re-edit gets the broken text back."""
    editor = tmp_path / "editor.py"
    seen = tmp_path / "seen"
    editor.write_text(
        "import sys, pathlib\n"
        f"seen = pathlib.Path({str(seen)!r})\n"
        "path = pathlib.Path(sys.argv[1])\n"
        "text = path.read_text()\n"
        "if not seen.exists():\n"
        "    seen.write_text(text)\n"
        "    path.write_text(text.replace('<target>', '<target><bogus/>'))\n"
        "else:\n"
        "    seen.write_text(text)\n"
        "    path.write_text(text.replace('<bogus/>', '').replace(\n"
        "        '</path>', '</path><permissions><mode>0750</mode></permissions>'))\n")
    monkeypatch.setenv("EDITOR", f"python3 {editor}")
    controller.stop_pool("default")
    app = PoolkeeperApp(controller, monitor_interval=None)
    monkeypatch.setattr(type(app), "suspend", lambda self: contextlib.nullcontext())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("e")
        await wait_for(pilot, app, lambda: isinstance(app.screen, ErrorDialog))
        assert "bogus" in str(app.screen.message)
        await pilot.click("#submit")  # Re-edit
        await wait_for(pilot, app, lambda: "0750" in controller.pool_xml("default",
                                                                          inactive=True))
        assert "<bogus/>" in seen.read_text()  # the second edit started from the broken text


async def test_chap_secret_from_the_tui(controller, state_root):
    """S on a pool that names a CHAP secret stores the typed value, 0600, never shown."""
    import stat as stat_mod

    from tests.tui.test_secret_dialog import screen_text
    from tui.dialogs import SecretDialog

    # iSCSI pools carry <auth>; a dir pool cannot, so the key is greyed with a reason first
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert "names no CHAP secret" in screen.disabled_reason("set_secret")
        screen.view.secret_usage = "pool-chap"  # as for an iSCSI pool with <auth>
        screen.refresh_bindings()
        await pilot.press("S")
        await wait_for(pilot, app, lambda: isinstance(app.screen, SecretDialog))
        app.screen.query_one("#value", Input).value = "pa55-word"
        app.screen.query_one("#again", Input).value = "pa55-word"
        assert "pa55" not in screen_text(app)
        await pilot.press("ctrl+s")
        await wait_for(pilot, app, lambda: controller.has_secret("pool-chap"))
    files = sorted((state_root / "secrets").iterdir())  # the value, then its usage name
    assert [f.read_text() for f in files] == ["pa55-word", "pool-chap"]
    assert stat_mod.S_IMODE(files[0].stat().st_mode) == 0o600
