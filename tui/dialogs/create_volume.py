"""vol-create-as as a form: name, capacity, format, backing volume, allocation, and LUKS
encryption with a stored secret (file pools, raw and qcow2)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace

from textual.app import ComposeResult
from textual.content import Content
from textual.widgets import Input, Select, Static
from textual.worker import Worker, WorkerState

from backends import xmlio
from backends.errors import InvalidName, ValidationError
from backends.model import (
    BackingStore,
    Encryption,
    EncryptionSecret,
    PoolFeatures,
    PoolStatus,
    VolumeDef,
    VolumeInfo,
    VolumeTarget,
)
from backends.names import check_name
from backends.units import human
from backends.volume_requests import Refusal

from ..shown import shown
from .base import Dialog, Evaluation
from .checked import Check as BackEndCheck
from .checked import CheckedForm
from .fields import Check, Invalid, bare_message, field, parse_size_text, text_input

# Formats that can sit on a backing file (qemu-img create -b).
BACKING_FORMATS = ("qcow2", "qcow", "qed", "vmdk")
ENCRYPTABLE_FORMATS = ("raw", "qcow2")  # LUKS: qemu's luks driver, qcow2 encrypt.format
SecretChoices = Callable[[], Sequence[tuple[str, str]]]  # -> (uuid, label) with a value


def allocation_applies(features: PoolFeatures, fmt: str | None) -> bool:
    """Raw files and logical volumes can be sparse or allocated; image formats are created
    sparse, and some volumes (a partition) are always fully allocated."""
    return not features.volumes_fully_allocated and fmt in (None, "raw")


class CreateVolumeDialog(CheckedForm[VolumeDef], Dialog[VolumeDef | None]):
    """`check`: the controller's check_volume_def for this pool, run before it closes;
    `suggest`: the name the storage requires (a partition's, Controller.volume_name_for),
    filled in while the name is empty; `secrets`: the stored secrets with a value, read in
    a thread, offered for LUKS encryption; `typed` and `refused`: a form opened again after
    the create was refused (CheckedForm)."""

    heading = "Create volume"
    submit_label = "Create"

    DEFAULT_CSS = """
    CreateVolumeDialog #field-sparse .label { width: 14; }
    """

    def __init__(
        self,
        pool: PoolStatus,
        formats: Sequence[str],
        default_format: str,
        backing_candidates: Sequence[VolumeInfo],
        *,
        existing: Collection[str] = (),
        ascii: bool = False,
        check: BackEndCheck | None = None,
        suggest: Callable[[], str | None] | None = None,
        secrets: SecretChoices | None = None,
        typed: Mapping[str, object] | None = None,
        refused: tuple[VolumeDef, Refusal] | None = None,
    ) -> None:
        self.init_checked(check, typed, refused)
        self.suggest = suggest
        self.secrets = secrets if pool.type_features.volumes_are_files else None
        self.secrets_loaded, self.secret_count = False, 0
        self.pool = pool
        self.formats = list(formats)
        self.default_format = default_format
        self.candidates = list(backing_candidates)
        self.existing = set(existing)
        self.heading = f"Create volume in pool '{pool.name}'"
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        p = self.pool
        yield Static(
            f"{p.type} pool '{shown(p.name, self.ascii)}'   available: {human(p.available)}",
            markup=False,
            classes="intro", id="available",
        )
        yield field("Name", text_input("name", placeholder="e.g. disk1.qcow2"))
        yield field("Capacity", text_input("capacity", placeholder="e.g. 10G or 512MiB"))
        if self.formats:
            value = self.default_format if self.default_format in self.formats else \
                self.formats[0]
            yield field("Format", Select.from_values(self.formats, value=value,
                                                      allow_blank=False, id="format",
                                                      compact=True))
        options = [(Content(f"{shown(c.name, self.ascii)} ({c.format}, {human(c.capacity)})"), i)
                   for i, c in enumerate(self.candidates)]
        yield field("Backing", Select(options, prompt="(none)", id="backing", compact=True))
        if self.secrets is not None:
            yield field("Encryption", Select([], prompt="(none)", id="encryption",
                                             compact=True))
        yield field("Allocation", Check("sparse: allocate nothing now", ascii=self.ascii,
                                        id="sparse"))
        yield field("", text_input("allocation", placeholder="all of it (= capacity)"),
                    classes="allocation")

    def setup(self) -> None:
        self.restore_typed()
        if self.suggest is not None and not self._value("name"):
            self.run_worker(self.suggest, thread=True, group="suggest", exit_on_error=False)
        if self.secrets is not None:
            self.run_worker(self.secrets, thread=True, group="secrets", exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The name the storage requires, once read: filled in unless one was typed. The
        secrets, once read: offered (the one chosen before a refusal chosen again)."""
        if event.worker.group == "secrets" and event.state in (WorkerState.SUCCESS,
                                                                WorkerState.ERROR):
            choices = event.worker.result if event.state == WorkerState.SUCCESS else []
            select = self.query_one("#encryption", Select)
            select.set_options([(Content(f"LUKS, secret {shown(label, self.ascii)}"), uuid)
                                for uuid, label in choices or []])
            self.secrets_loaded, self.secret_count = True, len(choices or [])
            if self.typed.get("encryption") in {uuid for uuid, _ in choices or []}:
                select.value = self.typed["encryption"]
            self.refresh_form()
            return
        if event.worker.group != "suggest" or event.state != WorkerState.SUCCESS:
            return
        name = self.query_one("#name", Input)
        if event.worker.result and not name.value:
            name.value = event.worker.result
            name.cursor_position = len(name.value)

    def refusal_field(self, refusal: Refusal) -> str | None:
        """Where the back end's refusal of a part of the volume goes."""
        element = refusal.element
        fields = {"name": "name", "capacity": "capacity", "backingStore": "backing"}
        if self._encryptable(self._format()):
            fields["encryption"] = fields["secret"] = "encryption"
        if self.formats:
            fields["format"] = "format"
        if element == "allocation":
            if not allocation_applies(self.pool.type_features, self._format()) or \
                    self._secret() is not None:
                return "capacity"
            return "sparse" if self.query_one("#sparse", Check).value else "allocation"
        return fields.get(element)

    def finish(self, result: VolumeDef) -> Awaitable[VolumeDef | None]:
        return self.checked(result)

    # -- reading the form ----------------------------------------------------------------
    def _format(self) -> str | None:
        if not self.formats:
            return None
        value = self.query_one("#format", Select).value
        return value if isinstance(value, str) else None

    def _encryptable(self, fmt: str | None) -> bool:
        return self.secrets is not None and fmt in ENCRYPTABLE_FORMATS

    def _secret(self) -> str | None:
        """The uuid of the secret chosen for LUKS encryption, or None (not encrypted)."""
        if not self._encryptable(self._format()):
            return None
        value = self.query_one("#encryption", Select).value
        return value if isinstance(value, str) else None

    def _backing(self) -> VolumeInfo | None:
        if self._format() not in BACKING_FORMATS or self._secret() is not None:
            return None
        value = self.query_one("#backing", Select).value
        return self.candidates[value] if isinstance(value, int) else None

    def _value(self, control_id: str) -> str:
        return self.query_one(f"#{control_id}", Input).value

    def after_refresh(self, ev: Evaluation[VolumeDef | None]) -> None:
        fmt = self._format()
        encrypted = self._secret() is not None
        self.query_one("#field-backing").display = fmt in BACKING_FORMATS and bool(
            self.candidates) and not encrypted
        if self.secrets is not None:
            self.query_one("#field-encryption").display = self._encryptable(fmt)
        # qemu-img makes a LUKS image sparse: no allocation to choose
        allocatable = allocation_applies(self.pool.type_features, fmt) and not encrypted
        sparse = self.query_one("#sparse", Check).value
        self.query_one("#field-sparse").display = allocatable
        self.query_one("#field-allocation").display = allocatable and not sparse

    def evaluate(self) -> Evaluation[VolumeDef | None]:
        ev: Evaluation[VolumeDef | None] = Evaluation()
        pool = self.pool
        name = self._value("name")
        try:
            check_name(name, "name")
        except InvalidName as exc:
            ev.error("name", bare_message(exc))
        if name in self.existing:
            ev.error("name", f"a volume named '{name}' already exists in pool '{pool.name}'")

        fmt = self._format()
        backing = self._backing()
        if backing is not None:
            ev.note("backing", f"{backing.path}")
        secret = self._secret()
        if secret is not None:
            ev.note("encryption", "the passphrase is the secret's value, never typed here")
        elif self._encryptable(fmt) and self.secrets_loaded and not self.secret_count:
            ev.note("encryption", "no secret has a value: define one (secret-define, "
                                  "secret-set-value) to encrypt")
        capacity: int | None = None
        cap_text = self._value("capacity").strip()
        if not cap_text:
            if backing is not None:
                ev.note("capacity", f"empty: the backing volume's {human(backing.capacity)}")
            else:
                ev.error("capacity", "give the capacity, e.g. 10G or 512MiB")
        else:
            try:
                capacity = parse_size_text(cap_text, "capacity")
                if capacity == 0:
                    ev.error("capacity", "capacity must be greater than 0")
            except Invalid as exc:
                ev.error("capacity", str(exc))

        allocatable = allocation_applies(pool.type_features, fmt) and secret is None
        allocation: int | None = None
        alloc_field = "capacity"  # where a 'not enough space' message goes
        if allocatable and self.query_one("#sparse", Check).value:
            allocation = 0
        elif allocatable and self._value("allocation").strip():
            alloc_field = "allocation"
            try:
                allocation = parse_size_text(self._value("allocation"), "allocation")
            except Invalid as exc:
                ev.error("allocation", str(exc))
            if allocation is not None and capacity is not None and allocation > capacity:
                ev.error("allocation", f"the allocation cannot be more than the capacity "
                                       f"({human(capacity)})")
        elif allocatable:
            allocation = capacity  # libvirt's default: fully allocated
        if allocatable and allocation is not None:  # what the choice does, in bytes
            ev.note("sparse", "allocates nothing now" if allocation == 0
                    else f"allocates {human(allocation)} now")
        self._space(ev, capacity, allocation, allocatable, alloc_field)

        if not ev.ok or (capacity is None and backing is None):
            return ev
        vdef = VolumeDef(
            name=name, capacity=capacity,
            allocation=allocation if allocatable else None,
            target=VolumeTarget(format=fmt, encryption=None if secret is None else Encryption(
                "luks", [EncryptionSecret(uuid=secret)])),
            backing=BackingStore(path=backing.path, format=backing.format) if backing else None,
        )
        try:
            xmlio.validate_volume(replace(vdef, target=replace(vdef.target)), pool.type)
        except ValidationError as exc:
            ev.form = (str(exc), "error")
            return ev
        ev.result = vdef
        self.show_refusal(ev)
        return ev

    def _space(self, ev: Evaluation[VolumeDef | None], capacity: int | None,
               allocation: int | None, allocatable: bool, alloc_field: str) -> None:
        available = self.pool.available
        if available is None or capacity is None:
            return
        if allocatable:
            needed = allocation or 0
        else:
            needed = capacity if self.pool.type_features.volumes_fully_allocated else 0
        if needed > available:
            fix = "make it sparse or smaller" if allocatable else "make it smaller"
            ev.error(alloc_field,
                     f"{human(needed)} is more than the {human(available)} available; {fix}")
        elif capacity > available:
            ev.warn("capacity", f"{human(capacity)} is more than the {human(available)} "
                                "available: the pool is overcommitted")
