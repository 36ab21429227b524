"""`poolkeeper --demo`: a sandbox root in a temporary directory with sample pools and
volumes, so a newcomer sees a populated screen without touching the host."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from backends.api import Controller
from backends.controller import StorageController
from backends.model import BackingStore, PoolDef, PoolTarget, VolumeDef, VolumeTarget
from backends.runner import have_tool

MiB = 1 << 20
GiB = 1 << 30


def _iso(path: Path) -> None:
    """A tiny file with an ISO 9660 volume descriptor ('CD001' at 32769)."""
    with open(path, "wb") as fh:
        fh.truncate(1 * MiB)
        fh.seek(32768)
        fh.write(b"\x01CD001\x01")


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


def make_demo_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="poolkeeper-demo-"))
    os.chmod(root, 0o700)
    state = root / "state"
    with StorageController(state, create_default=False) as ctl:
        populate(ctl, root / "pools")
        ctl.store.mark_initialized()  # the demo has its own pools: no "default"
    return state
