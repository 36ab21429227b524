"""The `poolkeeper` command (and `python -m cli`): a `pool-list` that cli.quick can answer
is answered without loading the engine; everything else goes to cli.main."""

from __future__ import annotations

import sys


def main() -> int:
    from .quick import pool_list

    code = pool_list(sys.argv[1:])
    if code is not None:
        return code
    from .main import main as full

    return full()
