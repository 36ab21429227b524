"""Data-safety rules found by review: each test reproduces a way data could be lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backends import locks as locks_mod
from backends.controller import StorageController
from backends.errors import (
    Busy,
    InUse,
    InvalidName,
    PoolkeeperError,
    StateError,
    UnsafePath,
    ValidationError,
)
from backends.events import VolumesChanged
from backends.model import BackingStore, PoolDef, PoolTarget, VolumeDef, VolumeTarget
from backends.store import Store, StorePaths
from tests.conftest import make_dir_pool

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def create(ctl, pool, name, capacity=MiB, **kw):
    fmt = kw.pop("format", None)
    return ctl.create_volume_def(pool, VolumeDef(name=name, capacity=capacity,
                                                 target=VolumeTarget(format=fmt), **kw)).wait(60)


def test_download_onto_its_own_volume_or_into_a_pool_is_refused(ctl, pool):
    create(ctl, "p", "a.raw", allocation=None)
    (pool / "a.raw").write_bytes(b"keep" * (MiB // 4))
    with pytest.raises(UnsafePath, match="itself|inside pool"):
        ctl.download_volume("p", "a.raw", str(pool / "a.raw"))
    with pytest.raises(UnsafePath, match="inside pool 'p'"):
        ctl.download_volume("p", "a.raw", str(pool / "other.raw"))
    assert (pool / "a.raw").read_bytes() == b"keep" * (MiB // 4)
    assert not (pool / "other.raw").exists()


def test_backing_format_is_never_taken_from_a_header(ctl, pool, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("SECRET\n")
    planted = pool / "guest.img"  # not made by poolkeeper: no recorded format
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw",
                    str(planted), "1M"], check=True)
    with pytest.raises(ValidationError, match="backing-vol-format"):
        create(ctl, "p", "new.qcow2", backing=BackingStore(path=str(planted)), format="qcow2")
    # Even with a format given, its own backing file is outside every pool.
    with pytest.raises(UnsafePath, match="not a volume of an active pool"):
        create(ctl, "p", "new.qcow2", backing=BackingStore(path=str(planted), format="qcow2"),
               format="qcow2")
    with pytest.raises(UnsafePath, match="not a volume of an active pool"):
        ctl.clone_volume("p", "guest.img", "copy.img").wait(30)
    assert not (pool / "new.qcow2").exists() and not (pool / "copy.img").exists()


def test_parallel_creates_all_succeed_and_are_recorded(ctl, pool):
    jobs = [ctl.create_volume_def("p", VolumeDef(name=f"v{i}", capacity=MiB, allocation=0))
            for i in range(12)]
    for job in jobs:
        job.wait(60)
        assert job.state == "done" and not job.warnings
    records = ctl.store.volume_records("p")
    assert sorted(records) == sorted(f"v{i}" for i in range(12))


def test_backing_in_another_pool_blocks_delete_from_a_fresh_process(ctl, pool, tmp_path,
                                                                    state_root):
    create(ctl, "p", "base.qcow2", 8 * MiB, format="qcow2")
    make_dir_pool(ctl, "b", tmp_path / "b")
    create(ctl, "b", "ovl.qcow2", 0, format="qcow2",
           backing=BackingStore(path=str(pool / "base.qcow2"), format="qcow2"))
    fresh = StorageController(state_root, create_default=False)
    try:
        with pytest.raises(InUse, match="backing store of 'ovl.qcow2' in pool 'b'"):
            fresh.delete_volume("p", "base.qcow2")
    finally:
        fresh.close()
    assert (pool / "base.qcow2").exists()


def test_build_keeps_the_mode_of_an_existing_directory(ctl, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    ctl.define_pool_def(PoolDef(type="dir", name="sh", target=PoolTarget(path=str(shared))))
    ctl.build_pool("sh").wait()
    assert (shared.stat().st_mode & 0o7777) == 0o1777


def test_runtime_dir_of_another_user_or_world_writable_is_refused(tmp_path):
    runtime = tmp_path / "rt"
    runtime.mkdir()
    os.chmod(runtime, 0o777)
    with pytest.raises(StateError, match="writable by others"):
        Store(StorePaths(tmp_path / "cfg", runtime, tmp_path / "img"))
    os.chmod(runtime, 0o700)
    os.chown(runtime, 65534, 65534)
    if os.geteuid() != 0:
        with pytest.raises(StateError, match="another user"):
            Store(StorePaths(tmp_path / "cfg", runtime, tmp_path / "img"))


def test_lock_files_are_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    lockdir = tmp_path / "locks"
    lockdir.mkdir()
    os.symlink(victim, lockdir / "store.lock")
    manager = locks_mod.LockManager(lockdir)
    with pytest.raises(OSError), manager.store():
        pass
    assert victim.read_text() == "precious"


def test_sigterm_during_a_cli_clone_removes_the_half_made_clone(cli, state_root, tmp_path):
    images = tmp_path / "img"
    assert cli("pool-define-as", "t", "dir", "--target", str(images)).code == 0
    cli("pool-build", "t")
    cli("pool-start", "t")
    assert cli("vol-create-as", "t", "src.img", "1G").code == 0
    block = b"\xab" * (16 * MiB)
    with open(images / "src.img", "r+b") as fh:  # all data, no holes: the copy takes a while
        for _ in range(64):
            fh.write(block)
    proc = subprocess.Popen([sys.executable, "-m", "tui", "--root", str(state_root),
                             "vol-clone", "src.img", "dst.img", "--pool", "t"],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    # the clone is built under a hidden name and appears as dst.img only when complete
    while not list(images.glob(".poolkeeper-partial-*.img")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "cancelled" in err
    assert sorted(os.listdir(images)) == ["src.img"]


def test_a_broken_definition_is_listed_and_can_be_undefined(ctl, state_root, tmp_path):
    make_dir_pool(ctl, "good", tmp_path / "good")
    (state_root / "storage" / "broken.xml").write_text("<pool type='dir'><name>broken")
    pools = {p.name: p for p in ctl.list_pools()}
    assert pools["broken"].state == "inaccessible" and "bad definition" in pools["broken"].source
    assert pools["good"].state == "running"
    ctl.undefine_pool("broken")
    assert "broken" not in ctl.pool_names()


def test_pool_names_with_a_leading_dot_are_refused(ctl, tmp_path):
    with pytest.raises(InvalidName, match="start with '.'"):
        ctl.define_pool_def(PoolDef(type="dir", name=".hidden",
                                    target=PoolTarget(path=str(tmp_path / "h"))))


def test_concurrent_first_use_leaves_default_running(tmp_path):
    for attempt in range(3):
        root = tmp_path / f"r{attempt}"
        procs = [subprocess.Popen([sys.executable, "-m", "tui", "--root", str(root),
                                   "pool-list", "--all", "--json"], cwd=REPO,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(4)]
        for proc in procs:
            proc.communicate(timeout=60)
        ctl = StorageController(root)
        try:
            assert ctl.pool_info("default").state == "running"
        finally:
            ctl.close()


def test_links_to_character_devices_and_fifos_are_not_volumes(ctl, pool):
    os.symlink("/dev/null", pool / "null")
    os.mkfifo(pool / ".fifo")
    os.symlink(".fifo", pool / "to-fifo")
    names = {v.name for v in ctl.list_volumes("p")}
    assert "null" not in names and "to-fifo" not in names and ".fifo" not in names


def test_cli_escapes_control_characters_in_file_names(cli, tmp_path):
    images = tmp_path / "esc"
    cli("pool-define-as", "e", "dir", "--target", str(images))
    cli("pool-build", "e")
    cli("pool-start", "e")
    (images / "evil\x1b]0;PWNED\x07\x1b[2J.img").write_bytes(b"x")
    r = cli("vol-list", "e")
    assert "\x1b" not in r.out and "\x1b" not in r.err
    assert "\\x1b" in r.out


def test_monitor_retries_a_change_it_saw_while_the_pool_was_busy(ctl, pool):
    ctl.list_volumes("p")
    ctl.poll()
    events = []
    ctl.subscribe(events.append)
    held = ctl.locks.pool("p", exclusive=True, what="test")
    try:
        (pool / "late.img").write_bytes(b"x" * 512)
        ctl.poll()  # busy: nothing learnt, nothing forgotten
    finally:
        held.release()
    ctl.poll()
    assert any(isinstance(e, VolumesChanged) and "late.img" in e.added for e in events)


def test_a_hard_link_held_open_blocks_wipe(ctl, pool, tmp_path):
    create(ctl, "p", "w.raw", allocation=None)
    other = pool.parent / "hardlink"
    os.link(pool / "w.raw", other)
    proc = subprocess.Popen(
        [sys.executable, "-c",
         f"import time; f=open({str(other)!r}, 'r+b'); print('x', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        with pytest.raises(InUse, match=f"pid {proc.pid}"):
            ctl.wipe_volume("p", "w.raw")
    finally:
        proc.kill()
        proc.wait()


def test_redefining_an_active_pool_with_its_own_dump_is_accepted(ctl, pool, tmp_path):
    dumped = ctl.pool_xml("p")
    ctl.define_pool(dumped)
    assert ctl.pool_info("p").state == "running"
    moved = dumped.replace(str(pool), str(tmp_path / "elsewhere"))
    with pytest.raises(StateError, match="stop it before changing"):
        ctl.define_pool(moved)


def test_exclusive_verbs_wait_briefly_for_a_refresh(ctl, pool):
    held = ctl.locks.pool("p", exclusive=False, what="refreshing")
    threading.Timer(0.3, held.release).start()
    ctl.stop_pool("p")  # waits for the short shared hold instead of failing at once
    assert ctl.pool_info("p").state == "inactive"


def test_busy_error_names_no_control_characters(ctl, pool):
    create(ctl, "p", "v")
    held = ctl.locks.volume("p", "v", exclusive=True, what="being wiped")
    try:
        with pytest.raises(Busy) as exc:
            ctl.delete_volume("p", "v")
        assert "\0" not in str(exc.value) and "being wiped" in str(exc.value)
    finally:
        held.release()


def test_resize_of_a_directory_volume_is_a_clear_error(ctl, pool):
    (pool / "subdir").mkdir()
    with pytest.raises(PoolkeeperError, match="directory"):
        ctl.resize_volume("p", "subdir", MiB).wait(30)

