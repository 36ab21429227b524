"""vol-clone, vol-resize, vol-wipe and vol-delete (one or several volumes)."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from functools import partial

from textual.app import ComposeResult
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Input, RadioSet, Select, Static
from textual.worker import Worker, WorkerState

from backends.errors import InvalidName
from backends.model import WIPE_ALGORITHMS, PoolStatus, VolumeInfo
from backends.names import check_name
from backends.units import human
from backends.volume_requests import Refusal

from ..shown import shown
from .base import Dialog, Evaluation
from .checked import Check as BackEndCheck
from .checked import CheckedForm
from .fields import (
    Check,
    Invalid,
    TypedConfirm,
    bare_message,
    field,
    parse_size_text,
    radio_set,
    radio_value,
    text_input,
)
from .results import CloneRequest, DeleteVolumesRequest, ResizeRequest, WipeRequest

WIPE_DESCRIPTIONS = {
    "zero": "write zeros (a sparse file just drops its blocks)",
    "nnsa": "4 passes, NNSA NAP-14.1-C (needs scrub)",
    "dod": "4 passes, DoD 5220.22-M (needs scrub)",
    "bsi": "9 passes, German BSI (needs scrub)",
    "gutmann": "35 passes, Gutmann (needs scrub)",
    "schneier": "7 passes, Bruce Schneier (needs scrub)",
    "pfitzner7": "7 random passes, Roy Pfitzner (needs scrub)",
    "pfitzner33": "33 random passes, Roy Pfitzner (needs scrub)",
    "random": "1 pass of random data",
    "trim": "discard blocks / punch holes (fast, if supported)",
}


def clone_name(name: str) -> str:
    """'disk.qcow2' -> 'disk-clone.qcow2'; 'disk' -> 'disk-clone'."""
    stem, ext = os.path.splitext(name)
    return f"{stem}-clone{ext}"


class CloneVolumeDialog(CheckedForm[CloneRequest], Dialog[CloneRequest | None]):
    """`check`: the controller's check_clone, run before it closes (the target pool's
    rules: a partition's name in a disk pool, the room); `suggest`: the name a target
    pool requires (Controller.volume_name_for), put in the name while it is not one the
    user typed; `typed` and `refused`: a form opened again after the clone was refused
    (CheckedForm)."""

    submit_label = "Clone"

    def __init__(self, volume: VolumeInfo, pools: Sequence[PoolStatus], current_pool: str,
                 existing: Collection[str], *, ascii: bool = False,
                 check: BackEndCheck | None = None,
                 suggest: Callable[[str], str | None] | None = None,
                 typed: Mapping[str, object] | None = None,
                 refused: tuple[CloneRequest, Refusal] | None = None) -> None:
        self.init_checked(check, typed, refused)
        self.suggest = suggest
        self.filled = {clone_name(volume.name)}  # names the form put there, not the user
        self.volume = volume
        self.current_pool = current_pool
        self.pools = {p.name: p for p in pools if p.active or p.name == current_pool}
        self.existing = set(existing)  # names in current_pool
        self.heading = f"Clone volume '{volume.name}'"
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        v = self.volume
        yield Static(f"{v.format}, capacity {human(v.capacity)}, allocation "
                     f"{human(v.allocation)}", markup=False, classes="intro")
        yield field("New name", text_input("new_name", clone_name(v.name)))
        names = sorted(self.pools)
        yield field("Target pool", Select([(Content(shown(n, self.ascii)), n) for n in names],
                                          value=self.current_pool, allow_blank=False,
                                          id="pool", compact=True))
        formats = list(dict.fromkeys([v.format, "raw", "qcow2"]))
        yield field("Format", Select.from_values(formats, value=v.format, allow_blank=False,
                                                 id="format", compact=True))

    def setup(self) -> None:
        if self.typed:  # a name the user typed, not one to replace with the pool's
            self.filled.discard(str(self.typed.get("new_name", "")))
        self.restore_typed()

    def _target(self) -> PoolStatus | None:
        value = self.query_one("#pool", Select).value
        return self.pools.get(value) if isinstance(value, str) else None

    def after_refresh(self, ev: Evaluation[CloneRequest | None]) -> None:
        target = self._target()
        self.query_one("#field-format").display = (
            target is not None and target.type_features.volumes_are_files)

    def evaluate(self) -> Evaluation[CloneRequest | None]:
        ev: Evaluation[CloneRequest | None] = Evaluation()
        name = self.query_one("#new_name", Input).value
        try:
            check_name(name, "name")
        except InvalidName as exc:
            ev.error("new_name", bare_message(exc))
        target = self._target()
        if target is None:
            ev.error("pool", "choose the pool to clone into")
            return ev
        if target.name == self.current_pool and name in self.existing:
            ev.error("new_name", f"a volume named '{name}' already exists in pool "
                                 f"'{target.name}'")
        if target.available is not None:
            if self.volume.allocation > target.available:
                ev.error("pool", f"the clone needs up to {human(self.volume.allocation)}; "
                                 f"'{target.name}' has {human(target.available)} available")
            else:
                ev.note("pool", f"{human(target.available)} available")
        fmt = self.volume.format
        if target.type_features.volumes_are_files:
            value = self.query_one("#format", Select).value
            fmt = value if isinstance(value, str) else fmt
        if ev.ok:
            ev.result = CloneRequest(new_name=name, target_pool=target.name, format=fmt)
            self.show_refusal(ev)
        return ev

    def on_form_change(self, widget: Widget) -> None:
        target = self._target()
        if widget.id == "pool" and target is not None and self.suggest is not None:
            self.run_worker(partial(self.suggest, target.name), thread=True, exclusive=True,
                            group="suggest", name=target.name, exit_on_error=False)
        self.refresh_form()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The name the chosen pool requires, once read, unless the user typed one."""
        worker = event.worker
        target = self._target()
        if worker.group != "suggest" or event.state != WorkerState.SUCCESS or \
                target is None or worker.name != target.name:
            return
        name = self.query_one("#new_name", Input)
        if name.value in self.filled:
            suggested = worker.result or clone_name(self.volume.name)
            self.filled.add(suggested)
            name.value = suggested

    def refusal_field(self, refusal: Refusal) -> str | None:
        fields = {"name": "new_name", "capacity": "pool", "allocation": "pool"}
        if self.query_one("#field-format").display:
            fields["format"] = "format"
        return fields.get(refusal.element)

    def finish(self, result: CloneRequest) -> Awaitable[CloneRequest | None]:
        return self.checked(result)


