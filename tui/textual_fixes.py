"""Workarounds for Textual 8.2.8 (pinned in pyproject.toml) behaviour that crashed or
closed poolkeeper under fast typing. Each is as small as the bug allows; re-check each one
when Textual is upgraded (tests/reliability/test_tui_keys.py fails if one is still needed
and gone).

1. Screen.dismiss pops whatever screen is on top, not the screen it is called on. Keys
   typed faster than the app handles them are already messages queued on a screen: Enter
   pressed twice in the command palette (or in a dialog's last field) gives two
   Input.Submitted, each of which dismisses. The second popped the main screen (the app
   went blank, then the main screen's workers crashed with NoActiveAppError and the app
   exited, cancelling the jobs), a third raised ScreenStackError. DismissOnce dismisses
   only the screen on top, and only once; every poolkeeper screen and the palette use it.
2. CommandPalette also runs the chosen command again for each queued Enter (its handlers
   read state left by the first), and a key typed behind the Enter starts a new search
   whose worker then fills a list that is gone (NoMatches: the app crashed). Palette drops
   the search of a palette whose list is gone (closed, or the app closing), and
   the choice and input messages once it is dismissed.
   PoolkeeperApp opens every palette as a Palette (the command palette, and the theme
   list that its "Theme" command opens).
3. OptionList._move_page reads the line of the highlighted option from a cache that is only
   built once the list has a size: PageUp/PageDown an instant after ctrl+p, or in a palette
   or Select overlay squeezed to no rows at a small height, raised KeyError. Without lines
   there is no page, so the key moves one option. OptionList is patched (one method):
   the palette's CommandList and Select's overlay are Textual's own subclasses.
4. The app hands a key to the focused widget as a message and reads the next key at
   once: the next key went to the widget that had focus before Tab's focus change (which
   runs when Tab has bubbled up to the app's bindings), so `a Tab b` typed together gave
   Name=`ab`. KeyOrderApp holds each key until the previous one is handled; to know
   when a key's handling ends (a widget stopped it, or it reached the app), the message
   pump calls the key's `_pk_done` once a node handled it without passing it on
   (MessagePump._dispatch_message and Message._bubble_to are patched, one method each).
   KeyOrderApp (below; PoolkeeperApp is one) is the rest of that fix.

KeyOrderApp: keys in the order typed, each handled by the widget that has focus once
the keys before it are done (issue 15, items 6 and 7).

Textual (8.2.8) reads a key, hands it to the focused widget as a message and reads the
next key at once. Tab moves focus only when it has bubbled up to the app's bindings, and
Enter in a dialog's field moves on by a message of its own (Input.Submitted): keys typed
together (`a Tab b`, `v.img Tab 1G`, or a laggy moment) went to the field that had focus
before, so everything landed in Name. KeyOrderApp holds each key (and paste) until the
one before it is handled, focus change and what it posted included:

  * handled: a widget stopped it, or it reached the app's bindings (the message pump
    reports it: fix 4), or a priority binding took it (ctrl+s);
  * then settled: the app, the screen and the widgets around the focus (before and
    after the key) have handled what they were sent meanwhile (a few rounds of
    call_later, as Pilot waits for a screen);
  * a key whose end is never seen (its widget closed under it) lets the next one go after
    STUCK seconds, so that input never stops for good.

Two more rules keep keys off a screen they were not typed at:
  * a screen that closes (DismissOnce.dismiss calls drop_keys_until_drawn) drops the keys
    typed after the key that closed it, until the screen beneath has been drawn: a key
    typed at a closing dialog never reaches the main screen (where `s` stops a pool);
  * while `hold_keys()` says so (the screen on top is not mounted yet: `c v.img` typed
    together), keys wait and then go to that screen;
  * while a screen is being prepared for a key (`hold_keys_for`: the main screen's worker
    looks at the storage before the delete dialog opens), keys typed meanwhile wait for
    it and go to it once it is open (`X` and the name to confirm, typed together); if it
    does not open (`end_hold` without delivering, or another screen came on top) they are
    dropped, never handed to the screen beneath; Escape or ctrl+c cancels the wait (and
    drops them), and the key that asked, typed again at once, is ignored where the screen
    has no field to type in (`x x x` opens one XML view; a name typed behind `n` may begin
    with an n).

Tab, shift+tab and Enter in a dialog's field move the focus in the order of the laid-out
screen (Screen.focus_chain sorts by position): a field shown by the key before (Space on
"destroy" shows the name to confirm) has no position until the next layout, so a Tab
typed with it skipped the field and focused Cancel. In a dialog (a modal screen) a focus
key waits for a pending layout first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from textual import events, on, work
from textual.app import App, ScreenStackError
from textual.await_complete import AwaitComplete
from textual.command import CommandList, CommandPalette
from textual.css.query import NoMatches
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import ModalScreen, Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Button, Input, OptionList


class DismissOnce:
    """Mixin for a Screen: dismiss() of a screen that is not on top, or was dismissed
    already, does nothing (fix 1)."""

    _dismissed = False

    def dismiss(self, result: Any = None) -> AwaitComplete:
        screen: Screen[Any] = self  # type: ignore[assignment]  # mixed into a Screen
        if self._dismissed or not screen.is_active:
            return AwaitComplete.nothing()
        self._dismissed = True
        # Keys typed at this screen after the key that closed it never reach the screen
        # beneath (KeyOrderApp): there `s` stops a pool.
        drop = getattr(screen.app, "drop_keys_until_drawn", None)
        if drop is not None:
            drop()
        return super().dismiss(result)  # type: ignore[misc]


class Palette(DismissOnce, CommandPalette):
    """The command palette, with fixes 1 and 2."""

    @on(Input.Submitted)
    @on(Input.Changed)
    @on(Button.Pressed)
    @on(OptionList.OptionSelected)
    def _drop_after_dismiss(self, event: Message) -> None:
        # Handlers of the most derived class run first; prevent_default stops the
        # dispatch before CommandPalette's own handlers.
        if self._dismissed:
            event.prevent_default()
            event.stop()

    @work(exclusive=True, group=CommandPalette._GATHER_COMMANDS_GROUP)
    async def _gather_commands(self, search_value: str) -> None:
        """Textual's search, which ends quietly when the list it fills is gone: a palette
        closed or taken down (the app closing) while a search ran raised NoMatches in the
        worker, and the app crashed (seen under load: escape k ctrl+p d)."""
        try:
            await CommandPalette._gather_commands.__wrapped__(self, search_value)  # type: ignore[attr-defined]
        except NoMatches:
            if self.is_attached and self.query(CommandList):
                raise  # the list is there: a real error


_textual_move_page = OptionList._move_page


def _move_page(self: OptionList, direction: Any) -> None:
    """Fix 3: a page move with no lines laid out moves one option."""
    if (self.highlighted or 0) not in self._index_to_line:
        if direction > 0:
            self.action_cursor_down()
        else:
            self.action_cursor_up()
        return
    _textual_move_page(self, direction)


OptionList._move_page = _move_page  # type: ignore[method-assign]


_textual_dispatch = MessagePump._dispatch_message


async def _dispatch_message(self: MessagePump, message: Message) -> None:
    """Fix 4: tell whoever waits on this message (only keys KeyOrderApp orders carry
    `_pk_done`) that its handling is over: handled here and not passed on to a parent."""
    # counted as it starts: KeyOrderApp._settle tells a quiet widget from a busy one
    self._pk_dispatches = getattr(self, "_pk_dispatches", 0) + 1  # type: ignore[attr-defined]
    done = getattr(message, "_pk_done", None)
    if done is None:
        await _textual_dispatch(self, message)
        return
    hops = getattr(message, "_pk_hops", 0)
    try:
        await _textual_dispatch(self, message)
    finally:
        if getattr(message, "_pk_hops", 0) == hops:
            done(message)


def _bubble_to(self: Message, widget: MessagePump) -> None:
    """Textual's, counting the hops that reached a queue (a closing parent drops it)."""
    self._no_default_action = False
    if widget.post_message(self):
        self._pk_hops = getattr(self, "_pk_hops", 0) + 1  # type: ignore[attr-defined]


