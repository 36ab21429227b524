"""The Hypothesis profile of the fuzz tests in this folder, chosen by POOLKEEPER_FUZZ.

short (the default, `make test`): 100 examples per test, seconds in all.
long (`make fuzz`): every test marked `fuzz` is run again and again, each time with fresh
random data, until its share of POOLKEEPER_FUZZ_SECONDS (split evenly between the fuzz
tests selected) is used up; a summary line per test says how many examples ran.

Tests take the profile with `settings.get_profile(FUZZ_PROFILE)`; nothing here changes
the settings of any other test.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from backends.controller import StorageController

FUZZ_PROFILE = "poolkeeper-fuzz"
MODE = os.environ.get("POOLKEEPER_FUZZ", "short")
if MODE not in ("short", "long"):
    raise pytest.UsageError(f"POOLKEEPER_FUZZ must be 'short' or 'long', not {MODE!r}")
LONG = MODE == "long"

settings.register_profile(
    FUZZ_PROFILE,
    max_examples=200 if LONG else 100,  # per round; long mode repeats rounds (see below)
    deadline=None,  # a loaded 2-core machine must not turn slowness into failures
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
    print_blob=True,
    # CI's profile derandomizes (same examples every run); long rounds need new ones.
    **({"derandomize": False} if LONG else {}),
)

_budget_per_test = 0.0
_summary: list[tuple[str, int, int, float]] = []  # nodeid, rounds, examples, seconds


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: a fuzz test; repeated until its time budget with POOLKEEPER_FUZZ=long")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    global _budget_per_test
    count = sum(1 for item in items if item.get_closest_marker("fuzz"))
    total = float(os.environ.get("POOLKEEPER_FUZZ_SECONDS", "60"))
    _budget_per_test = total / count if count else 0.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Long mode: run a fuzz test in rounds until its budget is spent."""
    if not LONG or pyfuncitem.get_closest_marker("fuzz") is None:
        return None
    examples = 0
    handle = getattr(pyfuncitem.obj, "hypothesis", None)
    if handle is not None:
        inner = handle.inner_test

        def counted(*args: object, **kwargs: object) -> object:
            nonlocal examples
            examples += 1
            return inner(*args, **kwargs)

        handle.inner_test = counted  # Hypothesis reads it at each call
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    started = time.monotonic()
    rounds = 0
    try:
        while True:
            pyfuncitem.obj(**args)
            rounds += 1
            if time.monotonic() - started >= _budget_per_test:
                break
    finally:
        if handle is not None:
            handle.inner_test = inner
        # A test that is not @given counts its own with record_property("fuzz_examples", n).
        examples += sum(v for k, v in pyfuncitem.user_properties if k == "fuzz_examples")
        _summary.append((pyfuncitem.nodeid, rounds, examples, time.monotonic() - started))
    return True


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for nodeid, rounds, examples, seconds in _summary:
        terminalreporter.write_line(
            f"FUZZ {nodeid}: {examples} examples in {rounds} rounds, {seconds:.0f} s")


@pytest.fixture
def controller(state_root: Path) -> Iterator[StorageController]:
    """A controller on the test's state root, with its running "default" dir pool."""
    ctl = StorageController(state_root)
    try:
        yield ctl
    finally:
        ctl.close()
