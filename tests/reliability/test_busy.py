"""Busy marks while jobs run, in this process and from another one.

Jobs are held open by a gate at their first progress report (every file job reports once
before it moves a byte), never by a sleep: while the gate is shut the jobs are provably
running and hold their locks; the test opens it and the jobs finish. The second process is
the real CLI (`python -m tui --root STATE ...`) run while this process's controller holds
the jobs, as a TUI would.

Decisions: a volume being created or cloned is built under a hidden name and appears only
when complete, so a listing does not show it; every verb on its name, its info included,
is refused naming the job ("being created"), never "no such volume" (libvirt refuses all
but info; we have nothing to show yet). While volumes are cloned from S, S can be read
(download, more clones) but not changed (delete, wipe, resize, upload).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import Busy, StateError
from backends.jobs import Job
from backends.model import VolumeDef
from tests.conftest import make_dir_pool

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
GATE_TIMEOUT = 60.0
CLONES = 5
# Scattered data in an 8 MiB raw volume: holes between, so a sparse copy has work to do.
PATTERN = {0: b"head" * 1024, 3 * MiB + 17: b"middle" * 3000, 8 * MiB - 4096: b"t" * 4096}


# == helpers ===========================================================================
class JobGate:
    """Holds the jobs that work on the named volumes at their first progress report."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, volumes: set[str]) -> None:
        self.volumes = volumes
        self.opened = threading.Event()
        self._arrived: set[int] = set()
        self._cond = threading.Condition()
        real = Job.update

        def update(job: Job, done: int, total: int | None = None) -> None:
            if job.volume in self.volumes and not self.opened.is_set():
                with self._cond:
                    self._arrived.add(job.id)
                    self._cond.notify_all()
                deadline = time.monotonic() + GATE_TIMEOUT
                # A failed test closes the controller, which cancels: let go at once then.
                while not self.opened.wait(0.05) and not job.cancelled:
                    assert time.monotonic() < deadline, "the test never opened the gate"
            real(job, done, total)

        monkeypatch.setattr(Job, "update", update)

    def wait_for(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self._arrived) >= count, GATE_TIMEOUT), \
                f"only {len(self._arrived)} of {count} jobs reached the gate"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_source(ctl: StorageController, pool: Path, name: str = "S") -> str:
    """A raw volume with scattered data; it was grown by a resize job once (so its lock
    file has held a writer before the readers come)."""
    ctl.create_volume_def("p", VolumeDef(name=name, capacity=4 * MiB, allocation=0)).wait(30)
    ctl.resize_volume("p", name, 8 * MiB).wait(30)
    with open(pool / name, "r+b") as fh:
        for offset, data in PATTERN.items():
            fh.seek(offset)
            fh.write(data)
    return sha(pool / name)


