"""Every tool a job runs and every wait on a pipe can be cancelled.

A scrub wipe (`gutmann`: 35 passes, hours on a big disk), a download into a FIFO nobody
reads (or whose reader stopped), an upload from a FIFO nobody writes (or whose writer went
quiet) used to ignore a cancel: the job, its locks and the CLI stayed until the tool or the
other side finished, which may be never. Now the cancel (job.cancel(): the TUI's jobs
panel; Ctrl-C, SIGTERM and SIGHUP in the CLI) kills the tool's whole process group, ends
the waits, and the job ends "cancelled" with its volume free and nothing half-made.

Checked through the controller (the TUI's path: job.cancel() from another thread) and
with the real CLI as a fresh process sent SIGINT, SIGTERM and SIGHUP. A scrub that was
stopped never wrote its "SCRUBBED!" signature (it writes that at the end of its passes),
which tells a killed scrub from one that ran to its end. Waits here are generous bounds
on a hang, never assertions about speed.

What a cancel never kills (runner.NOT_KILLED_ON_CANCEL): the short tools that change
metadata. A cancel (or Ctrl-C) while `losetup NODE IMAGE` runs used to kill it after it
had attached, and the claim was dropped: a loop device nobody recorded, and the image was
refused until someone ran `losetup -d`. A cancel while parted makes a partition could tear
the table. Now such a tool runs to its end (each is wrapped here so that it lingers after
doing its work, until the test has cancelled), the job stops right after it, and its
cleanup removes what it made: no loop device, no partition, no record is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from backends import runner
from backends.controller import StorageController
from backends.errors import Cancelled
from backends.jobs import Job
from backends.model import (
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    VolumeDef,
    VolumeTarget,
)
from tests.conftest import make_dir_pool
from tests.loopfs import can_use_loop_devices, loops_of
from tests.lvmenv import can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')
from tests.reliability.test_block_crash import images, loop_disk, sfdisk  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
GiB = 1 << 30
HANG = 120.0  # a job or CLI not done after this long is hung (the old code hung forever)
SCRUB_HANG = 600.0  # the old code let a 1 GiB gutmann scrub run to its end (about a minute)
F_GETPIPE_SZ = 1032  # fcntl: the capacity of a pipe (Linux)


# == helpers ==============================================================================
def wait_for(check: Callable[[], object], what: str, bound: float = HANG) -> object:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    pytest.fail(f"{what} did not happen within {bound:g} s")


def child_named(parent: int, name: str) -> psutil.Process | None:
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(parent).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if proc.name() == name and proc.status() != psutil.STATUS_ZOMBIE:
                    return proc
    return None


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def killing_group_at_end(holder: list[int]) -> Iterator[None]:
    """Whatever happens, the tool group the test made (through poolkeeper) goes at the end."""
    try:
        yield
    finally:
        for pgid in holder:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def scrubbed(path: Path) -> bool:
    with open(path, "rb") as fh:
        return b"SCRUBBED!" in fh.read(4096)


def volume_is_free(ctl: StorageController, pool: str, name: str) -> bool:
    """A write verb takes the volume's exclusive lock: it works only if the job let go."""
    ctl.wipe_volume(pool, name, "zero").wait(HANG)
    return True


@pytest.fixture
def big(ctl: StorageController, pool: Path) -> Path:
    """A 1 GiB sparse raw volume 'big.img' (a gutmann scrub of it takes about a minute)."""
    ctl.create_volume_def("p", VolumeDef(name="big.img", capacity=GiB, allocation=0)).wait(60)
    return pool / "big.img"


@pytest.fixture
def small(ctl: StorageController, pool: Path) -> Path:
    ctl.create_volume_def("p", VolumeDef(name="v.img", capacity=4 * MiB, allocation=0)).wait(60)
    (pool / "v.img").write_bytes(b"v" * (4 * MiB))
    return pool / "v.img"


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO; at the end anyone still blocked opening it (the old code) is let go."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    yield path
    for flags in (os.O_RDONLY | os.O_NONBLOCK, os.O_WRONLY | os.O_NONBLOCK):
        with contextlib.suppress(OSError):
            os.close(os.open(path, flags))


