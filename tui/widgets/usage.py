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


def bar_cells(width: int, *, ascii: bool = False) -> int:
    """How many cells usage_bar(..., width, ascii=ascii) takes, sizes known or not."""
    if width <= 0:
        return 4  # " 42%"
    return width + (2 if ascii else 0) + 5  # bar, brackets, "  42%"


def usage_bar(used: int | None, total: int | None, width: int = 10, *,
              ascii: bool = False, style: str | None = None) -> Text:
    """'[#####-----]  50%' (or block glyphs); '-' in the % column when there are no sizes.

    Coloured by level (warning, critical) unless `style` is given: a job's progress is not
    a fill level, 100 % done is good news. Always bar_cells(width) cells wide, so labels
    built with it line up."""
    if not total or used is None:
        return Text(f"{'-':>{bar_cells(width, ascii=ascii) - 1}} ", style="dim")
    fraction = max(0.0, min(1.0, used / total))
    state = level(fraction)
    bar_style = style or STYLES[state]
    percent_style = "" if style or state == "ok" else STYLES[state]
    percent = f"{fraction * 100:3.0f}%"
    if width <= 0:
        return Text(percent, style=percent_style)
    filled = round(fraction * width)
    full, empty = ("#", "-") if ascii else ("█", "░")
    bar = Text()
    if ascii:
        bar.append("[")
    bar.append(full * filled, style=bar_style)
    bar.append(empty * (width - filled), style="dim")
    if ascii:
        bar.append("]")
    bar.append(f" {percent}", style=percent_style)
    return bar