MessagePump._dispatch_message = _dispatch_message  # type: ignore[method-assign]
Message._bubble_to = _bubble_to  # type: ignore[method-assign]


# == KeyOrderApp (fix 4) =============================================================
STUCK = 3.0  # s: a key whose handling never reports its end (see above)
_ROUND_WAIT = 1.0  # s: a settle round waits at most this for a busy widget
_SETTLE_ROUNDS = 8  # call_later rounds after a key: a message chain this deep settles
_HOLD_POLL = 0.05  # s: how often held keys look whether the wait is over
_LAYOUT_WAITS = 12  # times a focus key looks again for a pending layout, at most
_LAYOUT_POLL = 1 / 60  # s: between two looks (Textual lays out at up to 60 frames a second)
CANCEL_KEYS = frozenset({"escape", "ctrl+c"})  # cancel a wait for a screen being prepared
FOCUS_KEYS = frozenset({"tab", "shift+tab", "enter"})  # move by the laid-out order
# (Enter in a dialog's field moves to the next one: Dialog._enter)


class KeyWait(Protocol):
    """What keys wait for (KeyOrderApp.hold_keys_for): a screen being prepared."""

    def wait_over(self, dropped: int, why: str) -> None:
        """The wait ended without the screen: `why` is "cancelled" (Escape, ctrl+c) or
        "covered" (another screen came on top); `dropped` keys held for it were dropped."""

