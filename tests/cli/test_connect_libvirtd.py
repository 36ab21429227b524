"""`poolkeeper -c URI` against a real private libvirtd (tests/libvirtd.py): a dir pool in
the test's own directory is defined, built, started, filled with volumes, listed, dumped,
emptied, stopped, deleted and undefined over the connection, each step checked on disk
and against `virsh -c URI` on the same pool where virsh defines the output. A stopped
(SIGSTOP) daemon shows the deadline: the command fails saying so instead of hanging.
Needs root (the daemon runs as nobody), libvirt-daemon, qemu-img and libvirt-python.
"""

from __future__ import annotations

import contextlib
import json
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

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
EXTRA_KEYS = ("Format:", "Backing:")  # poolkeeper's vol-info lines after virsh's

try:
    import libvirt  # noqa: F401

    MISSING = libvirtd_missing()
except ImportError:
    MISSING = "libvirt-python is not installed (pip install -e '.[libvirt]')"
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


class Host(NamedTuple):
    uri: str
    pid: int
    pools: Path  # where the daemon (user nobody) may make pool directories

    def pk(self, *args: str, ok: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, "-m", "cli", "-c", self.uri, *args],
                           capture_output=True, text=True, env=env or ENV, cwd=REPO,
                           timeout=120, check=False)
        if ok:
            assert r.returncode == 0, (args, r.stderr)
            assert r.stderr == ""
        return r

    def virsh(self, *args: str) -> str:
        r = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True,
                           env=ENV, timeout=60, check=False)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout


@contextlib.contextmanager
def daemon_in(base: Path) -> Iterator[Host]:
    # not under pytest's tmp dir, which is 0700: libvirtd runs as nobody and must get in
    base.chmod(0o755)
    pools = base / "pools"
    pools.mkdir()
    os.chown(pools, NOBODY, NOBODY)
    with private_libvirtd(base) as daemon:
        yield Host(daemon.uri, daemon.pid, pools)


def same_as_virsh(host: Host, *args: str) -> str:
    ours = host.pk(*args).stdout
    assert ours == host.virsh(*args)
    return ours


