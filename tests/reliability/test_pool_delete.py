"""`pool-delete` never erases storage that still holds volumes, unless forced.

A dir pool refuses a non-empty directory; the pool types whose delete erases the storage
must refuse the same way: an fs pool whose filesystem holds files (other than lost+found
and poolkeeper's own hidden partial files), a disk pool with partitions, a logical pool
with LVs. `pool-delete --force` (controller: force=True; TUI: the pool name typed) erases
them. Looking inside an inactive fs pool changes nothing on its device (every byte of the
image is the same afterwards) and leaves no mount or loop device behind. netfs and dir
pools never erase anything: forced or not, only an empty directory is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.errors import StateError
from backends.model import (
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    SourceHost,
    VolumeDef,
)
from backends.names import PARTIAL_PREFIX
from tests.loopfs import can_use_loop_devices, loops_of, release_partitioned, wait_until
from tests.lvmenv import can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')

needs_loops = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
SIZES = {"ext4": 64, "xfs": 300, "btrfs": 128}


def sha(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            digest.update(chunk)
    return digest.hexdigest()


def cli(root: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "tui", "--root", str(root), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout + done.stderr


def signature(path: Path | str) -> str | None:
    """The filesystem or partition table blkid finds (None: nothing)."""
    done = subprocess.run(["blkid", "-p", "-o", "export", str(path)], capture_output=True,
                          text=True)
    found = dict(ln.split("=", 1) for ln in done.stdout.splitlines() if "=" in ln)
    return found.get("TYPE") or found.get("PTTYPE")


def mounts_under(base: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        return [line.split()[4] for line in fh if line.split()[4].startswith(f"{base}/")]


@pytest.fixture
def images(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    made: list[Path] = []

    def make(size_mib: int) -> Path:
        image = tmp_path / f"image{len(made)}.img"
        with open(image, "wb") as fh:
            fh.truncate(size_mib * MiB)
        made.append(image)
        return image

    try:
        yield make
    finally:
        for target in reversed(mounts_under(tmp_path)):
            if subprocess.run(["umount", target], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", target], capture_output=True)
        for image in made:
            for dev in loops_of(image):
                release_partitioned(dev, image)


# == fs ===================================================================================
@needs_loops
@pytest.mark.parametrize("fmt", ["ext4", "xfs", "btrfs"])
def test_fs_pool_holding_volumes_is_not_erased_unless_forced(state_root: Path, tmp_path: Path,
                                                             images, fmt: str):
    image = images(SIZES[fmt])
    target = tmp_path / "mnt"
    assert cli(state_root, "pool-define-as", "p", "fs", "--source-dev", str(image),
               "--source-format", fmt, "--target", str(target))[0] == 0
    for verb in (["pool-build", "p"], ["pool-start", "p"],
                 ["vol-create-as", "p", "v.img", "1M"], ["pool-destroy", "p"]):
        assert cli(state_root, *verb)[0] == 0, verb
    before = sha(image)

    code, out = cli(state_root, "pool-delete", "p")
    assert code == 1
    assert "pool 'p' still holds 1 volume (v.img)" in out and "pool-delete p --force" in out
    # It looked inside without changing a byte, and left nothing mounted or attached.
    assert sha(image) == before and signature(image) == fmt
    assert loops_of(image) == [] and mounts_under(state_root) == []
    assert mounts_under(tmp_path) == []

    assert cli(state_root, "pool-delete", "p", "--force") == (0, "Pool p deleted\n")
    assert signature(image) is None


@needs_loops
def test_fs_pool_on_a_block_device_is_refused_the_same_way(ctl, tmp_path: Path, images):
    image = images(64)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                         text=True, check=True).stdout.strip()
    ctl.define_pool_def(PoolDef(type="fs", name="p", source=PoolSource(
        devices=[SourceDevice(dev)], format="ext4"), target=PoolTarget(str(tmp_path / "m"))))
    ctl.build_pool("p").wait(120)
    ctl.start_pool("p")
    ctl.create_volume_def("p", VolumeDef(name="a", capacity=MiB)).wait(60)
    ctl.create_volume_def("p", VolumeDef(name="b", capacity=MiB)).wait(60)
    ctl.stop_pool("p")
    before = sha(dev)
    with pytest.raises(StateError, match=r"still holds 2 volumes \(a, b\)"):
        ctl.delete_pool("p")
    assert sha(dev) == before and mounts_under(ctl.paths.runtime_dir) == []
    ctl.delete_pool("p", force=True)
    assert signature(dev) is None


@needs_loops
def test_lost_found_and_poolkeepers_partial_files_do_not_count(ctl, tmp_path: Path, images):
    image = images(64)
    target = tmp_path / "m"
    ctl.define_pool_def(PoolDef(type="fs", name="p", source=PoolSource(
        devices=[SourceDevice(str(image))], format="ext4"), target=PoolTarget(str(target))))
    ctl.build_pool("p").wait(120)
    ctl.start_pool("p")
    assert (target / "lost+found").is_dir()
    (target / f"{PARTIAL_PREFIX}0123abcd.img").write_bytes(b"what a killed create left")
    ctl.stop_pool("p")
    assert ctl.stored_volumes("p") == []
    ctl.delete_pool("p")
    assert signature(image) is None


@needs_loops
def test_a_source_that_cannot_be_looked_into_is_refused_unless_forced(ctl, tmp_path: Path,
                                                                      images):
    image = images(64)
    subprocess.run(["parted", "-s", str(image), "mklabel", "gpt"], check=True)
    ctl.define_pool_def(PoolDef(type="fs", name="p", source=PoolSource(
        devices=[SourceDevice(str(image))], format="ext4"), target=PoolTarget(str(tmp_path))))
    with pytest.raises(StateError, match="cannot tell whether pool 'p' still holds volumes "
                                         r"\(.* holds a gpt partition table\); pool-delete p "
                                         "--force erases it anyway"):
        ctl.delete_pool("p")
    assert signature(image) == "gpt"
    ctl.delete_pool("p", force=True)
    assert signature(image) is None


# == disk =================================================================================
@needs_loops
@pytest.mark.parametrize("label", ["gpt", "dos"])
def test_disk_pool_with_partitions_is_not_erased_unless_forced(ctl, images, label: str):
    image = images(64)
    ctl.define_pool_def(PoolDef(type="disk", name="d", source=PoolSource(
        devices=[SourceDevice(str(image))], format=label), target=PoolTarget("/dev")))
    ctl.build_pool("d").wait(120)
    ctl.start_pool("d")
    [loop] = loops_of(image)
    ctl.create_volume_def("d", VolumeDef(name=f"{Path(loop).name}p1", capacity=8 * MiB)
                          ).wait(60)
    ctl.stop_pool("d")
    assert wait_until(lambda: loops_of(image) == [])
    before = sha(image)
    with pytest.raises(StateError, match=r"still holds 1 volume \(partition 1 \(8.00 MiB\)\)"
                                         ".*pool-delete d --force"):
        ctl.delete_pool("d")
    assert sha(image) == before
    ctl.delete_pool("d", force=True)
    assert signature(image) is None


@needs_loops
def test_disk_pool_without_partitions_is_deleted(ctl, images):
    image = images(64)
    ctl.define_pool_def(PoolDef(type="disk", name="d", source=PoolSource(
        devices=[SourceDevice(str(image))], format="gpt"), target=PoolTarget("/dev")))
    ctl.build_pool("d").wait(120)
    assert ctl.stored_volumes("d") == []
    ctl.delete_pool("d")
    assert signature(image) is None


# == logical ==============================================================================
@pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")
def test_logical_pool_with_lvs_is_not_erased_unless_forced(ctl, lvm):
    vg = "pkdel" + hashlib.sha256(str(id(lvm)).encode()).hexdigest()[:6]
    dev = lvm.disk(64)
    ctl.define_pool_def(PoolDef(type="logical", name=vg, source=PoolSource(
        name=vg, devices=[SourceDevice(dev)], format="lvm2"), target=PoolTarget(f"/dev/{vg}")))
    ctl.build_pool(vg).wait(120)
    ctl.start_pool(vg)
    ctl.create_volume_def(vg, VolumeDef(name="lv1", capacity=8 * MiB)).wait(60)
    ctl.stop_pool(vg)
    with pytest.raises(StateError, match=rf"still holds 1 volume \(lv1\).*pool-delete {vg} "
                                         "--force"):
        ctl.delete_pool(vg)
    assert [r["lv_name"] for r in lvm.report("lvs", "-o", "lv_name", vg, kind="lv")] == ["lv1"]
    ctl.delete_pool(vg, force=True)
    assert not lvm.report("vgs", "-o", "vg_name", kind="vg")


# == dir and netfs: nothing is erased, forced or not =======================================
@pytest.mark.parametrize("kind", ["dir", "netfs"])
def test_dir_and_netfs_delete_only_an_empty_directory(ctl, tmp_path: Path, kind: str):
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep.img").write_bytes(b"data")
    if kind == "dir":
        pdef = PoolDef(type="dir", name="p", target=PoolTarget(str(target)))
    else:
        pdef = PoolDef(type="netfs", name="p", source=PoolSource(
            hosts=[SourceHost("127.0.0.1")], dir="/export", format="nfs"),
            target=PoolTarget(str(target)))
    ctl.define_pool_def(pdef)
    # its delete erases no volumes: what the directory holds makes it refuse (the TUI
    # says so before a name is typed)
    assert ctl.stored_volumes("p") == ["keep.img"]
    for force in (False, True):
        with pytest.raises(StateError, match="is not empty"):
            ctl.delete_pool("p", force=force)
        assert (target / "keep.img").read_bytes() == b"data"
    with contextlib.suppress(FileNotFoundError):
        (target / "keep.img").unlink()
    ctl.delete_pool("p", force=True)
    assert not target.exists()


@needs_loops
@pytest.mark.parametrize("fmt", ["ext4", "xfs"])
def test_looking_inside_a_crashed_filesystem_replays_nothing(ctl, tmp_path: Path, images,
                                                             fmt: str):
    """The image of a filesystem copied while it was mounted is what a crash leaves: its
    journal (ext4) or log (xfs) needs a replay, and until then the files made since the
    last checkpoint are only in the journal (xfs shows an empty root without it). The look
    inside must not replay it (not a byte changes) nor take it for empty: it cannot tell,
    and says how to make it tell."""
    live = images(SIZES[fmt])
    subprocess.run([f"mkfs.{fmt}", "-q", "-F" if fmt == "ext4" else "-f", str(live)],
                   check=True)
    dev = subprocess.run(["losetup", "--find", "--show", str(live)], capture_output=True,
                         text=True, check=True).stdout.strip()
    mnt = tmp_path / "live"
    mnt.mkdir()
    crashed = tmp_path / "crashed.img"
    subprocess.run(["mount", dev, str(mnt)], check=True)
    try:
        (mnt / "a.img").write_bytes(b"x" * 4096)
        (mnt / "b.qcow2").write_bytes(b"y" * 4096)
        subprocess.run(["sync"], check=True)
        subprocess.run(["cp", "--sparse=always", str(live), str(crashed)], check=True)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        subprocess.run(["losetup", "-d", dev], check=True)
    ctl.define_pool_def(PoolDef(type="fs", name="p", source=PoolSource(
        devices=[SourceDevice(str(crashed))], format=fmt),
        target=PoolTarget(str(tmp_path / "m"))))
    before = sha(crashed)
    for look in (lambda: ctl.stored_volumes("p"), lambda: ctl.delete_pool("p")):
        with pytest.raises(StateError, match="cannot tell whether pool 'p' still holds "
                                             "volumes .*not cleanly unmounted.*start and stop "
                                             "the pool once.*pool-delete p --force"):
            look()
        assert sha(crashed) == before and loops_of(crashed) == []
    ctl.start_pool("p")  # a normal mount replays it
    ctl.stop_pool("p")
    assert ctl.stored_volumes("p") == ["a.img", "b.qcow2"]
