"""The format record of a volume belongs to that very file.

Item 2: pool-undefine used to drop the records, so after undefine + define of the same
directory a raw disk whose guest wrote a vmdk or qcow2 header was trusted as that format.
The records are now kept with the old definition and taken over by the next pool defined on
the same storage, however its path is spelled, or by the first listing of a pool that holds
the very files they were made for (the directory moved or bind-mounted elsewhere). An
undefine killed after any of its steps loses none of them.

Item 3: records matched on the inode number alone, and ext4 hands a freed inode to the next
file: a volume deleted behind poolkeeper's back and recreated as a qcow2 under the same name
was shown as raw, and `vol-resize --shrink` truncated its metadata. Records now also hold the
birth time and the inode generation; a file that does not match was not created here.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.model import BackingStore, PoolDef, PoolTarget, VolumeDef, VolumeTarget
from tests.conftest import make_dir_pool
from tests.loopfs import can_use_loop_devices, loop_filesystem
from tests.reliability.test_external_files import descriptor, flat
from tests.reliability.test_format_trust import (
    CANARY_BYTES,
    RAW,
    InotifyWatch,
    create,
    hostile_image,
    sha,
)

MiB = 1 << 20


def guest_header(kind: str, scratch: Path, canary: Path) -> bytes:
    """What a guest writes at the start of its raw disk to make the host open `canary`."""
    if kind == "vmdk":
        return descriptor(flat(canary))
    return hostile_image(scratch, "backing", canary)


def define_dir_pool(ctl: StorageController, name: str, path: Path | str) -> None:
    ctl.define_pool_def(PoolDef(type="dir", name=name, target=PoolTarget(path=str(path))))


@pytest.mark.parametrize("spelling", ["same", "linked-parent", "other-name"])
@pytest.mark.parametrize("kind", ["vmdk", "qcow2"])
def test_records_survive_undefine_and_define(ctl, pool, tmp_path, kind, spelling):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    canary = tmp_path / "canary"
    header = guest_header(kind, scratch, canary)
    canary.write_bytes(CANARY_BYTES)
    create(ctl, "guest.img", 4 * MiB)  # recorded raw
    with open(pool / "guest.img", "r+b") as fh:
        fh.write(header)
    ctl.stop_pool("p")
    ctl.undefine_pool("p")
    # (a target that is itself a link is refused at start: the link is in a parent here)
    name, path = {"same": ("p", pool), "linked-parent": ("p", tmp_path / "alias" / pool.name),
                  "other-name": ("again", f"{tmp_path}//images/")}[spelling]
    if spelling == "linked-parent":
        (tmp_path / "alias").symlink_to(tmp_path)
    define_dir_pool(ctl, name, path)
    ctl.start_pool(name)
    canary_before = sha(canary)
    watch = InotifyWatch(canary)
    try:
        listed = {v.name: v for v in ctl.list_volumes(name)}["guest.img"]
        assert (listed.format, listed.format_recorded, listed.probed_format) == \
            ("raw", True, kind)
        assert ctl.volume_info(name, "guest.img").backing is None
        ctl.clone_volume(name, "guest.img", "copy.raw", xml=RAW).wait(60)
        ctl.clone_volume(name, "guest.img", "conv.qcow2",
                         xml=RAW.replace("raw", "qcow2")).wait(60)
        ctl.create_volume_def(name, VolumeDef(
            name="top.qcow2", capacity=4 * MiB, target=VolumeTarget(format="qcow2"),
            backing=BackingStore(path=listed.path))).wait(60)
        assert ctl.resize_volume(name, "guest.img", 8 * MiB).wait(60).capacity == 8 * MiB
        assert watch.events() == [], "something opened the canary"
    finally:
        watch.close()
    assert sha(canary) == canary_before
    assert (pool / "copy.raw").read_bytes()[:len(header)] == header


def test_records_of_another_storage_are_not_taken(ctl, pool, tmp_path):
    """A pool defined on another directory under the old name starts with no records."""
    create(ctl, "guest.img", MiB)
    ctl.stop_pool("p")
    ctl.undefine_pool("p")
    other = tmp_path / "other"
    other.mkdir()
    define_dir_pool(ctl, "p", other)
    assert ctl.store.volume_records("p") == {}
    define_dir_pool(ctl, "back", pool)  # the old directory, later: its records come back
    assert set(ctl.store.volume_records("back")) == {"guest.img"}


# == item 3 ==============================================================================
needs_loop = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")
INODE_ATTEMPTS = 200


def fill_free_inodes_below(filler: Path, ino: int) -> None:
    """ext4 gives a new file the lowest free inode of its group (a 32 MiB ext4 has one):
    take every free one below `ino` (poolkeeper's own creates and deletes leave some), so
    the next file gets `ino` once it is freed."""
    filler.mkdir()
    for i in range(1000):
        made = filler / str(i)
        made.touch()
        if made.stat().st_ino > ino:
            made.unlink()
            return


def qemu_info(path: Path) -> dict:
    return json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", "-f", "qcow2", str(path)], check=True,
        capture_output=True, text=True).stdout)


@needs_loop
def test_a_recreated_file_with_a_reused_inode_is_not_taken_for_the_old_one(tmp_path):
    """On a small ext4 of its own, poolkeeper makes a raw volume; it is deleted behind
    poolkeeper's back and a 20 GiB qcow2 made under its name, until ext4 hands the new file
    the old inode (every attempt so far: at once). The qcow2 must list as qcow2 (not
    recorded), and a shrink must go through qemu-img, keeping the image valid."""
    with loop_filesystem(tmp_path, "ext4", 32) as fs, \
            StorageController(tmp_path / "state", create_default=False) as ctl:
        images = fs.mount / "images"
        define_dir_pool(ctl, "p", images)
        ctl.build_pool("p").wait()
        ctl.start_pool("p")
        vol = images / "v"
        for attempt in range(INODE_ATTEMPTS):
            create(ctl, "v", MiB)
            old = os.stat(vol)
            fill_free_inodes_below(fs.mount / f"filler{attempt}", old.st_ino)
            os.unlink(vol)  # behind poolkeeper's back
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(vol), "20G"],
                           check=True, capture_output=True)
            if os.stat(vol).st_ino == old.st_ino:
                break
            os.unlink(vol)
        else:
            pytest.fail(f"ext4 never reused the inode in {INODE_ATTEMPTS} attempts")
        size = vol.stat().st_size
        info = ctl.volume_info("p", "v")
        assert (info.format, info.format_recorded, info.capacity) == ("qcow2", False, 20 << 30)
        assert {v.name: v.format for v in ctl.list_volumes("p")}["v"] == "qcow2"
        # shrink below the file's size: as raw this would cut the qcow2 metadata off
        new = size // 2 // 512 * 512
        ctl.resize_volume("p", "v", new, shrink=True).wait(60)
        assert qemu_info(vol)["virtual-size"] == new
        subprocess.run(["qemu-img", "check", "-q", "-f", "qcow2", str(vol)], check=True,
                       capture_output=True)
        ctl.stop_pool("p")


def test_the_same_file_keeps_its_record_through_guest_writes(ctl, pool):
    """Birth time and generation do not change when the file is written, grown or renamed
    back: a raw disk keeps its record whatever its guest does to it."""
    create(ctl, "guest.img", MiB)
    with open(pool / "guest.img", "r+b") as fh:
        fh.write(b"QFI\xfb" + bytes(100))
        fh.truncate(2 * MiB)
    os.rename(pool / "guest.img", pool / "moved")
    os.rename(pool / "moved", pool / "guest.img")
    info = ctl.volume_info("p", "guest.img")
    assert (info.format, info.format_recorded, info.capacity) == ("raw", True, 2 * MiB)


def test_a_record_made_without_birth_times_still_holds_once_the_kernel_gives_them(
        ctl, pool, tmp_path, monkeypatch):
    """A record made where statx gave no birth time (an older
    kernel or filesystem: inode + generation) must still match its file once statx gives
    one; if it did not, every raw disk would become "not created here" after the upgrade
    and the header its guest wrote would be believed (and followed to the canary)."""
    from backends import fileid

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    canary = tmp_path / "canary"
    header = hostile_image(scratch, "backing", canary)
    canary.write_bytes(CANARY_BYTES)
    with monkeypatch.context() as m:
        m.setattr(fileid, "_statx", None)  # the older kernel
        create(ctl, "guest.img", 4 * MiB)
    assert ctl.store.volume_records("p")["guest.img"]["btime"] is None
    assert fileid.of_path(str(pool / "guest.img"))[1] is not None  # the upgraded one
    with open(pool / "guest.img", "r+b") as fh:
        fh.write(header)
    watch = InotifyWatch(canary)
    try:
        info = ctl.volume_info("p", "guest.img")
        assert (info.format, info.format_recorded, info.backing) == ("raw", True, None)
        ctl.clone_volume("p", "guest.img", "conv.qcow2",
                         xml=RAW.replace("raw", "qcow2")).wait(60)
        assert watch.events() == [], "something opened the canary"
    finally:
        watch.close()


def test_a_create_right_after_a_delete_keeps_its_record(ctl, pool, monkeypatch):
    """A delete forgets the volume's record before it lets go of
    the volume's lock. A create of the same name can only start once the lock is free; the
    test makes one (to completion) at that very moment, through a hook on the delete's
    release of the lock: the new volume's record must survive the rest of the delete."""
    create(ctl, "v.img", MiB)
    real_volume = ctl.locks.volume
    made = []

    def volume(pool_name: str, name: str, *, exclusive: bool, what: str):
        held = real_volume(pool_name, name, exclusive=exclusive, what=what)
        if what == "being deleted":
            real_release = held.release

            def release(remove: bool | None = None) -> None:
                real_release(remove)
                if not made:  # the create that wins the freed name
                    made.append(create(ctl, "v.img", MiB, "qcow2"))

            held.release = release
        return held

    monkeypatch.setattr(ctl.locks, "volume", volume)
    ctl.delete_volume("p", "v.img")
    assert made, "the hook did not run"
    assert ctl.store.volume_records("p")["v.img"]["format"] == "qcow2"
    info = ctl.volume_info("p", "v.img")
    assert (info.format, info.format_recorded) == ("qcow2", True)


class _Killed(BaseException):
    """Stands for a kill -9 right after one step of an undefine: no handler catches a
    BaseException, so nothing after the step runs (the locks go, as with a dead process)."""


def _killing_after(limit: int, counter: list[int], real):
    def step(*args, **kwargs):
        result = real(*args, **kwargs)
        counter[0] += 1
        if counter[0] == limit:
            raise _Killed
        return result
    return step


def test_an_undefine_killed_after_any_step_loses_no_record(tmp_path, monkeypatch):
    """`pool-undefine` writes and removes files in steps (the
    set-aside copy of the records, the autostart link, the definition, the records file).
    Killed after each step in turn (each file write or removal of the store), the records
    are never lost: the pool is still defined with them, or a pool defined again on the
    same directory takes them over; either way the guest-written header is not believed."""
    import backends.store as store_module

    for limit in range(1, 20):
        base = tmp_path / str(limit)
        images = base / "images"
        with StorageController(base / "state", create_default=False, autostart=False) as ctl:
            define_dir_pool(ctl, "p", images)
            ctl.build_pool("p").wait()
            ctl.start_pool("p")
            create(ctl, "guest.img", MiB)  # recorded raw
            with open(images / "guest.img", "r+b") as fh:
                fh.write(descriptor(flat(base / "canary")))  # what its guest wrote
            ctl.stop_pool("p")
            steps = [0]
            with monkeypatch.context() as m:
                for name in ("_remove", "atomic_write"):
                    m.setattr(store_module, name,
                              _killing_after(limit, steps, getattr(store_module, name)))
                try:
                    ctl.undefine_pool("p")
                    finished = True
                except _Killed:
                    finished = False
        with StorageController(base / "state", create_default=False, autostart=False) as ctl:
            pool_name = "p" if "p" in ctl.pool_names() else "again"
            if pool_name == "again":
                define_dir_pool(ctl, "again", images)
            ctl.start_pool(pool_name)
            info = ctl.volume_info(pool_name, "guest.img")
            assert (info.format, info.format_recorded) == ("raw", True), (limit, pool_name)
            ctl.stop_pool(pool_name)
        if finished:
            assert limit > 3  # every step was killed once
            return
    pytest.fail("the undefine never finished")


@contextlib.contextmanager
def _bind_mounted_dir(source: Path, at: Path) -> Iterator[Path]:
    at.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(source), str(at)], check=True, capture_output=True)
    try:
        yield at
    finally:
        subprocess.run(["umount", str(at)], check=True, capture_output=True)


