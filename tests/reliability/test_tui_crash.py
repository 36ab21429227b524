"""A TUI that crashes exits with a non-zero status (Textual's
return_code) and prints the traceback, as Textual does. Before, run_app returned 0.

A real process in a real terminal (tmux, tests/termdriver.py): `poolkeeper --root STATE`
through cli.main.main, with one method made to raise, as a bug would:
  * handler: the r key's action (a message handler on the UI thread);
  * worker: the pool's features, read by the main screen's volume-loading thread worker.
The same with a traceback Rich cannot draw: Textual's _fatal_error raised in turn (as it
did for the ColorParseError below), never closed the app, and it stayed up ignoring every
key; now a plain traceback is printed and it exits with status 1.

Found that way: an ANSI theme (ctrl+p, Theme, ansi-light or ansi-dark) made the XML view
crash, its surface colour being one Rich cannot parse ('transparent').
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from backends.controller import StorageController
from tests.conftest import make_dir_pool
from tests.termdriver import Terminal, have_tmux

REPO = Path(__file__).resolve().parents[2]
EXIT_CAP = 120.0  # seconds: a cap to fail on, not a measure of speed

# Run poolkeeper's own entry point with one method broken.
BROKEN = """\
import sys
from {module} import {cls}

def broken(self, *args, **kwargs):
    raise RuntimeError("a bug planted by the test")

{cls}.{method} = broken
from cli.main import main
sys.exit(main(sys.argv[1:]))
"""
BUGS = {
    "handler": ("tui.screens.main", "MainScreen", "action_refresh", ["r"]),
    "worker": ("backends.controller", "StorageController", "pool_features", []),
}

# ... and, before it, Rich's traceback made unable to draw itself.
UNDRAWABLE = """\
import rich.traceback

drawn = rich.traceback.Traceback.__init__

def undrawable(self, *args, **kwargs):
    # only the traceback with the locals, which Textual's _fatal_error draws (a local's
    # repr raised, for the ColorParseError); Textual's worker log draws one without
    if kwargs.get("show_locals"):
        raise AttributeError("a traceback that cannot be drawn (planted by the test)")
    drawn(self, *args, **kwargs)

rich.traceback.Traceback.__init__ = undrawable
"""

needs_tmux = pytest.mark.skipif(not have_tmux(), reason="needs tmux (make test installs it)")


@needs_tmux
@pytest.mark.parametrize("where", list(BUGS))
def test_a_crash_exits_non_zero_with_the_traceback(tmp_path: Path, where: str) -> None:
    run_broken(tmp_path, where, "")


@needs_tmux
@pytest.mark.parametrize("where", list(BUGS))
def test_a_crash_whose_traceback_cannot_be_drawn_still_exits_1(tmp_path: Path, where: str
                                                               ) -> None:
    shown = run_broken(tmp_path, where, UNDRAWABLE)
    assert "a traceback that cannot be drawn" in shown, shown


def run_broken(tmp_path: Path, where: str, prelude: str) -> str:
    """Run poolkeeper with the bug `where` planted; it must exit 1 showing the traceback."""
    module, cls, method, keys = BUGS[where]
    state = tmp_path / "state"
    state.mkdir()
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "p", tmp_path / "images")
        ctl.store.mark_initialized()
    script = tmp_path / "broken.py"
    script.write_text(prelude + BROKEN.format(module=module, cls=cls, method=method))
    with Terminal(tmp_path, size=(100, 30)) as term:
        term.start([sys.executable, str(script), "--root", str(state)],
                   env={"PYTHONPATH": str(REPO)})
        if keys:
            assert term.wait_for("target"), term.screen()  # the pool header is shown
            term.keys(*keys)
        status = term.wait_exit(EXIT_CAP)
        shown = term.screen(history=True)
        assert status == 1, f"exit status {status} (None: still running)\n{shown}"
        assert "Traceback" in shown and "a bug planted by the test" in shown, shown
    return shown


@pytest.mark.parametrize("theme", ["ansi-light", "ansi-dark"])
async def test_the_xml_view_in_an_ansi_theme(tmp_path: Path, theme: str) -> None:
    """ctrl+p, Theme, an ANSI theme, then x: the XML view opens (it crashed)."""
    from textual.widgets import Static

    from tui.app import PoolkeeperApp
    from tui.screens.xml_view import XmlScreen

    state = tmp_path / "state"
    state.mkdir()
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "p", tmp_path / "images")
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(80, 24)) as pilot:  # re-raises what the app did not catch
            await pilot.pause()
            await pilot.press("ctrl+p", *"theme")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await pilot.pause(0.5)
            await pilot.press(*theme)
            await pilot.pause(0.5)
            await pilot.press("enter")
            await pilot.pause(0.5)
            assert app.theme == theme
            await pilot.press("x")
            await pilot.pause(0.5)
            assert isinstance(app.screen, XmlScreen), app.screen_stack
            assert "<pool type='dir'>" in app.screen.query_one("#xml", Static).content.code
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is app.main_screen and app.return_code is None
