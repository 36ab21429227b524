"""The screens a worker opens for a key (PreparedScreens, a mixin of MainScreenBase).

Screens a worker opens (the XML, the build, delete and secret dialogs, the editor, a
refused edit) go through `_prepare`/`_open`, one at a time, and only over this screen.
Keys typed while the worker looks wait for the screen it prepares and go to it once it is
open (`X` and the pool's name typed together fill the confirmation); if it does not open
(an error, nothing to show) they are dropped and a notice counts them: before, they went
to this screen, where `s` stops a pool (issue 15, item 6). The status line says what is
being prepared; Escape (or ctrl+c) cancels it, and its result is then not shown. The key
that asked, typed again at once, is ignored: `x x x` opens one XML view. (Before the wait,
`x x x` stacked one view per key, and a few dozen stacked modal screens overflowed
Python's stack when drawn: RecursionError, the app died.) A screen that comes on top
meanwhile (not by a key: a worker's, as a refused edit's) ends the wait: the keys held are
dropped and the result is not put over it; a notice says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.screen import Screen


class PreparedScreens:
    """Mixin for MainScreenBase (a Screen): `_prepare` a screen in a worker, `_open` it
    after. (It names no MainScreenBase: that module imports this one.)"""

    _preparing: Preparing | None
    app: Any

    def _prepare(self, kind: str, what: str | None = None) -> Preparing | None:
        """A key asks for a screen a worker prepares (`what`: "the delete dialog of pool
        p", for the notices): None (ignore the key) while one is being prepared already.
        Keys typed meanwhile wait for that screen (KeyOrderApp.hold_keys_for)."""
        if self._preparing is not None:
            return None
        prep = Preparing(kind, what or _WHAT.get(kind, f"the {kind} screen"), self)
        self._preparing = prep
        hold = getattr(self.app, "hold_keys_for", None)
        if hold is not None:  # the XML view has no field: `x x x` opens one view
            hold(prep, self, drop_repeats=kind == "xml")
        self._update_status()
        return prep

    def _done_preparing(self, prep: Preparing | None, *, opened: bool = False) -> bool:
        """The worker `prep` started is done (None: no key asked for it). False: its
        result is not shown (Escape cancelled it, and said so). The keys that waited go to
        the screen just pushed (opened), or are dropped, and a notice counts them."""
        if prep is None:
            return True
        if self._preparing is not prep:
            return False
        self._preparing = None
        self._update_status()
        end = getattr(self.app, "end_hold", None)
        dropped = end(prep, deliver=opened) if end is not None else 0
        if dropped:
            self.app.notify(f"{_keys(dropped)} typed while {prep.what} was being prepared "
                            f"{'was' if dropped == 1 else 'were'} dropped", severity="warning",
                            markup=False)
        return True

    def _wait_over(self, prep: Preparing, dropped: int, why: str) -> None:
        """Keys stopped waiting for `prep` (KeyWait): Escape cancelled it, or another
        screen came on top (a worker's). Its result will not be shown:
        keys typed after this go to the main screen, which it must not then cover."""
        if self._preparing is prep:
            self._preparing = None
            self._update_status()
        typed = (f"; {_keys(dropped)} typed for it {'was' if dropped == 1 else 'were'} "
                 "dropped") if dropped else ""
        if why == "cancelled":
            self.app.notify(f"cancelled: {prep.what} will not open{typed}", markup=False)
        else:
            self.app.notify(f"{prep.what} was not opened: another screen was opened "
                            f"meanwhile; close it and ask again{typed}", severity="warning",
                            markup=False)

    def on_screen_suspend(self) -> None:
        """Another screen came on top while a screen is being prepared (not the one
        `_open` pushes: that one is prepared by then): keys stop waiting for it, and its
        result will not be shown (_wait_over)."""
        prep = self._preparing
        stop = getattr(self.app, "stop_waiting", None)
        if prep is not None and stop is not None:
            stop(prep, "covered")

    def _open(self, prep: Preparing | None, what: str,
              make: Callable[[], Screen[Any]] | None,
              callback: Callable[[Any], None] | None = None) -> None:
        """UI thread, when the worker that `_prepare` started (`prep`) is done (`make`
        None: it has nothing to show, it said why). `prep` None: a screen no key asked
        for. The screen is pushed before the keys waiting for it are let go: they wait
        until it is mounted (KeyOrderApp.hold_keys), then go to it in order."""
        if prep is not None and self._preparing is not prep:
            return  # cancelled: said then
        if make is not None and self.app.screen is not self:
            self.app.notify(f"{what} was not opened: another screen was opened meanwhile; "
                            "close it and ask again", severity="warning", markup=False)
            make = None
        opened = False
        try:
            if make is not None:
                self.app.push_screen(make(), callback)
                opened = True
        finally:
            self._done_preparing(prep, opened=opened)



# What a screen being prepared is called in the status line, and in notices when the key
# did not say ("the delete dialog of pool p").
_WHAT = {"xml": "the XML view", "edit": "the editor", "define": "the define dialog",
         "delete": "the delete dialog", "build": "the build dialog",
         "secret": "the secret dialog"}


def _keys(count: int) -> str:
    return f"{count} key{'s' if count != 1 else ''}"


@dataclass(eq=False)
class Preparing:
    """A screen a worker prepares for a key (MainScreenBase._prepare): what keys typed
    meanwhile wait for (tui.textual_fixes.KeyWait)."""

    kind: str  # "delete", "xml", ...
    what: str  # "the delete dialog of pool p"
    screen: Any  # the MainScreenBase that prepares it

    def wait_over(self, dropped: int, why: str) -> None:
        self.screen._wait_over(self, dropped, why)
