"""Many readers at once never deadlock, fail or leak.

100 threads each repeat list pools + volume info + refresh (with the live monitor polling
too) for POOLKEEPER_STRESS_SECONDS seconds (default 20). Every thread
must end within a timeout after the stop (else the stacks of the stuck threads are shown),
no call may raise or return a wrong answer, and the open fds (/proc/self/fd), the lock
files and the RSS (psutil) must be where they were after a warm-up. Then 10,000 listings
(pool and volume lists, half each) in a loop must not leave one fd or lock file
behind.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import traceback
from pathlib import Path

import psutil
import pytest

from backends.controller import StorageController
from backends.model import VolumeDef, VolumeTarget

MiB = 1 << 20
THREADS = 100
DURATION = float(os.environ.get("POOLKEEPER_STRESS_SECONDS", "20"))
WARM_UP = min(2.0, DURATION / 5)
JOIN_TIMEOUT = 60.0  # after the stop: a thread still running by then is stuck
FD_SLACK = 2
RSS_SLACK = 24 * MiB
LIST_CALLS = 10_000
VOLUMES = {"v0": 1 * MiB, "v1": 2 * MiB, "v2": 3 * MiB, "disk.qcow2": 64 * MiB}


def open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def rss() -> int:
    return psutil.Process().memory_info().rss


@pytest.fixture
def volumes(ctl: StorageController, pool: Path) -> dict[str, int]:
    for name, size in VOLUMES.items():
        fmt = "qcow2" if name.endswith(".qcow2") else "raw"
        ctl.create_volume_def("p", VolumeDef(name=name, capacity=size, allocation=0,
                                             target=VolumeTarget(format=fmt))).wait(30)
    return VOLUMES


def one_round(ctl: StorageController, volume: str, expected: dict[str, int]) -> None:
    """The three readers (pool list, volume info, refresh), each checked for the right answer."""
    pools = ctl.list_pools()
    assert [(p.name, p.state) for p in pools] == [("p", "running")], pools
    info = ctl.volume_info("p", volume)
    assert (info.name, info.capacity) == (volume, expected[volume]), info
    listed = {v.name: v.capacity for v in ctl.refresh_pool("p")}
    assert listed == expected, listed


def hammer(ctl: StorageController, expected: dict[str, int], seconds: float
           ) -> tuple[int, list[str]]:
    """THREADS threads doing one_round until `seconds` pass; (rounds done, failures)."""
    stop = threading.Event()
    failures: list[str] = []
    rounds = [0] * THREADS
    names = sorted(expected)

    def worker(index: int) -> None:
        volume = names[index % len(names)]
        try:
            while not stop.is_set():
                one_round(ctl, volume, expected)
                rounds[index] += 1
        except BaseException:  # noqa: BLE001 - every failure is reported, none may happen
            failures.append(traceback.format_exc())

    threads = [threading.Thread(target=worker, args=(i,), name=f"stress-{i}", daemon=True)
               for i in range(THREADS)]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    deadline = time.monotonic() + JOIN_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threads if t.is_alive()]
    if stuck:
        frames = sys._current_frames()
        stacks = "\n".join(f"{t.name}:\n" + "".join(traceback.format_stack(frames[t.ident]))
                           for t in stuck[:3] if t.ident in frames)
        pytest.fail(f"{len(stuck)} threads still running {JOIN_TIMEOUT} s after the stop "
                    f"(deadlock?); the first stacks:\n{stacks}")
    return sum(rounds), failures


def test_hundred_threads_of_readers(ctl, pool, volumes):
    ctl.start_monitor(interval=0.05)  # the TUI's live monitor polls meanwhile
    try:
        done, failures = hammer(ctl, volumes, WARM_UP)  # thread stacks, caches, arenas
        assert not failures, failures[0]
        gc.collect()
        fds, lock_files, memory = open_fds(), sorted(os.listdir(ctl.store.locks_dir)), rss()

        done, failures = hammer(ctl, volumes, DURATION)
        assert not failures, f"{len(failures)} threads failed; the first:\n{failures[0]}"
        assert done >= THREADS, f"only {done} rounds in {DURATION} s"
    finally:
        ctl.stop_monitor()
    gc.collect()
    after = open_fds()
    assert len(after) <= len(fds) + FD_SLACK, (fds, after)
    assert sorted(os.listdir(ctl.store.locks_dir)) == lock_files
    grown = rss() - memory
    assert grown <= RSS_SLACK, f"RSS grew by {grown / MiB:.1f} MiB in {done} rounds"
    # Nothing is left locked: an exclusive verb gets the pool at once.
    ctl.stop_pool("p")
    assert ctl.pool_info("p").state == "inactive"


def test_ten_thousand_listings_leave_no_fd(ctl, pool, volumes):
    ctl.list_pools()
    ctl.list_volumes("p")
    fds, lock_files = open_fds(), sorted(os.listdir(ctl.store.locks_dir))
    for i in range(LIST_CALLS):  # both listings, half each
        if i % 2:
            ctl.list_volumes("p")
        else:
            ctl.list_pools()
    assert open_fds() == fds
    assert sorted(os.listdir(ctl.store.locks_dir)) == lock_files
