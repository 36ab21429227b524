"""Timing what a headless Textual app paints (shared by bench/tui.py and bench/start.py).

Importing this module wraps Screen._compositor_refresh (the step that renders the widgets'
lines into the screen update; headless only skips writing it to a terminal) so every
screen refresh is timestamped with time.perf_counter(), which on Linux is CLOCK_MONOTONIC:
one clock for every process, so a parent can time a child's paint from before its spawn.
An operation's time runs until the end of the last refresh before the screen settles and
shows what it should (checked after the fact, untimed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen

REFRESHES: list[tuple[float, float]] = []
_original_refresh = Screen._compositor_refresh


def _timed_refresh(self: Screen) -> None:
    start = time.perf_counter()
    _original_refresh(self)
    REFRESHES.append((start, time.perf_counter()))


Screen._compositor_refresh = _timed_refresh  # type: ignore[method-assign]


def screen_text(app: App) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def settle(
    pilot: Pilot, t0: float, shows: Callable[[], str], limit: float = 600.0
) -> float:
    """Seconds from t0 to the end of the last refresh, once the screen is quiet and
    shows the text `shows()` returns (asked after the fact, untimed)."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        await pilot.pause()
        seen = len(REFRESHES)
        await pilot.pause()
        if len(REFRESHES) == seen and shows() in screen_text(pilot.app):
            painted = [end for start, end in REFRESHES if start >= t0]
            if not painted:
                raise RuntimeError("the screen showed the result without a refresh")
            return painted[-1] - t0
    raise RuntimeError(f"screen never showed {shows()!r}")


def refresh_work(t0: float) -> float:
    return sum(end - start for start, end in REFRESHES if start >= t0)
