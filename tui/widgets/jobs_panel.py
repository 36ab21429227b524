"""The jobs panel: every long job with a progress bar, rate, ETA and its state as a word.

Rows are updated in place from JobEvent messages (the controller throttles progress to
ten events a second per job); `C` cancels the highlighted job (the main screen's key, the
same everywhere: `c` is create). Running jobs come first
(oldest first), then the finished ones, newest first: the panel opens on what is going
on, not on the oldest of the last twenty finished. A job done in under a second shows no
rate (a few bytes over a few microseconds read as TiB/s). Enter shows the highlighted job
whole in a notice (its row cuts a long error); a key that would not move says why
(disabled_reason, read by tui.keys).
"""

from __future__ import annotations

import contextlib
import textwrap

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from backends.jobs import Job
from backends.units import human

from ..keys import scroll_edge
from ..shown import shown
from .usage import bar_cells, usage_bar

KEEP_FINISHED = 20
RATE_AFTER = 1.0  # seconds a job runs before its rate means something
STATE_WIDTH = 10  # "cancelled" and a space
BAR_WIDTH = 16
RATE_WIDTH = 16  # "  1023.99 MiB/s"
ETA_WIDTH = 13  # "  ETA 1:02:03"
DESCRIPTION_MIN = 24  # narrower than this and the progress goes on a second line
DESCRIPTION_MAX = 48
STATE_STYLES = {"failed": "bold red", "cancelled": "yellow", "done": "green"}


