"""vol-upload and vol-download: a local path (completed from the filesystem in a thread),
an offset and a length. Every look at the filesystem runs off the UI thread, debounced."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Awaitable
from functools import partial

from textual.app import ComposeResult
from textual.suggester import Suggester
from textual.widget import Widget
from textual.widgets import Input, Static

from backends.model import VolumeInfo
from backends.units import human

from ..shown import shown
from .base import Dialog, Evaluation
from .fields import Check, Invalid, Kind, field, parse_size_text
from .results import TransferRequest

DEBOUNCE = 0.15  # seconds of quiet typing before the filesystem is looked at
MAX_SHOWN = 8  # completions listed under the path


def _scan(directory: str) -> list[tuple[str, bool]]:
    """(name, is_dir) of a directory's entries; [] if it cannot be read."""
    try:
        with os.scandir(directory) as it:
            entries = []
            for entry in it:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                entries.append((entry.name, is_dir))
    except OSError:
        return []
    return sorted(entries)


class DirLister:
    """Directory listings for completion, cached briefly and read in a thread."""

    TTL = 2.0

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, list[tuple[str, bool]]]] = {}

    async def entries(self, directory: str) -> list[tuple[str, bool]]:
        hit = self._cache.get(directory)
        if hit is not None and time.monotonic() - hit[0] < self.TTL:
            return hit[1]
        entries = await asyncio.to_thread(_scan, directory)
        self._cache[directory] = (time.monotonic(), entries)
        return entries

    async def matches(self, value: str) -> list[str]:
        """Full paths (directories end in '/') that complete `value`."""
        if not value.startswith(("/", "~/")):
            return []  # only absolute paths and ~/...: relative ones depend on the cwd
        expanded = os.path.expanduser(value)
        directory, prefix = os.path.split(expanded)
        entries = await self.entries(directory or "/")
        # Keep what the user typed (e.g. '~/') and append the rest of each name.
        base = value[: len(value) - len(prefix)]
        show_hidden = prefix.startswith(".")
        return [
            base + name + ("/" if is_dir else "")
            for name, is_dir in entries
            if name.startswith(prefix) and (show_hidden or not name.startswith("."))
        ]


def completion(value: str, matches: list[str]) -> str | None:
    """What to propose inline: the longest common prefix if it adds something, else the
    first match."""
    if not matches:
        return None
    common = os.path.commonprefix(matches)
    return common if len(common) > len(value) else matches[0]


class PathSuggester(Suggester):
    """Input suggester completing local paths; superseded keystrokes are skipped."""

    def __init__(self, lister: DirLister) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.lister = lister
        self.latest = ""

    async def get_suggestion(self, value: str) -> str | None:
        self.latest = value
        await asyncio.sleep(DEBOUNCE)
        if value != self.latest:
            return None  # typing went on: only the last value is looked up
        return completion(value, await self.lister.matches(value))


