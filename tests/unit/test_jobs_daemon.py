"""A JobManager of daemon jobs (a libvirt host's: calls another host finishes alone) never
holds the process at exit; this host's (a thread pool) are waited for, as before."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = """
import threading, time
from backends.events import EventBus
from backends.jobs import JobManager
jobs = JobManager(EventBus(), 2, daemon={daemon})
started = threading.Event()
def stuck(job):  # a call that cannot be stopped: it ignores the cancel
    started.set()
    time.sleep(6)
job = jobs.create("wipe", "wipe v", "p@kvm2", "v")
jobs.start(job, stuck)
started.wait(5)
jobs.shutdown(cancel=True, wait=False)
print("main done", flush=True)
"""


def run(daemon: bool) -> float:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-c", SCRIPT.format(daemon=daemon)], cwd=REPO,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "main done\n"
    return time.monotonic() - start


def test_daemon_jobs_do_not_hold_the_exit() -> None:
    assert run(True) < 3.0
    assert run(False) >= 6.0  # the thread pool's: joined at exit (what the test guards)
