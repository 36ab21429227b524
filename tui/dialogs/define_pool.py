"""pool-define-as as a form: one set of fields per pool type, a live XML preview, source
discovery (find-storage-pool-sources) and a device picker, both run in thread workers.
Which fields, hints and checks a type gets comes from its PoolFeatures (its driver):
nothing here names a pool type."""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from rich.segment import Segment
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Button, Input, Label, OptionList, Select, SelectionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist
from textual.widgets.selection_list import Selection
from textual.worker import Worker, WorkerState

from backends import xmlio
from backends.errors import InvalidName, PoolkeeperError, ValidationError
from backends.model import (
    AuthSecret,
    PoolDef,
    PoolFeatures,
    PoolSource,
    PoolTarget,
    SourceAuth,
    SourceDevice,
    SourceHost,
)
from backends.names import check_name
from backends.units import human
from backends.volume_requests import Refusal

from ..shown import shown, shown_xml
from .base import Dialog, Evaluation
from .checked import Check as BackEndCheck
from .checked import CheckedForm
from .fields import Field, bare_message, field, text_input
from .sources import describe_source, parse_sources

Discover = Callable[[str, str | None], str]
# (path, size in bytes, what is on it in words): Controller.block_devices
Devices = Callable[[], list[tuple[str, int, str]]]

# How block_devices words a device someone uses (blockprobe.device_users).
_IN_USE = re.compile(r"(?:^|; )(?:mounted at|held by|open by|claimed by) ")
REQUIRED: dict[str, str] = {
    "name": "the pool name is required",
    "target": "the target path is required",
    "host": "the server's host name or address is required",
    "srcdir": "the exported directory is required, e.g. /export/images",
    "device": "the source device is required, e.g. /dev/sdb",
    "target_iqn": "the target IQN is required, e.g. iqn.2013-06.com.example:target0",
    "initiator": "the initiator IQN is required for iscsi-direct",
}
LABELS = {
    "type": "Type", "name": "Name", "target": "Target path", "host": "Host",
    "port": "Port", "srcdir": "Source dir", "device": "Device", "vg": "Volume group",
    "target_iqn": "Target IQN", "format": "Format", "initiator": "Initiator IQN",
    "chap_user": "CHAP user", "chap_secret": "Secret usage",
}
_ELEMENT_FIELD = {
    "host": "host", "dir": "srcdir", "path": "target", "target": "target", "iqn": "initiator",
    "auth": "chap_user", "secret": "chap_secret", "format": "format", "pool": "type",
}


def _pickable(features: PoolFeatures) -> bool:
    """The picker fills the device field: local block devices, not IQNs."""
    return "device" in features.form_fields


def split_devices(text: str) -> list[str]:
    return [d for d in re.split(r"[,\s]+", text) if d]


def device_in_use(what: str) -> bool:
    return bool(_IN_USE.search(what))


def device_line(path: str, size: int, what: str) -> Content:
    """One picker line: "PATH  SIZE  what"; a device in use says so (and is dimmed).
    Escaped (tui.shown): a filesystem label is whatever its maker wrote."""
    path, what = shown(path), shown(what)
    if device_in_use(what):
        return Content(f"{path}  {human(size)}  in use: {what}").stylize("dim")
    return Content(f"{path}  {human(size)}  {what}")


