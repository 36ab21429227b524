"""A pool's target swapped behind poolkeeper's back is never followed.

A user who owns a pool target's parent can swap the target (or the parent itself) for a
symlink to a directory of their choosing, or for another directory, while the pool is
active. Every verb must then refuse with the same message ("the target of pool X changed
since it started ...; stop and start the pool"), the pool must show as inaccessible
(pool-list, pool-info, the monitor), and nothing in the other directory may be listed,
read, written, created or removed. pool-start refuses a target that is a symlink (naming
where it points), for dir pools and for fs pools, where mount(8) would otherwise mount over
the link's destination. An inactive pool's delete (and its sweep of half-made files) does
not follow a symlinked target either.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.controller import StorageController
from backends.errors import PoolkeeperError
from backends.events import PoolChanged
from backends.model import PoolDef, PoolTarget, VolumeDef, VolumeTarget
from backends.names import PARTIAL_PREFIX
from tests.conftest import make_dir_pool
from tests.loopfs import backing_file, can_use_loop_devices, loops_of

MiB = 1 << 20
CHANGED = "changed since it started"
SWAPS = ["target-link", "target-other-dir", "parent-link"]


# == helpers ============================================================================
class Elsewhere:
    """The directory an attacker points the pool at: files with the pool's volume names,
    a half-made-looking file a sweep would remove, and a fingerprint of all of it."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.path = path
        path.mkdir(parents=True)
        for name in names:
            (path / name).write_bytes(os.urandom(4096) + bytes(MiB))
        (path / f"{PARTIAL_PREFIX}bait").write_bytes(b"not a partial of ours")
        for entry in path.iterdir():
            os.utime(entry, ns=(10**18, 10**18))  # any write would move the mtime

    def fingerprint(self) -> dict[str, tuple]:
        return {e.name: (hashlib.sha256(e.read_bytes()).hexdigest(), e.stat().st_size,
                         e.stat().st_mtime_ns) for e in sorted(self.path.iterdir())}


def swap(target: Path, kind: str, elsewhere_base: Path, names: list[str]) -> Elsewhere:
    """Replace the pool's target (or its parent) as an attacker would, in place."""
    if kind == "target-link":
        other = Elsewhere(elsewhere_base / "victim", names)
        target.rename(target.with_name(target.name + ".old"))
        target.symlink_to(other.path)
    elif kind == "target-other-dir":
        target.rename(target.with_name(target.name + ".old"))
        other = Elsewhere(target, names)  # a new directory, same name, other files
    else:  # parent-link: the parent becomes a link to a tree with a same-named directory
        parent = target.parent
        other = Elsewhere(elsewhere_base / "victim-parent" / target.name, names)
        parent.rename(parent.with_name(parent.name + ".old"))
        parent.symlink_to(other.path.parent)
    return other


def refused(call: Callable[[], Any], match: str = CHANGED) -> str:
    """The verb raises (or its job fails) with `match` in the message."""
    with pytest.raises(PoolkeeperError, match=match) as info:
        result = call()
        if hasattr(result, "wait"):
            result.wait(60)
    return str(info.value)