@pytest.mark.parametrize("quick", [False, True], ids=["start", "cli-start"])
@pytest.mark.parametrize("how", ["moved", "bind-mounted"])
def test_records_follow_their_files_to_a_moved_or_bind_mounted_directory(
        ctl, pool, tmp_path, how, quick):
    """After pool-undefine, the directory is moved (`mv
    /pools/a /pools/b`) or bind-mounted elsewhere, and a pool is defined there: no path
    matches the undefined pool's, but its records name these very files (inode and birth
    time), so the first listing takes them over, once; the guest's header stays ignored.
    A CLI start (quick) lists nothing: the first listing after it takes them over."""
    if how == "bind-mounted" and os.geteuid() != 0:
        pytest.skip("needs root (CI runs as root)")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    canary = tmp_path / "canary"
    header = guest_header("qcow2", scratch, canary)
    canary.write_bytes(CANARY_BYTES)
    create(ctl, "guest.img", 4 * MiB)  # recorded raw
    with open(pool / "guest.img", "r+b") as fh:
        fh.write(header)
    ctl.stop_pool("p")
    ctl.undefine_pool("p")
    with contextlib.ExitStack() as stack:
        if how == "moved":
            where = tmp_path / "elsewhere" / "b"
            where.parent.mkdir()
            os.rename(pool, where)
        else:
            where = stack.enter_context(_bind_mounted_dir(pool, tmp_path / "b"))
        define_dir_pool(ctl, "b", where)
        ctl.start_pool("b", quick=quick)
        stack.callback(ctl.stop_pool, "b")
        assert len(ctl.store.set_aside_keys()) == (1 if quick else 0)
        watch = InotifyWatch(canary)
        try:
            listed = {v.name: v for v in ctl.list_volumes("b")}["guest.img"]
            assert (listed.format, listed.format_recorded, listed.probed_format) == \
                ("raw", True, "qcow2")
            ctl.clone_volume("b", "guest.img", "conv.qcow2",
                             xml=RAW.replace("raw", "qcow2")).wait(60)
            assert ctl.resize_volume("b", "guest.img", 8 * MiB).wait(60).capacity == 8 * MiB
            assert watch.events() == [], "something opened the canary"
        finally:
            watch.close()
        assert ctl.store.set_aside_keys() == []  # taken over, once
        assert ctl.store.volume_records("b")["guest.img"]["format"] == "raw"


