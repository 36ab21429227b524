"""What uploads and downloads share: the offset/length rule, and waiting on a pipe, socket
or terminal with the cancel flag in view (never blocking beyond a cancel)."""

from __future__ import annotations

import select

from ..errors import InvalidSize
from ..progress import JobContext, current
from .primitives import _check_sizes

WAIT_POLL = 0.1  # seconds between looks at the cancel flag while a pipe is not ready


def check_range(offset: int, length: int | None) -> None:
    """The offset and length of an upload or download: neither negative, and a length (when
    given) moves something; 0 is refused rather than read as "everything" as virsh does."""
    _check_sizes(offset=offset, length=length)
    if length == 0:
        raise InvalidSize("a length of 0 moves no data; leave the length out to transfer "
                          "everything from the offset on")


def _stop_if_cancelled(ctx: JobContext) -> None:
    """Raise Cancelled if `ctx` or the job running in this thread was cancelled."""
    ctx.check()
    job = current()
    if job is not None and job is not ctx:
        job.check()


def _wait_ready(fd: int, events: int, ctx: JobContext) -> None:
    """Wait until a pipe, socket or terminal is ready for `events` (POLLIN/POLLOUT), or
    reports a hang-up or an error (the next read or write then says which). Cancelled
    meanwhile: Cancelled. A reader that stops reading or a writer that never writes can
    then hold us only until the job is cancelled."""
    poller = select.poll()
    poller.register(fd, events)
    while True:
        _stop_if_cancelled(ctx)
        if poller.poll(int(WAIT_POLL * 1000)):
            return