class DevicePicker(SelectionList[str]):
    """A SelectionList whose check boxes stay ASCII in ASCII mode, and whose mark shows
    its state in the glyph, not only in colour: Textual draws an X on and off and tells
    them apart by colour only; here an unmarked box is blank ([X] / [ ])."""

    _ASCII = {"\u2590": "[", "\u258c": "]"}

    def __init__(self, *, ascii: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.ascii = ascii

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        if len(segments) > 3 and not self._marked(y):  # [left, X, right, " ", prompt...]
            inner = segments[1]
            segments[1] = Segment(" " * len(inner.text), inner.style, inner.control)
        if self.ascii:
            segments = [Segment(self._ASCII.get(seg.text, seg.text), seg.style, seg.control)
                        for seg in segments]
        return Strip(segments, strip.cell_length)

    def _marked(self, y: int) -> bool:
        try:
            option = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return True  # not an option's line: left as it is
        return option.value in self._selected


class DefinePoolDialog(CheckedForm[PoolDef], Dialog[PoolDef | None]):
    """`check`: the controller's check_pool_def (the name, the type's rules, a target or
    source another pool has), run before it closes; `typed`, `refused`: the form opened
    again after the define was refused anyway (CheckedForm)."""

    heading = "Define a storage pool"
    submit_label = "Define"

    DEFAULT_CSS = """
    DefinePoolDialog > #dialog { width: 100%; max-width: 132; }
    DefinePoolDialog #columns { height: auto; }
    DefinePoolDialog #form { width: 1fr; height: auto; }
    DefinePoolDialog #preview-pane {
        width: 1fr; height: auto; margin: 0 0 0 1; padding: 0 0 0 1;
        border-left: vkey $primary-muted;
    }
    DefinePoolDialog.ascii #preview-pane { border-left: ascii $primary-muted; }
    DefinePoolDialog #preview-title { color: $text-muted; }
    DefinePoolDialog #preview.error { color: $text-error; }
    DefinePoolDialog Field > .row > .label { width: 14; }
    DefinePoolDialog Field > InlineMessage { padding: 0 0 0 2; }
    DefinePoolDialog #discover { min-width: 10; }
    DefinePoolDialog #discover-row { height: auto; margin: 1 0 0 0; }
    DefinePoolDialog #discover-status { width: 1fr; padding: 0 0 0 2; }
    DefinePoolDialog #discover-status.error { color: $text-error; }
    DefinePoolDialog #discover-status.hint { color: $text-muted; }
    DefinePoolDialog #found { height: auto; max-height: 5; }
    DefinePoolDialog #pick-row { height: auto; margin: 1 0 0 0; }
    DefinePoolDialog #pick { min-width: 10; }
    DefinePoolDialog #pick-status { width: 1fr; padding: 0 0 0 2; color: $text-muted; }
    DefinePoolDialog #pick-status.error { color: $text-error; }
    DefinePoolDialog #device-list { height: auto; max-height: 8; }
    """

    def __init__(self, discover: Discover, *, types: Mapping[str, PoolFeatures],
                 pool_type: str | None = None, devices: Devices | None = None,
                 ascii: bool = False, check: BackEndCheck | None = None,
                 typed: Mapping[str, object] | None = None,
                 refused: tuple[PoolDef, Refusal] | None = None) -> None:
        self.init_checked(check, typed, refused)
        if typed and isinstance(typed.get("type"), str):
            pool_type = str(typed["type"])  # its fields shown from the start
        self.discover = discover
        self.devices = devices
        self.types = dict(types)  # in the order the Type list shows them
        self.initial_type = pool_type if pool_type in self.types else next(iter(self.types))
        self.found: list[PoolSource] = []
        self.preview_error: str | None = None
        self._target_default = self.types[self.initial_type].default_target
        super().__init__(ascii=ascii)

    # -- layout --------------------------------------------------------------------------
    def compose_body(self) -> ComposeResult:
        t = self.initial_type
        with Horizontal(id="columns"):
            with Vertical(id="form"):
                yield field("Type", Select.from_values(self.types, value=t, allow_blank=False,
                                                       id="type", compact=True))
                yield field("Name", text_input("name"))
                yield field("Target path", text_input(
                    "target", self._target_default, self.types[t].target_placeholder))
                yield field("Host", text_input("host", placeholder="server name or address"))
                yield field("Port", text_input("port", placeholder="default"))
                yield field("Source dir", text_input("srcdir", placeholder="/export/images"))
                yield field("Device", text_input("device", placeholder="/dev/sdb"))
                yield field("Volume group", text_input("vg", placeholder="same as the name"))
                yield field("Target IQN", text_input(
                    "target_iqn", placeholder="iqn.2013-06.com.example:target0"))
                yield field("Format", Select(self._format_options(t), prompt="(default)",
                                             id="format", compact=True))
                yield field("Initiator IQN", text_input(
                    "initiator", placeholder="iqn.2013-06.com.example:host1"))
                yield field("CHAP user", text_input("chap_user", placeholder="(no auth)"))
                yield field("Secret usage", text_input(
                    "chap_secret", placeholder="the secret's usage name"))
                with Horizontal(id="discover-row"):
                    yield Button("Discover", id="discover", compact=True)
                    yield Static("", id="discover-status", markup=False)
                yield OptionList(id="found", compact=True)
            with Vertical(id="preview-pane"):
                yield Label("XML preview", id="preview-title")
                yield Static("", id="preview", markup=False)
        # Under both columns: device lines are long ("PATH  SIZE  what is on it").
        with Horizontal(id="pick-row"):
            yield Button("Pick devices", id="pick", compact=True)
            yield Static("", id="pick-status", markup=False)
        yield DevicePicker(id="device-list", compact=True, ascii=self.ascii)

    def _format_options(self, pool_type: str) -> list[tuple[str, str]]:
        return [(f, f) for f in self.types[pool_type].pool_formats]

    def focus_first(self) -> None:
        """The name: the first field one types into (the type is chosen from a list, and
        shift+tab reaches it)."""
        self.query_one("#name", Input).focus()

    def setup(self) -> None:
        self.query_one("#found").display = False
        self.query_one("#device-list").display = False
        self._show_fields(self.initial_type)
        self._status("")
        with self.prevent(Select.Changed):
            self.restore_typed()

    def refusal_field(self, refusal: Refusal) -> str | None:
        """The field that holds the part of the definition the back end refused."""
        shown = self.features.form_fields
        cid = self._field_of(ValidationError(refusal.message, refusal.element or None), shown)
        return cid if cid in shown and refusal.element else None

    def finish(self, result: PoolDef) -> Awaitable[PoolDef | None]:
        return self.checked(result)

    # -- reading the form ----------------------------------------------------------------
    @property
    def pool_type(self) -> str:
        value = self.query_one("#type", Select).value
        return value if isinstance(value, str) else self.initial_type

    @property
    def features(self) -> PoolFeatures:
        return self.types[self.pool_type]

    def _value(self, control_id: str) -> str:
        return self.query_one(f"#{control_id}", Input).value.strip()

    def _show_fields(self, pool_type: str) -> None:
        features = self.types[pool_type]
        wanted = set(features.form_fields) | {"type"}
        for fld in self.query("#form Field").results(Field):
            fld.display = fld.id.removeprefix("field-") in wanted  # type: ignore[union-attr]
        many = features.source.many_devices
        self.query_one("#field-device .label", Label).update("Devices" if many else "Device")
        self.query_one("#device", Input).placeholder = (
            "/dev/sdb, /dev/sdc" if many else "/dev/sdb")
        self.query_one("#target", Input).placeholder = features.target_placeholder
        self.query_one("#discover-row").display = features.discoverable
        self.query_one("#pick-row").display = self.devices is not None and _pickable(features)
        self.query_one("#pick", Button).label = "Pick devices" if many else "Pick a device"

    def on_form_change(self, widget: Widget) -> None:
        if widget.id == "type":
            self._type_changed(self.pool_type)
        elif widget.id == "device":
            self._sync_picker()
        self.refresh_form()

    def _type_changed(self, pool_type: str) -> None:
        fmt = self.query_one("#format", Select)
        with self.prevent(Select.Changed):
            fmt.set_options(self._format_options(pool_type))
        target = self.query_one("#target", Input)
        if target.value in ("", self._target_default):
            self._target_default = self.types[pool_type].default_target
            with self.prevent(Input.Changed):
                target.value = self._target_default
        self.found = []
        self.query_one("#found", OptionList).clear_options()
        self.query_one("#found").display = False
        self._status("")
        self._close_picker()
        self._show_fields(pool_type)

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self) -> Evaluation[PoolDef | None]:
        ev: Evaluation[PoolDef | None] = Evaluation()
        ptype = self.pool_type
        shown = self.features.form_fields
        pdef = self._build(ptype, shown, ev)
        if ev.ok:
            checked = copy.deepcopy(pdef)
            try:
                xmlio.validate_pool(checked)
            except ValidationError as exc:
                ev.error(self._field_of(exc, shown), bare_message(exc))
                self.preview_error = str(exc)
            else:
                ev.result = checked
                self.preview_error = None
                self.show_refusal(ev)
                if ev.result is None and self.refused is not None:
                    self.preview_error = self.refused[1].message
        else:
            first = next((cid for cid in shown if cid in ev.messages
                          and ev.messages[cid][1] == "error"), None)
            if first is not None:
                self.preview_error = f"{LABELS[first]}: {ev.messages[first][0]}"
        return ev

    def _build(self, ptype: str, shown: tuple[str, ...],
               ev: Evaluation[PoolDef | None]) -> PoolDef:
        features = self.types[ptype]
        v = {cid: self._value(cid) for cid in shown if cid != "format"}
        for cid, text in REQUIRED.items():
            if cid in shown and not v.get(cid):
                if cid == "name" and features.source.name and v.get("vg"):
                    continue  # libvirt: the pool name defaults to the volume group's
                if cid == "target" and features.target_automatic:
                    continue  # it follows from the source (/dev/VG)
                if cid == "initiator" and not features.source.initiator[1]:
                    continue  # iscsiadm has the host's own
                ev.error(cid, text)
        if v.get("name"):
            try:
                check_name(v["name"], "name")
            except InvalidName as exc:
                ev.error("name", bare_message(exc))
        src = PoolSource()
        port: int | None = None
        if v.get("port"):
            if v["port"].isdigit() and 1 <= int(v["port"]) <= 65535:
                port = int(v["port"])
            else:
                ev.error("port", f"port '{v['port']}' must be a number from 1 to 65535")
        if "host" in shown and v["host"]:
            src.hosts = [SourceHost(v["host"], port)]
        if "device" in shown:
            devices = split_devices(v["device"])
            if len(devices) > 1 and not features.source.many_devices:
                ev.error("device", f"{features.a_pool} takes one device")
            src.devices = [SourceDevice(d) for d in devices]
        if "target_iqn" in shown and v["target_iqn"]:
            src.devices = [SourceDevice(v["target_iqn"])]
        if "srcdir" in shown and v["srcdir"]:
            src.dir = v["srcdir"]
        if "vg" in shown and v["vg"]:
            src.name = v["vg"]
        if "format" in shown:
            fmt = self.query_one("#format", Select).value
            src.format = fmt if isinstance(fmt, str) else None
        if "initiator" in shown and v["initiator"]:
            src.initiator_iqn = v["initiator"]
        if "chap_user" in shown and (v["chap_user"] or v["chap_secret"]):
            if not v["chap_user"]:
                ev.error("chap_user", "give the CHAP user name too (or clear the secret)")
            elif not v["chap_secret"]:
                ev.error("chap_secret", "give the secret's usage name too (or clear the user)")
            else:
                src.auth = SourceAuth("chap", v["chap_user"], AuthSecret(usage=v["chap_secret"]))
        target = PoolTarget(path=v.get("target") or None)
        return PoolDef(type=ptype, name=v.get("name", ""), source=src, target=target)

    @staticmethod
    def _field_of(exc: ValidationError, shown: tuple[str, ...]) -> str:
        element = exc.element or ""
        text = str(exc)
        source_device = "target_iqn" if "target_iqn" in shown else "device"
        if element == "name":
            return "vg" if "volume group" in text or "<source><name>" in text else "name"
        if element == "device":
            return source_device
        if element == "source":
            for marker, cid in (("<host", "host"), ("<dir", "srcdir"),
                                ("<initiator", "initiator")):
                if marker in text:
                    return cid
            return source_device
        return _ELEMENT_FIELD.get(element, "name")

    def after_refresh(self, ev: Evaluation[PoolDef | None]) -> None:
        preview = self.query_one("#preview", Static)
        if ev.result is not None:
            preview.update(shown_xml(xmlio.format_pool(ev.result).rstrip("\n"), self.ascii))
            preview.remove_class("error")
        else:
            preview.update(shown(self.preview_error or "", self.ascii))
            preview.add_class("error")

    # -- discovery -----------------------------------------------------------------------
    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#discover-status", Static)
        status.update(shown(text, self.ascii) or self.features.discover_hint or "")
        status.set_class(error, "error")
        status.set_class(not text, "hint")

    @on(Button.Pressed, "#discover")
    def start_discovery(self, event: Button.Pressed | None = None) -> None:
        if event is not None:
            event.stop()
        ptype = self.pool_type
        host: str | None = None
        if self.features.source.needs_host:
            host = self._value("host") or None
            if host is None:
                self.touched.add("host")
                self.query_one("#field-host", Field).show(
                    "enter the host to discover what it offers")
                self.query_one("#host", Input).focus()
                return
        self.query_one("#discover", Button).disabled = True
        self.query_one("#found").display = False
        self._status("discovering..." if self.ascii else "discovering\u2026")
        self.run_worker(partial(self._discover, ptype, host), thread=True, exclusive=True,
                        group="discover", exit_on_error=False, name=ptype)

    def _discover(self, pool_type: str, host: str | None) -> list[PoolSource]:
        # Runs in a thread: the callable does I/O (network, devices); parsing goes along.
        return parse_sources(self.discover(pool_type, host))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        if worker.group == "devices":
            self._devices_listed(worker, event.state)
            return
        if worker.group != "discover":
            return
        self.query_one("#discover", Button).disabled = False
        if worker.name != self.pool_type:
            self._status("")  # the type changed meanwhile: the results are for another one
            return
        if event.state == WorkerState.ERROR:
            err = worker.error
            msg = str(err) if isinstance(err, PoolkeeperError) else f"{type(err).__name__}: {err}"
            self._status(f"discovery failed: {msg}", error=True)
            return
        self.found = list(worker.result or [])
        found = self.query_one("#found", OptionList)
        found.clear_options()
        if not self.found:
            self._status("no sources found")
            return
        found.add_options([Option(Content(shown(describe_source(s), self.ascii)))
                           for s in self.found])
        found.display = True
        n = len(self.found)
        self._status(f"found {n} source{'s' if n > 1 else ''}: choose one")
        found.highlighted = 0
        found.focus()

    @on(OptionList.OptionSelected, "#found")
    def _source_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.use_source(self.found[event.option_index])

    def use_source(self, src: PoolSource) -> None:
        """Fill the source fields from a discovered source."""
        ptype = self.pool_type
        values: dict[str, str] = {}
        if src.hosts:
            values["host"] = src.hosts[0].name
            values["port"] = str(src.hosts[0].port) if src.hosts[0].port else ""
        if src.devices:
            key = "target_iqn" if "target_iqn" in self.features.form_fields else "device"
            values[key] = ", ".join(d.path for d in src.devices)
        if src.dir is not None:
            values["srcdir"] = src.dir
        if src.name is not None:
            values["vg"] = src.name
            if not self._value("name"):
                values["name"] = src.name
        if src.initiator_iqn:
            values["initiator"] = src.initiator_iqn
        for cid, value in values.items():
            self.query_one(f"#{cid}", Input).value = value
        fmt = self.query_one("#format", Select)
        if src.format and src.format in self.types[ptype].pool_formats:
            fmt.value = src.format
        self.query_one("#found").display = False
        self._status(f"using {describe_source(src)}")
        self.refresh_form()
        self.query_one("#name" if not self._value("name") else "#submit").focus()


    # -- device picker -------------------------------------------------------------------
    def _pick_status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#pick-status", Static)
        status.update(shown(text, self.ascii))
        status.set_class(error, "error")

    def _close_picker(self) -> None:
        picker = self.query_one("#device-list", DevicePicker)
        picker.clear_options()
        picker.display = False
        self._pick_status("")

    @on(Button.Pressed, "#pick")
    def start_picking(self, event: Button.Pressed | None = None) -> None:
        if event is not None:
            event.stop()
        if self.devices is None:
            return
        self.query_one("#pick", Button).disabled = True
        self._close_picker()
        self._pick_status("reading the devices..." if self.ascii
                          else "reading the devices\u2026")
        self.run_worker(self.devices, thread=True, exclusive=True, group="devices",
                        exit_on_error=False, name="devices")

    def _devices_listed(self, worker: Worker[Any], state: WorkerState) -> None:
        self.query_one("#pick", Button).disabled = False
        if not _pickable(self.features):
            self._pick_status("")  # the type changed meanwhile
            return
        if state == WorkerState.ERROR:
            err = worker.error
            msg = str(err) if isinstance(err, PoolkeeperError) else f"{type(err).__name__}: {err}"
            self._pick_status(f"could not list the devices: {msg}", error=True)
            return
        rows = list(worker.result or [])
        if not rows:
            self._pick_status("no devices found")
            return
        chosen = set(split_devices(self._value("device")))
        picker = self.query_one("#device-list", DevicePicker)
        picker.clear_options()
        picker.add_options([
            Selection(device_line(path, size, what), path, path in chosen,
                      disabled=device_in_use(what))
            for path, size, what in rows])
        picker.display = True
        self._pick_status("space marks the devices" if self.features.source.many_devices
                          else "space chooses one")
        picker.highlighted = next(
            (i for i, (_p, _s, what) in enumerate(rows) if not device_in_use(what)), None)
        picker.focus()

    @on(SelectionList.SelectionToggled, "#device-list")
    def _device_toggled(self, event: SelectionList.SelectionToggled[str]) -> None:
        event.stop()
        picker = self.query_one("#device-list", DevicePicker)
        value = event.selection.value
        listed = [picker.get_option_at_index(i).value for i in range(picker.option_count)]
        if self.features.source.many_devices:
            # Keep what was typed by hand that the picker does not list.
            kept = [d for d in split_devices(self._value("device")) if d not in listed]
            paths = kept + [p for p in listed if p in picker.selected]
        else:
            for other in picker.selected:
                if other != value:
                    picker.deselect(other)
            paths = [value] if value in picker.selected else []
        self.query_one("#device", Input).value = ", ".join(paths)

    def _sync_picker(self) -> None:
        """The check marks follow the device field when it is edited by hand."""
        picker = self.query_one("#device-list", DevicePicker)
        if not picker.display:
            return
        wanted = set(split_devices(self._value("device")))
        for i in range(picker.option_count):
            value = picker.get_option_at_index(i).value
            if (value in wanted) != (value in picker.selected):
                (picker.select if value in wanted else picker.deselect)(value)
