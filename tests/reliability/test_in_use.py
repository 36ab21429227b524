"""Resize, upload and wipe refuse a volume another process is using.

A running guest holds its disk open read-write. Growing a volume under it (qemu-img resize
of an image in use corrupts it), cutting off its end, overwriting it or wiping it are all
refused, naming the process; a shrink (`--shrink`), a wipe and an upload are refused even
to a reader (a backup copying it), a grow is not. Checked with real child processes
holding the volume open read-write and read-only, on file volumes (raw and qcow2, opened
through another name too) and on a partition of a disk pool (a block device). After the
holder is gone, the same verb works (nothing was left locked).

A file volume attached to a loop device is in use with no process holding it open: a
read-write attachment (mounted or not) refuses all of these and delete, naming the loop
device and its mount; a read-only one refuses all but a grow.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import InUse
from backends.model import VolumeDef, VolumeTarget
from tests.conftest import gpt_disk_pool
from tests.loopfs import can_use_loop_devices, release_partitioned
from tests.reliability.test_external_files import workers  # noqa: F401 (a fixture)

MiB = 1 << 20
needs_loops = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")
MODES = {"rw": "r+b", "ro": "rb"}


@pytest.fixture
def holder() -> Iterator[Callable[[str, str], subprocess.Popen]]:
    """holder(path, "rw"|"ro"): a process holding `path` open until the test ends."""
    procs: list[subprocess.Popen] = []

    def hold(path: str, mode: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", f"import time; f = open({path!r}, {MODES[mode]!r}); "
             "print('open', flush=True); time.sleep(600)"],
            stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        return proc

    try:
        yield hold
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def release(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def named(proc: subprocess.Popen, mode: str) -> str:
    how = "for writing" if mode == "rw" else "read-only"
    return rf"open by \S+ \(pid {proc.pid}\) {how}"


# == file volumes =========================================================================
@pytest.fixture(params=["raw", "qcow2"])
def volume(request, ctl: StorageController, pool: Path) -> Path:
    ctl.create_volume_def("p", VolumeDef(name="v", capacity=4 * MiB, allocation=0,
                                         target=VolumeTarget(format=request.param))).wait(60)
    return pool / "v"


@pytest.mark.parametrize("through", ["name", "hard link"])
def test_a_volume_open_for_writing_is_not_resized_wiped_or_uploaded_to(
        ctl, pool, volume, holder, tmp_path, through):
    path = volume
    if through == "hard link":
        path = tmp_path / "guest-disk"
        os.link(volume, path)
    guest = holder(str(path), "rw")
    payload = tmp_path / "payload"
    payload.write_bytes(b"u" * 4096)
    before = (volume.read_bytes(), ctl.volume_info("p", "v").capacity)
    for refused in (lambda: ctl.resize_volume("p", "v", 8 * MiB),
                    lambda: ctl.resize_volume("p", "v", 2 * MiB, shrink=True),
                    lambda: ctl.wipe_volume("p", "v"),
                    lambda: ctl.upload_volume("p", "v", str(payload))):
        with pytest.raises(InUse, match=named(guest, "rw")):
            refused().wait(60)
    assert (volume.read_bytes(), ctl.volume_info("p", "v").capacity) == before
    release(guest)
    assert ctl.resize_volume("p", "v", 8 * MiB).wait(60).capacity == 8 * MiB


def test_a_reader_does_not_stop_a_grow_but_stops_the_rest(ctl, pool, volume, holder, tmp_path):
    reader = holder(str(volume), "ro")
    payload = tmp_path / "payload"
    payload.write_bytes(b"u" * 4096)
    for refused in (lambda: ctl.resize_volume("p", "v", 2 * MiB, shrink=True),
                    lambda: ctl.resize_volume("p", "v", 8 * MiB, shrink=True),
                    lambda: ctl.wipe_volume("p", "v"),
                    lambda: ctl.upload_volume("p", "v", str(payload))):
        with pytest.raises(InUse, match=named(reader, "ro")):
            refused().wait(60)
    assert ctl.volume_info("p", "v").capacity == 4 * MiB
    assert ctl.resize_volume("p", "v", 8 * MiB).wait(60).capacity == 8 * MiB


def test_the_cli_names_the_process(pool, volume, holder, state_root):
    guest = holder(str(volume), "rw")
    done = subprocess.run(
        [sys.executable, "-m", "tui", "--root", str(state_root), "vol-resize", "v", "8M",
         "--pool", "p"], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    assert done.returncode == 1
    assert f"(pid {guest.pid}) for writing" in done.stderr


# == a block device (a partition of a disk pool on a loop device) ==========================
@pytest.fixture
def partition(ctl: StorageController, tmp_path: Path) -> Iterator[str]:
    if not can_use_loop_devices():
        pytest.skip("needs root and loop devices")
    with gpt_disk_pool(ctl, tmp_path / "disk.img") as disk:
        name = f"{os.path.basename(disk)}p1"
        ctl.create_volume_def("d", VolumeDef(name=name, capacity=8 * MiB)).wait(120)
        yield name


@needs_loops
def test_a_partition_open_for_writing_is_not_resized_wiped_or_uploaded_to(
        ctl, partition, holder, tmp_path):
    payload = tmp_path / "payload"
    payload.write_bytes(b"u" * 4096)
    guest = holder(f"/dev/{partition}", "rw")
    for refused in (lambda: ctl.resize_volume("d", partition, 16 * MiB),
                    lambda: ctl.wipe_volume("d", partition),
                    lambda: ctl.upload_volume("d", partition, str(payload))):
        with pytest.raises(InUse, match=named(guest, "rw")):
            refused().wait(60)
    assert ctl.volume_info("d", partition).capacity == 8 * MiB
    release(guest)
    reader = holder(f"/dev/{partition}", "ro")
    with pytest.raises(InUse, match=named(reader, "ro")):
        ctl.wipe_volume("d", partition).wait(60)
    assert ctl.resize_volume("d", partition, 16 * MiB).wait(60).capacity == 16 * MiB


# == a file volume attached to a loop device ================
@contextlib.contextmanager
def attached(image: Path, *, read_only: bool = False) -> Iterator[str]:
    """`losetup -f --show [-r] image`; detached at the end (only if still on our image)."""
    dev = subprocess.run(["losetup", "-f", "--show", *(["-r"] if read_only else []),
                          str(image)], check=True, capture_output=True, text=True).stdout.strip()
    try:
        yield dev
    finally:
        release_partitioned(dev, image)


@contextlib.contextmanager
def mounted(dev: str, at: Path) -> Iterator[Path]:
    at.mkdir()
    subprocess.run(["mount", dev, str(at)], check=True, capture_output=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", str(at)], check=True, capture_output=True)


@needs_loops
def test_a_volume_attached_to_a_loop_device_and_mounted_is_in_use(ctl, pool, tmp_path):
    """No process has the file open (losetup closed its fd), yet the kernel writes it for
    the filesystem mounted from /dev/loopN: --shrink, grow, wipe, upload and delete are all
    refused, naming the loop device and its mount; detached, they work again."""
    ctl.create_volume_def("p", VolumeDef(name="v.raw", capacity=16 * MiB)).wait(60)
    image = pool / "v.raw"
    payload = tmp_path / "payload"
    payload.write_bytes(b"u" * 4096)
    with attached(image) as dev:
        subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True, capture_output=True)
        with mounted(dev, tmp_path / "mnt") as mnt:
            (mnt / "file").write_bytes(b"precious")
            before = image.read_bytes()
            for refused in (lambda: ctl.resize_volume("p", "v.raw", 8 * MiB, shrink=True),
                            lambda: ctl.resize_volume("p", "v.raw", 32 * MiB),
                            lambda: ctl.wipe_volume("p", "v.raw"),
                            lambda: ctl.upload_volume("p", "v.raw", str(payload)),
                            lambda: ctl.delete_volume("p", "v.raw")):
                with pytest.raises(InUse, match=rf"attached as {dev} \(mounted at {mnt}\)"):
                    job = refused()
                    if job is not None:
                        job.wait(60)
            assert image.read_bytes() == before and image.stat().st_size == 16 * MiB
        # attached read-write but not mounted: still a writer
        with pytest.raises(InUse, match=rf"volume 'v.raw' is attached as {dev}; stop"):
            ctl.resize_volume("p", "v.raw", 32 * MiB).wait(60)
    assert ctl.resize_volume("p", "v.raw", 32 * MiB).wait(60).capacity == 32 * MiB
    ctl.delete_volume("p", "v.raw")
    assert not image.exists()


@needs_loops
def test_a_read_only_loop_device_stops_all_but_a_grow(ctl, pool, volume, tmp_path):
    payload = tmp_path / "payload"
    payload.write_bytes(b"u" * 4096)
    with attached(volume, read_only=True) as dev:
        for refused in (lambda: ctl.resize_volume("p", "v", 2 * MiB, shrink=True),
                        lambda: ctl.wipe_volume("p", "v"),
                        lambda: ctl.upload_volume("p", "v", str(payload)),
                        lambda: ctl.delete_volume("p", "v")):
            with pytest.raises(InUse, match=rf"attached as {dev} read-only"):
                job = refused()
                if job is not None:
                    job.wait(60)
        assert ctl.resize_volume("p", "v", 8 * MiB).wait(60).capacity == 8 * MiB


# == checked again when a queued job starts ===================
@pytest.mark.parametrize("verb", ["grow", "shrink", "wipe", "upload"])
def test_a_queued_job_refuses_a_volume_opened_while_it_waited(
        ctl, pool, volume, holder, workers, tmp_path, verb):  # noqa: F811
    """Free when the verb was asked; a guest opened it while the job waited behind four
    others: the job looks again when it starts, and refuses, naming the guest."""
    payload = tmp_path / "payload"
    payload.write_bytes(b"u" * 4096)
    workers.fill()
    job = {"grow": lambda: ctl.resize_volume("p", "v", 8 * MiB),
           "shrink": lambda: ctl.resize_volume("p", "v", 2 * MiB, shrink=True),
           "wipe": lambda: ctl.wipe_volume("p", "v"),
           "upload": lambda: ctl.upload_volume("p", "v", str(payload))}[verb]()
    assert job.state == "queued"  # every worker is busy
    guest = holder(str(volume), "rw")
    before = volume.read_bytes()
    workers.release()
    with pytest.raises(InUse, match=named(guest, "rw")):
        job.wait(60)
    assert volume.read_bytes() == before
