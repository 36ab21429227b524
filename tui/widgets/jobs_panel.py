"""The jobs panel: every long job with a progress bar, rate, ETA and its state as a word.

Rows are updated in place from JobEvent messages (the controller throttles progress to
ten events a second per job); `c` cancels the highlighted job.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from backends.jobs import Job
from backends.units import human

from .usage import usage_bar

KEEP_FINISHED = 20


def job_label(job: Job, *, ascii: bool = False) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    state_style = {"failed": "bold red", "cancelled": "yellow", "done": "green"}
    text.append(f"{job.state:<9}", style=state_style.get(job.state, "bold"))
    text.append(f" {job.description[:40]:<40} ")
    if job.total:
        text.append_text(usage_bar(job.done, job.total, 16, ascii=ascii))
        text.append(f"  {human(int(job.rate))}/s")
        if job.eta is not None and not job.finished:
            text.append(f"  ETA {job.eta:.0f} s")
    if job.finished and job.error is not None:
        text.append(f"  {job.error}", style="red")
    return text


class JobsPanel(OptionList):
    BINDINGS = [Binding("c", "cancel_job", "Cancel job")]

    def __init__(self, *, ascii: bool = False, id: str | None = None) -> None:
        super().__init__(id=id)
        self.ascii = ascii
        self.jobs: dict[int, Job] = {}
        self.border_title = "jobs"

    def update_job(self, job: Job) -> None:
        key = f"job-{job.id}"
        label = job_label(job, ascii=self.ascii)
        if job.id in self.jobs:
            self.replace_option_prompt(key, label)
        else:
            self.jobs[job.id] = job
            self.add_option(Option(label, id=key))
            self._forget_old()

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.finished]
        if len(finished) <= KEEP_FINISHED:
            return
        for job in finished[: len(finished) - KEEP_FINISHED]:
            del self.jobs[job.id]
        self.clear_options()
        self.add_options(Option(job_label(j, ascii=self.ascii), id=f"job-{j.id}")
                         for j in self.jobs.values())

    @property
    def running(self) -> list[Job]:
        return [j for j in self.jobs.values() if not j.finished]

    def action_cancel_job(self) -> None:
        option = self.highlighted_option
        if option is None or option.id is None:
            return
        job = self.jobs.get(int(option.id.removeprefix("job-")))
        if job is not None and not job.finished:
            job.cancel()
            self.notify(f"cancelling: {job.description}")
