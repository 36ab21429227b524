"""How a job takes its locks and passes its checks before it starts.

Each lock is held for the job's lifetime (Job.hold). A lock or check refused before the
start drops every lock the job already took, so a job that never starts holds nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from .jobs import Job
from .locks import HeldLock, LockManager


def hold(job: Job, take: Callable[[], HeldLock]) -> None:
    """Take a lock for the job's lifetime; on refusal release what it already holds."""
    check_or_release(job, lambda: job.hold(take()))


def hold_new_volume(job: Job, locks: LockManager, pool: str, name: str) -> None:
    """The lock of a volume the job creates, for its lifetime; its file goes with the
    job (a failed or cancelled create leaves no lock file; removing a free one is always
    safe, see locks.py)."""

    def take() -> HeldLock:
        held = locks.volume(pool, name, exclusive=True, what="being created")
        held.remove_on_release = True
        return held

    hold(job, take)


def check_or_release(job: Job, check: Callable[[], object]) -> None:
    """Run a pre-start check; if it refuses, the job never starts: drop its locks."""
    try:
        check()
    except BaseException:
        job.release_locks()
        raise
