"""Snapshots of the whole app on a stub controller with fixed data (tests/tui/stub_controller):
the main screen, the jobs and log panels, F1 help and the XML view, at 80x24 and 160x50.
Then the ASCII-mode audit (not one character outside ASCII on screen) and NO_COLOR (every
state still readable as a word).

Update the baselines after a deliberate change of the layout with
`.venv/bin/pytest tests/tui/test_snapshots.py --snapshot-update`, and look at them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from types import SimpleNamespace

import pytest
from textual.pilot import Pilot

import tui.screens.main_base as main_screen
from backends.errors import PoolkeeperError
from backends.events import CommandRun, JobFinished, JobProgress
from tests.screentext import screen_text
from tui.app import PoolkeeperApp

from .stub_controller import GiB, StubController, command

SIZES = [(80, 24), (160, 50)]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The status line says 'refreshed N s ago': N is always 0 here."""
    monkeypatch.setattr(main_screen, "time", SimpleNamespace(monotonic=lambda: 1000.0))


def make_app(*, ascii: bool = False) -> tuple[PoolkeeperApp, StubController]:
    ctl = StubController()
    return PoolkeeperApp(ctl, ascii=ascii, monitor_interval=None), ctl


async def settle(pilot: Pilot[None], rounds: int = 4) -> None:
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


# ---------------------------------------------------------------------------- scenarios
# Each one takes the app from "just started" to the state to look at.


async def main_view(pilot: Pilot[None], ctl: StubController) -> None:
    await settle(pilot)


async def jobs_view(pilot: Pilot[None], ctl: StubController) -> None:
    await settle(pilot)
    wipe = ctl.job("wipe db01.img (random)", volume="db01.img", done=int(0.42 * 60 * GiB),
                   total=60 * GiB, rate=180e6, eta=201)
    clone = ctl.job("clone base.qcow2 to web02.qcow2", kind="clone", volume="web02.qcow2",
                    state="failed", done=3 * GiB, total=20 * GiB,
                    error=PoolkeeperError("qemu-img convert: error while writing at byte "
                                          "3221225472: No space left on device"))
    ctl.publish(JobProgress(wipe))
    ctl.publish(JobFinished(clone))
    await pilot.press("j")
    await settle(pilot)
    pilot.app.clear_notifications()  # the failure's toast: the panel is what is looked at
    await settle(pilot)


async def log_view(pilot: Pilot[None], ctl: StubController) -> None:
    await settle(pilot)
    ctl.publish(CommandRun(command(
        ["qemu-img", "info", "--output=json", "-U", "/var/lib/poolkeeper/images/base.qcow2"],
        duration=0.04)))
    ctl.publish(CommandRun(command(
        ["scrub", "-p", "dod", "-f", "/var/lib/poolkeeper/images/scratch.img"], returncode=1,
        duration=1.5, stderr="scrub: /var/lib/poolkeeper/images/scratch.img: Permission "
                             "denied\n")))
    await pilot.press("l")
    await settle(pilot)


async def help_view(pilot: Pilot[None], ctl: StubController) -> None:
    await settle(pilot)
    await pilot.press("f1")
    await settle(pilot)


async def xml_view(pilot: Pilot[None], ctl: StubController) -> None:
    await settle(pilot)
    await pilot.press("x")
    await settle(pilot)


