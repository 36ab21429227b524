"""Pool-build never writes over a signature without --overwrite, and with it
works under the whole disk's lock.

Real devices: loop devices from the private LVM world of tests/lvmenv.py (so a logical pool
can see them and every PV label and VG is removed at teardown, then the device detached).
Signatures are made with the real tools (mkfs.ext4, parted mklabel msdos, pvcreate); what is
on a device afterwards is read with blkid and pvs run by the test itself. "Unchanged" means
the sha256 of every byte of the device.
"""

from __future__ import annotations

import hashlib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import blockprobe, runner
from backends.controller import StorageController
from backends.errors import AlreadyExists, Busy, StateError
from tests.lvmenv import Lvm, can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')

pytestmark = pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")

MiB = 1 << 20
DEVICE_MIB = 32
GATE_TIMEOUT = 60.0

# What each tool leaves, and how poolkeeper must name it in the refusal.
SIGNATURES = {
    "ext4": "an ext4 filesystem \\(label 'keep'\\)",
    "msdos": "a dos partition table",
    "pv": "an LVM2 physical volume",
}
# What each pool type leaves after a build: (blkid key, value).
BUILT = {"fs": ("TYPE", "ext4"), "disk": ("PTTYPE", "gpt"), "logical": ("TYPE", "LVM2_member")}


# == helpers ===========================================================================
def device_hash(device: str) -> str:
    """sha256 of every byte of the device."""
    digest = hashlib.sha256()
    with open(device, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def blkid(device: str) -> dict[str, str]:
    done = subprocess.run(["blkid", "-p", "-o", "export", "--", device], capture_output=True,
                          text=True, check=False)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def put_signature(lvm: Lvm, device: str, kind: str) -> None:
    if kind == "ext4":
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "keep", device], check=True,
                       capture_output=True)
    elif kind == "msdos":
        subprocess.run(["parted", "-s", device, "mklabel", "msdos"], check=True,
                       capture_output=True)
    else:
        lvm.run("pvcreate", "-y", device)


def pool_xml(pool_type: str, name: str, device: str, base: Path) -> str:
    """A pool of `pool_type` on `device`; a logical pool's VG is named after the pool."""
    if pool_type == "fs":
        source = f"<device path='{device}'/><format type='ext4'/>"
        target = base / f"mnt-{name}"
    elif pool_type == "disk":
        source = f"<device path='{device}'/><format type='gpt'/>"
        target = Path("/dev")
    else:
        source = f"<device path='{device}'/><name>{name}</name><format type='lvm2'/>"
        target = Path("/dev") / name
    return (f"<pool type='{pool_type}'><name>{name}</name><source>{source}</source>"
            f"<target><path>{target}</path></target></pool>")


def pool_name(pool_type: str, tmp_path: Path, suffix: str = "") -> str:
    # VG names must not clash with anything on the machine: make them unique per test.
    return f"pk{pool_type[:3]}{abs(hash(str(tmp_path))) % 10**8}{suffix}"


