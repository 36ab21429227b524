"""A cancel reaches every tool a job runs.

A job is its worker thread's current context (progress.running); runner.run watches it and
kills the tool's whole process group when it is cancelled, raising Cancelled, so no driver
has to pass the job down to each call. A tool started after the cancel is the job cleaning
up what it made and runs to its end; one passed the job explicitly (scrub) is not started.

Except the tools that change metadata in one short step (runner.NOT_KILLED_ON_CANCEL:
parted, partx, losetup, LVM's changes, wipefs, mount, umount, qemu-img resize/rebase/
amend...): a cancel never kills those; they run to their end and the job sees the cancel
right after (Cancelled). In the main thread (the CLI) a Ctrl-C, SIGTERM or SIGHUP waits
for them the same way. Checked with the real wipefs, wrapped so that it lingers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from backends import runner
from backends.errors import Cancelled
from backends.progress import JobContext, running, shielded
from tests.reliability.test_cancel import HANG, lingering_wrapper, wait_for

REPO = Path(__file__).resolve().parents[2]


def dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_runner_kills_the_whole_group_of_a_tool_whose_job_is_cancelled(tmp_path):
    """Any runner.run inside a job (the thread's current context), not only scrub: the tool
    and what it started are killed, Cancelled is raised, the call is in the command log."""
    pidfile = tmp_path / "pid"
    job = JobContext()

    def cancel_once_the_grandchild_runs() -> None:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the tool to start")
        job.cancel()

    threading.Thread(target=cancel_once_the_grandchild_runs, daemon=True).start()
    with running(job), pytest.raises(Cancelled, match="sh was stopped"):
        runner.run(["sh", "-c", f"sleep 600 & echo $! > {pidfile}; wait"], timeout=HANG)
    grandchild = int(pidfile.read_text())
    assert wait_for(lambda: dead(grandchild), "the tool's child to die")
    last = runner.COMMAND_LOG.entries[-1]
    assert last.argv[0] == "sh" and "killed on cancel" in last.stderr


def test_a_tool_started_after_the_cancel_is_cleanup_and_runs_to_its_end(tmp_path):
    job = JobContext()
    job.cancel()
    with running(job):  # a cancelled job removing what it made (lvremove, losetup -d, ...)
        assert runner.run(["sh", "-c", "sleep 0.2; echo done"]).stdout == "done\n"
    # the job's own work, named explicitly, is not even started once cancelled
    with pytest.raises(Cancelled):
        runner.run(["sh", "-c", f"touch {tmp_path / 'ran'}"], cancel=job)
    assert not (tmp_path / "ran").exists()


def test_bookkeeping_after_the_work_is_shielded_from_a_cancel(tmp_path):
    """After a verb's change is made, the refresh that follows must not be killed by a
    cancel: the job would say "cancelled" for a change that was made."""
    started, cancelled = tmp_path / "started", tmp_path / "cancelled"
    job = JobContext()

    def cancel_once_started() -> None:
        wait_for(started.exists, "the tool to start")
        job.cancel()
        cancelled.touch()

    threading.Thread(target=cancel_once_started, daemon=True).start()
    # The tool goes on for a few of the runner's looks at the flag after the cancel.
    script = (f"touch {started}; while [ ! -e {cancelled} ]; do sleep 0.01; done; "
              f"sleep {runner.CANCEL_POLL * 5}; echo done")
    with running(job), shielded():
        done = runner.run(["sh", "-c", script], timeout=HANG)
    assert job.cancelled and done.stdout == "done\n"


# == what a cancel may kill ==============================================================
@pytest.mark.parametrize("argv,killed", [
    (["scrub", "-p", "gutmann", "/dev/fd/3"], True),
    (["qemu-img", "convert", "-p", "-O", "qcow2", "a", "b"], True),
    (["qemu-img", "create", "-f", "qcow2", "/dev/fd/3", "1G"], True),
    (["mkfs.ext4", "-F", "/dev/loop0"], True),
    (["blkid", "-p", "/dev/loop0"], True),
    (["sh", "-c", "sleep 1"], True),
    (["qemu-img", "resize", "--shrink", "x", "1G"], False),
    (["qemu-img", "rebase", "-u", "-b", "base", "-F", "raw", "x"], False),
    (["qemu-img", "amend", "-o", "compat=1.1", "x"], False),
    (["/usr/sbin/parted", "-s", "/dev/loop0", "mkpart", "primary", "1MiB", "2MiB"], False),
    (["partx", "-a", "/dev/loop0"], False),
    (["losetup", "/dev/loop0", "/tmp/x.img"], False),
    (["losetup", "-d", "/dev/loop0"], False),
    (["lvcreate", "--yes", "-n", "v", "-L", "4m", "vg"], False),
    (["lvm", "lvremove", "-f", "vg/v"], False),
    (["lvm", "lvs"], True),
    (["vgchange", "-aly", "vg"], False),
    (["wipefs", "--all", "/dev/loop0"], False),
    (["mount", "-o", "nodev", "/dev/loop0", "/mnt"], False),
    # a network mount can wait on a dead server for its whole timeout: Ctrl-C kills it
    (["mount", "-o", "nodev,nosuid,noexec", "-t", "nfs", "nfs.example:/export", "/mnt"], True),
    (["mount", "-o", "guest,nodev", "-t", "cifs", "//fileserver/share", "/mnt"], True),
    (["umount", "/mnt"], False),
])
def test_which_tools_a_cancel_kills(argv, killed):
    assert runner.killed_on_cancel(argv) is killed


@pytest.fixture
def slow_wipefs(tmp_path, monkeypatch):
    """The real wipefs (on a scratch file), wrapped to linger after it ran until the test
    made marks/go; (the file, the marks dir)."""
    scratch = tmp_path / "scratch.img"
    scratch.write_bytes(b"\0" * 65536)
    bin_dir, marks = tmp_path / "bin", tmp_path / "marks"
    lingering_wrapper(bin_dir, "wipefs", str(scratch), marks)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return scratch, marks


def test_a_metadata_tool_is_not_killed_and_the_cancel_is_seen_after_it(slow_wipefs):
    scratch, marks = slow_wipefs
    job = JobContext()

    def cancel_once_it_ran() -> None:
        wait_for((marks / "ran").exists, "wipefs to run")
        job.cancel()
        (marks / "go").touch()

    threading.Thread(target=cancel_once_it_ran, daemon=True).start()
    with running(job), pytest.raises(Cancelled, match="after wipefs finished"):
        runner.run(["wipefs", "--all", "--", str(scratch)], timeout=HANG)
    assert (marks / "finished").exists()  # ran to its end
    last = runner.COMMAND_LOG.entries[-1]
    assert last.argv[0] == "wipefs" and last.returncode == 0
    assert "not killed" in last.stderr


CTRL_C_IN_THE_MAIN_THREAD = """
import json, os, signal, sys, threading, time
from backends import runner
scratch, marks = sys.argv[1:3]

def interrupt_once_it_ran():
    while not os.path.exists(f"{marks}/ran"):
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: KeyboardInterrupt in the main thread
    open(f"{marks}/go", "w").close()

threading.Thread(target=interrupt_once_it_ran, daemon=True).start()
try:
    runner.run(["wipefs", "--all", "--", scratch], timeout=120)
    outcome = "returned"
except KeyboardInterrupt:
    outcome = "interrupted"
logged = runner.COMMAND_LOG.entries  # (nothing: the run was cut short)
print(json.dumps({"outcome": outcome, "finished": os.path.exists(f"{marks}/finished"),
                  "rc": logged[-1].returncode if logged else None,
                  "handler_back": signal.getsignal(signal.SIGINT) is signal.default_int_handler}))
"""


def test_ctrl_c_in_the_main_thread_waits_for_a_metadata_tool(slow_wipefs):
    """The CLI runs pool-start, pool-destroy and deletes in its main thread, where Ctrl-C
    (and SIGTERM and SIGHUP, which the CLI turns into the same) raises KeyboardInterrupt:
    held until the tool has finished, then raised; the handler is back as it was."""
    scratch, marks = slow_wipefs
    done = subprocess.run([sys.executable, "-c", CTRL_C_IN_THE_MAIN_THREAD, str(scratch),
                           str(marks)], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=HANG)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"outcome": "interrupted", "finished": True, "rc": 0,
                                       "handler_back": True}