def cancel_when_running(job: Job) -> None:
    wait_for(lambda: job.state == "running" or job.finished, f"job {job.description} to run")
    job.cancel()


def ends_cancelled(job: Job, bound: float = HANG) -> None:
    with pytest.raises(Cancelled):
        job.wait(bound)
    assert job.state == "cancelled"


# == through the controller (what the TUI's cancel does) ====================================
def test_a_scrub_wipe_is_killed_with_its_group(ctl, big):
    job = ctl.wipe_volume("p", "big.img", "gutmann")
    pgids: list[int] = []
    with killing_group_at_end(pgids):
        scrub = wait_for(lambda: child_named(os.getpid(), "scrub"), "scrub to start")
        pgids.append(os.getpgid(scrub.pid))
        assert pgids[0] == scrub.pid  # it leads its own group
        threading.Thread(target=job.cancel).start()  # from another thread, as the TUI does
        ends_cancelled(job, SCRUB_HANG)
        assert group_gone(pgids[0])
    assert not scrubbed(big)  # stopped mid-way, not run to its end
    last = [c for c in runner.COMMAND_LOG.entries if c.argv[0] == "scrub"][-1]
    assert last.returncode is None and "killed on cancel" in last.stderr
    assert volume_is_free(ctl, "p", "big.img")


def test_a_download_into_a_fifo_nobody_reads_is_cancelled(ctl, small, fifo, tmp_path):
    job = ctl.download_volume("p", "v.img", str(fifo))
    cancel_when_running(job)
    ends_cancelled(job)
    assert fifo.is_fifo() and sorted(os.listdir(tmp_path)) == ["fifo", "images", "state"]
    assert volume_is_free(ctl, "p", "v.img")


def test_a_download_whose_reader_stopped_reading_is_cancelled(ctl, small, fifo):
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        job = ctl.download_volume("p", "v.img", str(fifo))
        # The download fills the pipe, then waits for a read that never comes.
        wait_for(lambda: _pipe_full(reader) or job.finished, "the download to fill the pipe")
        job.cancel()
        ends_cancelled(job)
    finally:
        os.close(reader)
    assert volume_is_free(ctl, "p", "v.img")


def _pipe_full(reader: int) -> bool:
    waiting = struct.unpack("i", fcntl.ioctl(reader, termios.FIONREAD, b"\0" * 4))[0]
    return waiting >= fcntl.fcntl(reader, F_GETPIPE_SZ)


def test_an_upload_from_a_fifo_nobody_writes_is_cancelled(ctl, small, fifo):
    job = ctl.upload_volume("p", "v.img", str(fifo))
    cancel_when_running(job)
    ends_cancelled(job)
    assert small.read_bytes() == b"v" * (4 * MiB)
    assert volume_is_free(ctl, "p", "v.img")


def test_an_upload_whose_writer_went_quiet_is_cancelled(ctl, small, fifo):
    job = ctl.upload_volume("p", "v.img", str(fifo))
    # a writer that opens the FIFO (once the upload has it open), writes a little, then
    # nothing more; once that little is in the volume, the upload is waiting for the rest
    writer = wait_for(lambda: _open_writer(fifo), "the upload to open the FIFO")
    try:
        os.write(writer, b"w" * 4096)
        wait_for(lambda: small.read_bytes()[:4096] == b"w" * 4096 or job.finished,
                 "the upload to take the first bytes")
        job.cancel()
        ends_cancelled(job)
    finally:
        os.close(writer)
    assert small.read_bytes() == b"w" * 4096 + b"v" * (4 * MiB - 4096)
    assert volume_is_free(ctl, "p", "v.img")


def _open_writer(fifo: Path) -> int | None:
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: nobody has it open for reading yet
        return None