def eta_text(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}:{seconds:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def _fit(text: str, width: int, ascii: bool) -> str:
    text = shown(text, ascii)  # a job's description names its volume
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + ("~" if ascii else "\u2026")


def _progress(job: Job, width: int, ascii: bool) -> Text:
    """The bar, rate and ETA of a job that has a size, in `width` cells at most (the bar
    gives way, down to 4 cells); empty for a failed job (its error is shown instead)."""
    text = Text(no_wrap=True)
    if job.state == "failed" or not job.total:
        return text
    rate = f"  {human(int(job.rate))}/s" if (
        job.done and job.state in ("running", "done") and job.elapsed >= RATE_AFTER) else ""
    eta = f"  ETA {eta_text(job.eta)}" if job.eta is not None and not job.finished else ""
    fixed = bar_cells(1, ascii=ascii) - 1  # brackets and "  42%"
    # Narrow: the rate goes first, then the ETA; the bar never gets under 4 cells.
    for rest in (rate + eta, eta, ""):
        if width - len(rest) - fixed >= 4:
            break
    bar = max(4, min(BAR_WIDTH, width - len(rest) - fixed))
    text.append_text(usage_bar(job.done, job.total, bar, ascii=ascii,
                               style="yellow" if job.state == "cancelled" else "green"))
    text.append(rest)
    return text


def job_label(job: Job, *, ascii: bool = False, width: int | None = None) -> Text:
    """One job: state (a word), description, then bar, rate and ETA or the error.

    `width` is the room in cells: with enough of it a job is one line (the bars of every
    job line up); in a narrow panel the progress or error goes under the description."""
    width = width or 120
    progress_cells = bar_cells(BAR_WIDTH, ascii=ascii) + RATE_WIDTH + ETA_WIDTH
    one_line = width - STATE_WIDTH - 1 - progress_cells >= DESCRIPTION_MIN
    if one_line:
        description_width = min(DESCRIPTION_MAX, width - STATE_WIDTH - 1 - progress_cells)
        progress = _progress(job, progress_cells, ascii)
    else:
        description_width = width - STATE_WIDTH
        progress = _progress(job, width - STATE_WIDTH, ascii)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{job.state:<{STATE_WIDTH}}", style=STATE_STYLES.get(job.state, "bold"))
    description = _fit(job.description, description_width, ascii)
    if one_line:
        text.append(f"{description:<{description_width}} ")
        text.append_text(progress)
    else:
        text.append(description)
        if progress:
            text.append("\n" + " " * STATE_WIDTH)
            text.append_text(progress)
    if job.finished and job.error is not None and job.state != "cancelled":
        message = shown(str(job.error), ascii)
        room = width - len(text.plain) - 2
        if one_line and len(message) <= room:
            text.append(f"  {message}", style="red")
        else:
            lines = textwrap.wrap(message, max(20, width - STATE_WIDTH))[:3] or [""]
            text.append("\n" + "\n".join(" " * STATE_WIDTH + line for line in lines),
                        style="red")
    return text


class JobsPanel(OptionList):

    def __init__(self, *, ascii: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ascii = ascii
        self.jobs: dict[int, Job] = {}
        self.border_title = "jobs"

    def _label(self, job: Job) -> Text:
        # 2 cells spare: the vertical scrollbar appears once there are more lines than rows
        width = self.scrollable_content_region.width - 2
        return job_label(job, ascii=self.ascii, width=width if width > 0 else None)

    def on_resize(self) -> None:
        for job in self.jobs.values():
            self.replace_option_prompt(f"job-{job.id}", self._label(job))

    def update_job(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._forget_old()
        order = self._ordered()
        shown_ids = [self.get_option_at_index(i).id for i in range(self.option_count)]
        if shown_ids == [f"job-{j.id}" for j in order]:
            self.replace_option_prompt(f"job-{job.id}", self._label(job))
            return
        # a job came or went, or finished: the rows are put in order again, the highlight
        # stays on the job it was on
        highlighted = self.highlighted_option
        self.clear_options()
        self.add_options(Option(self._label(j), id=f"job-{j.id}") for j in order)
        if highlighted is not None and highlighted.id is not None:
            with contextlib.suppress(OptionDoesNotExist):
                self.highlighted = self.get_option_index(highlighted.id)

    def _ordered(self) -> list[Job]:
        """Running (and queued) jobs first, oldest first; then finished ones, the last to
        finish first."""
        running = sorted((j for j in self.jobs.values() if not j.finished), key=lambda j: j.id)
        finished = sorted((j for j in self.jobs.values() if j.finished),
                          key=lambda j: (-(j.finished_at or 0.0), -j.id))
        return running + finished

    def _forget_old(self) -> None:
        finished = sorted((j for j in self.jobs.values() if j.finished), key=lambda j: j.id)
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self.jobs[job.id]

    @property
    def running(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.finished]

    def highlight_first_running(self) -> None:
        """Running jobs come first: the first row is one when any runs."""
        if self.option_count:
            self.highlighted = 0

    def _highlighted_job(self) -> Job | None:
        option = self.highlighted_option
        return None if option is None or option.id is None else self.jobs.get(
            int(option.id.removeprefix("job-")))

    def disabled_reason(self, action: str) -> str | None:
        """Why a key of the panel would do nothing now (the notice, and F1). Up and Down
        wrap around (Textual's OptionList); Home, End and the pages stop at the ends."""
        count, index = self.option_count, self.highlighted
        moves = ("cursor_up", "cursor_down", "first", "last", "page_up", "page_down")
        if action in (*moves, "select") and not count:
            return "no jobs yet: long work (create, clone, wipe, upload...) shows here"
        if action not in moves or index is None:
            return scroll_edge(self, action)
        if count == 1:
            return "one job only"
        if action in ("first", "page_up") and index == 0:
            return f"first job already (1 of {count})"
        if action in ("last", "page_down") and index == count - 1:
            return f"last job already ({count} of {count})"
        return None

    def action_select(self) -> None:
        """Enter: the highlighted job whole (its row may cut a long error)."""
        job = self._highlighted_job()
        if job is None:
            self.notify("no job highlighted: up and down choose one", severity="warning",
                        markup=False)
            return
        lines = [f"{job.description}: {job.state}"]
        if job.total and not job.finished:
            lines.append(f"{human(job.done)} of {human(job.total)}")
        if job.error is not None and job.state != "cancelled":
            lines.append(str(job.error))
        self.app.notify_lines(lines, title=f"job {job.id}",  # type: ignore[attr-defined]
                              severity="error" if job.state == "failed" else "information")

    def action_cancel_job(self) -> None:
        """Cancel the highlighted job (the main screen's C); says what it did, or why not."""
        job = self._highlighted_job()
        if job is None:
            self.notify("no job highlighted: up and down choose one", severity="warning",
                        markup=False)
        elif job.finished:
            self.notify(f"{job.description}: {job.state} already, nothing to cancel",
                        severity="warning", markup=False)  # escaped by notify
        else:
            job.cancel()
            self.notify(f"cancelling: {job.description}", markup=False)
