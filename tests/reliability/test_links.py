"""A listed volume replaced behind poolkeeper's back by a symlink to a file
outside the pool, a symlink to an outside directory, a dangling symlink, a FIFO or a unix
socket.

Every verb either refuses or acts on the directory entry only (delete removes the link,
never what it points to); the outside file keeps its bytes and mtime; nothing blocks on the
FIFO. Checked twice: through the controller (which looks again before acting) and through
the driver with the volume as it was listed, which is what a verb sees when the swap lands
between the controller's look and the driver's act.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.controller import StorageController
from backends.errors import PoolkeeperError, StateError, UnsafePath, VolumeNotFound
from backends.model import BackingStore, VolumeDef, VolumeTarget
from backends.progress import JobContext
from tests.conftest import make_dir_pool
from tests.loopfs import can_use_loop_devices, loop_device

MiB = 1 << 20
KINDS = ["symlink", "dirlink", "dangling", "fifo", "socket"]
NOT_LISTED = ("fifo", "socket")  # never opened, so never a volume
REFUSED = (UnsafePath, VolumeNotFound, StateError)
QCOW2 = ("<volume><name>x</name><capacity>1</capacity>"
         "<target><format type='qcow2'/></target></volume>")


# == helpers ============================================================================
def bounded(fn: Callable[[], Any], seconds: float = 5.0) -> Any:
    """Run fn in a thread; fail the test if it has not returned in `seconds` (a FIFO opened
    without O_NONBLOCK would block forever)."""
    result: dict[str, Any] = {}

    def call() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the test thread below
            result["error"] = exc

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} still blocked after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result.get("value")


class Outside:
    """A file and a directory outside the pool, and a fingerprint of both."""

    def __init__(self, base: Path) -> None:
        self.file = base / "outside.img"
        self.file.write_bytes(os.urandom(64 * 1024) + bytes(MiB))
        self.dir = base / "outside-dir"
        self.dir.mkdir()
        (self.dir / "inner").write_bytes(b"keep")
        os.utime(self.file, ns=(10**18, 10**18))  # any later write would move the mtime

    def fingerprint(self) -> tuple:
        st = self.file.stat()
        return (hashlib.sha256(self.file.read_bytes()).hexdigest(), st.st_size,
                st.st_mtime_ns, sorted(os.listdir(self.dir)),
                (self.dir / "inner").read_bytes())


def replace_volume(path: Path, kind: str, outside: Outside) -> None:
    path.unlink()
    if kind == "symlink":
        os.symlink(outside.file, path)
    elif kind == "dirlink":
        os.symlink(outside.dir, path)
    elif kind == "dangling":
        os.symlink(outside.file.parent / "nowhere", path)
    elif kind == "fifo":
        os.mkfifo(path)
    else:  # a socket path may be longer than sun_path allows: bind through /proc
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"/proc/self/fd/{dfd}/{path.name}")
        finally:
            sock.close()
            os.close(dfd)


# == pools =============================================================================
def _unmount(target: Path) -> None:
    with open("/proc/self/mountinfo") as fh:
        mounted = any(line.split()[4] == str(target) for line in fh)
    if mounted and subprocess.run(["umount", str(target)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


@contextlib.contextmanager
def fs_pool(ctl: StorageController, tmp_path: Path) -> Iterator[Path]:
    """An active ext4 fs pool 'p' on a loop device this test made; all undone after."""
    target = tmp_path / "mnt"
    with loop_device(tmp_path, 16) as dev:
        ctl.define_pool(f"<pool type='fs'><name>p</name><source><device path='{dev}'/>"
                        f"<format type='ext4'/></source><target><path>{target}</path>"
                        "</target></pool>")
        try:
            ctl.build_pool("p").wait(60)
            ctl.start_pool("p")
            yield target
        finally:
            with contextlib.suppress(PoolkeeperError):
                ctl.stop_pool("p")
            _unmount(target)


@pytest.fixture(params=["dir", "fs"])
def file_pool(request, ctl, tmp_path) -> Iterator[Path]:
    """An active pool 'p' of each file-volume type."""
    if request.param == "dir":
        yield make_dir_pool(ctl, "p", tmp_path / "images")
        return
    if not can_use_loop_devices():
        pytest.skip("fs pools need root and loop devices")
    with fs_pool(ctl, tmp_path) as target:
        yield target


def listed_then_replaced(ctl: StorageController, pool: Path, tmp_path: Path,
                         kind: str) -> tuple[Outside, Any]:
    """Create and list v.img, then swap it; returns the outside files and the stale info."""
    ctl.create_volume_def("p", VolumeDef(name="v.img", capacity=MiB)).wait(60)
    stale = {v.name: v for v in ctl.list_volumes("p")}["v.img"]
    outside = Outside(tmp_path)
    replace_volume(pool / "v.img", kind, outside)
    return outside, stale


def entries(pool: Path) -> list[str]:
    return sorted(n for n in os.listdir(pool) if n != "lost+found")


# == through the controller ============================================================
@pytest.mark.parametrize("kind", KINDS)
def test_verbs_refuse_or_act_on_the_entry_only(ctl, file_pool, tmp_path, kind):
    pool = file_pool
    outside, _ = listed_then_replaced(ctl, pool, tmp_path, kind)
    before = outside.fingerprint()
    payload = tmp_path / "payload"
    payload.write_bytes(b"\xee" * 4096)
    out = tmp_path / "download.img"

    volumes = {v.name: v for v in bounded(lambda: ctl.list_volumes("p"))}
    if kind in NOT_LISTED:
        assert "v.img" not in volumes
    else:
        vol = volumes["v.img"]
        assert vol.symlink is not None and vol.symlink == os.readlink(pool / "v.img")
        assert vol.format_recorded is False  # the record was for the file that went
        if kind == "dangling":
            assert "dangling symlink" in vol.error
        else:
            assert vol.error is None

    attempts = {
        "wipe": lambda: ctl.wipe_volume("p", "v.img").wait(30),
        "upload": lambda: ctl.upload_volume("p", "v.img", str(payload)).wait(30),
        "download": lambda: ctl.download_volume("p", "v.img", str(out)).wait(30),
        "resize": lambda: ctl.resize_volume("p", "v.img", 2 * MiB).wait(30),
        "clone": lambda: ctl.clone_volume("p", "v.img", "copy.img").wait(30),
        "convert": lambda: ctl.clone_volume("p", "v.img", "copy.qcow2", xml=QCOW2).wait(30),
        "backing": lambda: ctl.create_volume_def("p", VolumeDef(
            name="overlay.qcow2", capacity=MiB, target=VolumeTarget(format="qcow2"),
            backing=BackingStore(path=str(pool / "v.img"), format="raw"))).wait(30),
    }
    for verb, attempt in attempts.items():
        with pytest.raises(REFUSED) as exc:
            bounded(attempt)
        assert "v.img" in str(exc.value), (verb, exc.value)
    assert entries(pool) == ["v.img"]  # no clone, nothing else made
    assert not out.exists()

    if kind in NOT_LISTED:
        with pytest.raises(VolumeNotFound):
            bounded(lambda: ctl.delete_volume("p", "v.img"))
        assert entries(pool) == ["v.img"]
    else:
        bounded(lambda: ctl.delete_volume("p", "v.img"))
        assert entries(pool) == []  # the link went ...
    assert outside.fingerprint() == before  # ... and what it pointed to stayed


# == through the driver, with the volume as listed =====================================
@pytest.mark.parametrize("kind", KINDS)
def test_driver_acts_never_follow_a_swapped_entry(ctl, file_pool, tmp_path, kind):
    """The swap lands after the controller looked: the driver gets the stale VolumeInfo
    of a regular raw file, and must still refuse (its opens use O_NOFOLLOW and refuse
    anything but regular files and block devices)."""
    pool = file_pool
    outside, stale = listed_then_replaced(ctl, pool, tmp_path, kind)
    assert (stale.symlink, stale.format, stale.type) == (None, "raw", "file")
    before = outside.fingerprint()
    driver = ctl._active_driver("p")
    ctx = JobContext()
    payload = tmp_path / "payload"
    payload.write_bytes(b"\xee" * 4096)
    out = tmp_path / "download.img"
    raw_copy = VolumeDef(name="copy.img", target=VolumeTarget(format="raw"))

    attempts = {
        "wipe": lambda: driver.wipe_volume(stale, "zero", ctx),
        "upload": lambda: driver.upload_volume(stale, str(payload), 0, None, ctx),
        "download": lambda: driver.download_volume(stale, str(out), 0, None, False, ctx),
        "resize": lambda: driver.resize_volume(stale, 2 * MiB, allocate=False, shrink=False,
                                               ctx=ctx),
        "clone": lambda: driver.clone_volume(stale, driver, raw_copy, ctx),
        "open": lambda: os.close(driver.open_volume_read(stale)),
    }
    for verb, attempt in attempts.items():
        with pytest.raises(UnsafePath) as exc:
            bounded(attempt)
        assert "v.img" in str(exc.value), (verb, exc.value)
    assert entries(pool) == ["v.img"] and not out.exists()

    bounded(lambda: driver.delete_volume(stale))
    assert entries(pool) == []  # the entry itself went, whatever it was
    assert outside.fingerprint() == before


# == refresh ===========================================================================
def test_refresh_lists_every_kind_at_once_without_blocking(ctl, pool, tmp_path):
    outside = Outside(tmp_path)
    for kind in KINDS:
        (pool / kind).write_bytes(b"")
        replace_volume(pool / kind, kind, outside)
    os.symlink("fifo", pool / "to-fifo")
    (pool / "plain.img").write_bytes(bytes(4096))
    before = outside.fingerprint()
    vols = {v.name: v for v in bounded(lambda: ctl.list_volumes("p"))}
    assert sorted(vols) == ["dangling", "dirlink", "plain.img", "symlink"]
    assert (vols["symlink"].symlink, vols["symlink"].capacity) == (
        str(outside.file), outside.file.stat().st_size)
    assert vols["dirlink"].type == "dir" and vols["dirlink"].symlink == str(outside.dir)
    assert "dangling symlink" in vols["dangling"].error
    assert vols["plain.img"].symlink is None and vols["plain.img"].error is None
    for name in ("fifo", "socket", "to-fifo"):
        with pytest.raises(VolumeNotFound):
            bounded(lambda name=name: ctl.volume_info("p", name))
    assert outside.fingerprint() == before


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_image_resize_never_follows_a_swapped_entry(ctl, pool, tmp_path, kind):
    """qemu-img resize gets the file poolkeeper opened (O_NOFOLLOW), never the name: a
    qcow2 volume swapped for a link to an outside qcow2 image leaves that image alone."""
    ctl.create_volume_def("p", VolumeDef(name="q.qcow2", capacity=MiB,
                                         target=VolumeTarget(format="qcow2"))).wait(60)
    stale = ctl.volume_info("p", "q.qcow2")
    outside = tmp_path / "outside.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(outside), "1M"],
                   check=True, capture_output=True)
    before = (hashlib.sha256(outside.read_bytes()).hexdigest(), outside.stat().st_mtime_ns)
    (pool / "q.qcow2").unlink()
    if kind == "symlink":
        os.symlink(outside, pool / "q.qcow2")
    else:
        os.mkfifo(pool / "q.qcow2")
    driver = ctl._active_driver("p")
    with pytest.raises(UnsafePath, match="q.qcow2"):
        bounded(lambda: driver.resize_volume(stale, 8 * MiB, allocate=False, shrink=False,
                                             ctx=JobContext()))
    assert (hashlib.sha256(outside.read_bytes()).hexdigest(),
            outside.stat().st_mtime_ns) == before


def test_convert_clone_never_follows_a_swapped_source(ctl, pool, tmp_path):
    outside, stale = listed_then_replaced(ctl, pool, tmp_path, "symlink")
    driver = ctl._active_driver("p")
    qcow2 = VolumeDef(name="copy.qcow2", target=VolumeTarget(format="qcow2"))
    with pytest.raises(UnsafePath):
        bounded(lambda: driver.clone_volume(stale, driver, qcow2, JobContext()), 30)
    assert entries(pool) == ["v.img"]  # the outside file was not copied into the pool