def test_dir_pool_lifecycle_over_the_connection(host: Host) -> None:
    target = host.pools / "p"
    assert host.pk("pool-define-as", "p", "dir", "--target", str(target)).stdout == \
        "Pool p defined\n"
    assert not target.exists()
    assert host.pk("pool-build", "p").stdout == "Pool p built\n"
    assert target.is_dir() and target.stat().st_uid == NOBODY  # libvirtd made it
    assert host.pk("pool-start", "p").stdout == "Pool p started\n"
    assert host.pk("pool-autostart", "p").stdout == "Pool p marked as autostarted\n"
    uuid = host.virsh("pool-uuid", "p").strip()
    assert host.pk("pool-uuid", "p").stdout == uuid + "\n"
    assert host.pk("pool-name", uuid).stdout == "p\n"

    assert host.pk("vol-create-as", "p", "a.img", "1M").stdout == "Vol a.img created\n"
    assert (target / "a.img").stat().st_size == 1 << 20
    host.pk("vol-create-as", "p", "base.qcow2", "10M", "--format", "qcow2")
    host.pk("vol-create-as", "p", "top.qcow2", "10M", "--format", "qcow2",
            "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2")
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", str(target / "top.qcow2")], capture_output=True,
        text=True, check=True).stdout)
    assert (info["format"], info["virtual-size"]) == ("qcow2", 10 << 20)
    assert info["backing-filename"] == str(target / "base.qcow2")
    xml = host.pools.parent / "vol.xml"
    xml.write_text("<volume><name>from-file.raw</name><capacity unit='KiB'>64</capacity>"
                   "<target><format type='raw'/></target></volume>\n")
    assert host.pk("vol-create", "p", str(xml)).stdout == \
        f"Vol from-file.raw created from {xml}\n"
    assert (target / "from-file.raw").stat().st_size == 64 << 10
    (target / "outside.img").write_bytes(b"x" * 5000)  # made behind libvirt's back
    assert host.pk("pool-refresh", "p").stdout == "Pool p refreshed\n"

    for args in (("pool-list",), ("pool-list", "--all", "--details"), ("pool-info", "p"),
                 ("pool-info", "--bytes", "p"), ("pool-info", uuid), ("vol-list", "p"),
                 ("vol-list", "p", "--details"), ("pool-list", "--autostart", "--uuid")):
        same_as_virsh(host, *args)
    assert "outside.img" in host.pk("vol-list", "p").stdout
    for vol in ("a.img", "top.qcow2", "from-file.raw", "outside.img"):
        for flags in ((), ("--bytes",), ("--physical",)):
            ours = host.pk("vol-info", *flags, "--pool", "p", vol).stdout
            theirs = host.virsh("vol-info", *flags, "--pool", "p", vol)
            assert "".join(line for line in ours.splitlines(keepends=True)
                           if not line.startswith(EXTRA_KEYS)) == theirs
        assert host.pk("vol-dumpxml", "--pool", "p", vol).stdout + "\n" == \
            host.virsh("vol-dumpxml", "--pool", "p", vol)
        path = str(target / vol)
        assert host.pk("vol-path", "--pool", "p", vol).stdout == path + "\n"
        assert host.pk("vol-key", path).stdout == host.virsh("vol-key", path).strip() + "\n"
        assert host.pk("vol-name", path).stdout == vol + "\n"
    assert host.pk("pool-dumpxml", "p").stdout + "\n" == host.virsh("pool-dumpxml", "p")
    assert host.pk("pool-dumpxml", "--inactive", "p").stdout + "\n" == \
        host.virsh("pool-dumpxml", "--inactive", "p")

    vols = {v["name"]: v for v in json.loads(host.pk("vol-list", "p", "--json").stdout)}
    assert sorted(vols) == ["a.img", "base.qcow2", "from-file.raw", "outside.img",
                            "top.qcow2"]
    assert (vols["top.qcow2"]["format"], vols["top.qcow2"]["backing"],
            vols["top.qcow2"]["backing_format"]) == (
        "qcow2", str(target / "base.qcow2"), "qcow2")
    assert vols["outside.img"]["capacity"] == 5000
    assert json.loads(host.pk("vol-info", "--json", str(target / "a.img")).stdout) == \
        vols["a.img"]
    pool = json.loads(host.pk("pool-info", "--json", "p").stdout)
    assert (pool["name"], pool["uuid"], pool["state"], pool["autostart"], pool["target"]) == (
        "p", uuid, "running", True, str(target))

    # a pool still holding volumes is not deleted: libvirt refuses, nothing is lost
    host.pk("pool-destroy", "p")
    for args in (("pool-list", "--all", "--details"), ("pool-list", "--inactive"),
                 ("pool-info", "p"), ("pool-info", "--bytes", "p")):
        same_as_virsh(host, *args)
    r = host.pk("pool-delete", "p", ok=False)
    assert r.returncode == 1 and "Directory not empty" in r.stderr
    assert (target / "a.img").exists()
    r = host.pk("pool-delete", "--force", "p", ok=False)  # a dir pool's delete is an
    assert r.returncode == 1 and "Directory not empty" in r.stderr  # rmdir, forced or not
    assert (target / "a.img").exists()
    r = host.pk("vol-list", "p", ok=False)
    assert r.returncode == 1 and "is not active" in r.stderr
    host.pk("pool-start", "p")
    for vol in ("a.img", "top.qcow2", "base.qcow2", "outside.img"):
        assert host.pk("vol-delete", "--pool", "p", vol).stdout == f"Vol {vol} deleted\n"
        assert not (target / vol).exists()
    assert host.pk("vol-delete", str(target / "from-file.raw")).stdout == \
        "Vol from-file.raw deleted\n"
    same_as_virsh(host, "vol-list", "p", "--details")
    assert host.pk("pool-autostart", "--disable", "p").stdout == \
        "Pool p unmarked as autostarted\n"
    assert host.pk("pool-destroy", "p").stdout == "Pool p destroyed\n"
    assert host.pk("pool-delete", "p").stdout == "Pool p deleted\n"
    assert not target.exists()
    assert host.pk("pool-undefine", "p").stdout == "Pool p has been undefined\n"
    assert "p" not in host.virsh("pool-list", "--all", "--name").split()