_DELTA_RE = re.compile(r"^\s*([+-])\s*(.*)$")


class ResizeVolumeDialog(CheckedForm[ResizeRequest], Dialog[ResizeRequest | None]):
    """`check`: the controller's check_resize, run before it closes (the pool type's rules:
    a partition grows only into the free space after it, an LV's snapshot or thin volume,
    a user of the volume); `typed` and `refused`: a form opened again after the resize was
    refused (CheckedForm). The shrink confirmation is never kept: it is typed again."""

    submit_label = "Resize"

    def __init__(self, volume: VolumeInfo, available: int, *, ascii: bool = False,
                 check: BackEndCheck | None = None,
                 typed: Mapping[str, object] | None = None,
                 refused: tuple[ResizeRequest, Refusal] | None = None) -> None:
        self.init_checked(check, typed, refused)
        self.volume = volume
        self.available = available
        self.heading = f"Resize volume '{volume.name}'"
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        v = self.volume
        yield Static(
            f"capacity {human(v.capacity)}, allocation {human(v.allocation)}; maximum "
            f"{human(v.capacity + self.available)} ({human(self.available)} available)",
            markup=False, classes="intro")
        yield field("New size", text_input("size", placeholder="e.g. 20G, +2G or -1G"))
        yield field("", Check("shrink: the data past the new end is discarded",
                              ascii=self.ascii, id="shrink"))
        yield field("", Check("allocate the new space now", ascii=self.ascii, id="allocate"))
        yield TypedConfirm(v.name, id="confirm")

    def _new_size(self) -> int | None:
        """The absolute size typed, or None if empty; Invalid if not a size."""
        text = self.query_one("#size", Input).value.strip()
        if not text:
            return None
        m = _DELTA_RE.match(text)
        if m is None:
            return parse_size_text(text, "capacity")
        delta = parse_size_text(m.group(2), "capacity")
        if m.group(1) == "+":
            return self.volume.capacity + delta
        if delta >= self.volume.capacity:
            raise Invalid(f"cannot shrink {human(self.volume.capacity)} by {human(delta)}")
        return self.volume.capacity - delta

    def _shrinking(self) -> bool:
        try:
            new = self._new_size()
        except Invalid:
            return False
        return new is not None and new < self.volume.capacity

    def after_refresh(self, ev: Evaluation[ResizeRequest | None]) -> None:
        self.query_one("#field-allocate").display = self.volume.format == "raw"
        confirm = self.query_one("#confirm", TypedConfirm)
        shrinking = self._shrinking()
        if confirm.display != shrinking:
            confirm.display = shrinking
            self.refresh_form()

    def setup(self) -> None:
        self.query_one("#confirm").display = False
        self.restore_typed()

    def refusal_field(self, refusal: Refusal) -> str | None:
        fields = {"capacity": "size", "allocation": "allocate" if
                  self.query_one("#field-allocate").display else "size"}
        return fields.get(refusal.element)

    def finish(self, result: ResizeRequest) -> Awaitable[ResizeRequest | None]:
        return self.checked(result)

    def evaluate(self) -> Evaluation[ResizeRequest | None]:
        ev: Evaluation[ResizeRequest | None] = Evaluation()
        v = self.volume
        shrink = self.query_one("#shrink", Check).value
        allocate = v.format == "raw" and self.query_one("#allocate", Check).value
        try:
            new = self._new_size()
        except Invalid as exc:
            ev.error("size", str(exc))
            return ev
        if new is None:
            ev.error("size", "give the new size, e.g. 20G, +2G or -1G")
            return ev
        ev.note("size", f"= {human(new)}")
        if new == 0:
            ev.error("size", "a volume cannot be resized to 0 bytes")
        elif new == v.capacity:
            ev.error("size", f"that is the current size ({human(v.capacity)})")
        elif new < v.capacity and not shrink:
            ev.error("size", f"{human(new)} is smaller than {human(v.capacity)}: tick "
                             "shrink to discard the data past the new end")
        elif new > v.capacity:
            if shrink:
                ev.error("shrink", "untick shrink: the volume grows")
            grow = new - (v.allocation if allocate else v.capacity)
            if allocate and grow > self.available:
                ev.error("size", f"allocating {human(grow)} more is more than the "
                                 f"{human(self.available)} available")
            elif new - v.capacity > self.available:
                ev.warn("size", f"{human(new)} is more than the maximum "
                                f"{human(v.capacity + self.available)}: the pool is "
                                "overcommitted")
        if ev.ok:
            ev.result = ResizeRequest(capacity=new, shrink=new < v.capacity, allocate=allocate)
            self.show_refusal(ev)
        return ev


