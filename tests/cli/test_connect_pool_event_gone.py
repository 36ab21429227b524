"""`pool-event -c URI` when the daemon goes away: it ends at once (not when --timeout
runs out), saying so as virsh does (the same stdout, its first error line), status 1."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.cli.test_connect_libvirtd import ENV, MISSING, REPO
from tests.libvirtd import start_libvirtd, stop_libvirtd

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def test_pool_event_ends_when_the_daemon_goes_away() -> None:
    base = Path(tempfile.mkdtemp(prefix="pk-event-gone-"))
    base.chmod(0o755)
    proc, sock = start_libvirtd(base)
    uri = f"qemu:///session?socket={sock}"
    watchers = {}
    try:
        for who, argv in (("ours", [sys.executable, "-m", "cli", "-c", uri]),
                          ("virsh", ["virsh", "-c", uri])):
            watchers[who] = subprocess.Popen(
                [*argv, "pool-event", "--event", "lifecycle", "--loop", "--timeout", "30"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO)
        time.sleep(3)  # both registered
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        began = time.monotonic()
        results = {who: w.communicate(timeout=20) for who, w in watchers.items()}
        assert time.monotonic() - began < 5  # not the 30 s of --timeout
    finally:
        for w in watchers.values():
            if w.poll() is None:
                w.kill()
                w.wait()
        stop_libvirtd(proc)
        shutil.rmtree(base, ignore_errors=True)
    ours, theirs = results["ours"], results["virsh"]
    assert watchers["ours"].returncode == watchers["virsh"].returncode == 1
    assert ours[0] == theirs[0] == b"events received: 0\n\n"
    first = f"error: Disconnected from {uri} due to end of file\n".encode()
    assert ours[1] == first and theirs[1].startswith(first)
