"""A call that never answers misses its deadline even while other calls keep being made
on the same connection (the TUI reaches every host every few seconds): the deadline runs
from when the worker took that call, not from the last call queued. The daemon that does
this (stuck on a dead NFS pool, its keepalive still answering) cannot be made here, so the
binding is replaced by one whose call sleeps; a real daemon's deadline is tested in
tests/cli/test_connect_ssh.py (a frozen daemon)."""

from __future__ import annotations

import threading
import time
import types

import pytest

import backends.libvirt_conn as libvirt_conn
from backends.libvirt_conn import Connection, ConnectionLost


class _Conn:
    def isAlive(self) -> int:  # noqa: N802 (libvirt's name)
        return 1

    def close(self) -> None:
        pass

    def setKeepAlive(self, interval: int, count: int) -> None:  # noqa: N802 (libvirt's)
        pass  # (asked for when another test started libvirt's event loop already)


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> Connection:
    fake = types.SimpleNamespace(open=lambda uri: _Conn(), libvirtError=RuntimeError,
                                 registerErrorHandler=lambda *a: None)
    monkeypatch.setattr(libvirt_conn, "load", lambda events=True: fake)
    return Connection("fake:///", timeout=1.0, events=False)


@pytest.fixture(params=[False, True], ids=["no event loop yet", "event loop running"])
def loop_started(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alone, and after other tests started libvirt's event loop (the whole suite)."""
    monkeypatch.setattr(libvirt_conn, "_loop_started", request.param)


def test_a_stuck_call_is_lost_on_its_deadline_though_others_come(
        loop_started: None, connection: Connection) -> None:
    began = time.monotonic()
    outcome: dict[str, object] = {}

    def stuck() -> None:
        try:
            connection.call(lambda: time.sleep(6), "stuck listing")
            outcome["how"] = "returned"
        except ConnectionLost as exc:
            outcome["how"] = str(exc)
        outcome["after"] = time.monotonic() - began

    caller = threading.Thread(target=stuck)
    caller.start()
    while caller.is_alive():  # another call every 0.3 s, as the tree's relisting
        threading.Thread(target=lambda: None if connection.lost else _quiet(connection),
                         daemon=True).start()
        time.sleep(0.3)
    assert "no answer for 1 s" in str(outcome["how"])
    assert outcome["after"] < 3.0


def _quiet(connection: Connection) -> None:
    try:
        connection.call(lambda: 1, "poll")
    except ConnectionLost:
        pass
