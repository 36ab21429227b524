"""A TUI whose terminal goes away exits, cancelling its jobs cleanly.

The TUI runs in a real terminal (tmux, tests/termdriver.py) with a download running into a
FIFO that this test reads slowly, so the job is certainly still running when the terminal
goes: at the pace read here the 64 GiB volume would take over ten minutes. Then:
  * SIGHUP: the pane is killed (as an SSH link dropping): the app is in the terminal's
    session and gets SIGHUP. Before: Python's default action killed it at once (exit by
    signal, the job never cancelled).
  * setsid: the app runs in a session of its own (as under `su -c` or `setsid`), so the
    hang-up sends it no signal: stdin just reads end-of-file. Before: it never exited and
    spun at 60-80 % of a core.
  * SIGTERM: the terminal stays; the app is told to stop.
Each time the app must exit with status 1 (its own, not a signal's) within a generous cap,
and the download must stop before the end of the volume: the reader sees end-of-file with
far less than 64 GiB read. A job stops early only when cancelled (or on an error, and then
the status would say so), so the job was cancelled and the process exited normally.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.model import VolumeDef, VolumeTarget
from tests.conftest import make_dir_pool
from tests.termdriver import Terminal, have_tmux

GiB = 1 << 30
MiB = 1 << 20
REPO = Path(__file__).resolve().parents[2]
EXIT_CAP = 120.0  # seconds: a cap to fail on, not a measure of speed

needs_tmux = pytest.mark.skipif(not have_tmux(), reason="needs tmux (make test installs it)")


class SlowReader(threading.Thread):
    """Reads a FIFO at about 64 MiB/s until end-of-file (or until told to stop)."""

    def __init__(self, fifo: Path) -> None:
        super().__init__(daemon=True)
        self.fifo = fifo
        self.count = 0
        self.eof = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        fd = os.open(self.fifo, os.O_RDONLY)  # blocks until the download opens it
        try:
            while not self.stop.is_set():
                data = os.read(fd, MiB)
                if not data:
                    self.eof.set()
                    return
                self.count += len(data)
                time.sleep(len(data) / (64 * MiB))
        finally:
            os.close(fd)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < count and not self.eof.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count >= count


@needs_tmux
@pytest.mark.parametrize("how", ["SIGHUP", "setsid", "SIGTERM"])
def test_tui_exits_and_cancels_its_job_when_its_terminal_goes(tmp_path: Path, how: str
                                                              ) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "p", tmp_path / "images")
        ctl.create_volume_def("p", VolumeDef(name="big.img", capacity=64 * GiB, allocation=0,
                                             target=VolumeTarget(format="raw"))).wait(60)
        ctl.store.mark_initialized()  # no "default" pool: "p" is the one shown
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = SlowReader(fifo)
    reader.start()
    with Terminal(tmp_path, size=(100, 30)) as term:
        term.start([sys.executable, "-m", "tui", "--root", str(state)],
                   env={"PYTHONPATH": str(REPO)}, setsid=how == "setsid")
        try:
            assert term.wait_for("big.img"), term.screen()
            term.keys("d")  # download the volume under the cursor
            assert term.wait_for("Download volume"), term.screen()
            term.type(str(fifo))
            # ctrl+s is a priority key: sent at once it could overtake the typed text
            assert term.wait_for("/fifo"), term.screen()
            term.keys("C-s")
            assert reader.wait_for(16 * MiB, timeout=EXIT_CAP), (reader.count, term.screen())
            assert term.alive()
            if how == "SIGTERM":
                os.kill(term.app_pid, signal.SIGTERM)  # type: ignore[arg-type]
            else:
                term.hang_up()
            status = term.wait_exit(EXIT_CAP)
            assert status == 1, f"exit status {status} (None: still running)"
            assert not term.alive()
            assert reader.eof.wait(EXIT_CAP), reader.count
            assert reader.count < 64 * GiB, "the download ran to the end: it was not cancelled"
            if how == "SIGTERM":  # the terminal is still there to say why
                assert term.wait_for("SIGTERM: poolkeeper stopped; 1 running job(s) cancelled")
        finally:
            reader.stop.set()


def test_tui_refuses_a_stdin_that_is_not_a_terminal(tmp_path: Path) -> None:
    """Textual would read end-of-file from /dev/null at full speed forever."""
    proc = subprocess.run([sys.executable, "-m", "tui", "--root", str(tmp_path / "state")],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=EXIT_CAP)
    assert proc.returncode == 1
    assert "the TUI needs a terminal on standard input" in proc.stderr
