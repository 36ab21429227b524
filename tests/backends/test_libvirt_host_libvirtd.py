"""LibvirtHostController against a real private libvirtd (tests/libvirtd.py) and its dir
pool code: a pool defined, built and started through the controller; volumes created,
uploaded, downloaded, cloned, resized, wiped and deleted as jobs, each checked by its
bytes on disk (sha256, qemu-img); an upload cancelled mid-stream; refresh events when
`virsh pool-refresh` runs in another process; and a daemon killed under the controller:
on_lost is told, and calls fail at once with ConnectionLost.
Needs root (the daemon runs as nobody), libvirt-daemon, qemu-img and libvirt-python.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.errors import StateError
from backends.events import JobProgress, PoolChanged, VolumesChanged
from backends.libvirt_conn import ConnectionLost
from backends.libvirt_host import LibvirtHostController
from backends.model import PoolDef, PoolTarget, VolumeDef, VolumeTarget
from tests.backends.test_libvirt_host_test_driver import Recorder
from tests.cli.test_connect_libvirtd import MISSING, Host, daemon_in
from tests.libvirtd import NOBODY

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
MiB = 1 << 20


def sha(path: Path, length: int | None = None) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read() if length is None else fh.read(length)).hexdigest()


@pytest.fixture
def ctl(host: Host) -> Iterator[LibvirtHostController]:
    controller = LibvirtHostController(host.uri, "h", timeout=20)
    try:
        yield controller
    finally:
        controller.close()


def started_pool(ctl: LibvirtHostController, host: Host, name: str) -> tuple[str, Path]:
    target = host.pools / name
    status = ctl.define_pool_def(PoolDef(type="dir", name=name,
                                         target=PoolTarget(path=str(target))))
    pid = status.name
    assert pid == f"{name}@h" and status.state == "inactive"
    ctl.build_pool(pid).wait(60)
    assert target.is_dir() and target.stat().st_uid == NOBODY  # the daemon made it
    assert ctl.start_pool(pid).state == "running"
    return pid, target


def test_volume_bytes_through_the_controller(ctl: LibvirtHostController, host: Host,
                                             tmp_path: Path) -> None:
    pid, target = started_pool(ctl, host, "bytes")
    seen = Recorder()
    ctl.subscribe(seen)
    assert ctl.list_volumes(pid) == []

    made = ctl.create_volume_def(pid, VolumeDef(name="a.raw", capacity=4 * MiB)).wait(60)
    assert (made.name, made.capacity) == ("a.raw", 4 * MiB)
    assert (target / "a.raw").stat().st_size == 4 * MiB

    data = os.urandom(3 * MiB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    up = ctl.upload_volume(pid, "a.raw", str(src))
    assert (up.pool, up.kind) == (pid, "upload")
    assert up.wait(60) == 3 * MiB
    assert sha(target / "a.raw", 3 * MiB) == hashlib.sha256(data).hexdigest()
    progress = [e.job.total for e in seen.events if isinstance(e, JobProgress) and e.job is up]
    assert progress and progress[-1] == 3 * MiB and up.done == 3 * MiB  # bytes, of a total

    out = tmp_path / "out.bin"
    assert ctl.download_volume(pid, "a.raw", str(out)).wait(60) == 4 * MiB
    assert sha(out) == sha(target / "a.raw")

    clone = ctl.clone_volume(pid, "a.raw", "b.raw")
    assert clone.wait(60).name == "b.raw"
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(target / "a.raw"),
                    str(target / "b.raw")], check=True, capture_output=True)

    q = ctl.create_volume_def(pid, VolumeDef(
        name="c.qcow2", capacity=8 * MiB, target=VolumeTarget(format="qcow2"))).wait(60)
    assert q.format == "qcow2"
    resized = ctl.resize_volume(pid, "c.qcow2", 16 * MiB).wait(60)
    assert resized.capacity == 16 * MiB
    info = subprocess.run(["qemu-img", "info", "--output=json", str(target / "c.qcow2")],
                          capture_output=True, text=True, check=True).stdout
    assert '"virtual-size": 16777216' in info and '"format": "qcow2"' in info
    assert ctl.cached_volumes(pid, ["c.qcow2"])[0].capacity == 16 * MiB

    ctl.wipe_volume(pid, "b.raw").wait(60)
    assert (target / "b.raw").read_bytes() == bytes(4 * MiB)
    assert sha(target / "a.raw", 3 * MiB) == hashlib.sha256(data).hexdigest()  # untouched

    ctl.delete_volume(pid, "b.raw")
    assert not (target / "b.raw").exists()
    assert sorted(v.name for v in ctl.cached_volumes(pid)) == ["a.raw", "c.qcow2"]
    assert any(isinstance(e, VolumesChanged) and e.removed == ("b.raw",) for e in seen.events)


def test_an_upload_is_cancelled_mid_stream(ctl: LibvirtHostController, host: Host,
                                           tmp_path: Path) -> None:
    pid, target = started_pool(ctl, host, "cancel")
    ctl.create_volume_def(pid, VolumeDef(name="v.raw", capacity=64 * MiB)).wait(60)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    job = ctl.upload_volume(pid, "v.raw", str(fifo))
    with open(fifo, "wb") as writer:
        writer.write(b"\x01" * MiB)
        writer.flush()
        deadline = time.monotonic() + 30
        while job.done < MiB:
            assert time.monotonic() < deadline and not job.finished, job.error
            time.sleep(0.05)
        with pytest.raises(StateError, match="jobs running"):
            ctl.stop_pool(pid)
        job.cancel()
        time.sleep(0.5)  # passed on to the stream's own job within a tenth of a second
        with pytest.raises(BrokenPipeError):  # the upload stops reading
            for _ in range(64):
                writer.write(b"\x02" * MiB)
                writer.flush()
    assert job.join(30) and job.state == "cancelled"
    # the stream was aborted: of the 64 MiB offered after the cancel, at most the chunk
    # read then (libvirt_streams.CHUNK) reached the volume
    data = (target / "v.raw").read_bytes()
    assert data[:MiB] == b"\x01" * MiB
    assert data.count(b"\x02") <= 2 * MiB


def test_refresh_events_from_another_process(ctl: LibvirtHostController, host: Host) -> None:
    pid, target = started_pool(ctl, host, "refresh")
    seen = Recorder()
    ctl.subscribe(seen)
    ctl.list_volumes(pid)
    outside = target / "outside.img"
    outside.write_bytes(b"x" * 5000)
    os.chown(outside, NOBODY, NOBODY)
    host.virsh("pool-refresh", "refresh")  # another process, another client
    seen.wait(lambda ev: "refreshed" in seen.pool_reasons(pid), timeout=20)
    seen.wait(lambda ev: any(isinstance(e, VolumesChanged) and "outside.img" in e.added
                             for e in ev), timeout=20)
    seen.wait(lambda ev: "outside.img" in seen.changed(pid), timeout=20)
    [row] = ctl.cached_volumes(pid, ["outside.img"])
    assert (row.capacity, row.pending, row.path) == (5000, False, str(outside))
    (target / "second.img").write_bytes(b"y" * 700)
    os.chown(target / "second.img", NOBODY, NOBODY)
    ctl.refresh_pool(pid)  # the controller's own refresh: the same event, the same relist
    seen.wait(lambda ev: "second.img" in seen.changed(pid), timeout=20)
    assert ctl.cached_volumes(pid, ["second.img"])[0].capacity == 700
    host.virsh("pool-destroy", "refresh")
    seen.wait(lambda ev: "stopped" in seen.pool_reasons(pid), timeout=20)
    assert ctl.cached_volumes(pid) == []
    assert not any(isinstance(e, PoolChanged) and e.pool == "refresh" for e in seen.events)


def test_a_killed_daemon_is_reported_and_calls_fail_fast() -> None:
    base = Path(tempfile.mkdtemp(prefix="pk-host-lost-"))
    try:
        with daemon_in(base) as host:
            told: list[str] = []
            heard = threading.Event()

            def on_lost(why: str) -> None:
                told.append(why)
                heard.set()
            ctl = LibvirtHostController(host.uri, "k", timeout=6, on_lost=on_lost)
            try:
                assert ctl.lost() is None and ctl.list_pools() == []
                os.kill(host.pid, signal.SIGKILL)
                assert heard.wait(20), "on_lost was not called"
                assert ctl.lost() == told[0] and "closed" in told[0]
                began = time.monotonic()
                with pytest.raises(ConnectionLost):
                    ctl.list_pools()
                with pytest.raises(ConnectionLost):
                    ctl.pool_info("x@k")
                with pytest.raises(ConnectionLost):  # not a refusal shown on a form
                    ctl.check_volume_def("x@k", VolumeDef(name="v", capacity=MiB))
                assert time.monotonic() - began < 1.0
                time.sleep(0.5)
                assert len(told) == 1  # once
            finally:
                began = time.monotonic()
                ctl.close()
                assert time.monotonic() - began < 2.0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_secrets_by_usage(ctl: LibvirtHostController, host: Host) -> None:
    usage = "iqn.2026-12.test:pk-host"
    assert not ctl.has_secret(usage)
    ctl.set_secret(usage, "s3cret")  # none defined: a private iSCSI one is made for it
    assert ctl.has_secret(usage)
    [(sdef, has_value)] = [(s, v) for s, v in ctl.list_secrets() if s.usage_id == usage]
    assert (sdef.usage_type, sdef.private, has_value) == ("iscsi", True, True)
    assert usage in host.virsh("secret-list")
    ctl.set_secret(usage, "other")  # the same secret's value changed: no second one
    assert [s.uuid for s, _ in ctl.list_secrets() if s.usage_id == usage] == [sdef.uuid]
    host.virsh("secret-undefine", sdef.uuid)
    assert not ctl.has_secret(usage)


def test_a_stopped_daemon_fails_calls_on_the_deadline() -> None:
    base = Path(tempfile.mkdtemp(prefix="pk-host-stopped-"))
    try:
        with daemon_in(base) as host:
            told: list[str] = []
            ctl = LibvirtHostController(host.uri, "s", timeout=3, on_lost=told.append)
            os.kill(host.pid, signal.SIGSTOP)  # up, but answering nothing
            try:
                began = time.monotonic()
                with pytest.raises(ConnectionLost):
                    ctl.list_pools()
                assert time.monotonic() - began < 10
                deadline = time.monotonic() + 10
                while not told and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert len(told) == 1 and ctl.lost() == told[0]
                began = time.monotonic()
                with pytest.raises(ConnectionLost):
                    ctl.pool_info("p@s")
                assert time.monotonic() - began < 1.0
                began = time.monotonic()
                ctl.close()  # the peer never answers: nothing waits for it
                assert time.monotonic() - began < 2.0
                assert len(told) == 1
            finally:
                os.kill(host.pid, signal.SIGCONT)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_clone_shows_progress_by_the_new_volumes_allocation(
        ctl: LibvirtHostController, host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    from backends import libvirt_host_jobs

    monkeypatch.setattr(libvirt_host_jobs, "POLL", 0.1)  # (a look every 1 s by default)
    pid, target = started_pool(ctl, host, "progress")
    ctl.create_volume_def(pid, VolumeDef(name="big.raw", capacity=256 * MiB,
                                         allocation=256 * MiB)).wait(120)
    seen = Recorder()
    ctl.subscribe(seen)
    job = ctl.clone_volume(pid, "big.raw", "copy.raw")
    job.wait(120)
    totals = {(e.job.done, e.job.total) for e in seen.events
              if isinstance(e, JobProgress) and e.job is job}
    allocation = ctl.lc.volume_info("progress", "big.raw").allocation  # as libvirt says
    # (each look while it runs, and one as it ends: a fast disk copies it between two)
    assert any(total == allocation and 0 < done <= total for done, total in totals), totals
    subprocess.run(["qemu-img", "compare", str(target / "big.raw"), str(target / "copy.raw")],
                   check=True, capture_output=True)
