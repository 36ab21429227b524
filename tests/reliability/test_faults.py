"""A failure injected inside every controller verb.

Faults are real where this machine allows it: a permission error is `chattr +i` on a
directory or file (we are root, so modes do not stop us), a tool exiting 1 is a fake
script put first on PATH (runner resolves tools through PATH), ENOSPC is a tmpfs with a
size limit that is filled up while the create or clone runs. After each failure the error
must be one of ours with a message, no lock may stay held, nothing half-made may be left
(under the volume's name or under a hidden partial name), the volume list must equal the
directory, and the same call must succeed once the fault is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.drivers import driver_class
from backends.errors import (
    InsufficientSpace,
    PoolkeeperError,
    StateError,
    ToolFailed,
)
from backends.events import JobProgress
from backends.model import PoolDef, PoolTarget, VolumeDef, VolumeTarget
from backends.names import PARTIAL_PREFIX
from tests.loopfs import loops_of, wait_until

MiB = 1 << 20
FAILING_TOOL = "echo 'injected failure' >&2\nexit 1\n"


def chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True)


def is_mounted(target: Path) -> bool:
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == str(target) for line in fh)


def umount(target: Path) -> None:
    for _ in range(20):
        if not is_mounted(target):
            return
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            time.sleep(0.1)


def detach_loops_of(image: Path) -> None:
    for dev in loops_of(image):
        subprocess.run(["partx", "-d", dev], capture_output=True)
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class World:
    """The state root, a dir pool 'p' at area/images, and the faults and clean-ups made."""

    ctl: StorageController
    root: Path
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    dir_pools: dict[str, Path] = field(default_factory=dict)
    absent: list[Path] = field(default_factory=list)  # must not exist after the failure
    checks: list[Callable[[], None]] = field(default_factory=list)  # after the failure
    undos: list[Callable[[], None]] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def pool(self) -> Path:
        return self.dir_pools["p"]

    # -- faults (each undone by undo(), and at the end of the test whatever happens) ----
    def immutable(self, path: Path) -> None:
        chattr("+i", path)
        self.undos.append(lambda: chattr("-i", path))
        self.cleanups.append(lambda: chattr("-i", path))  # also when the test fails

    def fake_tool(self, tool: str, body: str = FAILING_TOOL) -> None:
        bindir = self.tmp / "fakebin"
        bindir.mkdir(exist_ok=True)
        script = bindir / tool
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
        self.monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        self.undos.append(script.unlink)

    def undo(self) -> None:
        while self.undos:
            self.undos.pop()()

    # -- helpers -------------------------------------------------------------------------
    def dir_pool(self, name: str, path: Path) -> Path:
        self.ctl.define_pool_def(PoolDef(type="dir", name=name, target=PoolTarget(str(path))))
        self.ctl.build_pool(name).wait(60)
        self.ctl.start_pool(name)
        self.dir_pools[name] = path
        return path

    def create(self, name: str, capacity: int = MiB, fmt: str | None = None,
               pool: str = "p", allocation: int | None = None) -> None:
        vdef = VolumeDef(name=name, capacity=capacity, allocation=allocation,
                         target=VolumeTarget(format=fmt))
        self.ctl.create_volume_def(pool, vdef).wait(60)

    def settled(self) -> None:
        """No lock held, nothing partial left, every listing equals its directory."""
        for lock in (self.root / "locks").iterdir():
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
            finally:
                os.close(fd)
        for name, path in self.dir_pools.items():
            if not self.ctl.store.is_active(name) or not path.is_dir():
                continue
            # an fs pool's own lost+found is no volume (the driver's not_volumes)
            own = getattr(driver_class(self.ctl.pool_def(name).type), "not_volumes", ())
            files = sorted(f for f in os.listdir(path) if not (f in own and (path / f).is_dir()))
            assert not [f for f in files if f.startswith(PARTIAL_PREFIX)], files
            assert sorted(v.name for v in self.ctl.list_volumes(name)) == files
        for sub in ("storage", "storage/volumes", "run"):
            assert not [f for f in os.listdir(self.root / sub) if f.startswith(PARTIAL_PREFIX)]

    def failed(self) -> None:
        """After the failure: nothing made under a final name, the case's own checks."""
        for path in self.absent:
            assert not os.path.lexists(path), f"half-made {path} left behind"
        for check in self.checks:
            check()

    def probe(self, pool: str = "p") -> None:
        """A follow-up create + delete on the same pool works."""
        self.create("probe.img", pool=pool)
        self.ctl.delete_volume(pool, "probe.img")


