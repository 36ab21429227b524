"""`poolkeeper --demo`: a sandbox root in a temporary directory with sample pools and
volumes, so a newcomer sees a populated screen without touching the host.

Everyone gets dir pools. Run as root (with losetup, parted and mkfs.ext4), the demo also
gets a disk pool and an fs pool, each on a sparse image file in the sandbox that its pool
attaches to a loop device, so the extent bar and mounted pools can be tried; without root
a note says why they are missing.

Nothing is left behind: on exit (q, a crash, a hang-up, SIGTERM: run_app's `finally`)
close_demo stops the pools (umount, loop devices detached) and removes the sandbox. A
kill -9 cannot run that, so every demo first sweeps the sandboxes of demos whose process
is dead (OWNER records pid and start time): what is mounted below one is unmounted, the
loop devices of its images are detached, and it is removed. Only sandboxes of our own
user with that record are swept, and only their own images' loop devices are touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import psutil

from backends import blockprobe, runner
from backends.api import Controller
from backends.controller import StorageController
from backends.errors import PoolkeeperError
from backends.loops import owner_alive
from backends.model import (
    BackingStore,
    Extent,
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    VolumeDef,
    VolumeTarget,
)
from backends.runner import have_tool

MiB = 1 << 20
GiB = 1 << 30
PREFIX = "poolkeeper-demo-"
OWNER = "owner.json"  # in the sandbox: the pid and start time of the demo that made it
IMAGES = "images"  # in the sandbox: the image files behind the disk and fs pools
BLOCK_TOOLS = ("losetup", "partx", "parted", "mkfs.ext4", "mount", "umount", "wipefs")


def _iso(path: Path) -> None:
    """A tiny file with an ISO 9660 volume descriptor ('CD001' at 32769)."""
    with open(path, "wb") as fh:
        fh.truncate(1 * MiB)
        fh.seek(32768)
        fh.write(b"\x01CD001\x01")


def block_pools_missing() -> str | None:
    """Why the demo has no disk and fs pools here (None: it has them)."""
    if os.geteuid() != 0:
        return ("demo: dir pools only; the disk and fs pools (loop devices on image files) "
                "need root: run `sudo poolkeeper --demo` to try the extent bar")
    missing = [t for t in BLOCK_TOOLS if not have_tool(t)]
    if missing:
        return f"demo: dir pools only; the disk and fs pools need {', '.join(missing)}"
    if not os.path.exists("/dev/loop-control"):
        return "demo: dir pools only; this kernel has no loop devices (modprobe loop)"
    return None


def populate(ctl: Controller, base: Path) -> None:
    def pool(name: str, autostart: bool = True, start: bool = True) -> None:
        ctl.define_pool_def(PoolDef(type="dir", name=name,
                                    target=PoolTarget(path=str(base / name))))
        ctl.build_pool(name).wait(60)
        if start:
            ctl.start_pool(name)
        ctl.set_autostart(name, autostart)

    def vol(pool_name: str, name: str, capacity: int, fmt: str = "raw",
            allocation: int | None = 0, backing: str | None = None) -> None:
        store = None
        if backing:
            store = BackingStore(path=str(base / pool_name / backing), format="qcow2")
        ctl.create_volume_def(pool_name, VolumeDef(
            name=name, capacity=capacity, allocation=allocation,
            target=VolumeTarget(format=fmt), backing=store)).wait(60)

    pool("images")
    vol("images", "debian-12.img", 2 * GiB, allocation=64 * MiB)
    vol("images", "scratch.img", 20 * GiB)
    vol("images", "swap.img", 16 * MiB, allocation=None)
    if have_tool("qemu-img"):
        vol("images", "base.qcow2", 10 * GiB, "qcow2", None)
        vol("images", "web01.qcow2", 0, "qcow2", None, backing="base.qcow2")
        vol("images", "web01-snap.qcow2", 0, "qcow2", None, backing="web01.qcow2")
    _iso(base / "images" / "installer.iso")
    pool("backups", autostart=False)
    vol("backups", "db01-2026-11-01.img", 8 * GiB)
    pool("scratch", autostart=False, start=False)


def _image(path: Path, size: int) -> str:
    with open(path, "wb") as fh:  # sparse: costs no disk space until written
        fh.truncate(size)
    return str(path)


def populate_block(ctl: Controller, sandbox: Path) -> None:
    """A gpt disk pool on a 1 GiB image (three partitions, free extents between them) and
    an ext4 fs pool on a 256 MiB image; their loop devices come and go with the pools."""
    images = sandbox / IMAGES
    images.mkdir(exist_ok=True)
    disk = _image(images / "disk0.img", GiB)
    ctl.define_pool_def(PoolDef(type="disk", name="disk0", source=PoolSource(
        devices=[SourceDevice(disk)], format="gpt"), target=PoolTarget(path="/dev")))
    ctl.build_pool("disk0").wait(120)
    ctl.start_pool("disk0")
    dev = _loop_of(disk)  # partitions are named after the image's loop device: loop3p1
    for number, fmt, start, size in ((1, "linux", MiB, 200 * MiB),
                                     (2, "linux-swap", 300 * MiB, 64 * MiB),
                                     (3, "linux-lvm", 600 * MiB, 128 * MiB)):
        ctl.create_volume_def("disk0", VolumeDef(
            name=f"{dev}p{number}", capacity=size, target=VolumeTarget(format=fmt),
            source_devices=[(disk, [Extent(start, start + size)])])).wait(120)
    fs = _image(images / "fs0.img", 256 * MiB)
    ctl.define_pool_def(PoolDef(type="fs", name="fs0", source=PoolSource(
        devices=[SourceDevice(fs)], format="ext4"),
        target=PoolTarget(path=str(sandbox / "pools" / "fs0"))))
    ctl.build_pool("fs0").wait(300)
    ctl.start_pool("fs0")
    for name, size, alloc in (("vm1.img", 4 * GiB, 8 * MiB), ("vm2.img", 32 * MiB, None)):
        ctl.create_volume_def("fs0", VolumeDef(name=name, capacity=size,
                                               allocation=alloc)).wait(120)


def _loop_of(image: str) -> str:
    """The name of the loop device `image` is attached to (loop3)."""
    found = blockprobe.loops_backed_by(image)
    if not found:
        raise PoolkeeperError(f"{image} is not attached to a loop device")
    return os.path.basename(found[0].device)


def _write_owner(sandbox: Path) -> None:
    me = psutil.Process()
    (sandbox / OWNER).write_text(json.dumps({"pid": me.pid, "started": me.create_time()}))


def make_demo() -> tuple[Path, Path, str | None]:
    """A new demo: (its sandbox, the state root in it, a note for the user or None)."""
    sweep_dead_demos()
    sandbox = Path(tempfile.mkdtemp(prefix=PREFIX))
    os.chmod(sandbox, 0o700)
    _write_owner(sandbox)
    state = sandbox / "state"
    note = block_pools_missing()
    try:
        with StorageController(state, create_default=False) as ctl:
            populate(ctl, sandbox / "pools")
            if note is None:
                populate_block(ctl, sandbox)
            ctl.store.mark_initialized()  # the demo has its own pools: no "default"
    except BaseException:
        close_demo(None, sandbox)
        raise
    return sandbox, state, note


def make_demo_root() -> Path:
    """The state root of a new demo (for callers that want no note)."""
    return make_demo()[1]


def close_demo(ctl: Controller | None, sandbox: Path) -> None:
    """Leave nothing behind: close `ctl` (its jobs are cancelled and waited for), stop the
    demo's pools, then sweep and remove the sandbox."""
    try:
        if ctl is not None:
            ctl.close()
        state = sandbox / "state"
        if state.is_dir():
            with contextlib.suppress(Exception), StorageController(
                    state, create_default=False) as again:
                for status in again.list_pools():
                    if status.started:
                        with contextlib.suppress(PoolkeeperError, OSError):
                            again.stop_pool(status.name)
    finally:
        sweep(sandbox)


