"""A CLI verb run while the TUI's monitor scans a pool never fails "busy".

The monitor here scans slow storage (each read of a volume slice sleeps: a scan lasts
several seconds, longer than the 2 s an exclusive verb waits for the pool lock). A real
`poolkeeper pool-destroy` process, started mid-scan against the same state root, must
stop the pool: the monitor steps aside at its next slice (it sees the verb waiting), and
its next round forgets what it read of a pool that is no longer running. Before: the
monitor held the pool's shared lock for its whole scan, and pool-destroy failed with
"pool 'p' is busy".
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backends import monitor as monitor_mod
from backends.controller import StorageController
from backends.drivers.dir import DirDriver
from tests.conftest import make_dir_pool

REPO = Path(__file__).resolve().parents[2]
CAP = 120.0  # seconds: a cap to fail on, not a measure of speed


def test_pool_destroy_from_another_process_while_the_monitor_scans(
        ctl: StorageController, state_root: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    images = make_dir_pool(ctl, "p", tmp_path / "images")
    for i in range(400):
        (images / f"v{i:03}.img").write_bytes(b"")
    scanning = threading.Event()
    real_volumes, real_refresh = DirDriver.refresh_volumes, DirDriver.refresh

    def slow_volumes(self: DirDriver, names: list[str]):  # type: ignore[no-untyped-def]
        scanning.set()
        time.sleep(0.05)  # slow storage: 40 slices of 10, 2 s and more
        return real_volumes(self, names)

    def slow_refresh(self: DirDriver):  # type: ignore[no-untyped-def]
        scanning.set()
        time.sleep(8)
        return real_refresh(self)

    monkeypatch.setattr(monitor_mod, "SLICE", 10)
    monkeypatch.setattr(DirDriver, "refresh_volumes", slow_volumes)
    monkeypatch.setattr(DirDriver, "refresh", slow_refresh)
    # the monitor's round: it reads the 400 volumes made after the pool's own listing
    monitor = threading.Thread(target=ctl.poll)
    monitor.start()
    try:
        assert scanning.wait(CAP)
        proc = subprocess.run(
            [sys.executable, "-m", "tui", "--root", str(state_root), "pool-destroy", "p"],
            capture_output=True, text=True, timeout=CAP, cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert proc.returncode == 0, proc.stderr
        assert "busy" not in proc.stderr
    finally:
        monitor.join(CAP)
    assert ctl.pool_info("p").state == "inactive"
    ctl.poll()  # the next round sees the stop: nothing of the raced reads stays
    assert ctl.cached_volumes("p") == []
