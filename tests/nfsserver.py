"""A real NFS server for tests: nfs-ganesha (VFS FSAL) on 127.0.0.1 (needs root).

`running_nfs_server(base, exports)` starts rpcbind if none is running (NFSv3's MOUNT
protocol, which showmount speaks, is found through it), then ganesha.nfsd with a config
under `base` exporting the given directories, and yields an NfsServer. On exit, even after
a failure, it stops exactly the processes it started, by PID, and removes the rpcbind files
it created; an rpcbind that was already running is used and left alone.

Everything listens on loopback only: ganesha through Bind_addr, rpcbind through sockets we
bind on 127.0.0.1/::1 and hand over as systemd socket activation (Debian's rpcbind 1.2.6
crashes with -h). A machine-wide lock lets only one test NFS server run at a time, since
rpcbind holds one registration per RPC program.

The `nfs_server` fixture is a ready server exporting `tmp_path/export` and
`tmp_path/export two` (a name with a space, as showmount prints it).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

HOST = "127.0.0.1"
RPCBIND_PORT = 111
RPCBIND_SOCKET = Path("/run/rpcbind.sock")
# Files rpcbind leaves behind; we remove the ones that did not exist before we started it.
RPCBIND_FILES = (RPCBIND_SOCKET, Path("/run/rpcbind.lock"), Path("/run/rpcbind/rpcbind.xdr"),
                 Path("/run/rpcbind/portmap.xdr"))
GANESHA_RUN_DIR = Path("/run/ganesha")  # ganesha.nfsd makes it even when given -p
BLKID_CACHE_DIR = Path("/run/blkid")  # and libblkid (the VFS FSAL) its cache
LOCK_FILE = Path("/run/lock/poolkeeper-test-nfsserver.lock")
START_TIMEOUT = 30.0

# Replaces the Python child by rpcbind (same PID) with our sockets as fds 3..N.
_ACTIVATE = r"""
import os, sys
fds = [int(a) for a in sys.argv[2:]]
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[1], ["rpcbind", "-f"])
"""


@dataclass
class NfsServer:
    host: str
    exports: list[Path]
    nfs_port: int
    mount_port: int
    ganesha_pid: int
    rpcbind_pid: int | None  # None: an rpcbind we did not start was used
    log: Path
    pids: list[int] = field(default_factory=list)  # everything we started


def _which(tool: str) -> str:
    for d in (os.environ.get("PATH", "") + ":/usr/sbin:/sbin").split(":"):
        path = os.path.join(d, tool)
        if d and os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"{tool} is not installed")


@contextlib.contextmanager
def _machine_lock(timeout: float = 300.0) -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError("another test NFS server is still running") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def _rpcbind_running() -> bool:
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "rpcbind":
            return True
    with contextlib.suppress(OSError), socket.create_connection((HOST, RPCBIND_PORT), 1):
        return True
    return False


def _loopback_sockets() -> list[socket.socket]:
    """TCP+UDP on 127.0.0.1 and ::1 port 111, and the local socket ganesha registers on."""
    made: list[socket.socket] = []
    try:
        for family, addr in ((socket.AF_INET, HOST), (socket.AF_INET6, "::1")):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                try:
                    sock = socket.socket(family, kind)
                except OSError as exc:
                    if exc.errno == errno.EAFNOSUPPORT:
                        continue  # no IPv6 here: rpcbind cannot open it either
                    raise
                made.append(sock)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((addr, RPCBIND_PORT))
                if kind == socket.SOCK_STREAM:
                    sock.listen(64)
        with contextlib.suppress(FileNotFoundError):
            RPCBIND_SOCKET.unlink()  # no rpcbind runs (checked): a stale socket file
        local = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        made.append(local)
        local.bind(str(RPCBIND_SOCKET))
        local.listen(64)
    except BaseException:
        for sock in made:
            sock.close()
        raise
    return made


def _wait_for(check, timeout: float, what: str, proc: subprocess.Popen | None = None,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    raise RuntimeError(f"{what} did not come up{tail}")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM then SIGKILL, to this PID only."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _rpcinfo_ok() -> bool:
    return subprocess.run(["rpcinfo", "-p", HOST], capture_output=True,
                          timeout=10).returncode == 0


@contextlib.contextmanager
def _rpcbind(base: Path) -> Iterator[int | None]:
    if _rpcbind_running():
        yield None
        return
    existed = {p for p in RPCBIND_FILES if p.exists()}
    socks = _loopback_sockets()
    fds = [s.fileno() for s in socks]
    try:
        with open(base / "rpcbind.err", "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-c", _ACTIVATE, _which("rpcbind"), *map(str, fds)],
                pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                start_new_session=True,
            )
    finally:
        for sock in socks:
            sock.close()
    try:
        _wait_for(_rpcinfo_ok, 10, "rpcbind", proc)
        yield proc.pid
    finally:
        _stop(proc)
        for path in RPCBIND_FILES:
            if path not in existed:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _config(base: Path, exports: list[Path], nfs_port: int, mount_port: int) -> str:
    blocks = [f"""