def _state_is(w: World, pool: str, state: str) -> None:
    assert w.ctl.pool_info(pool).state == state


def _quiet(fn: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        fn()


@pytest.fixture
def world(ctl: StorageController, state_root: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(ctl, state_root, tmp_path, monkeypatch)
    (tmp_path / "area").mkdir()
    w.dir_pool("p", tmp_path / "area" / "images")
    try:
        yield w
    finally:
        for fn in reversed(w.cleanups):
            _quiet(fn)


# == the faults, one per verb (and per kind where a verb can fail in more ways) ============
Act = Callable[[], object]
CASES: dict[str, tuple[Callable[[World], Act], type[PoolkeeperError], str]] = {}


def case(name: str, error: type[PoolkeeperError], match: str):
    def register(fn: Callable[[World], Act]) -> Callable[[World], Act]:
        CASES[name] = (fn, error, match)
        return fn
    return register


@case("define/permission", StateError, r"cannot save .*q\.xml.*Operation not permitted")
def _define(w: World) -> Act:
    w.immutable(w.root / "storage")
    pdef = PoolDef(type="dir", name="q", target=PoolTarget(str(w.tmp / "q")))
    return lambda: w.ctl.define_pool_def(pdef)


@case("undefine/permission", StateError, r"cannot remove .*q\.xml.*Operation not permitted")
def _undefine(w: World) -> Act:
    w.ctl.define_pool_def(PoolDef(type="dir", name="q", target=PoolTarget(str(w.tmp / "q"))))
    w.immutable(w.root / "storage")
    return lambda: w.ctl.undefine_pool("q")


@case("autostart/permission", StateError, r"autostart.*Operation not permitted")
def _autostart(w: World) -> Act:
    w.immutable(w.root / "storage" / "autostart")
    return lambda: w.ctl.set_autostart("p", True)


@case("build/permission", StateError, r"cannot build pool b: Operation not permitted")
def _build(w: World) -> Act:
    parent = w.tmp / "locked"
    parent.mkdir()
    w.ctl.define_pool_def(PoolDef(type="dir", name="b", target=PoolTarget(str(parent / "b"))))
    w.immutable(parent)
    w.absent.append(parent / "b")
    return lambda: w.ctl.build_pool("b").wait(60)


@case("start/permission", StateError,
      r"cannot save .*run/p\.(json|xml).*Operation not permitted")  # extras, then state
def _start(w: World) -> Act:
    w.ctl.stop_pool("p")
    w.immutable(w.root / "run")
    w.checks.append(lambda: _state_is(w, "p", "inactive"))
    return lambda: w.ctl.start_pool("p")


@case("stop/permission", StateError, r"cannot remove .*run/p\.xml.*Operation not permitted")
def _stop(w: World) -> Act:
    w.immutable(w.root / "run")
    w.checks.append(lambda: _state_is(w, "p", "running"))
    return lambda: w.ctl.stop_pool("p")


@case("delete pool/permission", StateError, r"Operation not permitted")
def _delete_pool(w: World) -> Act:
    w.ctl.stop_pool("p")
    w.immutable(w.tmp / "area")
    return lambda: w.ctl.delete_pool("p")


@case("refresh/directory gone", StateError, r"does not exist")
def _refresh(w: World) -> Act:
    moved = w.tmp / "area" / "moved"
    w.pool.rename(moved)
    w.undos.append(lambda: moved.rename(w.pool))
    return lambda: w.ctl.refresh_pool("p")


@case("create raw/permission", StateError, r"cannot create 'new\.img': Operation not permitted")
def _create_raw(w: World) -> Act:
    w.immutable(w.pool)
    w.absent.append(w.pool / "new.img")
    return lambda: w.create("new.img", 8 * MiB)


@case("create qcow2/tool exits 1", ToolFailed, r"'qemu-img' failed \(exit 1\): injected")
def _create_qcow2(w: World) -> Act:
    w.fake_tool("qemu-img")
    w.absent.append(w.pool / "new.qcow2")
    return lambda: w.create("new.qcow2", 8 * MiB, fmt="qcow2")


@case("clone/permission", StateError, r"cannot create 'copy\.img': Operation not permitted")
def _clone(w: World) -> Act:
    w.create("src.img", 4 * MiB)
    w.immutable(w.pool)
    w.absent.append(w.pool / "copy.img")
    return lambda: w.ctl.clone_volume("p", "src.img", "copy.img").wait(60)


@case("clone to qcow2/tool exits 1", ToolFailed, r"'qemu-img' failed \(exit 1\): injected")
def _clone_convert(w: World) -> Act:
    w.create("src.img", 4 * MiB)
    w.fake_tool("qemu-img")
    w.absent.append(w.pool / "copy.qcow2")
    xml = ("<volume><name>copy.qcow2</name><capacity>1</capacity>"
           "<target><format type='qcow2'/></target></volume>")
    return lambda: w.ctl.clone_volume("p", "src.img", "copy.qcow2", xml=xml).wait(60)


@case("wipe/permission", StateError, r"cannot wipe v\.img.*Operation not permitted")
def _wipe(w: World) -> Act:
    w.create("v.img", 4 * MiB)
    w.immutable(w.pool / "v.img")
    return lambda: w.ctl.wipe_volume("p", "v.img").wait(60)


@case("wipe/tool exits 1", ToolFailed, r"'scrub' failed \(exit 1\): injected")
def _wipe_scrub(w: World) -> Act:
    w.create("v.img", 4 * MiB)
    w.fake_tool("scrub")
    return lambda: w.ctl.wipe_volume("p", "v.img", "nnsa").wait(60)


@case("resize raw/permission", StateError, r"cannot resize v\.img.*Operation not permitted")
def _resize(w: World) -> Act:
    w.create("v.img", 4 * MiB)
    w.immutable(w.pool / "v.img")
    return lambda: w.ctl.resize_volume("p", "v.img", 8 * MiB).wait(60)


@case("resize qcow2/tool exits 1", ToolFailed, r"'qemu-img' failed \(exit 1\): injected")
def _resize_qcow2(w: World) -> Act:
    w.create("v.qcow2", 4 * MiB, fmt="qcow2")
    w.fake_tool("qemu-img")
    return lambda: w.ctl.resize_volume("p", "v.qcow2", 8 * MiB).wait(60)


@case("upload/permission", StateError, r"cannot upload .*Operation not permitted")
def _upload(w: World) -> Act:
    w.create("v.img", 4 * MiB)
    src = w.tmp / "payload"
    src.write_bytes(b"\x5a" * MiB)
    w.immutable(w.pool / "v.img")
    return lambda: w.ctl.upload_volume("p", "v.img", str(src)).wait(60)


@case("download/permission", StateError, r"cannot download v\.img.*Operation not permitted")
def _download(w: World) -> Act:
    w.create("v.img", 4 * MiB)
    out = w.tmp / "out"
    out.mkdir()
    w.immutable(out)
    w.absent.append(out / "v.raw")
    return lambda: w.ctl.download_volume("p", "v.img", str(out / "v.raw")).wait(60)


@case("delete volume/permission", StateError, r"Operation not permitted")
def _delete_volume(w: World) -> Act:
    w.create("v.img", 4 * MiB)
    w.immutable(w.pool)
    return lambda: w.ctl.delete_volume("p", "v.img")


@pytest.mark.parametrize("name", list(CASES))
def test_a_failed_verb_leaves_nothing_behind_and_the_next_call_works(world: World, name: str):
    arrange, error, match = CASES[name]
    act = arrange(world)
    with pytest.raises(error, match=match) as failed:
        act()
    assert isinstance(failed.value, PoolkeeperError) and str(failed.value)
    world.failed()
    world.undo()
    world.settled()
    act()  # the very same call, now that the fault is gone
    world.settled()
    if world.ctl.store.is_active("p"):
        world.probe()


# == ENOSPC while a create or clone writes: a tmpfs that fills up under it =================
@pytest.fixture
def tiny(world: World) -> Iterator[tuple[Path, Path]]:
    """A dir pool 't' on a 32 MiB tmpfs, and where to put a file that fills it up."""
    mnt = world.tmp / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "pktest", str(mnt)],
                   check=True)
    try:
        world.dir_pool("t", mnt / "pool")
        yield mnt / "pool", mnt / "filler"
    finally:
        with contextlib.suppress(PoolkeeperError):
            world.ctl.stop_pool("t")
        umount(mnt)