class ToolGate:
    """Stops the first destructive call (`wipefs --all ... DEVICE`) of a build until opened,
    so the test can look at the world while the build is inside its locked section."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.entered = threading.Event()
        self.opened = threading.Event()
        self._real = runner.run

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        args = [str(a) for a in argv]
        if (args[0] == "wipefs" and "--all" in args and args[-1] == self.device
                and not self.entered.is_set()):
            self.entered.set()
            if not self.opened.wait(GATE_TIMEOUT):
                raise RuntimeError("the test never opened the gate")
        return self._real(argv, **kwargs)


@pytest.fixture
def second_root(tmp_path: Path) -> Iterator[StorageController]:
    """Another poolkeeper state root: its locks are its own, only the disk lock is shared."""
    other = StorageController(tmp_path / "state2", create_default=False)
    try:
        yield other
    finally:
        other.close()


# == without overwrite: refused, naming the signature; with it: done ==================
@pytest.mark.parametrize("signature", sorted(SIGNATURES))
@pytest.mark.parametrize("pool_type", ["fs", "disk", "logical"])
def test_build_over_a_signature_needs_overwrite(ctl, lvm, tmp_path, pool_type, signature):
    device = lvm.disk(DEVICE_MIB)
    put_signature(lvm, device, signature)
    name = pool_name(pool_type, tmp_path)
    ctl.define_pool(pool_xml(pool_type, name, device, tmp_path))
    before = device_hash(device)
    for overwrite in (None, False):
        with pytest.raises(StateError, match=f"{device} holds {SIGNATURES[signature]}.*"
                                             "pass --overwrite"):
            ctl.build_pool(name, overwrite).wait(120)
        assert device_hash(device) == before
    assert ctl.pool_info(name).state == "inactive"
    if pool_type == "logical":  # no PV or VG made on the side either
        assert not lvm.report("vgs", "-o", "vg_name", kind="vg")

    ctl.build_pool(name, overwrite=True).wait(120)
    key, value = BUILT[pool_type]
    found = blkid(device)
    assert found.get(key) == value, found
    assert found.get("LABEL") != "keep" and (key == "PTTYPE" or "PTTYPE" not in found), found
    if pool_type == "logical":
        rows = lvm.report("pvs", "-o", "pv_name,vg_name", kind="pv")
        assert [(r["pv_name"], r["vg_name"]) for r in rows] == [(device, name)]


# == with overwrite: the whole disk is locked while the build writes ==================
@pytest.mark.parametrize("pool_type", ["fs", "disk", "logical"])
def test_overwrite_build_holds_the_whole_disk_lock(ctl, second_root, lvm, tmp_path,
                                                   monkeypatch, pool_type):
    device = lvm.disk(DEVICE_MIB)
    put_signature(lvm, device, "ext4" if pool_type != "fs" else "msdos")
    name = pool_name(pool_type, tmp_path)
    ctl.define_pool(pool_xml(pool_type, name, device, tmp_path))
    before = device_hash(device)
    gate = ToolGate(device)
    monkeypatch.setattr(runner, "run", gate.run)
    monkeypatch.setattr(blockprobe, "DISK_LOCK_WAIT", 0.5)  # the refusals below come sooner

    job = ctl.build_pool(name, overwrite=True)
    waiter_saw: list[dict[str, str]] = []
    waiter: threading.Thread | None = None
    try:
        assert gate.entered.wait(GATE_TIMEOUT), job.wait(1)
        assert device_hash(device) == before  # probed and checked, nothing written yet

        # Another thread of this process: refused once its short wait is over.
        with pytest.raises(Busy, match=f"another program holds the lock on {device}"), \
                blockprobe.disk_lock(device, wait=0.2):
            pass
        # Another process (util-linux flock, as udev and partitioning tools take it).
        other = subprocess.run(["flock", "--nonblock", "--exclusive", device, "true"],
                               capture_output=True, timeout=30, check=False)
        assert other.returncode == 1, other

        # A waiter gets the disk only after the build is done with it.
        def wait_for_disk() -> None:
            with blockprobe.disk_lock(device, wait=GATE_TIMEOUT):
                waiter_saw.append(blkid(device))

        waiter = threading.Thread(target=wait_for_disk)
        waiter.start()

        # The same root: a second pool on the device is refused at define time.
        with pytest.raises(AlreadyExists, match=f"pool '{name}'"):
            ctl.define_pool(pool_xml(pool_type, name + "b", device, tmp_path))
        # Another state root knows nothing of ours: only the disk lock stops its build.
        other_name = pool_name(pool_type, tmp_path, "x")
        second_root.define_pool(pool_xml(pool_type, other_name, device, tmp_path))
        with pytest.raises(Busy, match=f"another program holds the lock on {device}"):
            second_root.build_pool(other_name, overwrite=True).wait(60)
        assert not waiter_saw  # still held by the gated build
        assert device_hash(device) == before
    finally:
        gate.opened.set()
        job.wait(120)
        if waiter is not None:
            waiter.join(GATE_TIMEOUT)
    assert waiter is not None and not waiter.is_alive()
    key, value = BUILT[pool_type]
    assert waiter_saw and waiter_saw[0].get(key) == value, waiter_saw
    assert blkid(device).get(key) == value


def test_building_on_a_partition_locks_the_whole_disk(ctl, lvm, tmp_path, monkeypatch):
    disk = lvm.disk(DEVICE_MIB)
    subprocess.run(["parted", "-s", disk, "mklabel", "gpt", "mkpart", "data", "1MiB", "100%"],
                   check=True, capture_output=True)
    part = f"{disk}p1"  # parted adds the node itself (BLKPG); the kernel scans nothing here
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "keep", part], check=True,
                       capture_output=True)
        ctl.define_pool(pool_xml("fs", "onpart", part, tmp_path))
        with pytest.raises(StateError, match=f"{part} holds an ext4 filesystem"):
            ctl.build_pool("onpart").wait(60)
        table = device_hash(disk)
        gate = ToolGate(part)
        monkeypatch.setattr(runner, "run", gate.run)
        job = ctl.build_pool("onpart", overwrite=True)
        try:
            assert gate.entered.wait(GATE_TIMEOUT), job.wait(1)
            # The lock is on the disk, so a partitioning tool cannot rewrite the table now.
            other = subprocess.run(["flock", "--nonblock", "--exclusive", disk, "true"],
                                   capture_output=True, timeout=30, check=False)
            assert other.returncode == 1, other
            assert device_hash(disk) == table
        finally:
            gate.opened.set()
            job.wait(120)
        assert blkid(part).get("TYPE") == "ext4" and blkid(part).get("LABEL") != "keep"
        assert blkid(disk).get("PTTYPE") == "gpt"  # the table around it is intact
    finally:
        subprocess.run(["partx", "-d", disk], capture_output=True, check=False)