def test_pool_define_from_a_file_and_start_with_build(host: Host) -> None:
    target = host.pools / "q"
    xml = host.pools.parent / "q.xml"
    xml.write_text(f"<pool type='dir'><name>q</name><target><path>{target}</path></target>"
                   "</pool>\n")
    assert host.pk("pool-define", str(xml)).stdout == f"Pool q defined from {xml}\n"
    try:
        assert host.pk("pool-start", "--build", "q").stdout == "Pool q started\n"
        assert target.is_dir()
        same_as_virsh(host, "pool-info", "q")
        bad = host.pools.parent / "bad.xml"
        bad.write_text("<pool type='dir'><name>q2</name></pool>\n")  # no target
        r = host.pk("pool-define", "--validate", str(bad), ok=False)
        assert r.returncode == 1 and r.stderr.startswith("error: cannot define the pool: ")
        assert "q2" not in host.virsh("pool-list", "--all", "--name").split()
    finally:
        host.virsh("pool-destroy", "q")
        host.virsh("pool-delete", "q")
        host.virsh("pool-undefine", "q")


def test_a_stopped_daemon_fails_the_command_on_its_deadline(tmp_path: Path) -> None:
    """SIGSTOP: the daemon's socket still takes the connection, but nothing answers."""
    from backends.libvirt_conn import ConnectionLost
    from backends.libvirt_controller import LibvirtController

    base = Path(tempfile.mkdtemp(prefix="pk-connect-stop-"))
    try:
        with daemon_in(base) as host:
            # keepalive at 60 s: only the deadline ends its wait
            lc = LibvirtController(host.uri, timeout=2, keepalive=(60, 5))
            other = LibvirtController(host.uri, timeout=2)
            os.kill(host.pid, signal.SIGSTOP)
            try:
                # a long call (a build) waits past `timeout`, but keepalive closes the
                # connection once the daemon misses its probes for about that long
                began = time.monotonic()
                with pytest.raises(ConnectionLost, match="keepalive"):
                    other.build_pool("default")
                assert time.monotonic() - began < 10
                other.close()
                began = time.monotonic()
                with pytest.raises(ConnectionLost, match="no answer for 2 s"):
                    lc.list_pools()
                assert time.monotonic() - began < 10
                began = time.monotonic()
                with pytest.raises(ConnectionLost, match="is lost"):  # at once, from now on
                    lc.pool_info("default")
                assert time.monotonic() - began < 1
                lc.close()  # does not wait for the lost connection
                r = host.pk("pool-list", ok=False,
                            env={**ENV, "POOLKEEPER_CONNECT_TIMEOUT": "2"})
                assert r.returncode == 1 and r.stdout == ""
                assert r.stderr.startswith(f"error: cannot connect to '{host.uri}': the "
                                           "connection")
                assert "no answer for 2 s" in r.stderr and r.stderr.count("\n") == 1
                r = host.pk("pool-list", ok=False,
                            env={**ENV, "POOLKEEPER_CONNECT_TIMEOUT": "soon"})
                assert r.stderr.startswith("error: $POOLKEEPER_CONNECT_TIMEOUT takes seconds")
            finally:
                os.kill(host.pid, signal.SIGCONT)
            assert host.pk("pool-list", "--all").returncode == 0  # answered again
    finally:
        shutil.rmtree(base, ignore_errors=True)
