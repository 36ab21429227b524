"""The main screen's volume keys: create (also in a free extent chosen on the extent bar or
in the table), clone, resize, wipe, upload, download, delete (the marked volumes, or the one
under the cursor) and copy path. Each opens its dialog; the verb runs in a worker (run_verb).

The create, clone and resize forms are checked by the back end before they close; when the
verb refuses what they asked anyway, at its start (the storage changed meanwhile) or in its
job (a tool refused it), the form opens again with what was typed and why, if the user is
still where it was asked (the main screen, that pool, no other screen). Otherwise a notice
says what failed, and the form's key opens it again with the input (`_again`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

from textual import work
from textual.widgets import Input

from backends import xmlio
from backends.errors import PoolkeeperError
from backends.jobs import Job
from backends.model import WIPE_ALGORITHMS, Extent, VolumeDef, VolumeInfo, VolumeTarget
from backends.volume_requests import Refusal
from backends.volume_requests import refusal as refusal_of

from .. import dialogs
from ..bridge import Outcome, batch_outcome
from ..widgets.extent_bar import ExtentBar
from ..widgets.volume_table import VolumeTable

if TYPE_CHECKING:
    from .main_base import MainScreenBase as _Screen
else:
    _Screen = object  # mixed into MainScreen, which is a MainScreenBase

ALIGN = 1 << 20  # where a partition may start
Reopen = Callable[[dict[str, object], tuple[Any, Refusal]], None]  # (typed, refused)


class Form(NamedTuple):
    """A checked form whose verb was submitted: the job it starts (`verb`, `job_pool`,
    `volume`: the job's kind, pool and volume), where it was asked (`pool`, `source`: the
    volume it was opened on), what it asked (`asked`, `typed`) and how it opens again."""

    verb: str
    key: str  # the key that opens it
    pool: str
    source: str | None
    job_pool: str
    volume: str
    asked: Any
    typed: dict[str, object]
    reopen: Reopen
    allocation_asked: bool = False


class VolumeActions(_Screen):
    """Mixin for MainScreen: the actions of the volume keys."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._submitted: list[Form] = []  # forms whose verb has not ended yet
        self._again: dict[tuple[str, str, str | None], Callable[[], None]] = {}

    # -- checked forms: submitted, refused, opened again ---------------------------------
    def _submit(self, form: Form, start: Callable[[], Job]) -> None:
        """Run the verb of `form` (`start` starts its job), minding its refusal."""
        self._submitted.append(form)
        self._start_form(form, start)

    @work(thread=True, group="verbs")
    def _start_form(self, form: Form, start: Callable[[], Job]) -> None:
        try:
            job = start()
        except PoolkeeperError as exc:  # the storage changed since the dialog's check
            self.app.call_from_thread(self._form_refused, form, exc)
            return
        except OSError as exc:
            self.app.call_from_thread(self._forget_form, form)
            self.app.notify(f"could not {form.verb} {form.volume}: {exc.strerror or exc}",
                            severity="error", timeout=15, markup=False)
            return
        self.app.call_from_thread(self._job_started, job)

    def _forget_form(self, form: Form) -> None:
        with contextlib.suppress(ValueError):
            self._submitted.remove(form)

    def _job_finished(self, job: Job) -> None:
        """A job a form started that failed opens the form again (_form_refused)."""
        form = next((f for f in self._submitted if (f.verb, f.job_pool, f.volume) ==
                     (job.kind, job.pool, job.volume)), None)
        if form is None:
            super()._job_finished(job)
            return
        self._forget_form(form)
        if job.state == "failed" and isinstance(job.error, PoolkeeperError):
            self._form_refused(form, job.error)
        else:
            super()._job_finished(job)

    def _form_refused(self, form: Form, exc: PoolkeeperError) -> None:
        """The form again, with what was typed and why, where the user still is; else a
        notice, and the form's key opens it again with the input."""
        self._forget_form(form)
        refused = (form.asked, refusal_of(exc, allocation_asked=form.allocation_asked))
        if self.selected == form.pool and self.app.screen is self:
            form.reopen(form.typed, refused)
            return
        self._again[(form.verb, form.pool, form.source)] = \
            lambda: form.reopen(form.typed, refused)
        where = f" on '{form.source}'" if form.source else ""
        self.notify(f"could not {form.verb} {form.volume}: {refused[1].message}; press "
                    f"{form.key}{where} in pool '{form.pool}' to open the form again with "
                    "what you typed", severity="error", timeout=20, markup=False)

    def _reopened(self, verb: str, pool: str, source: str | None) -> bool:
        """The form a refusal left to open again (see _form_refused), opened: True."""
        again = self._again.pop((verb, pool, source), None)
        if again is not None:
            again()
        return again is not None

    def _need_volume(self) -> VolumeInfo | None:
        return self.table.cursor_volume

    def action_create_volume(self, place: tuple[str, int, int] | None = None,
                             typed: Mapping[str, object] | None = None,
                             refused: tuple[VolumeDef, Refusal] | None = None) -> None:
        """`place`: (device, start, end) of a free extent chosen on the extent bar: the
        dialog opens with its size, and the volume is put at its start. The back end
        checks the volume before the dialog closes (the pool type's rules: a partition's
        name, a thin pool for a sparse LV, the room); `typed`, `refused`: the dialog opened
        again with what was typed when the create was refused anyway (a race)."""
        name, view = self.selected, self.view
        if name is None or view is None or view.features is None:
            return
        if place is None and typed is None and self._reopened("create", name, None):
            return
        volumes = self.table.all_volumes()

        def placed(vdef: VolumeDef) -> VolumeDef:
            if place is None:
                return vdef
            device, start, end = place
            return replace(vdef, source_devices=[(device, [Extent(start, end)])])

        def check(vdef: VolumeDef) -> Refusal | None:  # in a thread: it reads the storage
            return self.ctl.check_volume_def(name, placed(vdef))

        def suggest() -> str | None:  # in a thread, too
            size = place[2] - place[1] if place is not None else None
            return self.ctl.volume_name_for(name, placed(VolumeDef(name="", capacity=size)))

        ctl = self.calls_for(name)  # the secrets of the pool's host

        def secrets() -> list[tuple[str, str]]:  # in a thread: the secrets with a value
            return [(sdef.uuid, sdef.usage_text or sdef.uuid)
                    for sdef, has_value in ctl.list_secrets() if has_value]

        def done(vdef: Any) -> None:
            if vdef is None:
                return
            made = placed(vdef)
            self._submit(Form(
                "create", "c", name, None, name, made.name, vdef, dialog.typed,
                lambda typed, refused: self.action_create_volume(place, typed, refused),
                allocation_asked=bool(made.allocation)),
                lambda: self.ctl.create_volume_def(name, made))

        dialog = dialogs.CreateVolumeDialog(
            view.status, view.features.creatable_formats,
            view.features.default_volume_format or "raw",
            [v for v in volumes if v.error is None and v.type == "file" and not v.pending],
            existing={v.name for v in volumes}, ascii=self.ascii, check=check,
            suggest=suggest, secrets=secrets, typed=typed, refused=refused)
        self.app.push_screen(dialog, done)
        if place is not None and typed is None:
            size = place[2] - place[1]

            def prefill() -> None:
                with contextlib.suppress(Exception):  # the dialog may have closed already
                    dialog.query_one("#capacity", Input).value = f"{size // (1 << 20)}M"

            dialog.call_after_refresh(prefill)

    # -- free extents chosen on the extent bar or in the table ------------------------
    def on_extent_bar_segment_selected(self, event: ExtentBar.SegmentSelected) -> None:
        if event.user and event.volume:
            self.table.select(event.volume)

    def on_extent_bar_free_segment_chosen(self, event: ExtentBar.FreeSegmentChosen) -> None:
        self._create_in_free(event.device, event.start, event.end)

    def on_volume_table_free_row_activated(self, event: VolumeTable.FreeRowActivated) -> None:
        self._create_in_free(event.device, event.start, event.end)

    def _create_in_free(self, device: str, free_start: int, end: int) -> None:
        """Open the create dialog for the free extent [free_start, end) of `device`."""
        if self.disabled_reason("create_volume") is None:
            # Partitions start on a 1 MiB boundary: the first one at or after the extent's
            # start (a GPT disk's first free byte is 17408).
            start = -(-free_start // ALIGN) * ALIGN
            if start >= end:
                self.notify("that free extent is smaller than 1 MiB", severity="warning",
                            markup=False)
                return
            self.action_create_volume((device, start, end))
        else:
            self.notify(self.disabled_reason("create_volume") or "", severity="warning",
                        markup=False)

    def action_clone_volume(self) -> None:
        name, volume = self.selected, self._need_volume()
        if name is not None and volume is not None and \
                not self._reopened("clone", name, volume.name):
            self._open_clone(name, volume)

    def _open_clone(self, name: str, volume: VolumeInfo,
                    typed: Mapping[str, object] | None = None,
                    refused: tuple[dialogs.CloneRequest, Refusal] | None = None) -> None:
        """The clone dialog for `volume` of pool `name`; `typed`, `refused`: opened again
        with what was typed when the clone was refused anyway."""
        active = [p for p in self.pools.values() if p.active]
        if self.fleet is not None:  # a clone stays on its host (libvirt copies there)
            host = self.fleet.connection_of(name)
            active = [p for p in active if self.fleet.connection_of(p.name) == host]

        def xml(req: dialogs.CloneRequest) -> str | None:  # another format asked for
            return None if req.format == volume.format else xmlio.format_volume(VolumeDef(
                name=req.new_name, capacity=volume.capacity,
                target=VolumeTarget(format=req.format)))

        def check(req: dialogs.CloneRequest) -> Refusal | None:  # in a thread: it reads
            return self.ctl.check_clone(name, volume.name, req.new_name,
                                        target_pool=req.target_pool, xml=xml(req))

        def done(req: Any) -> None:
            if req is None:
                return
            self._submit(Form(
                "clone", "k", name, volume.name, req.target_pool, req.new_name, req,
                dialog.typed, lambda typed, refused: self._open_clone(
                    name, self._now(name, volume), typed, refused)),
                lambda: self.ctl.clone_volume(name, volume.name, req.new_name,
                                              target_pool=req.target_pool, xml=xml(req)))

        existing = {v.name for v in self.ctl.cached_volumes(name)}
        def suggest(pool: str) -> str | None:  # in a thread: a disk pool reads its table
            return self.ctl.volume_name_for(pool, VolumeDef(name="", capacity=volume.capacity))

        dialog = dialogs.CloneVolumeDialog(volume, active, name, existing, ascii=self.ascii,
                                           check=check, suggest=suggest, typed=typed,
                                           refused=refused)
        self.app.push_screen(dialog, done)

    def _now(self, pool: str, volume: VolumeInfo) -> VolumeInfo:
        """`volume` as the cache holds it now (its sizes may have changed), unless the
        pool was listed again meanwhile and its header is not read yet: a form never opens
        on a guess (a resize by +2G of a capacity shown as 0)."""
        now = self.ctl.cached_volumes(pool, [volume.name])
        return now[0] if now and not now[0].pending else volume

    def action_resize_volume(self) -> None:
        name, volume = self.selected, self._need_volume()
        if name is not None and volume is not None and \
                not self._reopened("resize", name, volume.name):
            self._open_resize(name, volume)

    def _open_resize(self, name: str, volume: VolumeInfo,
                     typed: Mapping[str, object] | None = None,
                     refused: tuple[dialogs.ResizeRequest, Refusal] | None = None) -> None:
        """The resize dialog for `volume` of pool `name`, checked by the back end before it
        closes; `typed`, `refused`: opened again when the resize was refused anyway."""
        view = self.view
        if view is None:
            return

        def check(req: dialogs.ResizeRequest) -> Refusal | None:  # in a thread: it reads
            return self.ctl.check_resize(name, volume.name, req.capacity, shrink=req.shrink,
                                         allocate=req.allocate)

        def done(req: Any) -> None:
            if req is None:
                return
            self._submit(Form(
                "resize", "z", name, volume.name, name, volume.name, req, dialog.typed,
                lambda typed, refused: self._open_resize(
                    name, self._now(name, volume), typed, refused),
                allocation_asked=req.allocate),
                lambda: self.ctl.resize_volume(name, volume.name, req.capacity,
                                               shrink=req.shrink, allocate=req.allocate))

        dialog = dialogs.ResizeVolumeDialog(volume, view.status.available or 0,
                                            ascii=self.ascii, check=check, typed=typed,
                                            refused=refused)
        self.app.push_screen(dialog, done)

    def action_wipe_volume(self) -> None:
        name, volume = self.selected, self._need_volume()
        if name is None or volume is None:
            return

        def done(req: Any) -> None:
            if req is not None:
                self.run_verb(f"wipe {volume.name}", f"wiping {volume.name}",
                              self.ctl.wipe_volume, name, volume.name, req.algorithm)

        features = self.view.features if self.view is not None else None
        algorithms = features.wipe_algorithms if features is not None else WIPE_ALGORITHMS
        self.app.push_screen(dialogs.WipeVolumeDialog(volume, algorithms, ascii=self.ascii), done)

    def action_upload(self) -> None:
        self._transfer(upload=True)

    def action_download(self) -> None:
        self._transfer(upload=False)

    def _transfer(self, upload: bool) -> None:
        name, volume = self.selected, self._need_volume()
        if name is None or volume is None:
            return

        def done(req: Any) -> None:
            if req is None:
                return
            if upload:
                self.run_verb(f"upload to {volume.name}", f"uploading to {volume.name}",
                              self.ctl.upload_volume, name, volume.name, req.path,
                              offset=req.offset, length=req.length)
            else:
                self.run_verb(f"download {volume.name}", f"downloading {volume.name}",
                              self.ctl.download_volume, name, volume.name, req.path,
                              offset=req.offset, length=req.length, sparse=req.sparse)

        dialog = dialogs.UploadDialog if upload else dialogs.DownloadDialog
        self.app.push_screen(dialog(volume, ascii=self.ascii), done)

    def action_delete_volumes(self) -> None:
        name = self.selected
        if name is None:
            return
        marked = self.table.marked
        if marked:
            volumes = self.ctl.cached_volumes(name, sorted(marked))
        else:
            volume = self._need_volume()
            volumes = [volume] if volume else []
        if not volumes:
            return
        unread = [v.name for v in volumes if v.pending]
        if unread:  # the dialog names each one's format and size: never a guess
            self.ctl.probe_first(name, unread)
            more = f" and {len(unread) - 1} more" if len(unread) > 1 else ""
            self.notify(f"the header of '{unread[0]}'{more} is being read; a moment",
                        severity="warning", markup=False)
            return
        in_use = dict(self.in_use)

        def done(req: Any) -> None:
            if req is not None and req.names:
                self.table.clear_marks()
                count = f"{len(req.names)} volume{'s' if len(req.names) != 1 else ''}"
                self.run_verb(f"delete {count}", f"deleted {count}", self._delete_volumes,
                              name, req.names)

        self.app.push_screen(dialogs.DeleteVolumesDialog(volumes, in_use, ascii=self.ascii),
                             done)

    def _delete_volumes(self, pool: str, names: list[str]) -> Outcome:
        """Each volume in turn; the report names those deleted and those not, with why
        (a volume another one is backed by is refused, the others still go)."""
        deleted: list[str] = []
        failed: list[tuple[str, str]] = []
        for volume in names:
            try:
                self.ctl.delete_volume(pool, volume)
                deleted.append(volume)
            except PoolkeeperError as exc:
                failed.append((volume, str(exc)))
            except OSError as exc:
                failed.append((volume, exc.strerror or str(exc)))
        return batch_outcome("delete", "deleted", "volume", deleted, failed)

    def action_copy_path(self) -> None:
        volume = self._need_volume()
        if volume is not None:
            self.app.copy_to_clipboard(volume.path)  # OSC 52: works over SSH
            self.notify(f"copied {volume.path}", markup=False)
