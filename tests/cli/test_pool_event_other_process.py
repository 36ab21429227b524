"""pool-event in one process reports what another process's verbs did, in order and in
virsh's words: define, build, start, refresh, destroy, delete, undefine (the event journal
under the run state); --event and --pool filter; one-shot stops at the first event."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _watch(state_root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "--root", str(state_root), "pool-event", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


def _reading_journal(pid: int) -> bool:
    """Has the watcher the journal open (so it follows it from here on)?"""
    try:
        return any(os.readlink(fd).endswith("/run/.events")
                   for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def _wait_ready(*watchers: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    for w in watchers:
        while not _reading_journal(w.pid) and time.monotonic() < deadline:
            assert w.poll() is None, w.communicate()
            time.sleep(0.05)
        assert _reading_journal(w.pid), "the watcher never opened the journal"


def _finish(w: subprocess.Popen[str]) -> tuple[int, list[str], str]:
    try:
        out, err = w.communicate(timeout=60)
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    return w.returncode, out.splitlines(), err


def ev(pool: str, detail: str | None = None) -> str:
    if detail is None:
        return f"event 'refresh' for storage pool {pool}"
    return f"event 'lifecycle' for storage pool {pool}: {detail}"


def test_another_process_s_verbs_in_order(cli, state_root, tmp_path):
    assert cli("pool-list").code == 0  # the state root, the default pool and the journal
    every = _watch(state_root, "--event", "lifecycle", "--loop", "--timeout", "12")
    refresh = _watch(state_root, "--event", "refresh", "--loop", "--timeout", "12")
    other = _watch(state_root, "--pool", "other", "--event", "lifecycle", "--loop",
                   "--timeout", "12")
    watchers = (every, refresh, other)
    try:
        _wait_ready(*watchers)
        target = tmp_path / "ev"
        for verb in (("pool-define-as", "ev", "dir", "--target", str(target)),
                     ("pool-build", "ev"), ("pool-start", "ev"), ("pool-refresh", "ev"),
                     ("pool-destroy", "ev"), ("pool-delete", "ev"), ("pool-undefine", "ev")):
            r = cli(*verb)
            assert r.code == 0, (verb, r)
        assert not target.exists()  # deleted: the Deleted event is of a real delete
        results = [_finish(w) for w in watchers]
    finally:
        for w in watchers:
            if w.poll() is None:
                w.kill()
                w.wait()
    code, lines, err = results[0]
    assert lines == [ev("ev", "Defined"), ev("ev", "Created"), ev("ev", "Started"),
                     ev("ev", "Stopped"), ev("ev", "Deleted"), ev("ev", "Undefined"),
                     "event loop timed out", "events received: 6", ""], err
    assert code == 0
    code, lines, err = results[1]
    assert (code, lines) == (0, [ev("ev"), "event loop timed out", "events received: 1", ""]), err
    code, lines, err = results[2]  # another pool's events only: none; as virsh, status 1
    assert (code, lines) == (1, ["event loop timed out", "events received: 0", ""]), err


def test_one_shot_stops_at_the_first_and_a_transient_pool_has_no_define(
        cli, state_root, tmp_path):
    assert cli("pool-list").code == 0
    once = _watch(state_root, "--event", "lifecycle", "--timeout", "20")
    loop = _watch(state_root, "--event", "lifecycle", "--loop", "--timeout", "8", "--pool",
                  "t")
    try:
        _wait_ready(once, loop)
        assert cli("pool-create-as", "t", "dir", "--target", str(tmp_path / "t"),
                   "--build").code == 0
        assert cli("pool-destroy", "t").code == 0
        first = _finish(once)
        looped = _finish(loop)
    finally:
        for w in (once, loop):
            if w.poll() is None:
                w.kill()
                w.wait()
    assert first[:2] == (0, [ev("t", "Started"), "events received: 1", ""]), first
    # as libvirt: pool-create --build is Started only (its build is no Created), a
    # transient pool has no Defined, and its destroy is Stopped only (no Undefined)
    assert looped[:2] == (0, [ev("t", "Started"), ev("t", "Stopped"),
                              "event loop timed out", "events received: 2", ""]), looped
