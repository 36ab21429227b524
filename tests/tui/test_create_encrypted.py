"""The create-volume dialog offers LUKS encryption with the stored secrets that have a
value (read in a thread), and the volume table marks encrypted volumes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from textual.widgets import Input, Select

from backends.controller import StorageController
from backends.model import Encryption, EncryptionSecret, VolumeDef, VolumeInfo, VolumeTarget
from tests.screentext import screen_text
from tests.settle import settle
from tests.tui.test_dialogs import GiB, create_dialog, opened, seen, shown, type_in
from tui.app import PoolkeeperApp
from tui.widgets.volume_rows import format_cell
from tui.widgets.volume_table import VolumeTable

UUID = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"


def secrets() -> list[tuple[str, str]]:
    return [(UUID, "volume /srv/images/secret.img")]


async def test_encryption_is_offered_for_raw_and_qcow2_with_a_stored_secret() -> None:
    async with opened(create_dialog(secrets=secrets)) as (app, pilot):
        await settle(app, pilot)
        select = app.screen.query_one("#encryption", Select)
        assert shown(select) and select.is_blank()
        assert shown(app.screen.query_one("#sparse"))  # plain raw: an allocation to choose
        select.value = UUID
        await type_in(pilot, "#name", "secret.img")
        await type_in(pilot, "#capacity", "1G")
        assert not shown(app.screen.query_one("#sparse"))  # qemu-img makes it sparse
        assert seen(app, "the passphrase is the secret's value, never typed here")
        app.screen.query_one("#format", Select).value = "vmdk"
        await pilot.pause()
        assert not shown(select)  # vmdk cannot be encrypted
        app.screen.query_one("#format", Select).value = "qcow2"
        await pilot.pause()
        assert shown(select) and not shown(app.screen.query_one("#backing"))
        await pilot.press("ctrl+s")
    assert app.results == [VolumeDef(
        name="secret.img", capacity=GiB, allocation=None,
        target=VolumeTarget(format="qcow2", encryption=Encryption(
            "luks", [EncryptionSecret(uuid=UUID)])))]


async def test_no_stored_secret_says_how_to_make_one() -> None:
    async with opened(create_dialog(secrets=list)) as (app, pilot):
        await settle(app, pilot)
        await type_in(pilot, "#name", "plain.img")
        assert seen(app, "no secret has a value: define one (secret-define, "
                         "secret-set-value) to encrypt")


def test_the_format_cell_marks_encrypted_volumes() -> None:
    vol = VolumeInfo(name="v", key="/v", path="/v", format="qcow2", encryption="luks")
    assert format_cell(vol) == "qcow2+luks"
    assert format_cell(VolumeInfo(name="v", key="/v", path="/v", format="raw")) == "raw"


@pytest.fixture
def controller(state_root: Path):
    ctl = StorageController(state_root)  # makes and starts "default" in STATE/images
    try:
        yield ctl
    finally:
        ctl.close()


async def test_an_encrypted_volume_made_in_the_tui(controller: StorageController,
                                                  state_root: Path, tmp_path: Path) -> None:
    path = state_root / "images" / "enc.qcow2"
    controller.define_secret(f"<secret><uuid>{UUID}</uuid><usage type='volume'>"
                             f"<volume>{path}</volume></usage></secret>")
    controller.set_secret_value(UUID, "tui-pa55")
    app = PoolkeeperApp(controller, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("c")
        await settle(app, pilot)
        dialog = app.screen
        dialog.query_one("#format", Select).value = "qcow2"
        for _ in range(50):  # the secrets are read in a thread
            await pilot.pause(0.05)
            if dialog.secrets_loaded:
                break
        dialog.query_one("#encryption", Select).value = UUID
        dialog.query_one("#name", Input).value = "enc.qcow2"
        dialog.query_one("#capacity", Input).value = "4M"
        await pilot.pause()
        await pilot.click("#submit")
        for _ in range(400):  # PBKDF: a LUKS header takes a second or two
            await pilot.pause(0.05)
            if "enc.qcow2" in app.screen.query_one("#volumes", VolumeTable).visible_names():
                break
        await settle(app, pilot)
        assert "qcow2+luks" in screen_text(app)  # the table marks it
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["encrypted"] is True and info["format-specific"]["data"]["encrypt"][
        "format"] == "luks"
    assert controller.volume_info("default", "enc.qcow2").encryption == "luks"
