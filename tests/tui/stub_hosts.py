"""Fixed-data hosts for a Fleet in TUI tests and snapshots: each connection is a
StubController (tests/tui/stub_controller) whose pools are named `POOL@HOST`, as
backends.libvirt_host names a real connection's pools. A URI `stub://HOST` connects, with
`sizes=N` scaling the pools' sizes; `down://HOST` fails to connect (as a host that is not
there). The real thing is tested in tests/tui/test_hosts_live.py on private libvirtds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from backends.connection_store import ConnectionStore, SavedConnection
from backends.errors import PoolkeeperError
from backends.fleet import Fleet
from backends.model import PoolStatus

from .stub_controller import StubController


class StubHost:
    """A StubController behind `@name` pool ids; on_lost() makes it lose its connection."""

    def __init__(self, name: str, scale: int = 1,
                 on_lost: Callable[[str], None] | None = None) -> None:
        self.inner = StubController()
        self.inner.pools = {
            pool: replace(status, capacity=(status.capacity or 0) * scale or None,
                          allocation=(status.allocation or 0) * scale or None)
            for pool, status in self.inner.pools.items()}
        self.name = name
        self.suffix = f"@{name}"
        self._on_lost = on_lost
        self.why_lost: str | None = None
        self.closed = False
        self.hold_listing: threading.Event | None = None  # set: list_volumes waits for it

    def close(self) -> None:
        self.closed = True
        self.inner.close()

    def subscribers(self) -> int:
        return len(self.inner.bus._subscribers.now())

    def list_volumes(self, pool: str) -> Any:
        if self.hold_listing is not None:
            self.hold_listing.wait(10)
        return self.inner.list_volumes(self._plain(pool))

    def lose(self, why: str) -> None:
        self.why_lost = why
        if self._on_lost is not None:
            self._on_lost(why)

    def lost(self) -> str | None:
        return self.why_lost

    def _plain(self, value: Any) -> Any:
        if isinstance(value, str) and value.endswith(self.suffix):
            return value[: -len(self.suffix)]
        return value

    def _qualified(self, value: Any) -> Any:
        if isinstance(value, PoolStatus):
            return replace(value, name=value.name + self.suffix)
        if isinstance(value, list):
            return [self._qualified(item) for item in value]
        return value

    @property
    def jobs(self) -> Any:
        return self.inner.jobs

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self.inner, attr)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._qualified(method(*(self._plain(a) for a in args), **kwargs))
        return call


def stub_factory(hosts: dict[str, StubHost] | None = None
                 ) -> Callable[[str, str, Callable[[str], None]], Any]:
    """The Fleet's member factory for stub:// and down:// URIs; made hosts go in `hosts`."""
    made = hosts if hosts is not None else {}

    def factory(uri: str, name: str, on_lost: Callable[[str], None]) -> Any:
        if uri.startswith("down://"):
            raise PoolkeeperError(f"cannot connect to '{uri}': Connection refused")
        scale = int(uri.split("sizes=", 1)[1]) if "sizes=" in uri else 1
        made[name] = host = StubHost(name, scale, on_lost)
        return host
    return factory


def stub_fleet(config_dir: Path, connections: list[tuple[str, str]],
               hosts: dict[str, StubHost] | None = None) -> tuple[Fleet, StubController]:
    """A Fleet on a StubController (this host) with these saved connections, not yet
    opened (Fleet.open connects them)."""
    native = StubController()
    config_dir.mkdir(parents=True, exist_ok=True)
    ConnectionStore(config_dir).save([SavedConnection(name, uri) for name, uri in connections])
    return Fleet(native, config_dir, factory=stub_factory(hosts)), native
