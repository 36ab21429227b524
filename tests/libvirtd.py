"""A private libvirtd for tests and benchmarks, reached with `virsh -c URI` (no binding).

libvirtd runs in session mode as user nobody, with HOME and the XDG directories under a
directory the caller gives: its config, pools, socket and logs live there and nowhere
else, so the host's libvirt (if any) is never touched. Its dir pool code is the system
daemon's. It is stopped by its PID on exit, failure or not; `--timeout` makes an orphan
exit by itself. Needs root (to run it as nobody) and Debian's libvirt-daemon.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

NOBODY = 65534  # the daemon runs as this uid/gid (Debian's nobody/nogroup)


class Libvirtd(NamedTuple):
    uri: str
    pid: int


def libvirtd_missing() -> str | None:
    """Why a private libvirtd cannot run here, or None when it can."""
    if shutil.which("libvirtd") is None:
        return "libvirtd is not installed (apt-get install libvirt-daemon)"
    if os.geteuid() != 0:
        return "the private libvirtd is started as user nobody, which needs root"
    return None


def start_libvirtd(base: Path, again: bool = False) -> tuple[subprocess.Popen[bytes], Path]:
    """libvirtd with its files under `base`, and its socket once it is there. `again`:
    in the directories an earlier one (now stopped) used, so the URI is the same."""
    home = base / "libvirt-home"
    run = base / "libvirt-run"
    for path in (home, run):
        path.mkdir(mode=0o700, exist_ok=again)
        os.chown(path, NOBODY, NOBODY)
    env = {
        "HOME": str(home), "XDG_RUNTIME_DIR": str(run), "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"), "XDG_DATA_HOME": str(home / "data"),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
    }
    socket = run / "libvirt" / "libvirt-sock"
    if again:
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()  # the killed one's: its file stays behind
    log_path = base / "libvirtd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["libvirtd", "--timeout", "600"], env=env, user=NOBODY, group=NOBODY,
            extra_groups=[], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private libvirtd did not start; {log_path}: "
                                   + log_path.read_text()[-2000:])
            time.sleep(0.05)
    except BaseException:
        stop_libvirtd(proc)
        raise
    return proc, socket


def stop_libvirtd(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def private_libvirtd(base: Path) -> Iterator[Libvirtd]:
    """libvirtd with its files under `base` (which user nobody must be able to enter)."""
    proc, socket = start_libvirtd(base)
    try:
        yield Libvirtd(f"qemu:///session?socket={socket}", proc.pid)
    finally:
        stop_libvirtd(proc)
