"""The jobs panel: running jobs first, finished ones newest first; no rate for a job done
in under a second (a few bytes over microseconds read as TiB/s)."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from backends.events import EventBus
from backends.jobs import Job
from tui.widgets.jobs_panel import JobsPanel, job_label

MiB = 1 << 20


def job(state: str, done: int = 0, total: int | None = None, elapsed: float = 5.0) -> Job:
    made = Job("upload", f"{state} job", "p", "v", EventBus())
    made.done, made.total, made.state = done, total, state
    if state in ("done", "failed", "cancelled"):
        made._finished.set()
        made.finished_at = made.started + elapsed
    else:
        made.started -= elapsed
    return made


def test_no_rate_for_a_job_done_in_under_a_second() -> None:
    quick = job("done", 4096, 4096, elapsed=0.000_01)
    slow = job("done", 100 * MiB, 100 * MiB, elapsed=10.0)
    assert "/s" not in job_label(quick).plain
    assert "10.00 MiB/s" in job_label(slow).plain


class Host(App[None]):
    def __init__(self, panel: JobsPanel) -> None:
        super().__init__()
        self.panel = panel

    def compose(self) -> ComposeResult:
        yield self.panel


def order(panel: JobsPanel) -> list[str]:
    return [str(panel.get_option_at_index(i).id) for i in range(panel.option_count)]


async def test_running_jobs_come_first_then_the_newest_finished() -> None:
    panel = JobsPanel()
    app: Any = Host(panel)
    async with app.run_test(size=(120, 20)) as pilot:
        old, running, new = job("done"), job("running", 1, 10), job("failed")
        for j in (old, running, new):
            panel.update_job(j)
        await pilot.pause()
        assert order(panel) == [f"job-{running.id}", f"job-{new.id}", f"job-{old.id}"]
        panel.highlighted = 1  # on `new`
        running.state = "done"
        running._finished.set()
        running.finished_at = new.finished_at + 1  # type: ignore[operator]
        panel.update_job(running)  # it finished last: first of the finished
        await pilot.pause()
        assert order(panel) == [f"job-{running.id}", f"job-{new.id}", f"job-{old.id}"]
        later = job("running", 1, 10)
        panel.update_job(later)
        await pilot.pause()
        assert order(panel)[0] == f"job-{later.id}"
        highlighted = panel.highlighted_option
        assert highlighted is not None and highlighted.id == f"job-{new.id}"  # it stayed
