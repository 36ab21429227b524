"""The live monitor stopped and started again at once (the TUI's close and a new
controller session, or a stop whose wait ran out while a tool ran) keeps one thread.

Before: stop() set a shared stop event and start() cleared it again before the old
thread had looked, so both threads ran; the old one's wake pipe held the byte that
should have stopped it, so its select() returned at once, forever: a core spinning.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from backends import monitor as monitor_mod
from backends.controller import StorageController
from tests.conftest import make_dir_pool

CAP = 30.0  # seconds: a cap to fail on, not a measure of speed


def _monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pk-monitor" and t.is_alive()]


def test_a_stop_then_a_start_leaves_one_monitor_thread(
        ctl: StorageController, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dir_pool(ctl, "p", tmp_path / "images")
    monkeypatch.setattr(monitor_mod, "STOP_WAIT", 0.0)  # stop() does not wait for it
    assert _monitor_threads() == []
    try:
        for _ in range(3):
            ctl.start_monitor(interval=0.05)
            time.sleep(0.3)  # in its loop: rounds, then select() on the wake pipe
            ctl.stop_monitor()
        ctl.start_monitor(interval=0.05)
        deadline = time.monotonic() + CAP
        while len(_monitor_threads()) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_monitor_threads()) == 1
    finally:
        monkeypatch.setattr(monitor_mod, "STOP_WAIT", 5.0)
        ctl.stop_monitor()
    assert _monitor_threads() == []
