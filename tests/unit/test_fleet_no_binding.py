"""Without libvirt's Python binding the fleet still opens: a saved connection fails saying
which package to install, and this host's pools work as before."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from backends.connection_store import ConnectionStore, SavedConnection
from backends.fleet import Fleet
from backends.libvirt_conn import INSTALL_HINT
from tests.tui.stub_controller import StubController


def test_a_connection_without_the_binding_fails_saying_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "libvirt", None)  # `import libvirt` raises ImportError
    ConnectionStore(tmp_path).save([SavedConnection("kvm2", "test:///default")])
    native = StubController()
    fleet = Fleet(native, tmp_path)  # the real factory: backends.libvirt_host
    fleet.open()
    try:
        deadline = time.monotonic() + 10
        while fleet.connections()[1].state == "connecting":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        conn = fleet.connections()[1]
        assert conn.state == "failed"
        assert conn.detail == INSTALL_HINT
        assert "pip install -e '.[libvirt]'" in conn.detail
        assert [p.name for p in fleet.list_pools()] == [p.name for p in native.list_pools()]
    finally:
        fleet.close()
