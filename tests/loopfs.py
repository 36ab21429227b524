"""Real filesystems on loop devices for tests (needs root).

`loop_filesystem(base, fstype, size_mib)` makes a sparse image under `base`, attaches it
with `losetup --find --show`, runs mkfs, mounts it under `base` and yields a LoopFS
(mount dir, loop device, image). On exit, even after a failure, it unmounts and detaches
exactly the device it attached, and only if that device still has our image behind it:
a test never touches a device it did not make.

The `loopfs` fixture is a factory: `fs = loopfs("xfs", 300)`; everything it made is
undone when the test ends. Import it in a conftest.py to use it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

# Smallest images the mkfs tools accept (xfs: 300 MiB since xfsprogs 5.19; btrfs: 114 MiB).
MIN_SIZE_MIB = {"ext2": 4, "ext3": 4, "ext4": 4, "xfs": 300, "btrfs": 114}
MKFS = {
    "ext2": ["mkfs.ext2", "-q", "-F"],
    "ext3": ["mkfs.ext3", "-q", "-F"],
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
}


class LoopFS(NamedTuple):
    mount: Path
    device: str
    image: Path


def _run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def can_use_loop_devices() -> bool:
    return os.geteuid() == 0 and Path("/dev/loop-control").exists()


def backing_file(device: str) -> str | None:
    """The image behind /dev/loopN, from sysfs (None if the device is not attached)."""
    path = Path("/sys/block") / Path(device).name / "loop" / "backing_file"
    try:
        return path.read_text().strip().removesuffix(" (deleted)")
    except OSError:
        return None


def loops_of(image: Path) -> list[str]:
    """The loop devices whose backing file is `image` (by the path the kernel recorded)."""
    return sorted(f"/dev/{p.parent.parent.name}"
                  for p in Path("/sys/block").glob("loop*/loop/backing_file")
                  if p.read_text().strip().removesuffix(" (deleted)") == str(image))


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@contextlib.contextmanager
def sparse_images(base: Path, default_mib: int,
                  release: Callable[[Path], None]) -> Iterator[Callable[[int], Path]]:
    """make(size_mib) -> a new sparse image file under `base`; release(image) runs for each
    at the end (detaching whatever loop devices of it a test left)."""
    images: list[Path] = []

    def make(size_mib: int = default_mib) -> Path:
        image = base / f"image{len(images)}.img"
        with open(image, "wb") as fh:
            fh.truncate(size_mib << 20)
        images.append(image)
        return image

    try:
        yield make
    finally:
        for image in images:
            release(image)


def _is_mounted(mount: Path) -> bool:
    target = str(mount)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def _umount(mount: Path) -> None:
    for _ in range(10):  # a just-closed fd can keep it busy for a moment
        if not _is_mounted(mount):
            return
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    # Still busy: detach it from the tree so the loop device can go when the last user does.
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def release_partitioned(device: str, image: Path) -> None:
    """partx -d, then losetup -d: only a loop device that still has our image behind it."""
    if backing_file(device) != str(image):
        return
    subprocess.run(["partx", "-d", device], capture_output=True)
    _detach(device, image)


def _detach(device: str, image: Path) -> None:
    if backing_file(device) != str(image):
        return  # not ours any more (or already gone): leave it alone
    for _ in range(10):
        if subprocess.run(["losetup", "-d", device], capture_output=True).returncode == 0:
            return
        time.sleep(0.2)


@contextlib.contextmanager
def loop_filesystem(base: Path, fstype: str, size_mib: int) -> Iterator[LoopFS]:
    """Yield a freshly made, mounted `fstype` filesystem of `size_mib` MiB under `base`."""
    if fstype not in MKFS:
        raise ValueError(f"unsupported fstype {fstype!r}; choose from {sorted(MKFS)}")
    if size_mib < MIN_SIZE_MIB[fstype]:
        raise ValueError(f"{fstype} needs an image of at least {MIN_SIZE_MIB[fstype]} MiB")
    tag = f"{fstype}-{uuid.uuid4().hex[:8]}"
    image = Path(base) / f"{tag}.img"
    mount = Path(base) / f"mnt-{tag}"
    with open(image, "wb") as fh:
        fh.truncate(size_mib * 1024 * 1024)
    device = None
    try:
        device = _run(["losetup", "--find", "--show", str(image)]).strip()
        _run([*MKFS[fstype], device])
        mount.mkdir()
        _run(["mount", "-t", fstype, device, str(mount)])
        try:
            yield LoopFS(mount=mount, device=device, image=image)
        finally:
            _umount(mount)
            with contextlib.suppress(OSError):
                mount.rmdir()
    finally:
        if device:
            _detach(device, image)
        with contextlib.suppress(OSError):
            image.unlink()


@contextlib.contextmanager
def loop_device(base: Path, size_mib: int, content: bytes | None = None) -> Iterator[str]:
    """Yield a bare loop device (no filesystem) backed by a new image under `base`,
    optionally starting with `content`; detached (only if still ours) on exit."""
    image = Path(base) / f"bare-{uuid.uuid4().hex[:8]}.img"
    with open(image, "wb") as fh:
        if content:
            fh.write(content)
        fh.truncate(size_mib * 1024 * 1024)
    device = None
    try:
        device = _run(["losetup", "--find", "--show", str(image)]).strip()
        yield device
    finally:
        if device:
            _detach(device, image)
        with contextlib.suppress(OSError):
            image.unlink()


@pytest.fixture
def loopfs(tmp_path: Path) -> Iterator[Callable[[str, int], LoopFS]]:
    """Factory fixture: loopfs("ext4", 64) -> LoopFS; all undone at teardown."""
    if not can_use_loop_devices():
        pytest.skip("needs root and loop devices")
    with contextlib.ExitStack() as stack:

        def make(fstype: str, size_mib: int) -> LoopFS:
            return stack.enter_context(loop_filesystem(tmp_path, fstype, size_mib))

        yield make
