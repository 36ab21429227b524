"""A real iSCSI target for tests: tgtd on 127.0.0.1 with file-backed LUNs (needs root).

`running_tgtd(base, ...)` starts `tgtd -f` listening on 127.0.0.1 only, on a free port, with
a private management channel (`-C N`, so a system tgtd is never touched), creates one target
with sparse-file LUNs, lets one initiator in (by name), optionally behind a CHAP account,
and yields an IscsiTarget. On exit, even after a failure, it kills exactly the tgtd it
started, by PID, and removes the control socket files that tgtd left.

The helpers talk to tgtadm through subprocess directly (never backends.runner), so the
fixture's own commands, CHAP passwords included, never reach poolkeeper's command log.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
TGTD_RUN_DIR = Path("/run/tgtd")  # tgtd's control sockets: socket.N and socket.N.lock
START_TIMEOUT = 20.0
MiB = 1024 * 1024
INITIATOR = "iqn.2024-01.org.poolkeeper.test:initiator"
TARGET = "iqn.2024-01.org.poolkeeper.test:target0"


@dataclass
class Lun:
    number: int
    path: Path
    size: int


@dataclass
class Target:
    tid: int
    iqn: str
    luns: list[Lun]
    chap: tuple[str, str] | None = None


@dataclass
class IscsiTarget:
    host: str
    port: int
    control_port: int
    pid: int
    log: Path
    base: Path
    initiator: str
    targets: list[Target] = field(default_factory=list)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def iqn(self) -> str:
        return self.targets[0].iqn

    @property
    def luns(self) -> list[Lun]:
        return self.targets[0].luns

    @property
    def portal(self) -> str:
        return f"{self.host}:{self.port}"

    def tgtadm(self, *args: str) -> str:
        proc = subprocess.run(["tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args],
                              capture_output=True, text=True, timeout=15, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"tgtadm {' '.join(args[:4])} failed: {proc.stderr.strip()}")
        return proc.stdout

    def add_target(self, iqn: str, sizes: Sequence[int], *,
                   initiator: str | None = None, chap: tuple[str, str] | None = None
                   ) -> Target:
        """A new target with sparse LUNs 1..N (LUN 0 is tgtd's controller)."""
        tid = len(self.targets) + 1
        self.tgtadm("--mode", "target", "--op", "new", "--tid", str(tid), "--targetname", iqn)
        luns = []
        for number, size in enumerate(sizes, start=1):
            path = self.base / f"t{tid}-lun{number}.img"
            with open(path, "wb") as fh:
                fh.truncate(size)
            self.tgtadm("--mode", "logicalunit", "--op", "new", "--tid", str(tid),
                        "--lun", str(number), "--backing-store", str(path))
            luns.append(Lun(number, path, size))
        self.tgtadm("--mode", "target", "--op", "bind", "--tid", str(tid),
                    "--initiator-name", initiator or self.initiator)
        if chap:
            user, password = chap
            self.tgtadm("--mode", "account", "--op", "new", "--user", user,
                        "--password", password)
            self.tgtadm("--mode", "account", "--op", "bind", "--tid", str(tid), "--user", user)
        target = Target(tid, iqn, luns, chap)
        self.targets.append(target)
        return target

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def freeze(self) -> None:
        """The target hangs: still accepting TCP connections (the kernel does that), never
        answering (SIGSTOP). The fixture's SIGKILL ends it all the same."""
        if self.alive:
            os.kill(self.pid, signal.SIGSTOP)

    def kill(self) -> None:
        """The target goes away at once (SIGKILL, by PID)."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(timeout=10)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _free_control_port() -> int:
    for _ in range(100):
        port = random.randint(10000, 32767)  # tgtd takes at most 32767
        if not (TGTD_RUN_DIR / f"socket.{port}").exists() and \
                not (TGTD_RUN_DIR / f"socket.{port}.lock").exists():
            return port
    raise RuntimeError("no free tgtd control port")


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.5):
        return True
    return False


def _start(base: Path, log: Path) -> tuple[subprocess.Popen, int, int]:
    """tgtd on a free port, up and answering tgtadm; retried if the port was taken."""
    last = ""
    for _attempt in range(3):
        port, control = free_port(), _free_control_port()
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["tgtd", "-f", "-C", str(control), "--iscsi", f"portal={HOST}:{port}"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=base, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            ok = subprocess.run(["tgtadm", "-C", str(control), "--lld", "iscsi", "--mode",
                                 "target", "--op", "show"], capture_output=True,
                                timeout=10, check=False).returncode == 0
            if ok and _listening(port):
                return proc, port, control
            time.sleep(0.1)
        last = log.read_text(errors="replace")[-500:]
        _stop(proc, control)
    raise RuntimeError(f"tgtd did not start: {last}")


def _stop(proc: subprocess.Popen, control: int) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)  # tgtd ignores SIGTERM while it has targets
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    for name in (f"socket.{control}", f"socket.{control}.lock"):
        with contextlib.suppress(FileNotFoundError):
            (TGTD_RUN_DIR / name).unlink()


@contextlib.contextmanager
def running_tgtd(base: Path, sizes: Sequence[int] = (8 * MiB, 16 * MiB, 5 * MiB), *,
                 iqn: str = TARGET, initiator: str = INITIATOR,
                 chap: tuple[str, str] | None = None) -> Iterator[IscsiTarget]:
    base.mkdir(parents=True, exist_ok=True)
    log = base / "tgtd.log"
    run_dir_existed = TGTD_RUN_DIR.exists()
    proc, port, control = _start(base, log)
    target = IscsiTarget(HOST, port, control, proc.pid, log, base, initiator, process=proc)
    try:
        target.add_target(iqn, sizes, chap=chap)
        yield target
    finally:
        _stop(proc, control)
        if not run_dir_existed:
            with contextlib.suppress(OSError):
                TGTD_RUN_DIR.rmdir()  # only if empty: another tgtd may use it
