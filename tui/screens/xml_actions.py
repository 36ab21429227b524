"""The main screen's XML keys: x shows the XML of the pool (or of the volume under the
cursor, when the table has the focus); e edits the pool's in $VISUAL or $EDITOR: the terminal
is handed over (App.suspend), the edited text is defined in a worker, and a refusal offers
to edit again with the text kept.

e works on a running pool too, as virsh pool-edit does: it edits the persistent definition.
What the pool claims (type, source, target) changes only while it is stopped, said before
anything is saved; the rest is saved, and the notice says which changes take effect after a
restart or a rebuild (backends.pool_changes, running and new definitions compared).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from typing import TYPE_CHECKING

from textual import work
from textual.app import SuspendNotSupported

from backends import xmlio
from backends.errors import PoolkeeperError, StateError
from backends.pool_changes import claimed_changes, pending_changes

from .. import dialogs
from .xml_view import XmlScreen

if TYPE_CHECKING:
    from .main_base import MainScreenBase as _Screen
    from .main_base import Preparing
else:
    _Screen = object  # mixed into MainScreen, which is a MainScreenBase


class XmlActions(_Screen):
    """Mixin for MainScreen: the actions of the XML keys."""

    def action_show_xml(self) -> None:
        if self.selected is None:
            return
        volume = self.table.cursor_volume if self.table.has_focus else None
        title = f"pool {self.selected}" if volume is None else f"volume {volume.name}"
        if self._prepare("xml", f"the XML of {title}"):
            self._load_xml(self.selected, volume.name if volume else None)

    def _load_xml(self, pool: str, volume: str | None) -> None:
        """Right after `_prepare("xml")` (Enter on a volume calls it too)."""
        self._read_xml(self._preparing, pool, volume)

    @work(thread=True, group="xml")
    def _read_xml(self, prep: Preparing | None, pool: str, volume: str | None) -> None:
        title = f"pool {pool}" if volume is None else f"volume {volume}"
        xml: str | None = None
        try:
            xml = self.ctl.pool_xml(pool) if volume is None else self.ctl.volume_xml(pool,
                                                                                   volume)
        except PoolkeeperError as exc:
            self.app.notify(f"could not read the XML of {title}: {exc}", severity="error",
                            markup=False)
        finally:
            self.app.call_from_thread(self._show_xml, prep, title, xml)

    def _show_xml(self, prep: Preparing | None, title: str, xml: str | None) -> None:
        self._open(prep, f"the XML of {title}",
                   None if xml is None else lambda: XmlScreen(title, xml, ascii=self.ascii))

    def action_edit_xml(self) -> None:
        pool = self.selected
        if pool is not None and (prep := self._prepare("edit", f"the editor for pool {pool}")):
            self._fetch_for_edit(prep, pool)

    @work(thread=True, group="xml")
    def _fetch_for_edit(self, prep: Preparing, pool: str) -> None:
        xml = path = None
        try:
            xml = self.ctl.pool_xml(pool, inactive=True)
            path = self._write_for_edit(pool, xml)
        except PoolkeeperError as exc:
            self.app.notify(f"could not read the XML of pool {pool} to edit it: {exc}",
                            severity="error", markup=False)
        finally:
            self.app.call_from_thread(self._run_editor, pool, path, xml or "", prep)

    @work(thread=True, group="xml")
    def _edit_again(self, pool: str, text: str) -> None:
        path = None
        try:
            path = self._write_for_edit(pool, text)
        finally:
            self.app.call_from_thread(self._run_editor, pool, path, text, None)

    def _write_for_edit(self, pool: str, text: str) -> str | None:
        """Worker side: the text goes to a private temp file the editor opens (its path;
        None when it could not be written, said in a notice)."""
        try:
            fd, path = tempfile.mkstemp(suffix=".xml", prefix=f"{pool}-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            self.app.notify(f"cannot write a temp file: {exc.strerror}", severity="error",
                            markup=False)
            return None
        return path

    def _run_editor(self, pool: str, path: str | None, before: str,
                    prep: Preparing | None) -> None:
        """Hand the terminal to $EDITOR (App.suspend: the UI is stopped anyway), then
        validate in a worker; on an error offer to edit again with the text kept. `path`
        None: the text could not be fetched or written (a notice said why). `prep`: the
        e key's own fetch (keys typed meanwhile are dropped: the editor reads the
        terminal itself); None: Re-edit."""
        if not self._done_preparing(prep):  # cancelled (Escape)
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return
        if path is None:
            return
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        discard = True
        try:
            with self.app.suspend():
                subprocess.run([*shlex.split(editor), path], check=False)
            discard = False
        except SuspendNotSupported:
            self.notify("this terminal cannot hand over to an editor", severity="error",
                        markup=False)
        except OSError as exc:
            self.notify(f"cannot run the editor '{editor}': {exc.strerror}",
                        severity="error", markup=False)
        self._read_edited(pool, path, before, discard=discard)

    @work(thread=True, group="xml")
    def _read_edited(self, pool: str, path: str, before: str, *, discard: bool) -> None:
        try:
            if discard:
                return
            try:
                with open(path, encoding="utf-8") as fh:
                    edited = fh.read()
            except (OSError, UnicodeDecodeError) as exc:
                self.app.notify(f"cannot read the edited file: {exc}", severity="error",
                                markup=False)
                return
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)
        if edited == before:
            self.app.notify("no change", markup=False)
            return
        self._save_xml(pool, edited)

    def _save_xml(self, pool: str, edited: str) -> None:
        """Worker side: define the edited XML (a running pool: module docstring)."""
        running = new = None
        try:
            new = xmlio.parse_pool(edited)
            if self.ctl.pool_info(pool).active:
                running = xmlio.parse_pool(self.ctl.pool_xml(pool))
                claimed = claimed_changes(running, new)
                if claimed:
                    raise StateError(
                        f"pool '{pool}' is running: {'; '.join(claimed)} can change only "
                        f"while it is stopped. Stop it (s), then edit again (e); or undo "
                        f"that change to save the rest now")
            ctl = self.calls_for(pool)  # the edited pool's host, whatever is selected
            ctl.define_pool(edited)
        except PoolkeeperError as exc:
            self.app.call_from_thread(self._xml_rejected, pool, edited, str(exc))
            return
        lines = [f"pool {pool} redefined"]
        if running is not None and new is not None:
            pending = pending_changes(running, new, builds_target=new.type == "dir")
            lines += pending or ["the running pool needs no restart for it"]
        self.app.notify_lines(lines, timeout=20 if len(lines) > 1 else None)

    def _xml_rejected(self, pool: str, edited: str, message: str) -> None:
        def done(retry: bool | None) -> None:
            if retry:
                self._edit_again(pool, edited)

        self._open(None, f"the refused XML of pool {pool}",
                   lambda: dialogs.ErrorDialog("the edited XML was refused", message,
                                               retry_label="Re-edit", ascii=self.ascii), done)
