"""Issue 13 item 17, the mechanism: a cancel reaches every tool a job runs.

A job is its worker thread's current context (progress.running); runner.run watches it and
kills the tool's whole process group when it is cancelled, raising Cancelled, so no driver
has to pass the job down to each call. A tool started after the cancel is the job cleaning
up what it made and runs to its end; one passed the job explicitly (scrub) is not started.
"""

from __future__ import annotations

import threading

import psutil
import pytest

from backends import runner
from backends.errors import Cancelled
from backends.progress import JobContext, running, shielded
from tests.reliability.test_cancel import HANG, wait_for


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
