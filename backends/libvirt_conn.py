"""One libvirt connection on libvirt-python, every call with a deadline.

libvirt's calls block in C: a host that stops answering (a dead ssh link, a stopped
daemon) would hang the caller forever. So every call runs on this connection's own worker
thread, and the caller waits for it no longer than `timeout` seconds without progress (a
long listing counts each answer it gets as progress). A call that misses its deadline
marks the connection lost: later calls fail at once, saying so, and the stuck thread is
left behind (a daemon thread; it cannot be interrupted). Long calls (building a pool, creating or
deleting a volume) get a much longer deadline instead: libvirt's keepalive, driven by its
event loop on another daemon thread, probes the daemon (which answers while it works) and
closes a connection whose peer went quiet for about `timeout` seconds, which fails the
call that was waiting on it.

The binding is optional (`pip install -e '.[libvirt]'`): `load()` says how to install it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from .errors import PoolkeeperError, PoolNotFound, StateError, VolumeNotFound

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0  # seconds without an answer before a connection counts as lost
# A long call (a build, a volume written in full) may rightly take much longer than that:
# it waits this many times `timeout`, while keepalive shows the peer is still there.
LONG_CALL_FACTOR = 120
INSTALL_HINT = ("libvirt connections need libvirt's Python binding (libvirt-python), which "
                "is not installed: run `pip install -e '.[libvirt]'` in poolkeeper's "
                "directory, or `make`, which also installs the Debian packages it builds "
                "against (libvirt-dev, pkg-config, gcc)")


class LibvirtMissing(PoolkeeperError):
    """The binding is not installed."""


class ConnectionLost(PoolkeeperError):
    """The connection missed a deadline or was closed by libvirt."""


_loop_lock = threading.Lock()
_loop_started = False


_errors_silenced = False


def load(events: bool = True) -> Any:
    """The `libvirt` module, its error printing silenced and (`events`) its event loop
    running (for keepalive and events), or LibvirtMissing saying what to install."""
    global _loop_started, _errors_silenced
    try:
        import libvirt
    except ImportError:
        raise LibvirtMissing(INSTALL_HINT) from None
    with _loop_lock:
        if not _errors_silenced:
            # libvirt prints every error to stderr unless a handler takes it; ours are
            # raised as exceptions and reported once, by the caller
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _errors_silenced = True
        if events and not _loop_started:
            libvirt.virEventRegisterDefaultImpl()
            threading.Thread(target=_run_event_loop, args=(libvirt,), daemon=True,
                             name="libvirt-events").start()
            _loop_started = True
    return libvirt


def _run_event_loop(libvirt: Any) -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


def timeout_from_env() -> float:
    """$POOLKEEPER_CONNECT_TIMEOUT (seconds), else DEFAULT_TIMEOUT."""
    text = os.environ.get("POOLKEEPER_CONNECT_TIMEOUT")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 86400:
        raise PoolkeeperError(f"$POOLKEEPER_CONNECT_TIMEOUT takes seconds (a number above 0), "
                              f"not '{text}'")
    return value


def translate(libvirt: Any, exc: BaseException, what: str) -> PoolkeeperError:
    """A libvirt error as poolkeeper's own, `what` saying what was being done."""
    if not isinstance(exc, libvirt.libvirtError):
        return exc if isinstance(exc, PoolkeeperError) else PoolkeeperError(f"{what}: {exc}")
    code = exc.get_error_code()
    message = f"{what}: {exc.get_error_message() or exc}"
    if code == libvirt.VIR_ERR_NO_STORAGE_POOL:
        return PoolNotFound(message)
    if code == libvirt.VIR_ERR_NO_STORAGE_VOL:
        return VolumeNotFound(message)
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return StateError(message)
    if code in (libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_AUTH_FAILED):
        return ConnectionLost(message)
    return PoolkeeperError(message)


