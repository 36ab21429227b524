"""e on a running pool (issue 15 item 12): the editor opens on the persistent definition,
as virsh pool-edit's does; what is saved is said, with the changes that take effect only
after a rebuild or a restart; a change of what the pool claims (its target path) waits
until it is stopped, said before anything is saved. Real dir pool, a real $EDITOR (a
script), the terminal hand-over replaced by nothing (no terminal under Pilot)."""

from __future__ import annotations

import contextlib
import stat
from pathlib import Path

import pytest

from backends.controller import StorageController
from tui.app import PoolkeeperApp
from tui.dialogs import ErrorDialog

from .test_flows import wait_for


def editor(tmp_path: Path, old: str, new: str) -> str:
    """An $EDITOR that replaces `old` by `new` in the file it is given."""
    script = tmp_path / "editor.py"
    script.write_text("import sys, pathlib\n"
                      "path = pathlib.Path(sys.argv[1])\n"
                      f"path.write_text(path.read_text().replace({old!r}, {new!r}))\n")
    return f"python3 {script}"


@pytest.fixture
def controller(state_root: Path):
    with StorageController(state_root) as ctl:  # "default", running, in STATE/images
        yield ctl


async def test_e_on_a_running_pool_saves_and_says_what_needs_a_rebuild(
        controller, state_root, tmp_path, monkeypatch):
    monkeypatch.setenv("EDITOR", editor(
        tmp_path, "</path>", "</path><permissions><mode>0700</mode></permissions>"))
    images = state_root / "images"
    mode_before = stat.S_IMODE(images.stat().st_mode)
    app = PoolkeeperApp(controller, monitor_interval=None)
    monkeypatch.setattr(type(app), "suspend", lambda self: contextlib.nullcontext())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, app, lambda: app.main_screen.view is not None)
        assert controller.pool_info("default").active
        await pilot.press("e")
        await wait_for(pilot, app, lambda: "0700" in controller.pool_xml("default",
                                                                          inactive=True))
        await wait_for(pilot, app, lambda: any("redefined" in n.message
                                               for n in app._notifications))
        said = " ".join(n.message for n in app._notifications)
        # compared with the running pool's target as it is (0711, poolkeeper's default)
        assert "permissions (mode 0711 -> 0700)" in said, said
        assert "rebuild" in said, said
    assert controller.pool_info("default").active  # it runs on, as it was started
    assert stat.S_IMODE(images.stat().st_mode) == mode_before  # until it is rebuilt


async def test_a_running_pool_keeps_its_target_until_stopped(
        controller, state_root, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere"
    monkeypatch.setenv("EDITOR", editor(tmp_path, str(state_root / "images"), str(other)))
    app = PoolkeeperApp(controller, monitor_interval=None)
    monkeypatch.setattr(type(app), "suspend", lambda self: contextlib.nullcontext())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, app, lambda: app.main_screen.view is not None)
        await pilot.press("e")
        await wait_for(pilot, app, lambda: isinstance(app.screen, ErrorDialog))
        message = str(app.screen.message)
        assert "target path" in message and "stopped" in message and "Stop it (s)" in message
    assert str(other) not in controller.pool_xml("default", inactive=True)  # nothing saved
    assert controller.pool_info("default").active
