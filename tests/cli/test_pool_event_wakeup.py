"""`poolkeeper pool-event --loop` sleeps until something happens: another poolkeeper
process's pool-start / pool-destroy is printed as it happens (inotify on the run
directory), and an idle watcher spends next to no CPU, its main thread never woken (the
journal is not polled). Ctrl-C ends it as virsh: `event loop interrupted`."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _poolkeeper(root: Path, *args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "cli", "--root", str(root), *args],
                       capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert r.returncode == 0, (args, r.stdout, r.stderr)


def _watcher(root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "--root", str(root), "pool-event", "--event",
         "lifecycle", "--loop", "--timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, bufsize=1)


def _inotify_instances(pid: int) -> int:
    try:
        return sum(os.readlink(fd) == "anon_inode:inotify"
                   for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return 0


def _wait_ready(w: subprocess.Popen[str], instances: int) -> None:
    """pool-event's own inotify instance is made once it follows the journal; its
    monitor's by the monitor's first round."""
    deadline = time.monotonic() + 30
    while _inotify_instances(w.pid) < instances and time.monotonic() < deadline:
        assert w.poll() is None, w.communicate()
        time.sleep(0.05)
    assert _inotify_instances(w.pid) >= instances, "the watcher never got ready"


def _line(w: subprocess.Popen[str], within: float) -> str:
    assert w.stdout is not None
    ready, _, _ = select.select([w.stdout], [], [], within)
    assert ready, f"no line within {within} s"
    return w.stdout.readline().rstrip("\n")


def _stop(w: subprocess.Popen[str]) -> None:
    if w.poll() is None:
        w.kill()
        w.wait()


def _cpu_seconds(pid: int) -> float:
    """CPU time of every thread of `pid` (schedstat: nanoseconds, no tick rounding)."""
    return sum(int((task / "schedstat").read_text().split()[0])
               for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9


def _main_thread_wakeups(pid: int) -> int:
    status = Path(f"/proc/{pid}/task/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("voluntary_ctxt_switches:"))


def test_another_process_s_start_and_destroy_are_printed_as_they_happen(state_root, tmp_path):
    _poolkeeper(state_root, "pool-define-as", "ev", "dir", "--target", str(tmp_path / "ev"))
    w = _watcher(state_root)
    try:
        _wait_ready(w, 1)
        _poolkeeper(state_root, "pool-start", "ev", "--build")
        # printed once the verb is done: no wait for a poll round or a timeout
        assert _line(w, 10) == "event 'lifecycle' for storage pool ev: Started"
        _poolkeeper(state_root, "pool-destroy", "ev")
        assert _line(w, 10) == "event 'lifecycle' for storage pool ev: Stopped"
        w.send_signal(signal.SIGINT)  # Ctrl-C: said as virsh says it
        out, err = w.communicate(timeout=30)
    finally:
        _stop(w)
    assert (w.returncode, out, err) == (0, "event loop interrupted\nevents received: 2\n\n",
                                        "")


def test_an_idle_watcher_costs_no_cpu(state_root):
    _poolkeeper(state_root, "pool-list")  # the state root and the default pool made
    w = _watcher(state_root)
    try:
        _wait_ready(w, 2)  # its own watch and its monitor's: started up
        time.sleep(0.5)
        cpu, wakeups = _cpu_seconds(w.pid), _main_thread_wakeups(w.pid)
        time.sleep(3)
        cpu, wakeups = _cpu_seconds(w.pid) - cpu, _main_thread_wakeups(w.pid) - wakeups
        # the journal polled every 0.2 s woke the main thread 15 times in 3 s; the only
        # thread left to wake is the monitor's, for its pools' sizes once a second
        assert wakeups <= 2, f"the main thread woke {wakeups} times in 3 s, idle"
        assert cpu < 0.05, f"{cpu:.3f} s of CPU in 3 s, idle"
        _poolkeeper(state_root, "pool-destroy", "default")  # and it still hears
        assert _line(w, 10) == "event 'lifecycle' for storage pool default: Stopped"
    finally:
        _stop(w)
