"""The two commands: `make run` installs poolkeeper and opens it, without the test tools;
`make test` installs the test tools and the packages the drivers declare, then runs all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def planned(target: str) -> str:
    """What `make` would run for `target` on a fresh clone (-B: as if nothing was made)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-n", "-B", target,
                           "VENV=/nonexistent/venv"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True).stdout


def test_make_run_installs_no_test_extras() -> None:
    plan = planned("run")
    assert "pip install --quiet -e '.[libvirt]'" in plan  # -c URI works after `make run`
    assert "[test" not in plan
    assert "libvirt-dev pkg-config gcc" in plan  # what pip builds libvirt-python with
    assert plan.rstrip().endswith("/nonexistent/venv/bin/poolkeeper")


def test_make_test_installs_the_test_extras_and_the_drivers_packages() -> None:
    plan = planned("test")
    assert "-e '.[test,libvirt]'" in plan
    assert "libvirt-dev pkg-config gcc" in plan
    assert "-m backends.drivers --packages --tests" in plan
    assert plan.index("[test,libvirt]") < plan.index("pytest -q")
