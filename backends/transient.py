"""Transient pools (virsh pool-create, pool-create-as): started from a definition that is
never stored persistently. The definition lives under the run state only
(Store.write_transient_definition) and goes when the pool stops (stop_pool), so a
transient pool is listed while it runs and is gone after pool-destroy, as in libvirt.
"""

from __future__ import annotations

import contextlib
import uuid as uuidlib
from dataclasses import replace
from typing import TYPE_CHECKING

from . import pool_claims, xmlio
from .errors import AlreadyExists, PoolkeeperError
from .events import PoolChanged
from .model import PoolDef, PoolStatus

if TYPE_CHECKING:
    from .controller import StorageController


def create_pool(ctl: StorageController, pdef: PoolDef, *, build: bool = False,
                overwrite: bool | None = None) -> PoolStatus:
    """Define `pdef` as a transient pool, build it if asked, and start it. A failure
    leaves nothing behind: no definition, and the pool not running."""
    ctl._check_definition(pdef)
    with ctl.locks.store():
        if ctl.store.read_definition(pdef.name) is not None:
            raise AlreadyExists(f"a pool named '{pdef.name}' already exists; start it with "
                                f"pool-start {pdef.name}, or choose another name")
        pool_claims.refuse_claimed(pdef, ctl._other_defs(pdef.name))
        if not pdef.uuid:
            pdef = replace(pdef, uuid=str(uuidlib.uuid4()))
        ctl.store.write_transient_definition(pdef.name, xmlio.format_pool(
            replace(pdef, capacity=None, allocation=None, available=None)))
    try:
        if build:
            ctl.build_pool(pdef.name, overwrite, journal=False).wait()  # Started only
        return ctl.start_pool(pdef.name)
    except BaseException:
        if not ctl.store.is_active(pdef.name):
            with contextlib.suppress(PoolkeeperError, OSError):
                ctl.store.remove_transient_definition(pdef.name)
            ctl.bus.publish(PoolChanged(pdef.name, "undefined", journal=False))
        raise
