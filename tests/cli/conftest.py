"""Fixtures of the CLI tests over libvirt connections."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_connect_libvirtd import Host, daemon_in


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    """A private libvirtd (tests/libvirtd.py) for a test module, stopped after it."""
    base = Path(tempfile.mkdtemp(prefix="pk-connect-"))
    try:
        with daemon_in(base) as daemon:
            yield daemon
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def held() -> Iterator[None]:
    """A connection to test:///default held open, so libvirt's test driver keeps what
    the verbs change (its state lives as long as a connection to it does)."""
    from backends.libvirt_controller import LibvirtController

    lc = LibvirtController("test:///default")
    try:
        yield
    finally:
        lc.close()
