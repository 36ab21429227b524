"""Leftovers of creates and clones a killed process left half-made, removed.

File pools write a volume being made under a hidden partial name (names.PARTIAL_PREFIX):
any such file nobody holds is a leftover. Block pools name a half-filled volume by its
final name (disk: a marked partition, logical: a tagged LV): a live clone holds its volume
lock, so one whose lock is free was left by a killed process. The sweep runs when a pool
starts, is deleted, or is first used by this process.
"""

from __future__ import annotations

import contextlib

from .drivers.base import PoolDriver
from .errors import Busy, PoolkeeperError
from .locks import LockManager


class PartialSweeper:
    """Removes a pool's leftovers, and remembers the pools this process swept."""

    def __init__(self, locks: LockManager) -> None:
        self.locks = locks
        self._swept: set[str] = set()  # pools whose leftover partial files this process removed

    def sweep_once(self, name: str, driver: PoolDriver) -> None:
        """Sweep the pool `name` unless this process already did."""
        if name not in self._swept:
            self.sweep(driver)

    def sweep(self, driver: PoolDriver) -> None:
        """Remove what creates/clones killed mid-way left (a live build's file is locked and
        stays): when a pool starts, is deleted, or is first used by this process."""
        with contextlib.suppress(PoolkeeperError, OSError):
            driver.remove_partials()
        # block pools name a half-filled volume by its final name: a live clone holds its
        # volume lock, so one whose lock is free was left by a killed process
        with contextlib.suppress(PoolkeeperError, OSError):
            for name in driver.partial_volumes():
                with contextlib.suppress(Busy), self.locks.volume(
                        driver.name, name, exclusive=True,
                        what="removing a half-made volume") as held:
                    held.remove_on_release = True  # the volume goes: its lock file too
                    driver.remove_partial(name)
        self._swept.add(driver.name)