def test_a_qemu_img_convert_is_still_cancelled(ctl, pool):
    """A clone into qcow2 (qemu-img convert with its progress meter) cancelled from another
    thread: qemu-img is gone and no half-made volume is left."""
    ctl.create_volume_def("p", VolumeDef(name="src.img", capacity=768 * MiB)).wait(120)
    with open(pool / "src.img", "r+b") as fh:
        for _ in range(48):
            fh.write(b"\x01" * (16 * MiB))
    xml = ("<volume><name>dst.qcow2</name><capacity>1</capacity>"
           "<target><format type='qcow2'/></target></volume>")
    job = ctl.clone_volume("p", "src.img", "dst.qcow2", xml=xml)
    qemu = wait_for(lambda: child_named(os.getpid(), "qemu-img") or job.finished,
                    "qemu-img convert to start")
    if job.finished:
        pytest.fail("the conversion ended before it could be cancelled; make the source bigger")
    threading.Thread(target=job.cancel).start()
    ends_cancelled(job)
    assert group_gone(qemu.pid)
    assert sorted(os.listdir(pool)) == ["src.img"]


# == the CLI as a fresh process =============================================================
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def start_cli(state_root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui", "--root", str(state_root), *args],
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stopped_by(proc: subprocess.Popen, sig: signal.Signals, bound: float = HANG) -> str:
    """Send `sig`; the CLI must exit 1 saying it cancelled. Returns its stderr."""
    proc.send_signal(sig)
    try:
        _out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the CLI was still running {bound:g} s after {sig.name}")
    assert proc.returncode == 1, err
    assert "error: cancelled" in err
    return err


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_the_cli_cancels_a_scrub_wipe_on_a_signal(ctl, big, state_root, sig):
    proc = start_cli(state_root, "vol-wipe", "big.img", "--pool", "p", "--algorithm", "gutmann")
    pgids: list[int] = []
    try:
        with killing_group_at_end(pgids):
            scrub = wait_for(lambda: child_named(proc.pid, "scrub") or proc.poll() is not None,
                             "scrub to start")
            assert proc.poll() is None, proc.communicate()
            pgids.append(scrub.pid)
            stopped_by(proc, sig, SCRUB_HANG)
            assert group_gone(scrub.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not scrubbed(big)
    assert volume_is_free(ctl, "p", "big.img")


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
@pytest.mark.parametrize("verb", ["vol-download", "vol-upload"])
def test_the_cli_cancels_a_transfer_stuck_on_a_fifo(ctl, small, fifo, state_root, tmp_path,
                                                    verb, sig):
    proc = start_cli(state_root, verb, "v.img", str(fifo), "--pool", "p")
    try:
        # the job runs once the CLI has the volume open (the driver opens it first)
        wait_for(lambda: _has_open(proc.pid, small) or proc.poll() is not None,
                 "the transfer to start")
        assert proc.poll() is None, proc.communicate()
        stopped_by(proc, sig)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert fifo.is_fifo() and sorted(os.listdir(tmp_path)) == ["fifo", "images", "state"]
    assert small.read_bytes() == b"v" * (4 * MiB)
    assert volume_is_free(ctl, "p", "v.img")


def _has_open(pid: int, path: Path) -> bool:
    want = os.stat(path)
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                st = os.stat(f"/proc/{pid}/fd/{fd}")
                if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
                    return True
    return False



# == metadata tools run to their end; the job's cleanup removes what they made =============
needs_loops = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")


def lingering_wrapper(bin_dir: Path, tool: str, when: str, marks: Path) -> None:
    """bin_dir/tool runs the real tool; when its argv contains `when`, it then marks
    `ran`, lingers until the test has made `go` (at most 120 s) and a second more (ten of
    the runner's looks at the cancel flag), and marks `finished`: a wrapper killed on
    cancel never gets there. First in PATH, so poolkeeper's runner finds it."""
    real = subprocess.run(["sh", "-c", f"PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH "
                           f"command -v {tool}"], capture_output=True, text=True,
                          check=True).stdout.strip()
    bin_dir.mkdir(exist_ok=True)
    marks.mkdir(exist_ok=True)
    wrapper = bin_dir / tool
    wrapper.write_text(
        "#!/bin/sh\n"
        f'"{real}" "$@"\n'
        "rc=$?\n"
        f'case " $* " in *"{when}"*)\n'
        f'  touch "{marks}/ran"\n'
        f'  i=0; while [ ! -e "{marks}/go" ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n'
        "  sleep 1\n"
        f'  touch "{marks}/finished";;\n'
        "esac\n"
        "exit $rc\n")
    wrapper.chmod(0o755)


def cancel_while_it_lingers(job: Job, marks: Path) -> None:
    wait_for(lambda: (marks / "ran").exists() or job.finished, "the wrapped tool to run")
    assert not job.finished, job.error
    threading.Thread(target=job.cancel).start()  # from another thread, as the TUI does
    wait_for(lambda: job.cancelled, "the cancel")
    (marks / "go").touch()


def claims_of(state_root: Path) -> list[Path]:
    return sorted((state_root / "loops").glob("*.json"))


@needs_loops
@pytest.mark.parametrize("how", ["build-cancelled", "start-interrupted", "losetup-killed"])
def test_a_cancel_while_losetup_attaches_leaks_no_loop_device(
        ctl, state_root, tmp_path, images, monkeypatch, how):  # noqa: F811
    """build: a job cancelled from another thread; start: the CLI (a fresh process) sent
    SIGINT, which the CLI turns into KeyboardInterrupt in its main thread. Either way
    losetup attaches, is not killed, and the attachment is released again (or left
    claimed, for the next use to release): the next build and start work. And a losetup
    that something else kills right after its attach (SIGKILL to its group) leaks
    nothing either: the node shows the claimed image, so the attachment is ours."""
    image = images("pool.img", 64)
    ctl.define_pool_def(PoolDef(type="fs", name="p", source=PoolSource(
        devices=[SourceDevice(str(image))], format="ext4"),
        target=PoolTarget(path=str(tmp_path / "mnt"))))
    if how == "start-interrupted":
        ctl.build_pool("p").wait(HANG)
    bin_dir, marks = tmp_path / "bin", tmp_path / "marks"
    lingering_wrapper(bin_dir, "losetup", f" {image} ", marks)
    path = os.environ["PATH"]

    if how == "build-cancelled":
        monkeypatch.setenv("PATH", f"{bin_dir}:{path}")
        job = ctl.build_pool("p", overwrite=True)
        cancel_while_it_lingers(job, marks)
        ends_cancelled(job)
        monkeypatch.setenv("PATH", path)
        assert (marks / "finished").exists()  # losetup's run was not cut short
    elif how == "losetup-killed":
        monkeypatch.setenv("PATH", f"{bin_dir}:{path}")
        job = ctl.build_pool("p", overwrite=True)
        wait_for(lambda: (marks / "ran").exists() or job.finished, "losetup to attach")
        wrapper = child_named(os.getpid(), "losetup")
        assert wrapper is not None and not job.finished, job.error
        os.killpg(wrapper.pid, signal.SIGKILL)  # it leads its own group
        with pytest.raises(Exception, match="losetup"):
            job.wait(HANG)
        monkeypatch.setenv("PATH", path)
    else:
        proc = subprocess.Popen([sys.executable, "-m", "tui", "--root", str(state_root),
                                 "pool-start", "p"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONPATH=str(REPO),
                                         PATH=f"{bin_dir}:{path}"))
        try:
            wait_for(lambda: (marks / "ran").exists() or proc.poll() is not None,
                     "losetup to attach")
            assert proc.poll() is None, proc.communicate()
            proc.send_signal(signal.SIGINT)
            (marks / "go").touch()
            _out, err = proc.communicate(timeout=HANG)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode != 0 and "Traceback" not in err, err
        assert not (state_root / "run" / "p.xml").exists()  # not started
        assert (marks / "finished").exists()  # losetup's run was not cut short

    leftover = loops_of(image)
    assert leftover == [] or claims_of(state_root), f"{leftover} attached, unclaimed"
    # The next use works: a leftover (claimed) device is released, nothing refused.
    with StorageController(state_root, create_default=False, autostart=False) as again:
        again.build_pool("p", overwrite=True).wait(HANG)
        assert loops_of(image) == []
        again.start_pool("p")
        assert len(loops_of(image)) == 1
        again.stop_pool("p")
    assert loops_of(image) == [] and claims_of(state_root) == []


@needs_loops
@pytest.mark.parametrize("verb", ["create", "clone"])
def test_a_cancel_while_parted_makes_a_partition_lets_it_finish_and_removes_it(
        ctl, state_root, tmp_path, loop_disk, monkeypatch, verb):  # noqa: F811
    """The partition table is never left half-written: parted mkpart runs to its end,
    the job stops right after it (cancelled) and removes the partition it made (and, for
    a clone into a dos table, the record marking it as being filled)."""
    dev = loop_disk(64)
    ctl.define_pool_def(PoolDef(type="disk", name="d", source=PoolSource(
        devices=[SourceDevice(dev)], format="dos"), target=PoolTarget(path="/dev")))
    ctl.build_pool("d").wait(HANG)
    ctl.start_pool("d")
    name = f"{Path(dev).name}p1"
    if verb == "clone":
        files = make_dir_pool(ctl, "files", tmp_path / "files")
        (files / "src.raw").write_bytes(os.urandom(4 * MiB))
    bin_dir, marks = tmp_path / "bin", tmp_path / "marks"
    lingering_wrapper(bin_dir, "parted", " mkpart ", marks)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{bin_dir}:{path}")

    if verb == "create":
        job = ctl.create_volume_def("d", VolumeDef(name=name, capacity=8 * MiB))
    else:
        job = ctl.clone_volume("files", "src.raw", name, target_pool="d")
    cancel_while_it_lingers(job, marks)
    ends_cancelled(job)
    monkeypatch.setenv("PATH", path)

    assert (marks / "finished").exists()  # parted's run was not cut short
    assert sfdisk(dev).get("partitions", []) == []  # and the partition it made is gone
    assert not Path(f"/sys/block/{Path(dev).name}/{name}").exists()
    records = state_root / "storage" / "partitions-being-filled"
    assert not records.exists() or list(records.glob("*.json")) == []
    assert ctl.refresh_pool("d") == []
    ctl.create_volume_def("d", VolumeDef(name=name, capacity=8 * MiB)).wait(HANG)
    assert [v.name for v in ctl.refresh_pool("d")] == [name]


@pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")
def test_a_cancel_while_lvcreate_runs_lets_it_finish_and_removes_the_lv(ctl, lvm, tmp_path,
                                                                       monkeypatch):
    """LVM metadata is never left half-written: lvcreate runs to its end, the create job
    then sees the cancel and removes the LV it made."""
    vg = "pkcancel" + os.urandom(3).hex()
    dev = lvm.disk(64)
    ctl.define_pool_def(PoolDef(type="logical", name=vg, source=PoolSource(
        name=vg, devices=[SourceDevice(dev)], format="lvm2"), target=PoolTarget(f"/dev/{vg}")))
    ctl.build_pool(vg).wait(HANG)
    ctl.start_pool(vg)
    bin_dir, marks = tmp_path / "bin", tmp_path / "marks"
    lingering_wrapper(bin_dir, "lvcreate", " lv1 ", marks)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{bin_dir}:{path}")
    job = ctl.create_volume_def(vg, VolumeDef(name="lv1", capacity=8 * MiB))
    cancel_while_it_lingers(job, marks)
    ends_cancelled(job)
    monkeypatch.setenv("PATH", path)

    assert (marks / "finished").exists()  # lvcreate's run was not cut short
    assert lvm.report("lvs", "-o", "lv_name", vg, kind="lv") == []  # and its LV is gone
    assert ctl.refresh_pool(vg) == []


def test_a_cancel_while_qemu_img_resizes_an_image_lets_it_finish_and_ends_done(
        ctl, pool, tmp_path, monkeypatch):
    """qemu-img resize of an existing qcow2 is never cut short; once it has run, the resize
    is made, so the job says done (not "cancelled" for a change it made) and the volume
    has its new size."""
    ctl.create_volume_def("p", VolumeDef(name="img.qcow2", capacity=8 * MiB,
                                         target=VolumeTarget(format="qcow2"))).wait(HANG)
    bin_dir, marks = tmp_path / "bin", tmp_path / "marks"
    lingering_wrapper(bin_dir, "qemu-img", " resize ", marks)
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", f"{bin_dir}:{path}")
    job = ctl.resize_volume("p", "img.qcow2", 16 * MiB)
    cancel_while_it_lingers(job, marks)
    wait_for(lambda: job.finished, "the resize job to end")
    monkeypatch.setenv("PATH", path)
    assert (marks / "finished").exists()  # qemu-img's run was not cut short
    assert job.state == "done", (job.state, job.error)
    assert ctl.volume_info("p", "img.qcow2").capacity == 16 * MiB