class Connection:
    """A libvirt connection to `uri` whose calls go through `call` (a deadline each)."""

    def __init__(self, uri: str, timeout: float | None = None,
                 keepalive: tuple[int, int] | None = None, events: bool = True) -> None:
        # events=False: no event loop thread and no keepalive, for a command of short
        # calls only (the deadline still holds): the loop thread wakes at every answer and
        # takes the GIL from the caller (a path call per volume ~1.5x slower with it)
        self.events = events
        self.libvirt = load(events)
        self.uri = uri
        self.timeout = timeout_from_env() if timeout is None else timeout
        # (interval, count): closed after about interval * (count + 1) s without an
        # answer; by default that is `timeout`
        interval = max(1, round(self.timeout / 6))
        self.keepalive = keepalive or (interval, max(1, round(self.timeout / interval) - 1))
        self.lost: str | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any], float] | None] = (
            queue.SimpleQueue())
        self._progress = time.monotonic()
        self._running_limit = 0.0  # the deadline of the call the worker is in
        self.busy = False  # the worker is inside a call (a clone libvirt cannot cancel)
        self._worker = threading.Thread(target=self._work, daemon=True,
                                        name=f"libvirt {uri}")
        self._worker.start()
        self.conn: Any = None
        self._abandoned = False  # the caller gave up on the open (its deadline)
        self._open_lock = threading.Lock()
        try:
            self.conn = self.call(self._open, f"cannot connect to '{uri}'")
        except BaseException:
            with self._open_lock:
                self._abandoned = True  # an open that still ends closes what it opened
            self._jobs.put(None)  # the worker ends (after the open, if it still hangs)
            raise

    def _open(self) -> Any:
        lv = self.libvirt
        conn = lv.open(self.uri)
        with self._open_lock:
            if self._abandoned:  # too late: nobody will use or close it but here
                conn.close()
                raise ConnectionLost(f"the connection to '{self.uri}' came after its "
                                     "deadline and was closed")
        if not self.events and not _loop_started:
            return conn
        try:
            conn.setKeepAlive(*self.keepalive)
        except lv.libvirtError as exc:
            # drivers that run in this process (test:///) have no peer to probe
            if exc.get_error_code() != lv.VIR_ERR_NO_SUPPORT:
                conn.close()
                raise
        return conn

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            fn, future, limit = item
            if not future.set_running_or_notify_cancel():
                continue
            # the deadline runs from here, for this call: not from the last call queued
            # (calls queued every few seconds hid one that never answered)
            self._progress = time.monotonic()
            self._running_limit = limit
            self.busy = True
            try:
                result = fn()
            except BaseException as exc:  # handed to the caller, who raises it
                self.busy = False
                future.set_exception(exc)
            else:
                self.busy = False  # before the caller hears: its close() must not skip
                future.set_result(result)

    def alive(self) -> None:
        """Called by a long call between its RPCs: it is still getting answers."""
        self._progress = time.monotonic()

    def call(self, fn: Callable[[], T], what: str, long: bool = False) -> T:
        """fn() on the worker thread; its result, or its error as poolkeeper's (`what`:
        what was being done). No answer for `timeout` seconds (LONG_CALL_FACTOR times
        that for a `long` call; keepalive watches it meanwhile): ConnectionLost."""
        limit = self.timeout * (LONG_CALL_FACTOR if long else 1)
        if self.lost:
            raise ConnectionLost(f"{what}: {self.lost}")
        future: Future[T] = Future()
        self._jobs.put((fn, future, limit))
        while True:
            try:
                result = future.result(timeout=0.2)
                break
            except TimeoutError:
                # queued behind another call: that one's deadline (a long call's is long)
                bound = limit if future.running() else max(limit, self._running_limit)
                if time.monotonic() - self._progress > bound:
                    self.lost = (f"the connection to '{self.uri}' is lost: no answer for "
                                 f"{limit:g} s (is the host up and libvirtd "
                                 "running? $POOLKEEPER_CONNECT_TIMEOUT sets the wait)")
                    future.cancel()
                    raise ConnectionLost(f"{what}: {self.lost}") from None
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    # the worker is still in the call: close() must not queue behind it
                    self.lost = "interrupted"
                    raise
                if self.conn is not None and not self.conn.isAlive():  # keepalive closed it
                    why = str(exc.get_error_message() if isinstance(
                        exc, self.libvirt.libvirtError) else exc)
                    self.lost = f"the connection to '{self.uri}' was closed: {why}"
                    raise ConnectionLost(f"{what}: {self.lost}") from None
                raise translate(self.libvirt, exc, what) from None
        return result

    def close(self) -> None:
        """Close the connection (not waited for once lost, or while a call the caller
        stopped waiting for still runs: the process ends with it) and end the worker."""
        if self.conn is not None and not self.lost and not self.busy:
            try:
                self.call(self.conn.close, "closing the connection")
            except PoolkeeperError:
                pass
        self.conn = None
        self._jobs.put(None)