Typed = events.Key | events.Paste


class KeyOrderApp(App[None]):
    """An App that hands keys and pastes on one at a time (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: deque[Typed] = deque()
        self._current: Typed | None = None  # being handled, or about to be (re-posted)
        self._stuck_timer: Timer | None = None
        self._poll_timer: Timer | None = None
        self._settling: asyncio.Task[None] | None = None
        self._focus_before: Widget | None = None  # focus when the current key came
        self._dropping = False  # a screen closed: drop keys until the one beneath is drawn
        self.keys_seen = 0  # keys and pastes read from the terminal (tests read both)
        self.dropped_keys = 0
        self._waiting: KeyWait | None = None  # a screen being prepared: keys wait for it
        self._waiting_under: Screen[Any] | None = None  # the screen on top meanwhile
        self._waiting_key: str | None = None  # the key that asked for it
        self._layout_waits = 0  # times the next focus key has waited for a layout
        self._layout_timer: Timer | None = None  # it looks again when this fires

    # -- hooks -------------------------------------------------------------------------
    def hold_keys(self) -> bool:
        """True while keys should wait: a screen is being prepared for them
        (hold_keys_for), or the screen on top is not mounted yet (a key sent to it now
        would find no focused widget); a subclass may add its own reasons."""
        if self._waiting is not None:
            return True
        try:
            return not self.screen.is_mounted
        except ScreenStackError:  # no screen: the app is starting or closing
            return False

    def hold_keys_for(self, wait: KeyWait, under: Screen[Any] | None = None, *,
                      drop_repeats: bool = False) -> None:
        """A screen is being prepared over `under` (default: the one on top) for the key
        being handled (a worker looks first): keys typed from now on wait for it
        (end_hold). drop_repeats: that key typed again at once is ignored (`x x x` opens
        one XML view) - only for a screen with no field to type in: a name typed behind
        `n` may begin with an n. Called on the UI thread."""
        self._waiting = wait
        self._waiting_under = under or self._top()
        current = self._current
        self._waiting_key = current.key if drop_repeats and isinstance(current, events.Key) \
            else None
        while (self._held and isinstance(self._held[0], events.Key)  # already typed again
               and self._held[0].key == self._waiting_key):
            self._held.popleft()
            self.dropped_keys += 1

    def end_hold(self, wait: KeyWait, *, deliver: bool) -> int:
        """The screen `wait` stood for is open (deliver: the keys held go to it in order,
        once it is mounted; push it first) or will not be (they are dropped). Returns how
        many were dropped (0 when that wait is over already)."""
        if self._waiting is not wait:
            return 0
        self._waiting = self._waiting_under = self._waiting_key = None
        if deliver:
            self._release_next()
            return 0
        dropped = len(self._held)
        self.dropped_keys += dropped
        self._held.clear()
        return dropped

    def split_paste(self, paste: events.Paste) -> list[Typed] | None:
        """The keys and pastes a paste stands for, or None: it is text for the focus."""
        return None

    def drop_keys_until_drawn(self) -> None:
        """A screen is closing: keys typed from now on (and held ones, typed after the
        key that closed it) are dropped until the screen beneath has been drawn."""
        self.dropped_keys += len(self._held)
        self._held.clear()
        self._dropping = True
        self.call_after_refresh(self._drawn)

    def _drawn(self) -> None:
        self._dropping = False

    # -- a screen being prepared (hold_keys_for) ---------------------------------------
    def stop_waiting(self, wait: KeyWait, why: str) -> None:
        """Keys stop waiting for `wait` (a screen came on top: "covered"); those held are
        dropped and `wait.wait_over` is told."""
        if self._waiting is wait:
            self._stop_waiting(why)

    def _top(self) -> Screen[Any] | None:
        try:
            return self.screen
        except ScreenStackError:
            return None

    def _check_wait(self) -> None:
        """A screen came on top while keys waited for a prepared one (a worker's error
        dialog: keys, footer clicks included, were waiting): they were typed for the
        prepared one, so they are dropped; keys typed from now on go to the one on top."""
        top = self._top()
        if (self._waiting is not None and top is not self._waiting_under
                and not getattr(top, "_dismissed", False)):  # (not one closing: a palette)
            self._stop_waiting("covered")

    def _stop_waiting(self, why: str) -> None:
        wait = self._waiting
        if wait is None:
            return
        self._waiting = self._waiting_under = self._waiting_key = None
        dropped = sum(1 for e in self._held
                      if not (isinstance(e, events.Key) and e.key in CANCEL_KEYS))
        self.dropped_keys += dropped
        self._held.clear()
        if why == "cancelled":  # as a dialog closed by Escape: keys typed with it, too
            self.drop_keys_until_drawn()
        wait.wait_over(dropped, why)

    def _waited_for(self, event: Typed) -> bool:
        """A key that arrives while keys wait for a screen being prepared: True when it
        was taken here (a cancel key; the key that asked, typed again before anything
        else: `x x x` opens one XML view)."""
        if self._waiting is None or not isinstance(event, events.Key):
            return False
        if event.key in CANCEL_KEYS:
            self._stop_waiting("cancelled")
            return True
        if event.key == self._waiting_key and not self._held:
            self.dropped_keys += 1
            return True
        return False

    def _layout_pending(self) -> bool:
        """The screen on top has a layout to do (a widget was shown or hidden)."""
        screen = self._top()
        if screen is None:
            return False
        if screen._layout_required:
            return True
        return any(widget._layout_required for widget in screen.walk_children(Widget))

    def _waits_for_layout(self, event: Typed) -> bool:
        """A focus key in a dialog waits for a pending layout (looking again a few times:
        a layout that never comes must not stop the keys). Not on the main screen, whose
        listings lay out often and whose fields do not come and go."""
        if self._layout_timer is not None:  # the key before is waiting: keys stay in order
            return True
        if (not (isinstance(event, events.Key) and event.key in FOCUS_KEYS)
                or self._layout_waits >= _LAYOUT_WAITS
                or not isinstance(self._top(), ModalScreen) or not self._layout_pending()):
            self._layout_waits = 0
            return False
        self._layout_waits += 1
        self._layout_timer = self.set_timer(_LAYOUT_POLL, self._layout_looked)
        return True

    def _layout_looked(self) -> None:
        self._layout_timer = None
        self._release_next()

    # -- the order ---------------------------------------------------------------------
    async def on_event(self, event: events.Event) -> None:
        if not isinstance(event, (events.Key, events.Paste)) or event.is_forwarded:
            await super().on_event(event)
            return
        if event is self._current:  # its turn (re-posted by _release_next)
            await self._handle(event)
            return
        self.keys_seen += 1
        self._check_wait()
        if self._waited_for(event):
            return
        if (self._current is None and not self._held and not self.hold_keys()
                and not self._waits_for_layout(event)):
            self._current = event
            await self._handle(event)
        else:
            if self._dropping:  # typed at a closing screen: dropped when its turn comes,
                event._pk_drop = True  # type: ignore[union-attr]  # even once it is drawn
            self._held.append(event)
            self._release_next()

    async def _handle(self, event: Typed) -> None:
        if self._dropping or getattr(event, "_pk_drop", False):
            self.dropped_keys += 1
            self._finish(event)
            return
        if isinstance(event, events.Paste):
            parts = self.split_paste(event)
            if parts:
                self._held.extendleft(reversed(parts))
                self._finish(event)
                return
        event._pk_done = self._handled  # type: ignore[union-attr]  # tui.textual_fixes
        try:
            self._focus_before = self.screen.focused
        except Exception:
            self._focus_before = None
        self._stuck_timer = self.set_timer(STUCK, lambda: self._finish(event))
        try:
            await super().on_event(event)
        except ScreenStackError:  # the app is closing: no screen to type at
            self._finish(event)
            return
        if not event.is_forwarded:  # a priority binding took it, or nothing did
            self._handled(event)

    def _handled(self, event: Any) -> None:
        if event is not self._current or self._settling is not None:
            return
        self._settling = asyncio.create_task(self._settle(event))

    async def _settle(self, event: Typed) -> None:
        try:
            loop = asyncio.get_running_loop()
            for _ in range(_SETTLE_ROUNDS):
                # A round: each node runs a callback queued behind what it has. Quiet
                # when no node handled anything but that callback meanwhile (a handler
                # that was running, or a message that arrived, means one more round).
                nodes = self._settle_nodes()
                before = {id(node): _dispatches(node) for node in nodes}
                waits, called = [], set()
                for node in [self, *nodes]:
                    done = loop.create_future()
                    if node.call_later(_resolve, done):
                        waits.append(done)
                        called.add(id(node))
                if waits:
                    await asyncio.wait(waits, timeout=_ROUND_WAIT)
                if all(node._message_queue.empty() and _dispatches(node) - before[id(node)]
                       <= (1 if id(node) in called else 0) for node in nodes):
                    break
        except Exception:  # no screen (the app is closing): nothing to settle
            pass
        finally:
            if self._settling is asyncio.current_task():
                self._settling = None
            self._finish(event)

    def _settle_nodes(self) -> list[MessagePump]:
        """Where a key's consequences run: the screen on top, the focused widget, its
        children (a RadioSet's buttons) and ancestors (a message a widget posts bubbles
        up from there), and the same of the widget that had focus before (its Blur).
        Not every widget of the screen: that made a key cost tens of milliseconds on a
        large form."""
        screen = self.screen
        nodes: dict[int, MessagePump] = {id(screen): screen}
        for widget in (screen.focused, self._focus_before):
            if widget is None:
                continue
            for child in widget.walk_children():  # a RadioSet's buttons, a Select's list
                nodes.setdefault(id(child), child)
            node: MessagePump | None = widget
            while node is not None and node is not self:
                nodes.setdefault(id(node), node)
                node = node._parent
        return list(nodes.values())

    def _finish(self, event: Typed) -> None:
        if event is not self._current:
            return
        if self._settling is not None and self._settling is not asyncio.current_task():
            # released by the stuck timer: the next key must settle on its own, not wait
            # behind this one's settling (it would be stuck too)
            self._settling.cancel()
            self._settling = None
        if self._stuck_timer is not None:
            self._stuck_timer.stop()
            self._stuck_timer = None
        self._current = None
        self._release_next()

    def _release_next(self) -> None:
        if self._current is not None or not self._held:
            return
        self._check_wait()
        if self._waiting is not None and any(
                isinstance(e, events.Key) and e.key in CANCEL_KEYS for e in self._held):
            self._stop_waiting("cancelled")  # typed before the wait began, handled now
            return
        if self.hold_keys():
            if self._poll_timer is None:
                self._poll_timer = self.set_interval(_HOLD_POLL, self._poll)
            return
        if self._waits_for_layout(self._held[0]):
            return
        event = self._held.popleft()
        self._current = event
        if not self.post_message(event):  # the app is closing
            self._current = None
            self._held.clear()

    def _poll(self) -> None:
        if not self.hold_keys() or not self._held:
            if self._poll_timer is not None:
                self._poll_timer.stop()
                self._poll_timer = None
            self._release_next()


def _dispatches(node: MessagePump) -> int:
    return getattr(node, "_pk_dispatches", 0)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
