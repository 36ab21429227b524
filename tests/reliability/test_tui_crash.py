"""Issue 13, item 20: a TUI that crashes exits with a non-zero status (Textual's
return_code) and prints the traceback, as Textual does. Before, run_app returned 0.

A real process in a real terminal (tmux, tests/termdriver.py): `poolkeeper --root STATE`
through tui.cli.main, with one method made to raise, as a bug would:
  * handler: the r key's action (a message handler on the UI thread);
  * worker: the pool's features, read by the main screen's volume-loading thread worker.
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
from tui.cli import main
sys.exit(main(sys.argv[1:]))
"""
BUGS = {
    "handler": ("tui.screens.main", "MainScreen", "action_refresh", ["r"]),
    "worker": ("backends.controller", "StorageController", "pool_features", []),
}

pytestmark = pytest.mark.skipif(not have_tmux(), reason="needs tmux (make test installs it)")


@pytest.mark.parametrize("where", list(BUGS))
def test_a_crash_exits_non_zero_with_the_traceback(tmp_path: Path, where: str) -> None:
    module, cls, method, keys = BUGS[where]
    state = tmp_path / "state"
    state.mkdir()
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "p", tmp_path / "images")
        ctl.store.mark_initialized()
    script = tmp_path / "broken.py"
    script.write_text(BROKEN.format(module=module, cls=cls, method=method))
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