def fill_when_running(world: World, kind: str, filler: Path) -> None:
    """When the job of `kind` reports its start, take all the free space (as another
    writer on the same filesystem would)."""
    filled: list[bool] = []

    def on_event(event: object) -> None:
        if isinstance(event, JobProgress) and event.job.kind == kind and not filled:
            filled.append(True)
            st = os.statvfs(filler.parent)
            with open(filler, "wb") as fh:
                os.posix_fallocate(fh.fileno(), 0, st.f_bavail * st.f_frsize)

    unsubscribe = world.ctl.subscribe(on_event)
    world.cleanups.append(unsubscribe)
    world.undos.append(filler.unlink)


@pytest.mark.parametrize("verb", ["create", "clone"])
def test_enospc_during_create_or_clone(world: World, tiny: tuple[Path, Path], verb: str):
    pool, filler = tiny
    if verb == "clone":
        world.create("src.img", 8 * MiB, pool="t", allocation=0)
        with open(pool / "src.img", "r+b") as fh:
            fh.write(os.urandom(8 * MiB))  # all data: the copy must allocate it
        src_hash = sha(pool / "src.img")
        act: Act = lambda: world.ctl.clone_volume("t", "src.img", "new.img").wait(60)  # noqa
    else:
        act = lambda: world.create("new.img", 16 * MiB, pool="t")  # noqa: E731 (allocated)
    fill_when_running(world, verb, filler)
    with pytest.raises(InsufficientSpace, match="space") as failed:
        act()
    assert "Traceback" not in str(failed.value)
    assert filler.exists() and os.statvfs(pool).f_bavail < 64  # it really was full
    world.absent.append(pool / "new.img")
    world.failed()
    world.undo()
    world.settled()
    act()
    world.settled()
    if verb == "clone":
        assert sha(pool / "new.img") == sha(pool / "src.img") == src_hash
    world.probe("t")


