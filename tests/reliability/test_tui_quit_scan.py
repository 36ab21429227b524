"""q quits at once, even while a big pool is being read.

The TUI runs in a real terminal (tmux, tests/termdriver.py) on a dir pool of 60,000
volumes. Its first listing streams in (the first rows on screen while the rest is read,
in slices, like the monitor's scans); q is pressed while the process is busy with that,
and the app must exit with status 0. The
test asserts the exit within a generous cap, not a time: bench figures say how fast (the
monitor's scan stops at its next slice of 256 volumes). Before: q waited for the scan,
and a runaway monitor kept q waiting 13.5 s.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from backends.controller import StorageController
from tests.conftest import make_dir_pool
from tests.termdriver import Terminal, have_tmux

REPO = Path(__file__).resolve().parents[2]
VOLUMES = 60_000
EXIT_CAP = 60.0  # seconds: a cap to fail on, not a measure of speed


@pytest.mark.skipif(not have_tmux(), reason="needs tmux (make test installs it)")
def test_q_exits_while_the_monitor_scans_a_big_pool(tmp_path: Path) -> None:
    state = tmp_path / "state"
    images = tmp_path / "images"
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "p", images)
        ctl.store.mark_initialized()
    for i in range(VOLUMES):
        os.close(os.open(images / f"vol{i:05}.img", os.O_CREAT | os.O_WRONLY, 0o600))
    with Terminal(tmp_path, size=(100, 30)) as term:
        term.start([sys.executable, "-m", "tui", "--root", str(state)],
                   env={"PYTHONPATH": str(REPO)})
        # the first rows (names may be cut to the column: the prefix is enough), the
        # rest of the listing still coming in: the process is busy reading
        assert term.wait_for("vol0", timeout=EXIT_CAP), term.screen()
        deadline = time.monotonic() + EXIT_CAP
        busy = False
        while not busy and time.monotonic() < deadline:
            before = term.cpu_seconds()
            time.sleep(0.3)
            busy = term.cpu_seconds() - before >= 0.15
        assert busy, "the pool was never being read"
        term.keys("q")
        status = term.wait_exit(EXIT_CAP)
        assert status == 0, f"exit status {status} (None: still running)\n{term.screen()}"
