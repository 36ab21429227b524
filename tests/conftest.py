"""Shared fixtures: a controller on a private state root, dir pools, the CLI in-process."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.model import PoolDef, PoolTarget
from tests.loopfs import loops_of, release_partitioned

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """In CI (root, every tool installed) a skipped test is a failure: nothing may hide."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"


@pytest.fixture
def state_root(tmp_path: Path) -> Path:
    root = tmp_path / "state"
    root.mkdir()
    return root


@pytest.fixture
def ctl(state_root: Path) -> Iterator[StorageController]:
    controller = StorageController(state_root, create_default=False)
    try:
        yield controller
    finally:
        controller.close()


def make_dir_pool(ctl: StorageController, name: str, path: Path) -> Path:
    ctl.define_pool_def(PoolDef(type="dir", name=name, target=PoolTarget(path=str(path))))
    ctl.build_pool(name).wait()
    ctl.start_pool(name)
    return path


@contextlib.contextmanager
def gpt_disk_pool(ctl: StorageController, image: Path, name: str = "d",
                  size: int = 64 << 20) -> Iterator[str]:
    """A started disk pool `name` (gpt) on a new image file attached to a loop device; yields
    the disk's device. Stopped and its loop devices released after, even on failure."""
    with open(image, "wb") as fh:
        fh.truncate(size)
    try:
        ctl.define_pool(f"<pool type='disk'><name>{name}</name><source><device path='{image}'/>"
                        "<format type='gpt'/></source><target><path>/dev</path></target>"
                        "</pool>")
        ctl.build_pool(name).wait(120)
        ctl.start_pool(name)
        [disk] = loops_of(image)
        yield disk
    finally:
        with contextlib.suppress(Exception):
            ctl.stop_pool(name)
        for dev in loops_of(image):
            release_partitioned(dev, image)


@pytest.fixture
def pool(ctl: StorageController, tmp_path: Path) -> Path:
    """An active dir pool named 'p' on the test's tmp filesystem."""
    return make_dir_pool(ctl, "p", tmp_path / "images")


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(state_root: Path, capsys: pytest.CaptureFixture[str]):
    """Run `poolkeeper --root STATE ARGS...` in-process."""
    from cli.main import main

    def run(*args: str) -> CliResult:
        out = io.StringIO()
        capsys.readouterr()
        code = main(["--root", str(state_root), *args], out=out)
        captured = capsys.readouterr()
        return CliResult(code, out.getvalue() + captured.out, captured.err)

    return run