def run_cli(state_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui", "--root", str(state_root), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


@pytest.fixture
def bctl(state_root: Path) -> Iterator[StorageController]:
    """A controller with room for every gated job and the ones the test adds."""
    controller = StorageController(state_root, create_default=False, max_jobs=12)
    try:
        yield controller
    finally:
        controller.close()


@pytest.fixture
def bpool(bctl: StorageController, tmp_path: Path) -> Path:
    return make_dir_pool(bctl, "p", tmp_path / "images")


@pytest.fixture
def clones_running(bctl, bpool, monkeypatch) -> Iterator[tuple[str, list[Job]]]:
    """S, and five clones of it held running by the gate; all finished at teardown."""
    digest = make_source(bctl, bpool)
    gate = JobGate(monkeypatch, {f"c{i}" for i in range(CLONES)})
    jobs = [bctl.clone_volume("p", "S", f"c{i}") for i in range(CLONES)]
    try:
        gate.wait_for(CLONES)
        yield digest, jobs
        assert not any(job.finished for job in jobs)  # they ran the whole time
    finally:
        gate.opened.set()
        for job in jobs:
            job.wait(GATE_TIMEOUT)
    for i in range(CLONES):
        assert sha(bpool / f"c{i}") == digest


def writers_of(ctl: StorageController, tmp_path: Path) -> dict[str, Callable[[str], object]]:
    """Every verb that changes a volume, as call(volume)."""
    feed = tmp_path / "feed"
    feed.write_bytes(b"x" * 4096)
    return {
        "delete": lambda v: ctl.delete_volume("p", v),
        "wipe": lambda v: ctl.wipe_volume("p", v).wait(30),
        "resize": lambda v: ctl.resize_volume("p", v, 16 * MiB).wait(30),
        "upload": lambda v: ctl.upload_volume("p", v, str(feed)).wait(30),
    }


# == case 9: five clones from S ========================================================
def test_source_of_running_clones_cannot_be_changed_but_can_be_read(bctl, bpool, tmp_path,
                                                                     clones_running):
    digest, _jobs = clones_running
    for verb, call in writers_of(bctl, tmp_path).items():
        with pytest.raises(Busy) as refused:
            call("S")
        message = str(refused.value)
        assert "volume 'S' in pool 'p'" in message and "in use" in message, (verb, message)
        # Readers write no record; the resize that once held the lock must not be named.
        assert "a clone or download is reading it" in message, (verb, message)
        assert "resized" not in message, (verb, message)
    assert sha(bpool / "S") == digest

    out = tmp_path / "S.download"
    assert bctl.download_volume("p", "S", str(out)).wait(30) == 8 * MiB
    assert sha(out) == digest
    bctl.clone_volume("p", "S", "extra").wait(30)
    assert sha(bpool / "extra") == digest


def test_source_of_running_clones_from_another_process(bctl, bpool, tmp_path, state_root,
                                                       clones_running):
    digest, _jobs = clones_running
    feed = tmp_path / "feed"
    feed.write_bytes(b"y" * 4096)
    for args in (["vol-delete", "S", "--pool", "p"],
                 ["vol-wipe", "S", "--pool", "p"],
                 ["vol-resize", "S", "16M", "--pool", "p"],
                 ["vol-upload", "S", str(feed), "--pool", "p"]):
        done = run_cli(state_root, *args)
        assert done.returncode == 1, (args, done)
        assert done.stderr.startswith("error: ") and "in use" in done.stderr, (args, done)
        assert "Traceback" not in done.stderr
    assert sha(bpool / "S") == digest

    out = tmp_path / "S.cli-download"
    done = run_cli(state_root, "vol-download", "S", str(out), "--pool", "p")
    assert done.returncode == 0, done
    assert sha(out) == digest
    done = run_cli(state_root, "vol-clone", "S", "cli-copy", "--pool", "p")
    assert done.returncode == 0, done
    assert sha(bpool / "cli-copy") == digest


def test_source_is_free_again_once_the_clones_end(bctl, bpool, tmp_path, monkeypatch):
    make_source(bctl, bpool)
    gate = JobGate(monkeypatch, {"c0"})
    job = bctl.clone_volume("p", "S", "c0")
    try:
        gate.wait_for(1)
        with pytest.raises(Busy, match="in use"):
            bctl.delete_volume("p", "S")
    finally:
        gate.opened.set()
    job.wait(GATE_TIMEOUT)
    bctl.delete_volume("p", "S")
    assert not (bpool / "S").exists()


# == case 10: a volume being built =====================================================
def every_verb_on(ctl: StorageController, tmp_path: Path) -> dict[str, Callable[[str], object]]:
    out = tmp_path / "out"
    verbs = writers_of(ctl, tmp_path)
    verbs["download"] = lambda v: ctl.download_volume("p", v, str(out)).wait(30)
    verbs["clone from"] = lambda v: ctl.clone_volume("p", v, v + "-copy").wait(30)
    return verbs


def start_building(ctl: StorageController, how: str) -> Job:
    if how == "create":
        return ctl.create_volume_def("p", VolumeDef(name="new", capacity=4 * MiB))
    return ctl.clone_volume("p", "S", "new")


@pytest.mark.parametrize("how", ["create", "clone"])
def test_a_volume_being_built_refuses_every_verb(bctl, bpool, tmp_path, monkeypatch, how):
    make_source(bctl, bpool)
    gate = JobGate(monkeypatch, {"new"})
    job = start_building(bctl, how)
    try:
        gate.wait_for(1)
        for verb, call in every_verb_on(bctl, tmp_path).items():
            with pytest.raises(Busy, match=r"volume 'new' in pool 'p' is busy: it is in use "
                                           rf"\(being created, pid {os.getpid()}\)"):
                call("new")
            assert not job.finished, verb
        # The half-made volume has no file under its name yet: its info says what is
        # happening rather than "no such volume", and a listing does not show it.
        with pytest.raises(Busy, match=r"volume 'new' .* in use \(being created"):
            bctl.volume_info("p", "new")
        with pytest.raises(Busy, match=r"volume 'new' .* in use \(being created"):
            bctl.create_volume_def("p", VolumeDef(name="new", capacity=MiB))
        assert "new" not in {v.name for v in bctl.list_volumes("p")}
        assert not (tmp_path / "out").exists() and not (bpool / "new-copy").exists()
    finally:
        gate.opened.set()
        job.wait(GATE_TIMEOUT)
    bctl.download_volume("p", "new", str(tmp_path / "after")).wait(30)  # free now


def test_a_volume_being_built_from_another_process(bctl, bpool, tmp_path, state_root,
                                                   monkeypatch):
    make_source(bctl, bpool)
    gate = JobGate(monkeypatch, {"new"})
    job = start_building(bctl, "clone")
    try:
        gate.wait_for(1)
        for args in (["vol-delete", "new", "--pool", "p"],
                     ["vol-download", "new", str(tmp_path / "out"), "--pool", "p"],
                     ["vol-clone", "new", "copy", "--pool", "p"]):
            done = run_cli(state_root, *args)
            assert done.returncode == 1, (args, done)
            assert "in use (being created, pid" in done.stderr, (args, done)
        # The pool's exclusive lock waits briefly (2 s) for readers, then refuses.
        done = run_cli(state_root, "pool-destroy", "p")
        assert done.returncode == 1 and "pool 'p' is busy" in done.stderr, done
        assert not job.finished
    finally:
        gate.opened.set()
        job.wait(GATE_TIMEOUT)
    assert bctl.pool_info("p").state == "running"
    assert not (tmp_path / "out").exists() and not (bpool / "copy").exists()


JOB_KINDS = ["create", "clone", "wipe", "upload", "download", "resize"]


def start_job(ctl: StorageController, kind: str, tmp_path: Path) -> Job:
    feed = tmp_path / "feed"
    feed.write_bytes(b"z" * 4096)
    return {
        "create": lambda: ctl.create_volume_def("p", VolumeDef(name="G", capacity=MiB)),
        "clone": lambda: ctl.clone_volume("p", "S", "G"),
        "wipe": lambda: ctl.wipe_volume("p", "G"),
        "upload": lambda: ctl.upload_volume("p", "G", str(feed)),
        "download": lambda: ctl.download_volume("p", "G", str(tmp_path / "dl")),
        "resize": lambda: ctl.resize_volume("p", "G", 16 * MiB, allocate=True),
    }[kind]()


@pytest.mark.parametrize("kind", JOB_KINDS)
def test_pool_stop_delete_undefine_refused_during_any_job(bctl, bpool, tmp_path, monkeypatch,
                                                          kind):
    make_source(bctl, bpool)
    if kind not in ("create", "clone"):
        make_source(bctl, bpool, "G")
    gate = JobGate(monkeypatch, {"G"})
    job = start_job(bctl, kind, tmp_path)
    try:
        gate.wait_for(1)
        with pytest.raises(StateError, match="pool 'p' has jobs running; wait for them or "
                                             "cancel them first"):
            bctl.stop_pool("p")
        for verb in (bctl.delete_pool, bctl.undefine_pool):
            with pytest.raises(StateError, match="pool 'p' is active; stop it before"):
                verb("p")
        assert bctl.pool_info("p").state == "running" and not job.finished
    finally:
        gate.opened.set()
        job.wait(GATE_TIMEOUT)
    bctl.stop_pool("p")  # allowed once the job is over
    assert bpool.is_dir()


def test_pool_delete_and_undefine_refused_while_it_is_being_built(bctl, tmp_path, monkeypatch):
    from backends.drivers.dir import DirDriver

    opened, entered = threading.Event(), threading.Event()
    real_build = DirDriver.build

    def gated_build(self, overwrite, ctx):  # type: ignore[no-untyped-def]
        entered.set()
        opened.wait(GATE_TIMEOUT)
        return real_build(self, overwrite, ctx)

    monkeypatch.setattr(DirDriver, "build", gated_build)
    target = tmp_path / "built"
    bctl.define_pool(f"<pool type='dir'><name>b</name><target><path>{target}</path>"
                     "</target></pool>")
    job = bctl.build_pool("b")
    try:
        assert entered.wait(GATE_TIMEOUT)
        for verb in (bctl.delete_pool, bctl.undefine_pool):
            with pytest.raises(Busy, match=r"pool 'b' is busy: jobs or another poolkeeper "
                                           r"process are using it.*\(building, pid"):
                verb("b")
        assert bctl.pool_names() == ["b"]
    finally:
        opened.set()
        job.wait(GATE_TIMEOUT)
    assert target.is_dir()
    bctl.undefine_pool("b")  # allowed once the build is over
