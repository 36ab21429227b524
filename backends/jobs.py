"""Long-running verbs as jobs on a bounded thread pool, with progress and cancel.

While its verb runs, a job is its worker thread's current context (progress.running), so a
cancel reaches every tool the verb runs (runner.run kills it) and every wait that polls the
context, whether or not the job was passed down to that code.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import Cancelled, PoolkeeperError
from .events import EventBus, JobFinished, JobProgress
from .locks import HeldLock
from .oserror import os_failure
from .progress import JobContext, running

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

_ids = itertools.count(1)
PROGRESS_INTERVAL = 0.1  # seconds between JobProgress events of one job


class Job(JobContext):
    """A running or finished long verb. Subclass of JobContext: pass it to fileops."""

    def __init__(self, kind: str, description: str, pool: str | None, volume: str | None,
                 bus: EventBus) -> None:
        super().__init__()
        self.id = next(_ids)
        self.kind = kind
        self.description = description
        self.pool = pool
        self.volume = volume
        self.state = "queued"  # queued, running, done, failed, cancelled
        self.error: BaseException | None = None
        self.result: Any = None
        self.warnings: list[str] = []
        self.started = time.monotonic()
        self.finished_at: float | None = None
        self._finished = threading.Event()
        self._bus = bus
        self._last_event = 0.0
        self._locks: list[HeldLock] = []
        self._cleanups: list[Callable[[], None]] = []

    # -- progress ----------------------------------------------------------------------
    def update(self, done: int, total: int | None = None) -> None:
        super().update(done, total)
        now = time.monotonic()
        if now - self._last_event >= PROGRESS_INTERVAL or (self.total and done >= self.total):
            self._last_event = now
            self._bus.publish(JobProgress(self))

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None

    @property
    def elapsed(self) -> float:
        """Seconds since it was made, until it finished."""
        return (self.finished_at or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if not self.total or rate <= 0 or self.done >= self.total:
            return None
        return (self.total - self.done) / rate

    # -- outcome -----------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Block until the job has ended (done, failed or cancelled), at most `timeout`
        seconds; True if it has. Unlike wait(), it never raises the job's error."""
        return self._finished.wait(timeout)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until done; return the result or raise the job's error."""
        if not self._finished.wait(timeout):
            raise TimeoutError(f"job {self.id} still running")
        if self.error is not None:
            raise self.error
        return self.result

    def hold(self, lock: HeldLock) -> None:
        """Keep `lock` until the job ends (pool/volume busy marks)."""
        self._locks.append(lock)

    def release_locks(self) -> None:
        for lock in reversed(self._locks):
            lock.release()

    def on_cleanup(self, fn: Callable[[], None]) -> None:
        self._cleanups.append(fn)

    def _run(self, fn: Callable[[Job], Any]) -> None:
        self.state = "running"
        try:
            with running(self):
                self.result = fn(self)
            self.state = "done"
        except Cancelled as exc:
            self.error, self.state = exc, "cancelled"
        except PoolkeeperError as exc:
            self.error, self.state = exc, "failed"
        except OSError as exc:  # EPERM, EROFS, EIO of the storage: said as our error
            self.error, self.state = os_failure(exc, self.description), "failed"
            self.error.__cause__ = exc
        except Exception as exc:  # unexpected: keep it for the user, never lose the worker
            self.error, self.state = exc, "failed"
        finally:
            for cleanup in self._cleanups:
                try:
                    cleanup()
                except Exception:
                    pass
            self.release_locks()
            self.finished_at = time.monotonic()
            self._finished.set()
            self._bus.publish(JobFinished(self))


class JobManager:
    def __init__(self, bus: EventBus, max_workers: int = 4, daemon: bool = False) -> None:
        """`daemon`: each job on a daemon thread (at most `max_workers` at once), which the
        process does not wait for at exit: for jobs in another host's calls that cannot be
        stopped (that host finishes them), so that q leaves at once. Else a thread pool,
        which the interpreter joins at exit (this host's jobs clean up first)."""
        self._bus = bus
        self._max_workers = max_workers
        self._daemon_slots = threading.BoundedSemaphore(max_workers) if daemon else None
        # made at the first job: a listing starts none, and concurrent.futures (with
        # logging) costs a command ~3 ms to import
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def create(self, kind: str, description: str, pool: str | None = None,
               volume: str | None = None) -> Job:
        """A job not yet started: take its locks with job.hold(), then start() it."""
        job = Job(kind, description, pool, volume, self._bus)
        return job

    def start(self, job: Job, fn: Callable[[Job], Any]) -> Job:
        slots = self._daemon_slots
        if slots is not None:
            with self._lock:
                self._jobs[job.id] = job

            def run() -> None:
                with slots:
                    job._run(fn)

            threading.Thread(target=run, daemon=True, name=f"pk-job {job.id}").start()
            return job
        with self._lock:
            self._jobs[job.id] = job
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=self._max_workers,
                                                thread_name_prefix="pk-job")
            pool = self._pool
        pool.submit(job._run, fn)
        return job

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def running(self, pool: str | None = None) -> list[Job]:
        return [j for j in self.list() if not j.finished and (pool is None or j.pool == pool)]

    def forget_finished(self) -> None:
        with self._lock:
            self._jobs = {k: j for k, j in self._jobs.items() if not j.finished}

    def shutdown(self, cancel: bool = True, wait: bool = True, grace: float = 0.0) -> None:
        """No more jobs; `cancel` the running ones; `wait` for them to end (False: a job
        stuck in a call that cannot be stopped, on a dead host, is left to end alone,
        after `grace` seconds in which the others stop and remove what they half made:
        a download's file)."""
        if cancel:
            for job in self.list():
                job.cancel()
        if not wait and grace > 0:
            deadline = time.monotonic() + grace
            for job in self.running():
                job._finished.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            pool = self._pool
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=not wait)
