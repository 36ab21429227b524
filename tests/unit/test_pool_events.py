"""PoolEvents wakes for what happens instead of polling: a journal line written by another
process (inotify on the run directory, across rotations), a refresh published by this
process's monitor (a pipe); without inotify it polls the journal and still sees them."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
import time
from pathlib import Path

from backends import pool_events
from backends.controller import StorageController
from backends.events import VolumesChanged
from backends.pool_events import PoolEvent, PoolEvents

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys
from pathlib import Path
from backends.event_journal import EventJournal
j = EventJournal(Path(sys.argv[1]), max_bytes=int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    j.append("lifecycle", "p", str(i))
"""


def _write_later(run_dir: Path, count: int, max_bytes: int = 1 << 20,
                 delay: float = 0.3) -> threading.Thread:
    """Another process appends `count` lines to the journal, `delay` seconds from now."""
    def write() -> None:
        time.sleep(delay)
        subprocess.run([sys.executable, "-c", WRITER, str(run_dir), str(max_bytes),
                        str(count)], cwd=REPO, check=True, timeout=60)

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def _collect(watcher: PoolEvents, count: int, timeout: float) -> tuple[list[PoolEvent], float]:
    """The first `count` events (fewer if `timeout` passed first), and how long it took."""
    start = time.monotonic()
    got: list[PoolEvent] = []
    for event in watcher.events(timeout):
        got.append(event)
        if len(got) == count:
            break
    return got, time.monotonic() - start


STEPPED_WRITER = """
import sys
from pathlib import Path
from backends.event_journal import EventJournal
j = EventJournal(Path(sys.argv[1]), max_bytes=int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    sys.stdin.readline()  # one line when the test has seen the one before
    j.append("lifecycle", "p", str(i))
"""


def test_another_process_s_lines_wake_it_across_rotations(ctl: StorageController):
    """Each line is heard before the next is written (the journal keeps one rotation: a
    writer two rotations ahead of any reader loses lines by design), so every line must
    come from a wake-up on the rotated, recreated journal."""
    watcher = PoolEvents(ctl.store, ctl.subscribe)
    got: list[PoolEvent] = []
    heard = threading.Condition()

    def collect() -> None:
        for event in watcher.events(30):
            with heard:
                got.append(event)
                heard.notify_all()
            if len(got) == 40:
                return

    writer = subprocess.Popen(
        [sys.executable, "-c", STEPPED_WRITER, str(ctl.store.run_dir), "300", "40"],
        cwd=REPO, stdin=subprocess.PIPE)  # 300 bytes: rotated about every 5 lines
    assert writer.stdin is not None
    reader = threading.Thread(target=collect)
    try:
        assert not watcher._watch.polled  # inotify on a local run directory
        reader.start()
        for i in range(40):
            writer.stdin.write(b"\n")
            writer.stdin.flush()
            with heard:
                assert heard.wait_for(lambda i=i: len(got) > i, timeout=10), got
        assert writer.wait(timeout=30) == 0
    finally:
        writer.kill()
        writer.wait()
        watcher.close()
        reader.join(timeout=35)
    assert got == [PoolEvent("lifecycle", "p", str(i)) for i in range(40)]


def test_a_monitor_refresh_wakes_it(ctl: StorageController):
    watcher = PoolEvents(ctl.store, ctl.subscribe)
    timer = threading.Timer(0.3, ctl.bus.publish, [VolumesChanged("p", added=("v",))])
    try:
        timer.start()
        got, took = _collect(watcher, 1, timeout=30)
    finally:
        timer.cancel()
        watcher.close()
    assert got == [PoolEvent("refresh", "p")]
    assert took < 20


def test_a_timeout_with_nothing_returns_on_time(ctl: StorageController):
    watcher = PoolEvents(ctl.store, ctl.subscribe)
    try:
        got, took = _collect(watcher, 1, timeout=1)
    finally:
        watcher.close()
    assert got == [] and 0.9 <= took < 10


def test_without_inotify_it_polls_and_still_sees_them(ctl: StorageController, monkeypatch):
    def no_instance_left() -> None:  # what inotify_init1 says past max_user_instances
        raise OSError(errno.EMFILE, "inotify_init1: Too many open files")

    monkeypatch.setattr(pool_events.watch, "Watcher", no_instance_left)
    watcher = PoolEvents(ctl.store, ctl.subscribe)
    try:
        assert watcher._watch.polled and watcher._watch.fileno() is None
        writer = _write_later(ctl.store.run_dir, 3)
        got, took = _collect(watcher, 3, timeout=30)
        writer.join()
    finally:
        watcher.close()
    assert got == [PoolEvent("lifecycle", "p", str(i)) for i in range(3)]
    assert took < 20


def test_the_run_directory_gone_falls_back_to_polling(tmp_path, ctl: StorageController):
    """The watch is dropped with its directory (IN_IGNORED): polled from then on, never a
    select() on a watch that will say nothing more."""
    watcher = PoolEvents(ctl.store, ctl.subscribe)
    moved = tmp_path / "run-moved"
    try:
        ctl.store.run_dir.rename(moved)
        ctl.store.run_dir.mkdir()
        got, _ = _collect(watcher, 1, timeout=1)  # drains the watch's last events
        assert got == [] and watcher._watch.polled
        writer = _write_later(ctl.store.run_dir, 1, delay=0)
        got, took = _collect(watcher, 1, timeout=30)
        writer.join()
    finally:
        watcher.close()
    assert got == [PoolEvent("lifecycle", "p", "0")] and took < 20

