"""Three hosts in one TUI, for real: three private libvirtds (tests/libvirtd.py) as three
libvirt connections beside this host's native engine. Each shows its pool; a pool
stopped by another process (virsh) shows stopped without a key (libvirt's lifecycle
event); one daemon killed: its connection shows lost and its pool inaccessible while the
other two keep working (a pool started from the TUI on one of them); the daemon started
again: the connection comes back by itself with its pool.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import backends.fleet_links as fleet_module
from backends.connection_store import ConnectionStore, SavedConnection
from backends.controller import StorageController
from backends.fleet import Fleet
from tests.libvirtd import NOBODY, libvirtd_missing, start_libvirtd, stop_libvirtd
from tests.screentext import screen_text
from tests.settle import settle
from tui.app import PoolkeeperApp
from tui.widgets.pool_tree import PoolTree

pytestmark = pytest.mark.skipif(libvirtd_missing() is not None,
                                reason=libvirtd_missing() or "")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
NAMES = ("alpha", "beta", "gamma")


class Daemon:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.proc, socket = start_libvirtd(base)
        self.uri = f"qemu:///session?socket={socket}"

    def virsh(self, *args: str) -> str:
        r = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True,
                           env=ENV, timeout=60, check=False)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def start_again(self) -> None:
        self.proc, _ = start_libvirtd(self.base, again=True)


@pytest.fixture
def daemons() -> Iterator[dict[str, Daemon]]:
    bases, made = [], {}
    try:
        for name in NAMES:
            base = Path(tempfile.mkdtemp(prefix=f"pk-host-{name}-"))
            base.chmod(0o755)  # libvirtd runs as nobody and must get in
            bases.append(base)
            made[name] = daemon = Daemon(base)
            pools = base / "pools"
            pools.mkdir()
            os.chown(pools, NOBODY, NOBODY)
            daemon.virsh("pool-define-as", "store", "dir", "--target", str(pools / "store"))
            daemon.virsh("pool-build", "store")
            daemon.virsh("pool-start", "store")
            daemon.virsh("vol-create-as", "store", f"{name}.img", "1M")
        yield made
    finally:
        for daemon in made.values():
            stop_libvirtd(daemon.proc)
        for base in bases:
            shutil.rmtree(base, ignore_errors=True)


def host_line(app: PoolkeeperApp, name: str) -> str:
    tree = app.main_screen.query_one("#pools", PoolTree)
    node = tree._conn_nodes.get(name)
    return str(node.label) if node is not None else ""


async def test_three_hosts_one_killed_and_back(daemons: dict[str, Daemon], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fleet_module, "RETRY_DELAYS", (0.5, 1.0, 2.0))
    ConnectionStore(tmp_path / "root").save(
        [SavedConnection(name, d.uri) for name, d in daemons.items()])
    native = StorageController(tmp_path / "root")
    fleet = Fleet(native, native.paths.config_dir)
    fleet.open()
    app = PoolkeeperApp(fleet, monitor_interval=None)
    try:
        async with app.run_test(size=(100, 40)) as pilot:
            async def until(check, timeout: float = 30.0) -> None:
                deadline = time.monotonic() + timeout
                while not check():
                    if time.monotonic() > deadline:
                        raise AssertionError(f"timed out; screen:\n{screen_text(app)}")
                    await pilot.pause(0.1)
                await settle(app, pilot)

            def state(pool: str) -> str | None:  # (the screen's dict is replaced)
                status = app.main_screen.pools.get(pool)
                return status.state if status is not None else None

            await until(lambda: all(state(f"store@{n}") == "running" for n in NAMES))
            for name in NAMES:
                assert host_line(app, name).startswith(f"{name}  1 pool")

            # another process stops beta's pool: the lifecycle event shows it, no key
            daemons["beta"].virsh("pool-destroy", "store")
            await until(lambda: state("store@beta") == "inactive")

            # the volumes of a host's pool, in the table
            app.main_screen.select_pool("store@alpha")
            await until(lambda: "alpha.img" in screen_text(app))

            # gamma's daemon dies: lost, its pool inaccessible; the others keep working
            daemons["gamma"].kill()
            await until(lambda: "lost" in host_line(app, "gamma"))
            await until(lambda: state("store@gamma") == "inaccessible")
            app.main_screen.select_pool("store@beta")
            await settle(app, pilot)
            await pilot.press("s")  # start beta's pool from the TUI
            await until(lambda: state("store@beta") == "running")
            assert "running" in daemons["beta"].virsh("pool-info", "store")

            # gamma's daemon is back: the connection comes back by itself
            daemons["gamma"].start_again()
            await until(lambda: host_line(app, "gamma").startswith("gamma  1 pool"))
            await until(lambda: state("store@gamma") == "running")
    finally:
        fleet.close()
