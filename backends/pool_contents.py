"""What an inactive pool's storage still holds, as pool-delete sees it.

Two kinds of pools (controller.stored_volumes, controller.delete_pool):
  * fs, disk and logical pools erase their storage: what it holds (the driver's
    stored_volumes) is named first, refused unless forced, and a caller that showed a
    list passes it back (`expected`): if the storage holds anything else by the time it
    is erased, nothing is erased, so a volume made after the list was shown is never
    erased unseen;
  * dir and netfs pools only ever remove an empty directory: its entries make the delete
    refuse, forced or not. Listing them first (directory_entries) lets the TUI say so
    before a name is typed; the look itself never changes anything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .drivers.dir import DirDriver
from .errors import StateError
from .names import PARTIAL_PREFIX

_LISTED = 5  # names a message lists; the rest are counted


def directory_entries(driver: DirDriver) -> list[str]:
    """The entries of an inactive dir or netfs pool's directory, opened as its delete
    opens it (no link followed), without poolkeeper's hidden partial files (the delete
    removes those first). A directory that is not there holds nothing."""
    try:
        fd = driver._open_target()
    except StateError:
        if os.path.lexists(driver.target):
            raise
        return []
    try:
        names = os.listdir(fd)
    finally:
        os.close(fd)
    return sorted(n for n in names if not n.startswith(PARTIAL_PREFIX))


def listing(names: Sequence[str]) -> str:
    """'a, b and 3 more'"""
    count = len(names)
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {count - _LISTED} more" if count > _LISTED else "")


def refuse_held(pool: str, held: Sequence[str]) -> None:
    """pool-delete without --force: storage that still holds volumes is not erased."""
    if not held:
        return
    count = len(held)
    them = "them" if count != 1 else "it"
    raise StateError(
        f"pool '{pool}' still holds {count} volume{'s' if count != 1 else ''} "
        f"({listing(held)}); delete {them} first, or erase {them} with the pool's storage: "
        f"pool-delete {pool} --force")


def refuse_changed(pool: str, held: Sequence[str], expected: Sequence[str]) -> None:
    """The storage must hold exactly what the caller showed (`expected`), or nothing
    is erased; the error says what changed."""
    added = sorted(set(held) - set(expected))
    gone = sorted(set(expected) - set(held))
    if not added and not gone:
        return
    changes = []
    if added:
        changes.append(f"it now also holds {listing(added)}")
    if gone:
        changes.append(f"{listing(gone)} {'is' if len(gone) == 1 else 'are'} gone")
    raise StateError(
        f"pool '{pool}' changed since its volumes were listed: {'; '.join(changes)}. "
        "Nothing was erased: look at what it holds now before deleting it")