def check_source(path: str) -> tuple[str, Kind, int | None]:
    """Upload: the file must exist and be readable data. Runs in a thread."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"no such file: {path}", "error", None
    except OSError as exc:
        return f"cannot use {path}: {exc.strerror}", "error", None
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a directory", "error", None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        return f"{path} is not a regular file or block device", "error", None
    if not os.access(path, os.R_OK):
        return f"{path} is not readable", "error", None
    return f"{human(st.st_size)} to upload", "note", st.st_size


def check_destination(path: str) -> tuple[str, Kind, int | None]:
    """Download: the directory must exist; an existing file is overwritten."""
    parent = os.path.dirname(path) or "/"
    if not os.path.isdir(parent):
        return f"the directory {parent} does not exist", "error", None
    if os.path.isdir(path):
        return f"{path} is a directory", "error", None
    if os.path.lexists(path):
        return f"{path} exists and will be overwritten", "warning", None
    return "", "note", None


class TransferDialog(Dialog[TransferRequest | None]):
    verb = ""
    with_sparse = False

    DEFAULT_CSS = """
    TransferDialog #completions { padding: 0 0 0 14; color: $text-muted; height: auto; }
    """

    def __init__(self, volume: VolumeInfo, *, ascii: bool = False) -> None:
        self.volume = volume
        self.lister = DirLister()
        self.checked: dict[str, tuple[str, Kind, int | None]] = {}
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        v = self.volume
        yield Static(f"volume '{shown(v.name, self.ascii)}': {v.format}, capacity "
                     f"{human(v.capacity)}",
                     markup=False, classes="intro")
        yield field("File", Input(placeholder="/path/to/file (right arrow completes)",
                                  suggester=PathSuggester(self.lister), id="path",
                                  compact=True))
        yield Static("", markup=False, id="completions")
        yield field("Offset", Input("0", id="offset", compact=True))
        yield field("Length", Input(placeholder="to the end", id="length", compact=True))
        if self.with_sparse:
            yield field("", Check("sparse: keep holes as holes", ascii=self.ascii,
                                  id="sparse"))

    def setup(self) -> None:
        self.query_one("#completions").display = False

    def _path(self) -> str:
        return os.path.expanduser(self.query_one("#path", Input).value.strip())

    def on_form_change(self, widget: Widget) -> None:
        if widget.id == "path":
            value = self.query_one("#path", Input).value.strip()
            # a callable, not a coroutine: a look cancelled before it starts is never made
            self.run_worker(partial(self._look, value), group="look", exclusive=True,
                            exit_on_error=False)
        self.refresh_form()

    async def _look(self, value: str) -> None:
        """Debounced (exclusive: a newer keystroke cancels this one while it sleeps)."""
        await asyncio.sleep(DEBOUNCE)
        matches = await self.lister.matches(value)
        if not self.is_attached:
            return  # dismissed meanwhile
        others = [m for m in matches if m != value]
        box = self.query_one("#completions", Static)
        # file names from disk: escaped
        box.update("  ".join(shown(os.path.basename(m.rstrip("/")), self.ascii)
                             + ("/" if m.endswith("/") else "") for m in others[:MAX_SHOWN])
                   + (f"  (+{len(others) - MAX_SHOWN} more)" if len(others) > MAX_SHOWN
                      else ""))
        box.display = bool(others)
        path = os.path.expanduser(value)
        if path.startswith("/") and not path.endswith("/"):
            self.checked[path] = await asyncio.to_thread(self.check, path)
            if self.is_attached:
                self.refresh_form()

    def check(self, path: str) -> tuple[str, Kind, int | None]:
        raise NotImplementedError

    def evaluate(self) -> Evaluation[TransferRequest | None]:
        ev: Evaluation[TransferRequest | None] = Evaluation()
        cap = self.volume.capacity
        path = self._path()
        if not path:
            ev.error("path", f"give the file to {self.verb}")
        elif not path.startswith("/"):
            ev.error("path", "give an absolute path (starting with / or ~)")
        elif path in self.checked:
            text, kind, _size = self.checked[path]
            if text:
                ev.messages["path"] = (text, kind)
        offset = length = None
        try:
            offset = parse_size_text(self.query_one("#offset", Input).value or "0", "offset")
            if offset >= cap and cap:
                ev.error("offset", f"the offset is past the end of the volume ({human(cap)})")
        except Invalid as exc:
            ev.error("offset", str(exc))
        length_text = self.query_one("#length", Input).value.strip()
        if length_text:
            try:
                length = parse_size_text(length_text, "length")
                if length == 0:
                    ev.error("length", "the length must be greater than 0 (empty: to the end)")
                elif offset is not None and offset + length > cap:
                    ev.error("length", f"offset + length is past the end of the volume "
                                       f"({human(cap)})")
            except Invalid as exc:
                ev.error("length", str(exc))
        if ev.ok and offset is not None:
            sparse = self.with_sparse and self.query_one("#sparse", Check).value
            ev.result = TransferRequest(path=path, offset=offset, length=length, sparse=sparse)
        return ev

    def finish(self, result: TransferRequest) -> Awaitable[TransferRequest | None]:
        return self._final_check(result)

    async def _final_check(self, result: TransferRequest) -> TransferRequest | None:
        # Always look again: the file may have come or gone since the last keystroke.
        self.checked[result.path] = await asyncio.to_thread(self.check, result.path)
        ev = self.refresh_form()
        return ev.result if ev.ok else None


class UploadDialog(TransferDialog):
    verb = "upload"
    submit_label = "Upload"

    def __init__(self, volume: VolumeInfo, *, ascii: bool = False) -> None:
        self.heading = f"Upload a file into volume '{volume.name}'"
        super().__init__(volume, ascii=ascii)

    def check(self, path: str) -> tuple[str, Kind, int | None]:
        return check_source(path)


class DownloadDialog(TransferDialog):
    verb = "download into"
    submit_label = "Download"
    with_sparse = True

    def __init__(self, volume: VolumeInfo, *, ascii: bool = False) -> None:
        self.heading = f"Download volume '{volume.name}' to a file"
        super().__init__(volume, ascii=ascii)

    def check(self, path: str) -> tuple[str, Kind, int | None]:
        return check_destination(path)
