"""The monitor (StorageController.poll): a change of free space alone, which any process
writing on the same filesystem makes every few seconds, updates the pool's sizes without
rescanning its volumes; their allocations are rescanned at most every
SPACE_RESCAN_INTERVAL seconds; a new volume is listed at the next round."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backends import monitor as monitor_mod
from backends.controller import StorageController
from backends.drivers.dir import DirDriver
from backends.events import PoolChanged, VolumesChanged


def test_free_space_alone_updates_sizes_without_a_rescan(
        state_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = state_root / "images"
    scans: list[str] = []
    real_refresh = DirDriver.refresh

    def counted(self: DirDriver):  # type: ignore[no-untyped-def]
        scans.append(self.name)
        return real_refresh(self)

    monkeypatch.setattr(DirDriver, "refresh", counted)
    events: list[object] = []
    with StorageController(state_root) as ctl:
        ctl.bus.subscribe(events.append)
        ctl.poll()  # the first round scans (so may starting the default pool)
        assert scans[-1:] == ["default"]
        scans[:] = ["default"]
        outside = images.parent / "elsewhere.bin"  # same filesystem, not in the pool
        outside.write_bytes(b"x" * (4 << 20))
        os.sync()
        ctl.poll()
        assert scans == ["default"]  # no rescan for free space alone...
        assert any(isinstance(e, PoolChanged) and e.reason == "sizes" for e in events)
        ctl.poll()
        assert scans == ["default"]
        monkeypatch.setattr(monitor_mod, "SPACE_RESCAN_INTERVAL", 0.0)
        ctl.poll()  # ...until a scan is due, even with nothing new since
        assert scans == ["default", "default"]
        ctl.poll()
        assert scans == ["default", "default"]  # and only once
        monkeypatch.setattr(monitor_mod, "SPACE_RESCAN_INTERVAL", 3600.0)
        (images / "new.img").write_bytes(b"")
        ctl.poll()  # a new volume: listed at once
        assert scans == ["default", "default", "default"]
        assert any(isinstance(e, VolumesChanged) and "new.img" in e.added for e in events)