def sweep(sandbox: Path) -> None:
    """Unmount what is mounted below the sandbox, detach the loop devices of its images
    (both private to the demo), then remove it; it stays if a mount cannot be undone."""
    for mount in reversed(blockprobe.mounts_below(str(sandbox))):
        runner.run(["umount", mount.target], check=False, timeout=60)
    for image in sorted((sandbox / IMAGES).glob("*.img")):
        for ident in blockprobe.loops_backed_by(str(image)):
            if blockprobe.partitions(ident.device):
                runner.run(["partx", "-d", ident.device], check=False, timeout=60)
            with contextlib.suppress(PoolkeeperError):
                blockprobe.detach_loop(ident)
    if not blockprobe.mounts_below(str(sandbox)):
        shutil.rmtree(sandbox, ignore_errors=True)


def sweep_dead_demos() -> list[Path]:
    """Sweep the sandboxes that demos killed with -9 left (see the module docstring)."""
    swept = []
    for sandbox in sorted(Path(tempfile.gettempdir()).glob(PREFIX + "*")):
        try:
            if sandbox.is_symlink() or sandbox.stat().st_uid != os.geteuid():
                continue
            owner = json.loads((sandbox / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not ours, or not a demo that records its owner
        if isinstance(owner, dict) and not owner_alive(owner):
            sweep(sandbox)
            swept.append(sandbox)
    return swept
