"""Controller: definitions, state store, locks across processes, jobs, events, monitor."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from backends import store as store_mod
from backends.controller import StorageController
from backends.errors import (
    AlreadyExists,
    Busy,
    Cancelled,
    InUse,
    PoolNotFound,
    StateError,
    ToolMissing,
    ValidationError,
)
from backends.events import JobFinished, JobProgress, PoolChanged, VolumesChanged
from backends.model import PoolDef, PoolTarget, VolumeDef, VolumeTarget
from tests.conftest import make_dir_pool

REPO = Path(__file__).resolve().parents[2]


def dir_pool_xml(name: str, path: Path, uuid: str | None = None) -> str:
    uuid_el = f"<uuid>{uuid}</uuid>" if uuid else ""
    return (f"<pool type='dir'><name>{name}</name>{uuid_el}"
            f"<target><path>{path}</path></target></pool>")


# == definitions ========================================================================
def test_define_generates_uuid_and_persists(ctl, state_root, tmp_path):
    status = ctl.define_pool(dir_pool_xml("a", tmp_path / "a"))
    assert status.state == "inactive" and len(status.uuid) == 36
    stored = (state_root / "storage" / "a.xml").read_text()
    assert status.uuid in stored and str(tmp_path / "a") in stored
    again = StorageController(state_root, create_default=False)
    try:
        assert again.pool_info("a").uuid == status.uuid
    finally:
        again.close()


def test_duplicate_uuid_target_and_name_uuid_clash(ctl, tmp_path):
    ctl.define_pool(dir_pool_xml("a", tmp_path / "a", "11111111-2222-3333-4444-555555555555"))
    with pytest.raises(AlreadyExists, match="UUID"):
        ctl.define_pool(dir_pool_xml("b", tmp_path / "b", "11111111-2222-3333-4444-555555555555"))
    with pytest.raises(AlreadyExists, match="target path"):
        ctl.define_pool(dir_pool_xml("c", tmp_path / "a"))
    with pytest.raises(AlreadyExists, match="already exists with UUID"):
        ctl.define_pool(dir_pool_xml("a", tmp_path / "a", "99999999-2222-3333-4444-555555555555"))
    assert ctl.pool_names() == ["a"]


def test_redefine_keeps_uuid_and_refused_while_active(ctl, tmp_path):
    first = ctl.define_pool(dir_pool_xml("a", tmp_path / "a"))
    second = ctl.define_pool(dir_pool_xml("a", tmp_path / "a2"))
    assert second.uuid == first.uuid and second.target == str(tmp_path / "a2")
    ctl.build_pool("a").wait()
    ctl.start_pool("a")
    with pytest.raises(StateError, match="active"):
        ctl.define_pool(dir_pool_xml("a", tmp_path / "a3"))


def test_unknown_pool_is_a_clear_error(ctl):
    with pytest.raises(PoolNotFound, match="no pool named 'nope'"):
        ctl.pool_info("nope")


def test_two_processes_defining_at_once_leave_one_valid_definition(state_root, tmp_path):
    """Ten processes define pools at once: same name -> one valid file; same target -> one."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from backends.controller import StorageController
        from backends.errors import PoolkeeperError
        name, target, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
        ctl = StorageController({str(state_root)!r}, create_default=False, autostart=False)
        while time.time() < start:
            pass
        try:
            ctl.define_pool("<pool type='dir'><name>" + name + "</name><target><path>"
                            + target + "</path></target></pool>")
            print("ok")
        except PoolkeeperError as exc:
            print("refused", exc)
    """)
    start = time.time() + 1.5
    procs = []
    for i in range(5):
        procs.append(subprocess.Popen(
            [sys.executable, "-c", script, "same", str(tmp_path / f"t{i}"), str(start)],
            stdout=subprocess.PIPE, text=True))
    for i in range(5):
        procs.append(subprocess.Popen(
            [sys.executable, "-c", script, f"n{i}", str(tmp_path / "shared"), str(start)],
            stdout=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(o.startswith("ok") for o in outputs[:5]), outputs
    assert sum(o.startswith("ok") for o in outputs[5:]) == 1, outputs
    ctl = StorageController(state_root, create_default=False)
    try:
        names = ctl.pool_names()
        assert "same" in names and len(names) == 2
        ctl.pool_def("same")  # parses: never a torn file
        leftovers = [p for p in (state_root / "storage").iterdir() if p.name.endswith(".tmp")]
        assert leftovers == []
    finally:
        ctl.close()


# == state store ========================================================================
def test_atomic_write_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "f.xml"
    store_mod.atomic_write(target, b"old")

    def boom(*args, **kwargs):
        raise OSError("disk fell off")

    monkeypatch.setattr(store_mod.os, "replace", boom)
    with pytest.raises(StateError, match="cannot save .*disk fell off"):
        store_mod.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.xml"]


def test_default_pool_created_once(state_root):
    ctl = StorageController(state_root)
    try:
        info = ctl.pool_info("default")
        assert info.state == "running" and info.autostart
        assert (state_root / "images").is_dir()
        ctl.stop_pool("default")
        ctl.undefine_pool("default")
    finally:
        ctl.close()
    again = StorageController(state_root)
    try:
        assert again.pool_names() == []  # not re-created after the user removed it
    finally:
        again.close()


def test_autostart_pools_start_on_next_launch(ctl, state_root, tmp_path):
    make_dir_pool(ctl, "auto", tmp_path / "auto")
    make_dir_pool(ctl, "manual", tmp_path / "manual")
    ctl.set_autostart("auto", True)
    # A reboot empties the runtime directory.
    for f in (state_root / "run").iterdir():
        f.unlink()
    again = StorageController(state_root, create_default=False)
    try:
        assert again.pool_info("auto").state == "running"
        assert again.pool_info("manual").state == "inactive"
    finally:
        again.close()


def test_active_pool_whose_directory_vanished_is_inaccessible(ctl, tmp_path):
    path = make_dir_pool(ctl, "gone", tmp_path / "gone")
    path.rmdir()
    assert ctl.pool_info("gone").state == "inaccessible"


# == pool state rules ===================================================================
def test_state_guards(ctl, pool):
    with pytest.raises(StateError, match="already active"):
        ctl.start_pool("p")
    with pytest.raises(StateError, match="active"):
        ctl.undefine_pool("p")
    with pytest.raises(StateError, match="active"):
        ctl.delete_pool("p")
    ctl.stop_pool("p")
    with pytest.raises(StateError, match="not active"):
        ctl.list_volumes("p")


def test_delete_pool_with_volumes_is_refused(ctl, pool):
    ctl.create_volume_def("p", VolumeDef(name="v", capacity=1 << 20, allocation=0)).wait()
    ctl.stop_pool("p")
    with pytest.raises(StateError, match="not empty"):
        ctl.delete_pool("p")
    assert (pool / "v").exists()
    ctl.start_pool("p")
    ctl.delete_volume("p", "v")
    ctl.stop_pool("p")
    ctl.delete_pool("p")
    assert not pool.exists()


# == locks and jobs =====================================================================
def _slow_upload(ctl: StorageController, tmp_path: Path):
    """An upload job that runs until the test writes to the FIFO it reads."""
    ctl.create_volume_def("p", VolumeDef(name="v", capacity=1 << 20, allocation=0)).wait()
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    job = ctl.upload_volume("p", "v", str(fifo))
    writer_fd: list[int] = []
    opener = threading.Thread(target=lambda: writer_fd.append(os.open(fifo, os.O_WRONLY)))
    opener.start()
    opener.join(10)
    return job, writer_fd[0]


def test_stop_pool_with_job_running_is_refused(ctl, pool, tmp_path):
    job, fd = _slow_upload(ctl, tmp_path)
    try:
        with pytest.raises((StateError, Busy), match="jobs running|busy"):
            ctl.stop_pool("p")
        with pytest.raises(Busy, match="busy"):
            ctl.delete_volume("p", "v")
        with pytest.raises(Busy, match="busy"):
            ctl.wipe_volume("p", "v")
    finally:
        os.write(fd, b"hello")
        os.close(fd)
    assert job.wait(30) == 5
    assert (pool / "v").read_bytes()[:5] == b"hello"
    ctl.stop_pool("p")  # allowed once the job is over


def test_busy_mark_holds_across_processes(ctl, pool, tmp_path, state_root):
    """A CLI vol-delete of a volume another process is uploading to is refused."""
    ctl.create_volume_def("p", VolumeDef(name="v", capacity=1 << 20, allocation=0)).wait()
    fifo = tmp_path / "feed"
    os.mkfifo(fifo)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from backends.controller import StorageController
        ctl = StorageController({str(state_root)!r}, create_default=False)
        job = ctl.upload_volume("p", "v", {str(fifo)!r})
        print(job.wait(60), flush=True)
        ctl.close()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    fd = os.open(fifo, os.O_WRONLY)  # returns once the other process opened it: job running
    try:
        cli = subprocess.run(
            [sys.executable, "-m", "tui", "--root", str(state_root), "vol-delete", "v",
             "--pool", "p"],
            capture_output=True, text=True, cwd=REPO, timeout=60,
        )
        assert cli.returncode == 1
        assert cli.stderr.startswith("error: ") and "busy" in cli.stderr
        assert "being uploaded to" in cli.stderr
        assert (pool / "v").exists()
    finally:
        os.write(fd, b"abc")
        os.close(fd)
    assert holder.communicate(timeout=60)[0].strip() == "3"


def test_delete_refused_while_a_process_has_the_file_open(ctl, pool):
    ctl.create_volume_def("p", VolumeDef(name="v", capacity=1 << 20, allocation=0)).wait()
    proc = subprocess.Popen(
        [sys.executable, "-c",
         f"import sys,time; f=open({str(pool / 'v')!r}); print('x', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()
        with pytest.raises(InUse, match=rf"pid {proc.pid}"):
            ctl.delete_volume("p", "v")
        assert (pool / "v").exists()
    finally:
        proc.kill()
        proc.wait()
    ctl.delete_volume("p", "v")
    assert not (pool / "v").exists()


def test_cancelled_create_removes_the_half_made_volume(ctl, pool):
    seen = threading.Event()

    def cancel_on_progress(event):
        if isinstance(event, JobProgress) and event.job.kind == "create":
            event.job.cancel()
            seen.set()

    ctl.subscribe(cancel_on_progress)
    job = ctl.create_volume_def("p", VolumeDef(name="big", capacity=2 << 30))
    with pytest.raises(Cancelled):
        job.wait(60)
    assert seen.is_set() and job.state == "cancelled"
    assert not (pool / "big").exists()


def test_events_for_pool_and_volume_changes(ctl, tmp_path):
    events = []
    ctl.subscribe(events.append)
    make_dir_pool(ctl, "e", tmp_path / "e")
    ctl.create_volume_def("e", VolumeDef(name="v", capacity=1 << 20, allocation=0)).wait()
    ctl.delete_volume("e", "v")
    kinds = [(type(e).__name__, getattr(e, "reason", None)) for e in events
             if isinstance(e, PoolChanged)]
    assert ("PoolChanged", "defined") in kinds and ("PoolChanged", "started") in kinds
    vol_events = [e for e in events if isinstance(e, VolumesChanged)]
    assert VolumesChanged("e", added=("v",)) in vol_events
    assert VolumesChanged("e", removed=("v",)) in vol_events
    assert any(isinstance(e, JobFinished) and e.job.kind == "create" for e in events)


def test_monitor_reports_changes_made_behind_our_back(ctl, pool):
    ctl.list_volumes("p")
    ctl.poll()  # first round records the tokens
    events = []
    ctl.subscribe(events.append)
    ctl.poll()
    assert [e for e in events if isinstance(e, VolumesChanged)] == []  # nothing changed
    (pool / "outside.img").write_bytes(b"x" * 4096)
    ctl.poll()
    changed = [e for e in events if isinstance(e, VolumesChanged)]
    assert changed and changed[0].added == ("outside.img",)


def test_missing_qemu_img_names_the_package(ctl, pool, monkeypatch, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    from backends import runner

    monkeypatch.setattr(runner, "tool_path", _no_tools)
    job = ctl.create_volume_def("p", VolumeDef(name="q", capacity=1 << 20,
                                               target=VolumeTarget(format="qcow2")))
    with pytest.raises(ToolMissing, match="apt-get install qemu-utils"):
        job.wait(30)
    assert not (pool / "q").exists()


def _no_tools(tool: str) -> str:
    from backends.runner import TOOL_PACKAGES

    raise ToolMissing(tool, TOOL_PACKAGES.get(tool))


def test_refresh_survives_a_file_deleted_during_the_scan(ctl, pool, monkeypatch):
    for name in ("a", "b", "c"):
        (pool / name).write_bytes(b"\0" * 512)
    from backends.drivers import dir as dir_mod

    original = dir_mod.DirDriver._scan

    def scan_and_race(self, dfd, name, *args):
        if name == "b":
            os.unlink(pool / "b")  # deleted between the directory read and the open
        return original(self, dfd, name, *args)

    monkeypatch.setattr(dir_mod.DirDriver, "_scan", scan_and_race)
    names = sorted(v.name for v in ctl.list_volumes("p"))
    assert names == ["a", "c"]


def test_volume_names_refused_before_any_filesystem_call(ctl, pool, tmp_path):
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for bad in ("../../etc/x", "a/b", ".", "..", "/abs", "a\nb", "a\tb", "a\x01b", "a\x00b",
                "x" * 256):
        with pytest.raises(ValidationError):
            ctl.create_volume_def("p", VolumeDef(name=bad, capacity=4096))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_pool_define_as_types_refused_by_this_version(ctl):
    with pytest.raises(Exception, match="not available|not supported"):
        ctl.define_pool_def(PoolDef(type="zfs", name="z", target=PoolTarget(path="/x")))


def test_block_devices_say_what_is_on_each(ctl, tmp_path):
    from tests.loopfs import loop_device

    with loop_device(tmp_path, 64) as blank, loop_device(tmp_path, 64) as used:
        subprocess.run(["mkfs.ext4", "-q", "-L", "data", used], check=True)
        found = {path: (size, what) for path, size, what in ctl.block_devices()}
        assert found[blank] == (64 << 20, "empty")
        assert "ext4" in found[used][1] and "data" in found[used][1]


def test_pool_features_say_which_wipe_algorithms_a_type_takes(ctl):
    assert ctl.pool_features("iscsi-direct").wipe_algorithms == ("zero",)
    assert "gutmann" in ctl.pool_features("dir").wipe_algorithms
    assert "trim" in ctl.pool_features("logical").wipe_algorithms
