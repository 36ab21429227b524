"""The tree of hosts (backends.fleet, tui.widgets.pool_tree, tui.screens.connection_actions)
on fixed-data hosts (tests/tui/stub_hosts): this host and libvirt connections at the top
level, a failed and a lost one shown as such, the keys on a host's line, a connection added
and removed from the TUI (and the file it is saved in), calls routed to the pool's host.
Snapshots at 80x24 and 160x50. The same with real libvirt daemons: test_hosts_live.py.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.widgets import Static

import backends.fleet_links as fleet_module
import tui.screens.main_base as main_screen
from backends.errors import PoolkeeperError
from backends.fleet import Fleet
from backends.volume_requests import Refusal
from tests.screentext import screen_text
from tests.settle import settle
from tui.app import PoolkeeperApp
from tui.widgets.pool_tree import PoolTree

from .stub_hosts import StubHost, stub_fleet

SIZES = [(80, 24), (160, 50)]
HOSTS = [("kvm2", "stub://kvm2?sizes=4"), ("kvm3", "stub://kvm3"),
         ("gone", "down://gone.example")]


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """'refreshed N s ago' and 'retry in N s' say the same in every run."""
    clock = SimpleNamespace(monotonic=lambda: 1000.0)
    monkeypatch.setattr(main_screen, "time", clock)
    monkeypatch.setattr(fleet_module, "time", clock)


def settled(fleet: Fleet) -> Fleet:
    """Every connection has answered (connected with its pools, or failed)."""
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:
        states = [c.state for c in fleet.connections()]
        if "connecting" not in states and all(
                link.listed_at or link.member is None for link in fleet.links.links.values()):
            return fleet
        time.sleep(0.01)
    raise AssertionError(f"connections did not settle: {fleet.connections()}")


def make(tmp_path: Path, hosts: dict[str, StubHost] | None = None,
         connections: list[tuple[str, str]] = HOSTS) -> tuple[PoolkeeperApp, Fleet]:
    fleet, _ = stub_fleet(tmp_path / "state", connections, hosts)
    fleet.open()
    return PoolkeeperApp(settled(fleet), monitor_interval=None), fleet


def tree_lines(app: PoolkeeperApp) -> list[str]:
    tree = app.main_screen.query_one("#pools", PoolTree)
    return [str(line.path[-1].label).rstrip() for line in tree._tree_lines]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_of_several_hosts(snap_compare, tmp_path: Path,
                                   size: tuple[int, int]) -> None:
    app, fleet = make(tmp_path)

    async def before(pilot) -> None:
        await settle(app, pilot)

    try:
        assert snap_compare(app, terminal_size=size, run_before=before)
    finally:
        fleet.close()


async def test_the_tree_has_a_level_of_hosts_with_their_states(tmp_path: Path) -> None:
    app, fleet = make(tmp_path)
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            lines = tree_lines(app)
            hosts = [line for line in lines if line.split("  ")[0] in (
                "this host", "kvm2", "kvm3", "gone")]
            assert [h.split("  ")[0] for h in hosts] == ["this host", "kvm2", "kvm3", "gone"]
            assert hosts[1].startswith("kvm2  3 pools")
            assert hosts[3] == "gone  failed (retry in 2 s)"
            # each host's pools under it, by their own names; ids carry the host
            assert app.main_screen.pools.keys() == {
                "default", "backups", "vg0", "default@kvm2", "backups@kvm2", "vg0@kvm2",
                "default@kvm3", "backups@kvm3", "vg0@kvm3"}
            assert sum(line.startswith("default ") for line in lines) == 3
            # the failed host's line: the header says why
            tree = app.main_screen.query_one("#pools", PoolTree)
            tree.select_connection("gone")
            await settle(app, pilot)
            text = screen_text(app)
            assert "gone (down://gone.example)" in text
            assert "failed: cannot connect to 'down://gone.example': Connection refused" in text
            assert app.main_screen.disabled_reason("create_volume") == (
                "a host is selected: its pools are below it in the tree")
    finally:
        fleet.close()


async def test_calls_go_to_the_host_that_owns_the_pool(tmp_path: Path) -> None:
    hosts: dict[str, StubHost] = {}
    app, fleet = make(tmp_path, hosts)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            screen = app.main_screen
            screen.select_pool("vg0@kvm3")
            await settle(app, pilot)
            assert "vg0@kvm3 (logical) running" in screen_text(app)
            assert fleet.current == "kvm3"  # define, secrets: on the pool's host
            await pilot.press("s")  # stop it: on kvm3 only
            await settle(app, pilot)
            assert ("stop_pool", ("vg0",), {}) in hosts["kvm3"].inner.calls
            assert not any(call[0] == "stop_pool" for call in hosts["kvm2"].inner.calls)
            assert not any(call[0] == "stop_pool" for call in fleet.native.calls)
    finally:
        fleet.close()


async def test_a_lost_host_keeps_its_pools_as_inaccessible_and_comes_back(
        tmp_path: Path) -> None:
    hosts: dict[str, StubHost] = {}
    app, fleet = make(tmp_path, hosts, HOSTS[:2])
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            hosts["kvm2"].lose("the connection to 'stub://kvm2' was closed: End of file")
            await settle(app, pilot)
            lines = tree_lines(app)
            assert "kvm2  lost: reconnecting in 2 s  3 pools" in lines
            assert app.main_screen.pools["default@kvm2"].state == "inaccessible"
            # the other host and this one keep working
            assert app.main_screen.pools["default@kvm3"].state == "running"
            screen = app.main_screen
            screen.select_pool("default@kvm2")
            await settle(app, pilot)
            assert "reconnecting in 2 s" in screen_text(app)
            # the retry (a real timer: 2 s) connects it again
            deadline = time.perf_counter() + 10
            while fleet.connections()[1].state != "connected":
                assert time.perf_counter() < deadline
                await pilot.pause(0.1)
            await settle(app, pilot)
            assert app.main_screen.pools["default@kvm2"].state == "running"
            assert any(line.startswith("kvm2  3 pools") for line in tree_lines(app))
    finally:
        fleet.close()


async def test_a_connection_is_added_and_removed_from_the_tui(tmp_path: Path) -> None:
    app, fleet = make(tmp_path, connections=[])
    saved = tmp_path / "state" / "connections.json"
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            assert tree_lines(app)[0] == "dir"  # one host: no level of hosts
            await pilot.press("H")
            await settle(app, pilot)
            assert "New connection" in screen_text(app)
            await pilot.press(*"stub://kvm9.example.org", "ctrl+s")
            deadline = time.perf_counter() + 10
            while len(fleet.connections()) < 2 or fleet.connections()[1].state != "connected":
                assert time.perf_counter() < deadline
                await pilot.pause(0.1)
            await settle(app, pilot)
            # named from the URI's host; saved owner-only
            assert json.loads(saved.read_text())["connections"] == [
                {"name": "kvm9", "uri": "stub://kvm9.example.org"}]
            assert saved.stat().st_mode & 0o777 == 0o600
            assert "kvm9  3 pools" in "\n".join(tree_lines(app))
            tree = app.main_screen.query_one("#pools", PoolTree)
            tree.focus()
            tree.select_connection("kvm9")
            await settle(app, pilot)
            await pilot.press("X")
            await settle(app, pilot)
            assert "The tree stops showing 'kvm9'" in screen_text(app)
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            assert json.loads(saved.read_text())["connections"] == []
            assert "kvm9" not in "\n".join(tree_lines(app))
            assert tree_lines(app)[0] == "dir"
    finally:
        fleet.close()


async def test_this_hosts_line_cannot_be_edited_or_removed(tmp_path: Path) -> None:
    app, fleet = make(tmp_path, connections=HOSTS[:1])
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            tree = app.main_screen.query_one("#pools", PoolTree)
            tree.select_connection("")
            await settle(app, pilot)
            reason = "this host is poolkeeper's own engine: it has no connection to change"
            assert app.main_screen.disabled_reason("delete_pool") == reason
            assert app.main_screen.disabled_reason("edit_xml") == reason
            assert app.main_screen.disabled_reason("define_pool") is None
    finally:
        fleet.close()


def test_a_bad_connection_is_refused_and_nothing_is_saved(tmp_path: Path) -> None:
    fleet, _ = stub_fleet(tmp_path, [])
    for name, uri, words in [("kvm 2", "stub://x", "not allowed"),
                             ("kvm2", "not a uri", "is not a libvirt URI"),
                             ("kvm2", "stub://a\x1b[2Jb", "is not a libvirt URI")]:
        with pytest.raises(Exception, match=words):
            fleet.add_connection(name, uri)
    assert json.loads((tmp_path / "connections.json").read_text())["connections"] == []
    fleet.add_connection("kvm2", "stub://kvm2")
    with pytest.raises(Exception, match="a connection named 'kvm2' exists"):
        fleet.add_connection("kvm2", "stub://other")
    fleet.close()


async def test_a_clone_is_offered_only_the_pools_of_its_host(tmp_path: Path) -> None:
    app, fleet = make(tmp_path, connections=HOSTS[:2])
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            app.main_screen.select_pool("default@kvm2")
            await settle(app, pilot)
            app.main_screen.table.focus()
            await pilot.press("k")
            await settle(app, pilot)
            dialog = app.screen
            assert "Clone volume" in screen_text(app)
            # the active pools of kvm2 only: not this host's, not kvm3's
            assert sorted(dialog.pools) == ["default@kvm2", "vg0@kvm2"]
    finally:
        fleet.close()


async def test_r_on_a_pool_of_a_lost_host_reconnects_it(tmp_path: Path) -> None:
    hosts: dict[str, StubHost] = {}
    app, fleet = make(tmp_path, hosts, HOSTS[:1])
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            first = hosts["kvm2"]
            app.main_screen.select_pool("vg0@kvm2")
            await settle(app, pilot)
            first.lose("gone")
            await settle(app, pilot)
            assert fleet.connections()[1].state == "lost"
            header = str(app.main_screen.query_one("#pool-header", Static).render())
            assert header == ("host 'kvm2' (stub://kvm2?sizes=4) is not connected: lost: "
                              "reconnecting in 2 s (gone); r tries again now")
            await pilot.press("r")
            deadline = time.perf_counter() + 5
            while fleet.connections()[1].state != "connected":
                assert time.perf_counter() < deadline  # well before the 2 s retry
                await pilot.pause(0.05)
            assert hosts["kvm2"] is not first  # a new connection
            deadline = time.perf_counter() + 5
            while not (first.closed and first.subscribers() == 0):  # the old one: closed,
                assert time.perf_counter() < deadline  # and no longer heard
                await pilot.pause(0.05)
    finally:
        fleet.close()


def test_a_name_that_reads_as_two_hosts_pools_reaches_neither(tmp_path: Path) -> None:
    """'vg0@kvm2' defined on this host after the connection kvm2 was added (by the CLI,
    say): acting on it could stop the wrong host's pool. Nothing is done to either, and this
    host refuses to define such a name at all while kvm2 exists."""
    hosts: dict[str, StubHost] = {}
    fleet, native = stub_fleet(tmp_path, HOSTS[:1], hosts)
    fleet.open()
    settled(fleet)
    try:
        with pytest.raises(PoolkeeperError, match="choose a name that does not end in"):
            fleet.define_pool_def(replace(native.pool_def("vg0"), name="new@kvm2"))
        assert fleet.check_pool_def(replace(native.pool_def("vg0"), name="new@kvm2")) == (
            Refusal("name", "a pool of this host named 'new@kvm2' would read as pool 'new' "
                    "of the connection 'kvm2': choose a name that does not end in '@' and a "
                    "connection's name"))
        # made here anyway, behind the fleet's back (another process)
        native.pools["vg0@kvm2"] = replace(native.pools["vg0"], name="vg0@kvm2")
        names = [p.name for p in fleet.list_pools()]
        assert names.count("vg0@kvm2") == 1  # this host's; kvm2's is not listed twice
        assert fleet.connection_of("vg0@kvm2") == ""
        with pytest.raises(PoolkeeperError, match="nothing is done to either"):
            fleet.stop_pool("vg0@kvm2")
        assert not any(c[0] == "stop_pool" for c in hosts["kvm2"].inner.calls)
        assert not any(c[0] == "stop_pool" for c in native.calls)
        fleet.stop_pool("default@kvm2")  # the others are not affected
        assert ("stop_pool", ("default",), {}) in hosts["kvm2"].inner.calls
    finally:
        fleet.close()


async def test_no_key_reaches_a_volume_of_the_last_pool_while_the_next_is_read(
        tmp_path: Path) -> None:
    """Two hosts with the same pool and volume names: until kvm3's rows are in, the table
    shows none of kvm2's, and a volume key says the pool is being read (it used to wipe
    kvm3's db01.img from kvm2's row)."""
    hosts: dict[str, StubHost] = {}
    app, fleet = make(tmp_path, hosts, HOSTS[:2])
    try:
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            screen = app.main_screen
            screen.select_pool("default@kvm2")
            await settle(app, pilot)
            assert screen.table.select("db01.img")
            hosts["kvm3"].hold_listing = threading.Event()
            screen.select_pool("default@kvm3")
            await pilot.pause(0.1)
            assert screen.table.total_count == 0
            assert screen.disabled_reason("wipe_volume") == (
                "'default@kvm3' is being read; a moment")
            header = str(screen.query_one("#pool-header", Static).render())
            assert header == "default@kvm3: reading the pool..."
            hosts["kvm3"].hold_listing.set()
            await settle(app, pilot)
            assert screen.table.total_count == 6
            assert screen.disabled_reason("wipe_volume") is None
    finally:
        fleet.close()


def test_a_dialogs_calls_stay_on_the_host_it_was_opened_for(tmp_path: Path) -> None:
    hosts: dict[str, StubHost] = {}
    fleet, native = stub_fleet(tmp_path, HOSTS[:2], hosts)
    fleet.open()
    settled(fleet)
    try:
        fleet.use("kvm3")
        calls = fleet.on(fleet.current)  # what the define dialog holds
        fleet.use("")  # the cursor moved on (or the pool it was on went away)
        pdef = replace(native.pool_def("backups"), name="new")
        calls.define_pool_def(pdef)
        assert [c[0] for c in hosts["kvm3"].inner.calls] == ["define_pool_def"]
        assert not any(c[0] == "define_pool_def" for c in native.calls)
        assert not any(c[0] == "define_pool_def" for c in hosts["kvm2"].inner.calls)
        fleet.remove_connection("kvm3")
        with pytest.raises(PoolkeeperError, match="was removed meanwhile: nothing done"):
            calls.define_pool_def(pdef)
    finally:
        fleet.close()


async def test_the_hosts_tree_draws_only_ascii_with_ascii(tmp_path: Path) -> None:
    fleet, _ = stub_fleet(tmp_path / "state", HOSTS)
    fleet.open()
    app = PoolkeeperApp(settled(fleet), monitor_interval=None, ascii=True)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(app, pilot)
            text = screen_text(app)
            assert "gone  failed (retry in" in text  # cut to the tree's width
            assert text.isascii(), sorted({c for c in text if not c.isascii()})
    finally:
        fleet.close()
