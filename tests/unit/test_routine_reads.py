"""The command log tells the user's actions from routine reads: what the live monitor and a
view's own refreshes run (parted print, partx, vgs: about once a second) is marked
`routine`, and the TUI's log panel shows it only when asked, without repeats."""

from __future__ import annotations

from pathlib import Path

from textual.app import App, ComposeResult

from backends import runner
from backends.controller import StorageController
from backends.model import VolumeDef
from backends.runner import COMMAND_LOG, Completed
from tests.conftest import gpt_disk_pool
from tui.widgets.log_panel import LogPanel

MiB = 1 << 20


def runs_during(fn) -> list[Completed]:  # type: ignore[no-untyped-def]
    seen: list[Completed] = []
    remove = COMMAND_LOG.add_listener(seen.append)
    try:
        fn()
    finally:
        remove()
    return seen


def test_the_monitor_and_the_views_reads_are_routine_and_actions_are_not(
        ctl: StorageController, tmp_path: Path) -> None:
    with gpt_disk_pool(ctl, tmp_path / "disk.img") as disk:
        reads = runs_during(lambda: (ctl.pool_layout("d"), ctl.pool_info("d"),
                                     ctl.list_volumes("d"), ctl._monitor.poll()))
        assert reads and all(c.routine for c in reads), [(c.shown, c.routine) for c in reads]
        assert any(c.shown[0].endswith("parted") for c in reads)
        made = runs_during(lambda: ctl.create_volume_def(
            "d", VolumeDef(name=f"{Path(disk).name}p1", capacity=8 * MiB)).wait(60))
        assert any("mkpart" in c.shown for c in made)
        assert not any(c.routine for c in made)


def test_routine_is_per_thread_and_restored() -> None:
    with runner.routine():
        assert runner.is_routine()
        with runner.routine():
            assert runner.is_routine()
        assert runner.is_routine()
    assert not runner.is_routine()


def command(argv: str, routine: bool, rc: int = 0) -> Completed:
    return Completed(argv.split(), argv.split(), rc, "", "", 0.01, routine=routine)


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield LogPanel(id="log")


def lines(panel: LogPanel) -> list[str]:
    return [strip.text for strip in panel.lines]


async def test_the_log_shows_routine_reads_only_when_asked_and_without_repeats() -> None:
    app = Host()
    async with app.run_test(size=(120, 20)) as pilot:
        panel = app.query_one(LogPanel)
        for c in (command("parted -s /dev/loop0 print", True),
                  command("qemu-img create a.img", False),
                  command("parted -s /dev/loop0 print", True)):
            panel.add_command(c)
        await pilot.pause()
        assert [ln for ln in lines(panel) if "parted" in ln] == []
        assert any("qemu-img create a.img" in ln for ln in lines(panel))
        panel.set_show_routine(True)
        await pilot.pause()
        shown = lines(panel)
        assert sum("parted -s /dev/loop0 print" in ln for ln in shown) == 1  # not repeated
        assert any("qemu-img create a.img" in ln for ln in shown)
        panel.add_command(command("parted -s /dev/loop0 print", True, rc=1))  # a failure shows
        await pilot.pause()
        assert sum("parted -s /dev/loop0 print" in ln for ln in lines(panel)) == 2
        panel.set_show_routine(False)
        await pilot.pause()
        assert [ln for ln in lines(panel) if "parted" in ln] == []
