"""What a controller does once as it opens a state root: the default pool on first use,
and the autostart pools once per boot. What fails is kept in ctl.startup_errors for the
CLI and the TUI to say, never raised: one bad pool must not stop the others."""

from __future__ import annotations

from typing import Protocol

from .errors import PoolkeeperError
from .jobs import Job
from .locks import LockManager
from .model import PoolDef, PoolStatus, PoolTarget
from .store import Store, StorePaths


class Opening(Protocol):
    """What start-up needs of the controller opening the state root."""

    paths: StorePaths
    store: Store
    locks: LockManager
    startup_errors: list[str]

    def _define_locked(self, pdef: PoolDef) -> None: ...
    def build_pool(self, name: str, overwrite: bool | None = None) -> Job: ...
    def set_autostart(self, name: str, enabled: bool = True) -> None: ...
    def start_pool(self, name: str) -> PoolStatus: ...


def ensure_default_pool(ctl: Opening) -> None:
    """A dir pool named 'default' on the images directory, defined, built, started and
    marked autostart the first time a state root is used (as libvirt's default pool)."""
    if ctl.store.initialized():
        return
    created = False
    with ctl.locks.store():
        if ctl.store.initialized():
            return
        if not ctl.store.definition_names():
            pdef = PoolDef(type="dir", name="default",
                           target=PoolTarget(path=str(ctl.paths.images_dir)))
            try:
                ctl._define_locked(pdef)  # under the store lock taken above
                created = True
            except PoolkeeperError as exc:
                ctl.startup_errors.append(f"could not define the default pool: {exc}")
        ctl.store.mark_initialized()
    if created:
        try:
            ctl.build_pool("default").wait()
            ctl.set_autostart("default", True)
            ctl.start_pool("default")
        except (PoolkeeperError, OSError) as exc:
            ctl.startup_errors.append(f"could not build the default pool: {exc}")


def autostart(ctl: Opening) -> None:
    """Start the autostart pools once per boot (a pool the user stopped stays stopped
    for the next command, as with libvirtd, which autostarts only when it starts)."""
    if not ctl.store.claim_autostart_round():
        return
    for name in ctl.store.definition_names():
        if not ctl.store.autostart(name) or ctl.store.is_active(name):
            continue
        try:
            ctl.start_pool(name)
        except PoolkeeperError as exc:
            if not ctl.store.is_active(name):  # another process may have won the race
                ctl.startup_errors.append(f"autostart of pool '{name}' failed: {exc}")
        except OSError as exc:
            ctl.startup_errors.append(f"autostart of pool '{name}' failed: {exc}")
