"""The `poolkeeper` command (and `python -m cli`): a `pool-list` that cli.quick can answer
is answered without loading the engine; everything else goes to cli.main. `run` is the
command itself: it leaves without the interpreter's teardown when that has nothing to do."""

from __future__ import annotations

import gc
import os
import sys
from typing import NoReturn

_GC_YOUNG = 200_000  # allocations between collections (Python's default: 700)


def main() -> int:
    # A command is a short process whose objects nearly all live to its end (the 10,000
    # volumes of a listing): the cyclic collector would walk them, and every module's
    # objects, again and again for nothing (~15 ms of a vol-list). So it runs rarely, and
    # never over what the imports made (gc.freeze); a long verb (pool-event --loop, an
    # upload) still has its cycles collected. The TUI gets Python's default back.
    default = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG)
    from .quick import pool_list

    code = pool_list(sys.argv[1:])
    if code is not None:
        return code
    from .main import main as full
    from .main import opens_tui

    gc.freeze()
    if opens_tui(sys.argv[1:]):
        gc.set_threshold(*default)
    return full()


def run() -> NoReturn:
    """main(), then exit. The interpreter's own exit frees every module and object the
    engine made, one by one (~30 ms after a vol-list of 10,000 volumes: a shell loop pays
    it on every call); with the output flushed and no thread but this one left, there is
    nothing else for it to do (the controller was closed, and nothing registers atexit
    work), so the process ends at once. A failed flush (a closed pipe) exits as Python
    does."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)
    threading = sys.modules.get("threading")  # not imported: no thread was started
    if threading is None or threading.active_count() == 1:
        os._exit(code)
    sys.exit(code)