NFS_CORE_PARAM {{
    Bind_addr = {HOST};
    Protocols = 3, 4;
    NFS_Port = {nfs_port};
    MNT_Port = {mount_port};
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSV4 {{
    Graceless = true;
    RecoveryRoot = "{base / 'recovery'}";
}}
"""]
    for i, path in enumerate(exports, start=1):
        blocks.append(f"""
EXPORT {{
    Export_Id = {100 + i};
    Path = "{path}";
    Pseudo = "{path}";
    Protocols = 3, 4;
    SecType = sys;
    Squash = No_Root_Squash;
    Access_Type = None;
    FSAL {{ Name = VFS; }}
    CLIENT {{ Clients = {HOST}; Access_Type = RW; }}
}}
""")
    return "".join(blocks)


def _exports_listed(exports: list[Path]) -> bool:
    done = subprocess.run(["showmount", "--no-headers", "-e", HOST], capture_output=True,
                          text=True, timeout=10)
    return done.returncode == 0 and all(str(p) in done.stdout for p in exports)


@contextlib.contextmanager
def running_nfs_server(base: Path, exports: list[Path]) -> Iterator[NfsServer]:
    base = Path(base)
    (base / "recovery").mkdir(parents=True, exist_ok=True)
    for path in exports:
        path.mkdir(parents=True, exist_ok=True)
    with _machine_lock(), _rpcbind(base) as rpcbind_pid:
        left_alone = {p for p in (GANESHA_RUN_DIR, BLKID_CACHE_DIR) if p.exists()}
        nfs_port, mount_port = _free_port(), _free_port()
        conf = base / "ganesha.conf"
        conf.write_text(_config(base, exports, nfs_port, mount_port))
        log = base / "ganesha.log"
        proc = subprocess.Popen(
            [_which("ganesha.nfsd"), "-F", "-L", str(log), "-f", str(conf), "-p",
             str(base / "ganesha.pid"), "-N", "NIV_EVENT"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for(lambda: _exports_listed(exports), START_TIMEOUT, "nfs-ganesha", proc, log)
            pids = [proc.pid] + ([rpcbind_pid] if rpcbind_pid else [])
            yield NfsServer(HOST, list(exports), nfs_port, mount_port, proc.pid, rpcbind_pid,
                            log, pids)
        finally:
            _stop(proc)
            _remove_new_dirs(left_alone)


def _remove_new_dirs(existed: set[Path]) -> None:
    """Remove the run-time dirs ganesha made (a 0-byte blkid cache at most)."""
    if BLKID_CACHE_DIR not in existed:
        for name in ("blkid.tab", "blkid.tab.old"):
            cache = BLKID_CACHE_DIR / name
            with contextlib.suppress(OSError):
                if cache.stat().st_size == 0:
                    cache.unlink()
    for path in (GANESHA_RUN_DIR, BLKID_CACHE_DIR):
        if path not in existed:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty: never what others put there


def can_run_nfs_server() -> bool:
    try:
        _which("ganesha.nfsd")
        _which("rpcbind")
        _which("showmount")
    except RuntimeError:
        return False
    return os.geteuid() == 0


@pytest.fixture
def nfs_server(tmp_path: Path) -> Iterator[NfsServer]:
    """nfs-ganesha on 127.0.0.1 exporting tmp_path/export and tmp_path/'export two'."""
    if not can_run_nfs_server():
        pytest.skip("needs root, nfs-ganesha, rpcbind and nfs-common")
    exports = [tmp_path / "export", tmp_path / "export two"]
    with running_nfs_server(tmp_path / "nfs", exports) as server:
        yield server
