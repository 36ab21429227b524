"""Usage bars as text: used by the pool tree labels and the pool header.

Thresholds: warning at 80 %, critical at 95 %. In ASCII mode the bar is drawn with
'#' and '-' so it survives a TERM=linux console or a thin SSH link.
"""

from __future__ import annotations

from rich.text import Text

WARNING = 0.80
CRITICAL = 0.95


def level(fraction: float) -> str:
    if fraction >= CRITICAL:
        return "critical"
    if fraction >= WARNING:
        return "warning"
    return "ok"


STYLES = {"ok": "green", "warning": "yellow", "critical": "bold red"}


def usage_bar(used: int | None, total: int | None, width: int = 10, *,
              ascii: bool = False) -> Text:
    """'[#####-----]  50%' (or block glyphs); '-' when the pool has no sizes."""
    if not total or used is None:
        return Text("-".center(width + 6), style="dim")
    fraction = max(0.0, min(1.0, used / total))
    state = level(fraction)
    if width <= 0:
        return Text(f"{fraction * 100:3.0f}%", style=STYLES[state] if state != "ok" else "")
    filled = round(fraction * width)
    full, empty = ("#", "-") if ascii else ("█", "░")
    bar = Text()
    if ascii:
        bar.append("[")
    bar.append(full * filled, style=STYLES[state])
    bar.append(empty * (width - filled), style="dim")
    if ascii:
        bar.append("]")
    bar.append(f" {fraction * 100:3.0f}%", style=STYLES[state] if state != "ok" else "")
    return bar