def test_set_aside_records_are_read_once_per_pool(ctl, pool, tmp_path, monkeypatch):
    """The identity adoption is cheap: a listing with a file no record is for (a planted
    image) reads each set-aside set once for the pool, not on every refresh or monitor
    round; a set made for other files is left for its own storage."""
    make_dir_pool(ctl, "o", tmp_path / "o")
    ctl.create_volume_def("o", VolumeDef(name="x.img", capacity=MiB)).wait(60)
    ctl.stop_pool("o")
    ctl.undefine_pool("o")
    (pool / "planted.img").write_bytes(bytes(MiB))
    reads: list[str] = []
    real = ctl.store.set_aside_records
    monkeypatch.setattr(ctl.store, "set_aside_records",
                        lambda key: reads.append(key) or real(key))
    for _ in range(3):
        ctl.list_volumes("p")
        ctl.volume_info("p", "planted.img")
        ctl.poll()
    assert len(reads) == 1
    assert len(ctl.store.set_aside_keys()) == 1
    assert set(ctl.store.volume_records("p")) == set()


def test_a_set_aside_record_matching_on_the_inode_alone_is_not_taken(ctl, pool):
    """Two filesystems made alike hand out the same inode numbers: a set-aside record of
    another filesystem's 'disk.img' (made where there was no birth time or generation)
    that matches this 'disk.img' on the inode number alone is not taken over (it would
    make a qcow2 here count as a raw disk poolkeeper made)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(pool / "disk.img"), "1G"],
                   check=True, capture_output=True)
    other = {"definition": "<pool type='dir'><name>o</name><target><path>/elsewhere</path>"
                           "</target></pool>",
             "records": {"disk.img": {"format": "raw", "ino": (pool / "disk.img").stat().st_ino,
                                      "btime": None, "gen": None}},
             "undefined_ns": 1}
    (ctl.store.volumes_dir / ".undefined-0123456789abcdef.json").write_text(json.dumps(other))
    info = {v.name: v for v in ctl.list_volumes("p")}["disk.img"]
    assert (info.format, info.format_recorded) == ("qcow2", False)
    assert ctl.store.set_aside_keys() == [".undefined-0123456789abcdef.json"]
