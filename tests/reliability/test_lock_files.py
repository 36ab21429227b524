"""Lock files go when what they guard is gone, without racing a holder.

A volume's lock file is removed when the volume is deleted, a create's (and a clone's) when
its job ends, whether it made the volume or failed, the lock files of a pool's volumes when
the pool is stopped, and the pool's own when it is undefined; a file somebody holds is never
removed. The protocol (a remover
unlinks only while holding LOCK_EX; an acquirer re-checks after its flock that the path
still names the file it locked) is hammered by threads that take, release and remove one
lock file at once: two exclusive holders must never be inside together.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import Busy
from backends.locks import acquire, remove_if_free
from backends.model import VolumeDef, VolumeTarget
from tests.conftest import gpt_disk_pool
from tests.loopfs import can_use_loop_devices

MiB = 1 << 20
CYCLES = 50
THREADS = 8
ROUNDS = 400  # per thread: bounded, whatever the machine's speed


def create(ctl, pool: str, name: str) -> None:
    ctl.create_volume_def(pool, VolumeDef(name=name, capacity=MiB,
                                          target=VolumeTarget(format="raw"))).wait(60)


def lock_files(ctl) -> list[str]:
    return sorted(os.listdir(ctl.store.locks_dir))


def test_fifty_create_delete_cycles_leave_no_lock_files(ctl, pool):
    create(ctl, "p", "warm-up.img")  # the pool's own lock files exist from here on
    ctl.delete_volume("p", "warm-up.img")
    before = lock_files(ctl)
    for i in range(CYCLES):
        create(ctl, "p", f"v{i}.img")
        ctl.delete_volume("p", f"v{i}.img")
    assert lock_files(ctl) == before


def volume_lock_files(ctl) -> list[str]:
    return [n for n in lock_files(ctl) if n.startswith("vol-")]


def test_creates_that_fail_or_are_cancelled_leave_no_lock_file(ctl, pool):
    # qemu-img refuses a qcow2 this large: the job fails after it took the volume's lock
    job = ctl.create_volume_def("p", VolumeDef(name="huge.qcow2", capacity=(1 << 63) - 1,
                                               target=VolumeTarget(format="qcow2")))
    job.join(60)
    assert job.state == "failed", job.state
    assert volume_lock_files(ctl) == []
    job = ctl.create_volume_def("p", VolumeDef(name="big.img", capacity=256 * MiB,
                                               allocation=256 * MiB,
                                               target=VolumeTarget(format="raw")))
    job.cancel()  # mostly lands before the job starts; either way its lock file goes
    job.join(60)
    assert job.state in ("cancelled", "done"), job.state
    assert volume_lock_files(ctl) == []
    create(ctl, "p", "made.img")  # and one that made its volume: no file either
    assert volume_lock_files(ctl) == []
    assert "huge.qcow2" not in os.listdir(pool)


def test_stop_and_undefine_remove_the_pools_lock_files(ctl, pool):
    for i in range(5):
        create(ctl, "p", f"keep{i}.img")  # never deleted
        # a reader's lock file (a download's) stays until the pool stops
        ctl.locks.volume("p", f"keep{i}.img", exclusive=False, what="reading").release()
    assert len(lock_files(ctl)) > 5
    ctl.stop_pool("p")
    ctl.undefine_pool("p")
    assert lock_files(ctl) == ["store.lock"]
    assert sorted(os.listdir(pool)) == [f"keep{i}.img" for i in range(5)]  # volumes stay


def test_a_held_lock_file_is_never_removed(ctl, pool):
    create(ctl, "p", "busy.img")
    held = ctl.locks.volume("p", "busy.img", exclusive=True, what="being wiped")
    try:
        path = ctl.locks._volume_path("p", "busy.img")
        assert ctl.locks.sweep_volume_locks() == 0
        assert not remove_if_free(path)
        assert path.exists()
        with pytest.raises(Busy, match="being wiped"):  # the holder still excludes others
            ctl.locks.volume("p", "busy.img", exclusive=True, what="being deleted")
    finally:
        held.release()
    ctl.delete_volume("p", "busy.img")
    assert not path.exists()


def test_removers_and_acquirers_racing_never_let_two_holders_in(tmp_path: Path):
    """Acquirers take the lock exclusively and count who is inside; some remove the file
    on release (as a delete does); removers try to remove it all along."""
    path = tmp_path / "vol.lock"
    inside = 0
    counter = threading.Lock()
    overlaps: list[int] = []
    taken = [0] * THREADS
    removed = [0] * THREADS
    start = threading.Barrier(2 * THREADS)
    acquirers_done = threading.Event()

    def acquirer(slot: int) -> None:
        nonlocal inside
        rng = random.Random(slot)
        start.wait()
        for _ in range(ROUNDS):
            try:
                held = acquire(path, exclusive=True, what="hammer", busy_message="busy")
            except Busy:
                continue
            with counter:
                inside += 1
                if inside != 1:
                    overlaps.append(inside)
            os.sched_yield()  # let the others run while we are inside
            with counter:
                inside -= 1
            taken[slot] += 1
            held.release(remove=rng.random() < 0.5)

    def remover(slot: int) -> None:
        start.wait()
        for _ in range(ROUNDS * 100):  # for as long as the acquirers run, within a bound
            if acquirers_done.is_set():
                return
            removed[slot] += remove_if_free(path)

    threads = [threading.Thread(target=acquirer, args=(i,)) for i in range(THREADS)]
    threads += [threading.Thread(target=remover, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads[:THREADS]:
        thread.join()
    acquirers_done.set()
    for thread in threads[THREADS:]:
        thread.join()
    assert overlaps == [], f"{len(overlaps)} times two or more exclusive holders at once"
    assert sum(taken) > 0 and sum(removed) > 0  # the race did run


@pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")
def test_a_swept_half_made_partition_leaves_no_lock_file(ctl, tmp_path):
    """The sweep of a half-made partition (what a clone killed
    mid-copy leaves on a gpt disk: a partition named poolkeeper-partial) takes the volume's
    lock to remove it, and removes the lock file with the volume."""
    with gpt_disk_pool(ctl, tmp_path / "disk.img") as disk:
        subprocess.run(["parted", "-s", disk, "mkpart", "poolkeeper-partial", "ext2",
                        "1MiB", "9MiB"], check=True, capture_output=True)
        before = volume_lock_files(ctl)
        # a new process: its first use of the pool sweeps what killed clones left
        with StorageController(ctl.paths.config_dir, create_default=False,
                               autostart=False) as fresh:
            assert fresh.list_volumes("d") == []
        assert subprocess.run(["parted", "-s", disk, "print"], capture_output=True,
                              text=True).stdout.count("poolkeeper-partial") == 0
        assert volume_lock_files(ctl) == before
