"""The life of a Fleet's connections (backends.fleet_links), on fixed-data hosts
(tests/tui/stub_hosts): a change refused or failing to save leaves the connections and
the file as they were; one loss reported twice makes one reconnect; a host with running
jobs is not reconnected, changed or removed (its jobs would be cancelled halfway)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

import backends.fleet_links as links_module
from backends.errors import AlreadyExists, Busy, PoolkeeperError
from backends.fleet import Fleet
from tests.tui.stub_controller import FrozenJob
from tests.tui.stub_hosts import StubHost, stub_factory, stub_fleet

HOSTS = [("kvm2", "stub://kvm2"), ("kvm3", "stub://kvm3")]


def settled(fleet: Fleet) -> Fleet:
    deadline = time.monotonic() + 10
    while any(c.state != "connected" for c in fleet.connections()):
        assert time.monotonic() < deadline, fleet.connections()
        time.sleep(0.01)
    return fleet


def saved(config: Path) -> list[dict[str, str]]:
    return json.loads((config / "connections.json").read_text())["connections"]


def test_a_refused_edit_keeps_the_connection_and_the_file(tmp_path: Path) -> None:
    fleet, native = stub_fleet(tmp_path, HOSTS)
    fleet.open()
    settled(fleet)
    try:
        # this host has a pool that would read as one of the new name's
        native.pools["data@kvm9"] = replace(native.pools["vg0"], name="data@kvm9")
        before = saved(tmp_path)
        with pytest.raises(AlreadyExists, match="'data@kvm9'"):
            fleet.edit_connection("kvm2", "kvm9", "stub://kvm9")
        with pytest.raises(AlreadyExists, match="a connection named 'kvm3' exists"):
            fleet.edit_connection("kvm2", "kvm3", "stub://kvm3")
        assert saved(tmp_path) == before
        assert [c.name for c in fleet.connections()] == ["", "kvm2", "kvm3"]
        assert fleet.connections()[1].state == "connected"
        fleet.edit_connection("kvm2", "kvm4", "stub://kvm4")  # the order is kept
        assert [c["name"] for c in saved(tmp_path)] == ["kvm4", "kvm3"]
        assert [c.name for c in fleet.connections()] == ["", "kvm4", "kvm3"]
    finally:
        fleet.close()


def test_a_change_that_cannot_be_saved_is_not_made(tmp_path: Path) -> None:
    hosts: dict[str, StubHost] = {}
    fleet, _ = stub_fleet(tmp_path, HOSTS, hosts)
    fleet.open()
    settled(fleet)
    try:
        (tmp_path / "connections.json").write_text("{damaged")
        with pytest.raises(PoolkeeperError, match="mend or remove that file"):
            fleet.add_connection("kvm5", "stub://kvm5")
        with pytest.raises(PoolkeeperError, match="mend or remove that file"):
            fleet.remove_connection("kvm2")
        assert [c.name for c in fleet.connections()] == ["", "kvm2", "kvm3"]
        assert not hosts["kvm2"].closed and hosts["kvm2"].subscribers() == 1
        assert (tmp_path / "connections.json").read_text() == "{damaged"
    finally:
        fleet.close()


def test_one_loss_told_twice_makes_one_reconnect(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """What a loss reported twice at once (libvirt's close callback and a failed call)
    comes to: one reconnect, the old controller closed once and unheard. (It documents
    the behaviour: the generation checks make it hold whichever of the two reports wins,
    so no interleaving forced here breaks it.)"""
    monkeypatch.setattr(links_module, "RETRY_DELAYS", (0.2,))
    made: list[str] = []
    hosts: dict[str, StubHost] = {}
    factory = stub_factory(hosts)

    def counting(uri: str, name: str, on_lost):  # type: ignore[no-untyped-def]
        made.append(name)
        return factory(uri, name, on_lost)

    fleet, native = stub_fleet(tmp_path, HOSTS[:1])
    fleet = Fleet(native, tmp_path, factory=counting)
    fleet.open()
    settled(fleet)
    try:
        first = hosts["kvm2"]
        barrier = threading.Barrier(2)

        def lose() -> None:
            barrier.wait()
            first.lose("gone")

        threads = [threading.Thread(target=lose) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1.0)  # past the retry
        settled(fleet)
        assert made == ["kvm2", "kvm2"]  # the first connect, one reconnect
        assert first.closed and first.subscribers() == 0
        assert hosts["kvm2"].subscribers() == 1
    finally:
        fleet.close()


def test_a_host_with_running_jobs_is_left_alone(tmp_path: Path) -> None:
    hosts: dict[str, StubHost] = {}
    fleet, _ = stub_fleet(tmp_path, HOSTS[:1], hosts)
    fleet.open()
    settled(fleet)
    try:
        inner = hosts["kvm2"].inner
        job = FrozenJob("upload", "upload disk.img to vm1.img", "default@kvm2", "vm1.img",
                        inner.bus)
        inner.jobs._jobs[job.id] = job
        for verb in (lambda: fleet.reconnect("kvm2"), lambda: fleet.remove_connection("kvm2"),
                     lambda: fleet.edit_connection("kvm2", "kvm2", "stub://other")):
            with pytest.raises(Busy, match=r"has 1 job\(s\) running \(upload disk.img to "
                                           r"vm1.img\): it would cancel them halfway"):
                verb()
        assert not hosts["kvm2"].closed
        assert fleet.jobs.running() == [job]  # and the fleet lists it
        job.state = "done"
        job._finished.set()
        fleet.remove_connection("kvm2")
        assert [c.name for c in fleet.connections()] == [""]
    finally:
        fleet.close()
