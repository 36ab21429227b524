"""Waiting in a pilot test until the app's workers are done and what they sent is drawn."""

from __future__ import annotations

import contextlib
from typing import Any

from textual.app import App
from textual.worker import WorkerCancelled


async def settle(app: App[Any], pilot: Any, rounds: int = 4) -> None:
    for _ in range(rounds):
        # An exclusive worker (load_pools, a table's view) replaced by a newer one while
        # waited for is how it is meant to work, not a failure: under load the monitor's
        # events replace them often, and the wait then raised WorkerCancelled.
        with contextlib.suppress(WorkerCancelled):
            await app.workers.wait_for_complete()
        await pilot.pause(0.05)
