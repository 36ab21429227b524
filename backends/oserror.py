"""An OSError of the storage as poolkeeper's error (here, not in errors.py: it needs the
partial-file prefix from names.py, which itself raises errors.py's InvalidName)."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from .errors import InsufficientSpace, PoolkeeperError, StateError
from .names import PARTIAL_PREFIX


def os_failure(exc: OSError, doing: str) -> PoolkeeperError:
    """An OSError of the storage as our error: what could not be done, why, what to check."""
    reason = exc.strerror or str(exc)
    shown = exc.filename is not None and PARTIAL_PREFIX not in str(exc.filename)
    where = f" ({exc.filename})" if shown else ""  # a hidden build name tells the user nothing
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return InsufficientSpace(f"cannot {doing}: {reason}{where}; free some space first")
    if exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
        return StateError(f"cannot {doing}: {reason}{where}; check the permissions, the "
                          "attributes (chattr +i) and whether the filesystem is read-only")
    return StateError(f"cannot {doing}: {reason}{where}")


@contextlib.contextmanager
def os_errors(doing: str) -> Iterator[None]:
    """An OSError of the storage (EPERM, EROFS, EIO, ...) reaches the user as our error
    (jobs do the same in Job._run)."""
    try:
        yield
    except OSError as exc:
        raise os_failure(exc, doing) from exc