def volume_verbs(ctl: StorageController, tmp_path: Path, pool: str = "p",
                 other: str = "q") -> dict[str, Callable[[], Any]]:
    """Every volume verb on volume a.img of `pool`; clones also to and from `other`."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"U" * 4096)
    return {
        "refresh": lambda: ctl.refresh_pool(pool),
        "list": lambda: ctl.list_volumes(pool),
        "info": lambda: ctl.volume_info(pool, "a.img"),
        "create": lambda: ctl.create_volume_def(pool, VolumeDef(
            name="new.img", capacity=MiB, target=VolumeTarget(format="raw"))),
        "clone-from": lambda: ctl.clone_volume(pool, "a.img", "copy.img", target_pool=other),
        "clone-into": lambda: ctl.clone_volume(other, "q.img", "fresh.img", target_pool=pool),
        "clone-within": lambda: ctl.clone_volume(pool, "a.img", "fresh.img"),
        "delete": lambda: ctl.delete_volume(pool, "a.img"),
        "wipe": lambda: ctl.wipe_volume(pool, "a.img"),
        "resize": lambda: ctl.resize_volume(pool, "a.img", 4 * MiB),
        "upload": lambda: ctl.upload_volume(pool, "a.img", str(upload)),
        "download": lambda: ctl.download_volume(pool, "a.img", str(tmp_path / "down.bin")),
    }


def check_inaccessible(ctl: StorageController, name: str) -> None:
    info = ctl.pool_info(name)
    assert info.state == "inaccessible" and CHANGED in (info.detail or ""), info
    listed = {p.name: p for p in ctl.list_pools()}
    assert listed[name].state == "inaccessible", listed[name]


@pytest.fixture
def pools(ctl: StorageController, tmp_path: Path) -> Path:
    """Active dir pools 'p' (at tmp/parent/images, volumes a.img and b.img) and 'q'."""
    target = tmp_path / "parent" / "images"
    target.parent.mkdir()
    make_dir_pool(ctl, "p", target)
    make_dir_pool(ctl, "q", tmp_path / "other-pool")
    for pool, name in (("p", "a.img"), ("p", "b.img"), ("q", "q.img")):
        ctl.create_volume_def(pool, VolumeDef(name=name, capacity=2 * MiB,
                                              target=VolumeTarget(format="raw"))).wait(60)
    return target


# == dir pools ==========================================================================
@pytest.mark.parametrize("kind", SWAPS)
def test_every_verb_refuses_a_swapped_target(ctl, pools, tmp_path, kind):
    events: list[object] = []
    ctl.subscribe(events.append)
    ctl.poll()  # the monitor knows the pool as it was
    other = swap(pools, kind, tmp_path / "attacker", ["a.img", "b.img"])
    before = other.fingerprint()

    messages = {verb: refused(call) for verb, call in volume_verbs(ctl, tmp_path).items()}
    assert all("stop and start the pool" in m for m in messages.values()), messages
    check_inaccessible(ctl, "p")
    ctl.poll()
    assert PoolChanged("p", "inaccessible") in events
    assert ctl.pool_info("q").state == "running"  # the other pool is not affected

    assert other.fingerprint() == before  # nothing there was touched, nothing made
    assert not (tmp_path / "down.bin").exists()
    assert not (tmp_path / "other-pool" / "copy.img").exists()


def test_the_message_says_what_changed(ctl, pools, tmp_path):
    swap(pools, "target-link", tmp_path / "attacker", ["a.img"])
    message = refused(lambda: ctl.list_volumes("p"))
    assert f"'{pools}' is now a symbolic link" in message
    assert str(tmp_path / "attacker" / "victim") in message
    assert "pool-destroy p; pool-start p" in message


def test_a_restart_accepts_the_directory_that_is_there_now(ctl, pools, tmp_path):
    """After "stop and start", what the user now has at the target is the pool (unless it
    is a link, which start refuses)."""
    swap(pools, "target-other-dir", tmp_path / "attacker", ["a.img"])
    ctl.stop_pool("p")
    ctl.start_pool("p")
    assert {v.name for v in ctl.list_volumes("p")} == {"a.img"}


def test_start_refuses_a_target_that_is_a_symlink(ctl, tmp_path):
    real = tmp_path / "real"
    other = Elsewhere(real, ["x.img"])
    before = other.fingerprint()
    link = tmp_path / "images"
    link.symlink_to(real)
    ctl.define_pool_def(PoolDef(type="dir", name="l", target=PoolTarget(path=str(link))))
    message = refused(lambda: ctl.start_pool("l"), match="is a symbolic link")
    assert f"to '{real}'" in message and "define the pool on the real directory" in message
    assert ctl.pool_info("l").state == "inactive"
    refused(lambda: ctl.build_pool("l").wait(60), match="is a symbolic link")
    assert other.fingerprint() == before


def test_delete_of_an_inactive_pool_never_follows_a_symlinked_target(ctl, pools, tmp_path):
    ctl.stop_pool("p")
    other = swap(pools, "target-link", tmp_path / "attacker", [])
    before = other.fingerprint()
    refused(lambda: ctl.delete_pool("p"), match="symbolic link")
    assert other.fingerprint() == before  # the bait "partial" file was not swept
    assert pools.is_symlink()


def test_cli_shows_the_pool_inaccessible_and_refuses(ctl, pools, tmp_path, cli):
    swap(pools, "parent-link", tmp_path / "attacker", ["a.img"])
    listing = cli("pool-list", "--all", "--details")
    assert listing.code == 0 and "inaccessible" in listing.out, listing
    listing = cli("pool-list")  # started, so active where virsh says only active/inactive
    assert listing.code == 0 and listing.out.splitlines()[2].split() == ["p", "active", "no"]
    info = cli("pool-info", "p")  # says why, and what to do
    assert info.code == 0 and "inaccessible" in info.out, info
    assert any(line.startswith("Problem:") and CHANGED in line
               for line in info.out.splitlines()), info
    result = cli("vol-list", "p")
    assert result.code == 1 and CHANGED in result.err, result
    result = cli("vol-delete", "--pool", "p", "a.img")
    assert result.code == 1 and CHANGED in result.err, result


# == fs pools (a real filesystem on a loop device) ======================================
def _mounted_at(path: Path) -> bool:
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == str(path) for line in fh)


@contextlib.contextmanager
def fs_pool(ctl: StorageController, tmp_path: Path, target: Path) -> Iterator[Path]:
    """An fs pool 'f' (ext4 on an image file, attached by poolkeeper) defined on `target`;
    whatever is left mounted or attached is undone at the end."""
    if not can_use_loop_devices():
        pytest.skip("needs root and loop devices")
    image = tmp_path / "fs.img"
    with open(image, "wb") as fh:
        fh.truncate(64 * MiB)
    ctl.define_pool_def(PoolDef(type="fs", name="f", target=PoolTarget(path=str(target)),
                                source=_source(image)))
    try:
        yield image
    finally:
        with contextlib.suppress(PoolkeeperError, OSError):
            ctl.stop_pool("f")
        for dev in loops_of(image):
            with open("/proc/self/mountinfo") as fh:
                mounted = [line.split()[4] for line in fh
                           if line.split()[line.split().index("-") + 2] == dev]
            for mnt in reversed(mounted):
                if subprocess.run(["umount", mnt], capture_output=True).returncode:
                    subprocess.run(["umount", "-l", mnt], capture_output=True)
            if backing_file(dev) == str(image):
                subprocess.run(["losetup", "-d", dev], capture_output=True)


def _source(image: Path):
    from backends.model import PoolSource, SourceDevice

    return PoolSource(devices=[SourceDevice(str(image))], format="ext4")


def test_fs_start_refuses_a_symlinked_mount_point(ctl, tmp_path):
    mount_point = tmp_path / "mnt" / "f"
    mount_point.parent.mkdir()
    with fs_pool(ctl, tmp_path, mount_point) as image:
        ctl.build_pool("f").wait(600)
        victim = Elsewhere(tmp_path / "victim", ["keep.img"])
        before = victim.fingerprint()
        mount_point.rmdir()
        mount_point.symlink_to(victim.path)
        refused(lambda: ctl.start_pool("f"), match="is a symbolic link")
        assert not _mounted_at(victim.path)  # mount(8) would have followed the link
        assert loops_of(image) == []  # nothing attached for the refused start
        assert victim.fingerprint() == before
        assert ctl.pool_info("f").state == "inactive"


@pytest.mark.parametrize("kind", ["parent-link", "unmounted"])
def test_fs_pool_verbs_refuse_a_changed_mount_point(ctl, tmp_path, kind):
    mount_point = tmp_path / "mnt" / "f"
    mount_point.parent.mkdir()
    with fs_pool(ctl, tmp_path, mount_point):
        ctl.build_pool("f").wait(600)
        ctl.start_pool("f")
        make_dir_pool(ctl, "q", tmp_path / "other-pool")
        for pool, name in (("f", "a.img"), ("q", "q.img")):
            ctl.create_volume_def(pool, VolumeDef(name=name, capacity=2 * MiB,
                                                  target=VolumeTarget(format="raw"))).wait(60)
        if kind == "unmounted":
            subprocess.run(["umount", str(mount_point)], check=True)
            other = Elsewhere(tmp_path / "unused", [])
            expected = "not mounted"
        else:
            other = swap(mount_point, "parent-link", tmp_path / "attacker", ["a.img"])
            expected = "not mounted|" + CHANGED
        before = other.fingerprint()
        for call in volume_verbs(ctl, tmp_path, pool="f").values():
            refused(call, match=expected)
        assert ctl.pool_info("f").state == "inaccessible"
        assert other.fingerprint() == before
        assert not (tmp_path / "down.bin").exists()
