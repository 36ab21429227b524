"""`vol-download` never writes through a link or into a pool.

The destination is a name in a directory others may write (/tmp). A symlink planted there
(to a volume of another pool, to a root-only file like /etc/shadow, dangling) is refused,
naming where it points; a hard link to a volume of any pool, a bind mount of one (link
count 1), a partition or LV of a disk or logical pool, the loop device under a pool and a
loop device on a volume are refused, naming the pool and the volume. Each refusal leaves
the other file's bytes, size and mtime as they were (nothing truncated). Checked through
the controller, and again with the controller's look by name skipped, as when the swap
lands between that look and the open: the job looks again at the file it opened.

A plain existing file outside the pools is still replaced (as virsh does), a FIFO with a
reader gets the bytes, and a directory is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.download_targets import DownloadTargets
from backends.errors import UnsafePath
from backends.model import VolumeDef
from tests.conftest import gpt_disk_pool, make_dir_pool, needs_root
from tests.loopfs import can_use_loop_devices, release_partitioned

MiB = 1 << 20
needs_loops = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")


class Fingerprint:
    """Bytes, size and mtime of a file that must not change."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        os.utime(self.path, ns=(10**18, 10**18))  # any write would move it
        self.before = self.take()

    def take(self) -> tuple:
        st = os.stat(self.path)
        with open(self.path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        return digest, st.st_size, st.st_mtime_ns

    def unchanged(self) -> bool:
        return self.take() == self.before


@pytest.fixture
def pools(ctl: StorageController, tmp_path: Path) -> tuple[Path, Path]:
    """Pool 'p' with the source 'v.img' (1 MiB pattern); pool 'q' with 'w.img' (2 MiB)."""
    p = make_dir_pool(ctl, "p", tmp_path / "p")
    q = make_dir_pool(ctl, "q", tmp_path / "q")
    for pool, name, size in (("p", "v.img", MiB), ("q", "w.img", 2 * MiB)):
        ctl.create_volume_def(pool, VolumeDef(name=name, capacity=size, allocation=0)).wait(30)
    (p / "v.img").write_bytes(b"v" * MiB)
    (q / "w.img").write_bytes(os.urandom(2 * MiB))
    return p, q


@pytest.fixture(params=["by-name", "after-swap"])
def download(request, ctl: StorageController, monkeypatch) -> Callable[[str], object]:
    """download(dst) of p/v.img; "after-swap" skips the controller's look by name, so only
    the open and the job's own check stand between the download and the destination."""
    if request.param == "after-swap":
        monkeypatch.setattr(DownloadTargets, "refuse_volume_as_target",
                            lambda self, dst, source: None)

    def run(dst: str) -> object:
        return ctl.download_volume("p", "v.img", dst).wait(30)

    return run


# == links ==============================================================================
def test_a_hard_link_to_another_pools_volume_is_refused(download, pools, tmp_path):
    _p, q = pools
    victim = Fingerprint(q / "w.img")
    os.link(q / "w.img", tmp_path / "backup.img")
    with pytest.raises(UnsafePath, match=r"is a hard link to volume 'w.img' of pool 'q'"):
        download(str(tmp_path / "backup.img"))
    assert victim.unchanged()


def test_a_hard_link_to_a_stopped_pools_volume_is_refused(ctl, download, pools, tmp_path):
    """Any pool, not only active ones: a stopped pool's files are still its volumes."""
    _p, q = pools
    ctl.stop_pool("q")
    victim = Fingerprint(q / "w.img")
    os.link(q / "w.img", tmp_path / "backup.img")
    with pytest.raises(UnsafePath, match=r"hard link to volume 'w.img' of pool 'q'"):
        download(str(tmp_path / "backup.img"))
    assert victim.unchanged()


@contextlib.contextmanager
def bind_mounted(source: Path, at: Path) -> Iterator[Path]:
    """`mount --bind source at` (a file on a file), unmounted at the end even on failure."""
    at.parent.mkdir(parents=True, exist_ok=True)
    at.touch()
    subprocess.run(["mount", "--bind", str(source), str(at)], check=True, capture_output=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", str(at)], check=True, capture_output=True)


@needs_root
@pytest.mark.parametrize("state", ["active", "stopped"])
def test_a_bind_mount_of_another_pools_volume_is_refused(ctl, download, pools, tmp_path,
                                                         state):
    """A volume bind-mounted elsewhere keeps one link, yet it is
    the volume: `mount --bind q/w.img /tmp/x/export.img` must not let a download overwrite
    it (without its lock)."""
    _p, q = pools
    if state == "stopped":
        ctl.stop_pool("q")
    victim = Fingerprint(q / "w.img")
    with bind_mounted(q / "w.img", tmp_path / "x" / "export.img") as export:
        assert os.stat(export).st_nlink == 1
        with pytest.raises(UnsafePath, match=r"is volume 'w.img' of pool 'q', reached by "
                                             r"another path \(a bind mount\)"):
            download(str(export))
    assert victim.unchanged()


@pytest.mark.parametrize("aim", ["volume", "canary"])
def test_a_symlink_is_refused_naming_where_it_points(download, pools, tmp_path, aim):
    """`/tmp/backup.img -> /etc/shadow` planted by someone else: never written through."""
    _p, q = pools
    if aim == "volume":
        target = q / "w.img"
    else:
        target = tmp_path / "shadow"
        target.write_bytes(b"root:$6$secret:19000:0:99999:7:::\n")
        target.chmod(0o600)
    victim = Fingerprint(target)
    link = tmp_path / "backup.img"
    link.symlink_to(target)
    with pytest.raises(UnsafePath, match=rf"is a symbolic link to '{target}'"):
        download(str(link))
    assert victim.unchanged()
    assert link.is_symlink()


def test_a_dangling_symlink_is_refused_and_nothing_is_created(download, pools, tmp_path):
    link = tmp_path / "backup.img"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(UnsafePath, match="is a symbolic link to '.*nowhere'"):
        download(str(link))
    assert not (tmp_path / "nowhere").exists()


def test_a_name_in_a_pool_directory_is_refused(download, pools, tmp_path):
    _p, q = pools
    victim = Fingerprint(q / "w.img")
    for dst in (q / "w.img", q / "new.img"):
        with pytest.raises(UnsafePath, match="is inside pool 'q'"):
            download(str(dst))
    assert victim.unchanged()
    assert not (q / "new.img").exists()


# == what is still allowed ================================================================
def test_a_plain_file_outside_the_pools_is_replaced(download, pools, tmp_path):
    dst = tmp_path / "out.img"
    dst.write_bytes(b"old" * MiB)
    assert download(str(dst)) == MiB
    assert dst.read_bytes() == b"v" * MiB
    new = tmp_path / "new.img"
    assert download(str(new)) == MiB
    assert new.read_bytes() == b"v" * MiB and (new.stat().st_mode & 0o777) == 0o600


def test_a_fifo_with_a_reader_gets_the_bytes(download, pools, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = bytearray()

    def read() -> None:
        with open(fifo, "rb") as fh:
            while chunk := fh.read(MiB):
                got.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert download(str(fifo)) == MiB
    reader.join(30)
    assert bytes(got) == b"v" * MiB
    assert fifo.is_fifo()


def test_a_directory_is_refused(download, pools, tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(UnsafePath, match="is a directory"):
        download(str(tmp_path / "dir"))
    assert os.listdir(tmp_path / "dir") == []


# == block devices ========================================================================
@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """attach(image) -> /dev/loopN; detached at the end (only if still ours)."""
    made: list[tuple[str, Path]] = []

    def attach(image: Path) -> str:
        dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                             text=True, check=True).stdout.strip()
        made.append((dev, image))
        return dev

    try:
        yield attach
    finally:
        for dev, image in reversed(made):
            release_partitioned(dev, image)


@needs_loops
def test_a_loop_device_on_a_volume_is_refused(download, pools, loops):
    _p, q = pools
    victim = Fingerprint(q / "w.img")
    dev = loops(q / "w.img")
    with pytest.raises(UnsafePath, match=rf"{dev}, a loop device on '{q / 'w.img'}', which is "
                                         "inside pool 'q'"):
        download(dev)
    assert victim.unchanged()


@needs_loops
def test_partitions_and_the_disk_of_a_disk_pool_are_refused(ctl, download, pools, tmp_path,
                                                             loops):
    image = tmp_path / "disk.img"
    with gpt_disk_pool(ctl, image) as disk:
        part = f"{os.path.basename(disk)}p1"
        ctl.create_volume_def("d", VolumeDef(name=part, capacity=8 * MiB)).wait(120)
        with open(f"/dev/{part}", "r+b") as fh:
            fh.write(b"P" * MiB)
        victim = Fingerprint(f"/dev/{part}")
        with pytest.raises(UnsafePath, match=rf"is volume '{part}' of pool 'd'"):
            download(f"/dev/{part}")
        # another node of the same device, made where anyone may look: the same device
        node = tmp_path / "node"
        os.mknod(node, 0o600 | 0o060000, os.stat(f"/dev/{part}").st_rdev)
        with pytest.raises(UnsafePath, match=rf"is volume '{part}' of pool 'd'"):
            download(str(node))
        with pytest.raises(UnsafePath, match=rf"is {disk}, a device of pool 'd'"):
            download(disk)
        with pytest.raises(UnsafePath, match="is the image file of pool 'd'"):
            download(str(image))
        assert victim.unchanged()
        # the pool's target /dev only holds nodes: other devices there are not its volumes
        assert download("/dev/null") == MiB


@needs_loops
def test_a_loop_device_outside_the_pools_is_written(download, pools, tmp_path, loops):
    image = tmp_path / "free.img"
    image.write_bytes(bytes(MiB))
    dev = loops(image)
    assert download(dev) == MiB
    assert image.read_bytes() == b"v" * MiB