class WipeVolumeDialog(Dialog[WipeRequest | None]):
    submit_label = "Wipe"
    submit_variant = "error"

    def __init__(self, volume: VolumeInfo, algorithms: Sequence[str] = WIPE_ALGORITHMS, *,
                 ascii: bool = False) -> None:
        self.volume = volume
        self.algorithms = tuple(algorithms) or ("zero",)  # what the pool type can do
        self.heading = f"Wipe volume '{volume.name}'"
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        v = self.volume
        yield Static(f"Every byte of '{shown(v.name, self.ascii)}' ({human(v.capacity)}) is "
                     "overwritten; "
                     "the data cannot be recovered.", markup=False,
                     classes="intro warning-text")
        width = max(len(a) for a in self.algorithms)
        yield radio_set([(a, f"{a:<{width}}  {WIPE_DESCRIPTIONS.get(a, '')}")
                         for a in self.algorithms], self.algorithms[0], id="algorithm",
                        ascii=self.ascii)
        yield TypedConfirm(v.name, id="confirm")

    def evaluate(self) -> Evaluation[WipeRequest | None]:
        algorithm = radio_value(self.query_one("#algorithm", RadioSet)) or self.algorithms[0]
        return Evaluation(result=WipeRequest(algorithm))


class DeleteVolumesDialog(Dialog[DeleteVolumesRequest | None]):
    submit_label = "Delete"
    submit_variant = "error"

    DEFAULT_CSS = """
    DeleteVolumesDialog #volumes { height: auto; max-height: 10; }
    DeleteVolumesDialog .refused { color: $text-warning; }
    """

    def __init__(self, volumes: Sequence[VolumeInfo], in_use: dict[str, str], *,
                 ascii: bool = False) -> None:
        self.volumes = list(volumes)
        self.in_use = dict(in_use)
        self.deletable = [v.name for v in self.volumes if v.name not in self.in_use]
        n = len(self.volumes)
        self.heading = (f"Delete volume '{self.volumes[0].name}'" if n == 1
                        else f"Delete {n} volumes")
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        lines: list[str] = []
        for v in self.volumes:
            reason = self.in_use.get(v.name)
            name = shown(v.name, self.ascii)
            if reason is None:
                lines.append(f"  {name}  ({v.format}, {human(v.capacity)})")
            else:  # process names come from /proc: any user sets their own
                lines.append(f"  {name}  REFUSED: in use by {shown(reason, self.ascii)}")
        deletable = len(self.deletable)
        if deletable == 0:
            intro = "Nothing can be deleted:"
        elif deletable == len(self.volumes):
            intro = "These volumes and their data are deleted:" if deletable > 1 else \
                "The volume and its data are deleted:"
        else:
            intro = f"{deletable} of {len(self.volumes)} volumes can be deleted; the " \
                    "others are in use:"
        yield Static(intro, markup=False)
        yield Static("\n".join(lines), markup=False, id="volumes")
        if deletable == 1:
            yield TypedConfirm(self.deletable[0], id="confirm")
        elif deletable > 1:
            yield TypedConfirm(str(deletable), id="confirm",
                               prompt=f"type '{deletable}' (the number of volumes) to confirm")

    def can_submit(self) -> bool:
        return bool(self.deletable)

    def evaluate(self) -> Evaluation[DeleteVolumesRequest | None]:
        if not self.deletable:
            return Evaluation(form=("every volume chosen is in use", "note"))
        return Evaluation(result=DeleteVolumesRequest(list(self.deletable)))
