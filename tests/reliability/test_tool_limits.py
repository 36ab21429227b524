"""A tool that prints 100 MB or hangs cannot take poolkeeper down.

The tools are fake scripts put first on PATH (runner resolves every tool through PATH).
What is checked: the output kept is capped at runner.MAX_OUTPUT and memory stays bounded
while 200 MB go through the pipes (tracemalloc peak, with the cap lowered to 1 MiB so the
bound is clear); a tool that does not answer is killed at its timeout together with what it
started (its process group: no orphan keeps running or keeps our pipes open); the error
names the tool and its argv; and the next call works.
"""

from __future__ import annotations

import os
import signal
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from backends import runner
from backends.drivers import dir as dirdrv
from backends.errors import PoolkeeperError, ToolFailed, ValidationError
from backends.model import VolumeDef, VolumeTarget

MiB = 1 << 20
CHATTY = """\
head -c 100000000 /dev/zero | tr '\\0' x
head -c 100000000 /dev/zero | tr '\\0' y >&2
exit "${EXIT:-0}"
"""
# Writes its own pid and its child's, then waits for the child, which holds our pipes.
HANGING = """\
echo $$ > "$PIDS"
sleep 1000 &
echo $! >> "$PIDS"
wait
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], Path]:
    """fake(tool, body) puts a shell script named `tool` first on PATH."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")

    def make(tool: str, body: str) -> Path:
        script = bindir / tool
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
        return script

    return make


@pytest.fixture
def pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pids"
    monkeypatch.setenv("PIDS", str(path))
    return path


def dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def all_gone(pid_file: Path, timeout: float = 3.0) -> bool:
    """Every process the fake tool wrote down is dead (reaping an orphan takes a moment)."""
    recorded = [int(p) for p in pid_file.read_text().split()]
    assert len(recorded) == 2  # the tool and its child
    deadline = time.monotonic() + timeout
    while not all(dead(p) for p in recorded):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def peak_memory(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        fn()
    except PoolkeeperError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# == output ==============================================================================
def test_100_mb_of_output_is_capped(fake):
    fake("qemu-img", CHATTY)
    done = runner.run(["qemu-img", "info", "x"], timeout=60)
    assert len(done.stdout) == runner.MAX_OUTPUT and set(done.stdout) == {"x"}
    assert len(done.stderr) == runner.MAX_OUTPUT and set(done.stderr) == {"y"}
    assert runner.run(["true"]).returncode == 0  # and the next call works


def test_memory_stays_bounded_whatever_a_tool_prints(fake, monkeypatch):
    fake("qemu-img", CHATTY)
    monkeypatch.setattr(runner, "MAX_OUTPUT", MiB)
    started = time.monotonic()
    peak = peak_memory(lambda: runner.run(["qemu-img", "info", "x"], timeout=60))
    # 200 MB went through the pipes; what is held is a few times the 1 MiB cap.
    assert peak < 8 * MiB, peak
    assert time.monotonic() - started < 30


def test_a_failing_chatty_tool_gives_a_short_error_naming_it(fake, monkeypatch):
    fake("blkid", CHATTY)
    monkeypatch.setenv("EXIT", "2")
    with pytest.raises(ToolFailed) as failed:
        runner.run(["blkid", "-p", "/dev/nothing"], timeout=60)
    message = str(failed.value)
    assert message.startswith("'blkid' failed (exit 2): ") and len(message) < 600
    assert failed.value.argv == ["blkid", "-p", "/dev/nothing"]
    assert len(failed.value.stderr) == runner.MAX_OUTPUT


def test_progress_output_without_line_ends_stays_bounded(fake, monkeypatch):
    fake("qemu-img", CHATTY)
    monkeypatch.setenv("EXIT", "1")
    monkeypatch.setattr(runner, "MAX_OUTPUT", MiB)
    lines: list[int] = []

    def run() -> None:
        runner.run_with_progress(["qemu-img", "convert", "-p", "a", "b"],
                                 lambda line: lines.append(len(line)), lambda: False)

    peak = peak_memory(run)
    assert peak < 8 * MiB, peak
    assert lines == []  # 100 MB without a line end: no line, and not kept whole
    with pytest.raises(ToolFailed, match=r"'qemu-img' failed \(exit 1\)"):
        run()


# == hanging =============================================================================
def test_a_hanging_tool_is_killed_at_its_timeout_with_its_children(fake, pids):
    fake("blkid", HANGING)
    started = time.monotonic()
    with pytest.raises(ToolFailed) as failed:
        runner.run(["blkid", "-p", "-o", "export", "/dev/loop99"], timeout=0.5)
    took = time.monotonic() - started
    assert 0.5 <= took < 3, took
    assert str(failed.value) == ("'blkid' timed out: killed after 0.5 s: "
                                 "blkid -p -o export /dev/loop99")
    assert failed.value.returncode is None
    assert all_gone(pids)  # the child that held our pipes too: no orphan
    entry = runner.COMMAND_LOG.entries[-1]
    assert entry.shown[0] == "blkid" and entry.returncode is None
    assert runner.run(["true"]).returncode == 0


def test_an_interrupted_call_kills_the_tool(fake, pids):
    """Ctrl-C (any exception) while a tool runs: the tool and its children go too."""
    fake("parted", HANGING)

    class Interrupted(Exception):
        pass

    def interrupt(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(Interrupted):
            runner.run(["parted", "-s", "/dev/x", "print"], timeout=60)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert all_gone(pids)


def test_a_stopped_progress_tool_is_killed_with_its_children(fake, pids):
    fake("qemu-img", HANGING)
    started = time.monotonic()
    done = runner.run_with_progress(["qemu-img", "convert", "-p", "a", "b"], lambda line: None,
                                    lambda: time.monotonic() - started > 0.3)
    assert done.returncode != 0 and time.monotonic() - started < 3
    assert all_gone(pids)


def test_a_hanging_qemu_img_fails_the_create_and_leaves_nothing(ctl, pool, fake, pids,
                                                               monkeypatch):
    monkeypatch.setattr(dirdrv, "QEMU_IMG_TIMEOUT", 0.5)
    script = fake("qemu-img", HANGING)
    vdef = VolumeDef(name="v.qcow2", capacity=8 * MiB, target=VolumeTarget(format="qcow2"))
    with pytest.raises(ToolFailed) as failed:
        ctl.create_volume_def("p", vdef).wait(30)
    message = str(failed.value)
    assert message.startswith("'qemu-img' timed out: killed after 0.5 s: qemu-img create -f "
                              "qcow2 -o compat=1.1 ")
    assert message.endswith(" 8192K") and " /dev/fd/" in message  # the file it opened
    assert all_gone(pids)
    assert os.listdir(pool) == []  # neither v.qcow2 nor its partial file
    script.unlink()  # the real qemu-img again: poolkeeper is still up, the name free
    ctl.create_volume_def("p", vdef).wait(30)
    assert [v.name for v in ctl.list_volumes("p")] == ["v.qcow2"] == os.listdir(pool)


def test_a_nul_in_an_argument_is_our_error_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ValidationError, match="NUL"):
        runner.run(["touch", str(marker), "a\0b"])
    with pytest.raises(ValidationError, match="NUL"):
        runner.run_with_progress(["touch", str(marker), "a\0b"], lambda line: None,
                                 lambda: False)
    assert not marker.exists()
