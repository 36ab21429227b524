"""Noticing that the TUI's terminal went away, so that the app exits instead of spinning.

A dropped SSH link or a killed tmux pane hangs the terminal up. A process in the terminal's
session gets SIGHUP (PoolkeeperApp handles it); one started through `su -c`, `setsid` or
`sudo` without a new terminal is in another session and gets no signal at all. Then every
read of stdin returns end-of-file at once, and Textual 8.2.8's input thread, which takes an
empty read for "no input yet", loops on it at 60-80 % of a core forever.

HangupWatch polls stdin for POLLHUP/POLLERR/POLLNVAL only (it registers no input event,
so it never reads and never competes with Textual for keys) and calls back once when the
terminal is gone (or stdin, a pipe, has no writer left).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable

GONE = select.POLLHUP | select.POLLERR | select.POLLNVAL


class HangupWatch:
    """Calls `on_hangup()` (from its own thread, once) when `fd` hangs up."""

    def __init__(self, fd: int, on_hangup: Callable[[], None]) -> None:
        self._fd = fd
        self._on_hangup = on_hangup
        self._wake_read, self._wake_write = os.pipe2(os.O_CLOEXEC)
        self._thread = threading.Thread(target=self._run, name="poolkeeper-hangup",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")
        self._thread.join(timeout=5)
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self._fd, 0)  # 0: only hang-up and errors are reported
        poller.register(self._wake_read, select.POLLIN)
        while True:
            for fd, mask in poller.poll():
                if fd == self._wake_read:
                    return
                if mask & GONE:
                    self._on_hangup()
                    return
