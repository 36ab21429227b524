"""`poolkeeper -c qemu+ssh://...` for real: an sshd of the test's own on 127.0.0.1
(tests/sshd.py: throwaway keys, strict host keys from the temp dir) in front of a private
libvirtd (tests/libvirtd.py). libvirt runs ssh, logs in as root and, on the far side,
`nc -U` to the daemon's socket (the URI's `socket=`: the daemon is a session daemon of
user nobody, which root may reach). A dir pool is made, filled, listed (compared with
`virsh -c` on the same URI), emptied and removed over that link; a dead or frozen ssh
endpoint fails the verb within its deadline, saying what went wrong.
Needs root, openssh-server, netcat-openbsd, libvirt-daemon and libvirt-python.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.libvirtd import NOBODY, libvirtd_missing, private_libvirtd
from tests.sshd import Sshd, private_sshd, sshd_missing

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "LC_ALL": "C.UTF-8"}

try:
    import libvirt  # noqa: F401

    MISSING = libvirtd_missing() or sshd_missing()
    if MISSING is None and shutil.which("nc") is None:
        MISSING = "nc is not installed (apt-get install netcat-openbsd)"
except ImportError:
    MISSING = "libvirt-python is not installed (pip install -e '.[libvirt]')"
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


class Remote(NamedTuple):
    base: Path
    socket: str  # the private libvirtd's socket, reached through ssh
    pid: int  # the private libvirtd's
    pools: Path  # where the daemon (user nobody) may make pool directories


def pk(uri: str, *args: str, ok: bool = True,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([sys.executable, "-m", "cli", "-c", uri, *args], capture_output=True,
                       text=True, env=env or ENV, cwd=REPO, timeout=120, check=False)
    if ok:
        assert r.returncode == 0, (args, r.stderr)
        assert r.stderr == ""
    return r


def virsh(uri: str, *args: str) -> str:
    r = subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True, env=ENV,
                       timeout=60, check=False)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    # not under pytest's tmp dir, which is 0700: libvirtd runs as nobody and must get in
    base = Path(tempfile.mkdtemp(prefix="pk-connect-ssh-"))
    try:
        base.chmod(0o755)
        pools = base / "pools"
        pools.mkdir()
        os.chown(pools, NOBODY, NOBODY)
        with private_libvirtd(base) as daemon:
            socket = daemon.uri.partition("?socket=")[2]
            assert socket and Path(socket).is_socket()
            yield Remote(base, socket, daemon.pid, pools)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sshd(remote: Remote) -> Iterator[Sshd]:
    with private_sshd(Path(tempfile.mkdtemp(prefix="ssh-", dir=remote.base))) as server:
        yield server


def test_dir_pool_and_volume_over_ssh(remote: Remote, sshd: Sshd) -> None:
    uri = sshd.uri("/session", socket=remote.socket)
    assert uri.startswith(f"qemu+ssh://root@127.0.0.1:{sshd.port}/session?")
    target = remote.pools / "viassh"
    assert pk(uri, "pool-define-as", "viassh", "dir", "--target", str(target)).stdout == \
        "Pool viassh defined\n"
    try:
        assert pk(uri, "pool-build", "viassh").stdout == "Pool viassh built\n"
        assert target.is_dir() and target.stat().st_uid == NOBODY  # the far side made it
        assert pk(uri, "pool-start", "viassh").stdout == "Pool viassh started\n"
        assert pk(uri, "vol-create-as", "viassh", "a.qcow2", "3M", "--format", "qcow2"
                  ).stdout == "Vol a.qcow2 created\n"
        assert pk(uri, "vol-create-as", "viassh", "b.img", "1M").stdout == \
            "Vol b.img created\n"
        assert (target / "b.img").stat().st_size == 1 << 20
        assert (target / "a.qcow2").read_bytes()[:4] == b"QFI\xfb"

        details = pk(uri, "vol-list", "viassh", "--details").stdout
        assert details == virsh(uri, "vol-list", "viassh", "--details")
        rows = [line.split()[0] for line in details.splitlines()[2:] if line.strip()]
        assert rows == ["a.qcow2", "b.img"]
        assert pk(uri, "vol-list", "viassh").stdout == virsh(uri, "vol-list", "viassh")
        assert pk(uri, "pool-list", "--all", "--details").stdout == \
            virsh(uri, "pool-list", "--all", "--details")
        # the same daemon, seen without ssh, agrees: the link added nothing and lost nothing
        local = f"qemu:///session?socket={remote.socket}"
        assert pk(local, "vol-list", "viassh", "--details").stdout == details

        assert pk(uri, "vol-delete", "--pool", "viassh", "a.qcow2").stdout == \
            "Vol a.qcow2 deleted\n"
        assert pk(uri, "vol-delete", str(target / "b.img")).stdout == "Vol b.img deleted\n"
        assert sorted(os.listdir(target)) == []
        assert pk(uri, "vol-list", "viassh", "--details").stdout == \
            virsh(uri, "vol-list", "viassh", "--details")
        assert pk(uri, "pool-destroy", "viassh").stdout == "Pool viassh destroyed\n"
        assert pk(uri, "pool-delete", "viassh").stdout == "Pool viassh deleted\n"
        assert not target.exists()
        assert pk(uri, "pool-undefine", "viassh").stdout == "Pool viassh has been undefined\n"
        assert "viassh" not in virsh(uri, "pool-list", "--all", "--name").split()
    finally:  # leave the shared daemon clean for the next test, whatever failed
        for verb in ("pool-destroy", "pool-delete", "pool-undefine"):
            subprocess.run(["virsh", "-c", f"qemu:///session?socket={remote.socket}", verb,
                            "viassh"], capture_output=True, check=False, timeout=60)


def test_a_wrong_key_is_refused_with_ssh_s_reason(remote: Remote, sshd: Sshd) -> None:
    other = sshd.key.parent / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    uri = sshd.uri("/session", socket=remote.socket).replace(str(sshd.key), str(other))
    r = pk(uri, "pool-list", ok=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"error: cannot connect to '{uri}': ")
    assert "Permission denied (publickey)" in r.stderr


def test_a_wrong_socket_on_the_far_side_says_what_nc_said(remote: Remote, sshd: Sshd) -> None:
    uri = sshd.uri("/session", socket=str(remote.base / "no-such-sock"))
    r = pk(uri, "pool-list", ok=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"error: cannot connect to '{uri}': ")
    assert f"nc: {remote.base / 'no-such-sock'}: No such file or directory" in r.stderr


def test_a_dead_ssh_endpoint_fails_at_once_saying_why(remote: Remote, sshd: Sshd) -> None:
    uri = sshd.uri("/session", socket=remote.socket)
    assert pk(uri, "pool-list").returncode == 0
    os.kill(sshd.pid, signal.SIGTERM)  # the fixture's stop() reaps it
    deadline = time.monotonic() + 10
    while _listening(sshd.port) and time.monotonic() < deadline:
        time.sleep(0.05)
    began = time.monotonic()
    r = pk(uri, "vol-list", "default", ok=False, env={**ENV, "POOLKEEPER_CONNECT_TIMEOUT": "3"})
    assert time.monotonic() - began < 10
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"error: cannot connect to '{uri}': ")
    assert "Connection refused" in r.stderr and r.stderr.count("\n") == 1


def test_a_frozen_ssh_endpoint_fails_on_the_deadline(remote: Remote, sshd: Sshd) -> None:
    """SIGSTOP: the kernel still takes the TCP connection, but sshd never answers."""
    uri = sshd.uri("/session", socket=remote.socket)
    os.kill(sshd.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        r = pk(uri, "pool-list", ok=False, env={**ENV, "POOLKEEPER_CONNECT_TIMEOUT": "2"})
        assert time.monotonic() - began < 8  # 2 s and the start-up, not ssh's 10 s
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith(f"error: cannot connect to '{uri}': the connection")
        assert "no answer for 2 s" in r.stderr and r.stderr.count("\n") == 1
    finally:
        os.kill(sshd.pid, signal.SIGCONT)
    assert pk(uri, "pool-list").returncode == 0  # answers again


def test_a_frozen_daemon_behind_ssh_fails_on_the_deadline(remote: Remote, sshd: Sshd) -> None:
    """ssh and nc are up; libvirtd on the far side does not answer."""
    uri = sshd.uri("/session", socket=remote.socket)
    os.kill(remote.pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        r = pk(uri, "pool-list", ok=False, env={**ENV, "POOLKEEPER_CONNECT_TIMEOUT": "2"})
        assert time.monotonic() - began < 8
        assert r.returncode == 1 and r.stdout == ""
        assert "no answer for 2 s" in r.stderr and r.stderr.count("\n") == 1
    finally:
        os.kill(remote.pid, signal.SIGCONT)
    assert pk(uri, "pool-list").returncode == 0


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