Scenario = Callable[[Pilot[None], StubController], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {
    "main": main_view, "jobs": jobs_view, "log": log_view, "help": help_view,
    "xml": xml_view,
}


# ---------------------------------------------------------------------------- snapshots


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_snapshot(snap_compare, name: str, size: tuple[int, int]) -> None:
    app, ctl = make_app()

    async def before(pilot: Pilot[None]) -> None:
        await SCENARIOS[name](pilot, ctl)

    assert snap_compare(app, terminal_size=size, run_before=before)


# ---------------------------------------------------------------------------- screen text


def not_ascii(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line with a character outside ASCII."""
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if not line.isascii()]


async def views(ascii: bool, size: tuple[int, int],
                scenarios: dict[str, Scenario] = SCENARIOS) -> dict[str, str]:
    """The screen text of every scenario, each in a fresh app."""
    texts = {}
    for name, scenario in scenarios.items():
        app, ctl = make_app(ascii=ascii)
        async with app.run_test(size=size, notifications=True) as pilot:
            await scenario(pilot, ctl)
            texts[name] = screen_text(app)
    return texts


async def palette_view(pilot: Pilot[None], ctl: StubController) -> None:
    await settle(pilot)
    await pilot.press("ctrl+p", *"wipe")
    await settle(pilot)
    await pilot.pause(0.3)  # the palette searches in a worker of its own


async def toast_view(pilot: Pilot[None], ctl: StubController) -> None:
    await settle(pilot)
    pilot.app.notify("pool vg0 started")
    pilot.app.notify("stop the pool first (s)", severity="warning")
    pilot.app.notify("wipe failed: no such volume", severity="error")
    await settle(pilot)


ASCII_ONLY: dict[str, Scenario] = {"palette": palette_view, "toast": toast_view}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_ascii_mode_draws_only_ascii(size: tuple[int, int]) -> None:
    texts = await views(True, size, {**SCENARIOS, **ASCII_ONLY})
    for name, text in texts.items():
        assert not_ascii(text) == [], f"{name}: {not_ascii(text)}"
    # The things that are box drawing or block glyphs otherwise are there, in ASCII.
    main, jobs = texts["main"], texts["jobs"]
    assert "|-- " in main and "`-- " in main and "v dir" in main  # tree guides and icons
    assert "[########--]  85%" in main  # the header's usage bar
    assert "+- jobs --" in jobs and "[#" in jobs  # panel border, progress bar
    assert "F1 Help" in main and "^p palette" in main  # the footer
    assert "<name>default</name>" in texts["xml"] and "stop the pool" in texts["help"]
    assert "Wipe" in texts["palette"] and "wipe failed" in texts["toast"]


async def test_the_ascii_check_can_fail() -> None:
    """The same views without ASCII mode do draw box and block characters: the check above
    would see them."""
    texts = await views(False, (80, 24), {**SCENARIOS, **ASCII_ONLY})
    for name in ("main", "jobs", "help", "palette", "toast"):
        assert not_ascii(texts[name]), name


async def test_ascii_mode_escapes_names_that_are_not_ascii() -> None:
    app, ctl = make_app(ascii=True)
    volumes = ctl.volumes["default"]
    volumes[0] = replace(volumes[0], name="caf\u00e9.qcow2")
    ctl.pools["vg0"].name = "vg\u00fc"
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot)
        ctl.publish(CommandRun(command(["qemu-img", "info", "/images/caf\u00e9.qcow2"])))
        ctl.publish(JobProgress(ctl.job("wipe caf\u00e9.qcow2 (zero)", done=1, total=2)))
        await pilot.press("l", "j")
        await settle(pilot)
        text = screen_text(app)
        assert not_ascii(text) == []
        # one escaping everywhere (tui.shown): the code point, as the CLI shows it
        assert "caf\\u00e9.qcow2" in text  # the volume table
        assert "/images/caf\\u00e9.qcow2" in text  # the log
        assert "wipe caf\\u00e9.qcow2 (zero)" in text  # the jobs panel
        assert "`-- vg\\u00fc " in text  # the pool tree


async def test_no_color_states_are_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app, ctl = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.no_color
        await jobs_view(pilot, ctl)
        text = screen_text(app)
    for word in ("running", "inactive", "warning", "OVERCOMMITTED", "failed"):
        assert word in text, word


async def test_logical_pool_shows_its_extent_bar_and_n_prefills_create():
    """Selecting vg0 shows both PVs to scale; `n` on free space opens create-volume with
    that extent's size, and the volume is placed at its start."""
    from tui.dialogs import CreateVolumeDialog
    from tui.widgets.extent_bar import ExtentBar

    ctl = StubController()
    app = PoolkeeperApp(ctl, monitor_interval=None)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.select_pool("vg0")
        await settle(pilot)
        bar = app.screen.query_one("#extents", ExtentBar)
        assert bar.display and [d.path for d in bar.layouts] == ["/dev/loop8", "/dev/loop9"]
        bar.focus()
        bar.select_segment("/dev/loop8", 6 << 30)
        await pilot.press("n")
        await settle(pilot)
        assert isinstance(app.screen, CreateVolumeDialog)
        assert app.screen.query_one("#capacity").value == f"{4 << 10}M"