# == tools that fail inside fs and disk pool verbs, with loop devices involved ==============
@pytest.fixture
def fs_pool(world: World) -> Iterator[tuple[Path, Path]]:
    """An fs pool 'f' on a 64 MiB image file (not built); its mount and loops go at the end."""
    image, target = world.tmp / "f.img", world.tmp / "mnt" / "f"
    with open(image, "wb") as fh:
        fh.truncate(64 * MiB)
    world.ctl.define_pool(
        f"<pool type='fs'><name>f</name><source><device path='{image}'/><format type='ext4'/>"
        f"</source><target><path>{target}</path></target></pool>")
    try:
        yield image, target
    finally:
        umount(target)
        detach_loops_of(image)


def test_mkfs_failing_in_build_detaches_and_the_next_build_works(world: World, fs_pool):
    image, _target = fs_pool
    world.fake_tool("mkfs.ext4")
    with pytest.raises(ToolFailed, match=r"'mkfs.ext4' failed \(exit 1\): injected"):
        world.ctl.build_pool("f").wait(60)
    assert loops_of(image) == []  # the loop attached for mkfs went too
    world.undo()
    world.settled()
    world.ctl.build_pool("f").wait(120)
    assert loops_of(image) == []


def test_mount_failing_in_start_and_umount_in_stop(world: World, fs_pool):
    image, target = fs_pool
    world.ctl.build_pool("f").wait(120)
    world.fake_tool("mount")
    with pytest.raises(ToolFailed, match=r"'mount' failed \(exit 1\): injected"):
        world.ctl.start_pool("f")
    assert world.ctl.pool_info("f").state == "inactive"
    assert loops_of(image) == [] and not is_mounted(target)
    world.undo()
    world.settled()
    world.ctl.start_pool("f")
    world.dir_pools["f"] = target
    world.probe("f")

    world.fake_tool("umount")
    with pytest.raises(ToolFailed, match=r"'umount' failed \(exit 1\): injected"):
        world.ctl.stop_pool("f")
    assert world.ctl.pool_info("f").state == "running" and is_mounted(target)
    world.undo()
    world.settled()
    world.probe("f")
    world.ctl.stop_pool("f")
    assert not is_mounted(target)
    assert wait_until(lambda: loops_of(image) == [])


def test_parted_failing_in_a_disk_pool_refresh(world: World):
    image = world.tmp / "d.img"
    with open(image, "wb") as fh:
        fh.truncate(64 * MiB)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        world.ctl.define_pool(f"<pool type='disk'><name>d</name><source><device path='{dev}'/>"
                              "<format type='gpt'/></source><target><path>/dev</path></target>"
                              "</pool>")
        world.ctl.build_pool("d").wait(120)
        world.ctl.start_pool("d")
        world.fake_tool("parted")
        with pytest.raises(ToolFailed, match=r"'parted' failed \(exit 1\): injected"):
            world.ctl.refresh_pool("d")
        world.undo()
        world.settled()
        assert world.ctl.refresh_pool("d") == []
        world.ctl.stop_pool("d")
    finally:
        with contextlib.suppress(PoolkeeperError):
            world.ctl.stop_pool("d")
        detach_loops_of(image)
