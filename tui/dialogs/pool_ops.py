"""pool-build and pool-delete/undefine: the two pool verbs that can destroy data. What
each does to a pool's storage, in words, is its driver's (PoolFeatures)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import RadioButton, RadioSet, Static

from backends.model import PoolStatus

from ..shown import shown
from .base import Dialog, Evaluation
from .fields import TypedConfirm, radio_set, radio_value
from .results import BuildChoice, DeletePoolChoice

_HELD_SHOWN = 8  # volume names listed in the delete dialog; the rest are counted


def _what(template: str, pool: PoolStatus, ascii: bool) -> str:
    return template.format(
        target=shown(pool.target, ascii) if pool.target else "(no target)",
        source=shown(pool.source, ascii) if pool.source else "the source")


def _names(names: list[str], ascii: bool) -> str:
    count = len(names)
    text = ", ".join(shown(name, ascii) for name in names[:_HELD_SHOWN])
    return text + (f" and {count - _HELD_SHOWN} more" if count > _HELD_SHOWN else "")


class BuildPoolDialog(Dialog[BuildChoice | None]):
    submit_label = "Build"
    submit_variant = "warning"

    def __init__(self, pool: PoolStatus, signature: str | None, *, ascii: bool = False) -> None:
        self.pool = pool
        self.signature = signature
        self.heading = f"Build pool '{pool.name}'"
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        p = self.pool
        does = _what(p.type_features.build_does, p, self.ascii)
        yield Static(f"Building this {p.type} pool {does}.", markup=False, classes="intro")
        if self.signature:
            yield Static(f"WARNING: the source holds {shown(self.signature, self.ascii)}. Only "
                         "--overwrite "
                         "builds over it, and that destroys it.", markup=False,
                         classes="intro warning-text", id="signature")
        yield radio_set([
            ("default", "default: refuse if existing data is found"),
            ("no-overwrite", "--no-overwrite: refuse even if unsure"),
            ("overwrite", "--overwrite: destroy whatever is there"),
        ], "default", id="mode", ascii=self.ascii)
        yield TypedConfirm(p.name, id="confirm")

    def after_refresh(self, ev: Evaluation[BuildChoice | None]) -> None:
        shown = self._mode() == "overwrite"
        confirm = self.query_one("#confirm", TypedConfirm)
        if confirm.display != shown:
            confirm.display = shown
            self.refresh_form()

    def _mode(self) -> str:
        return radio_value(self.query_one("#mode", RadioSet)) or "default"

    def evaluate(self) -> Evaluation[BuildChoice | None]:
        mode = self._mode()
        overwrite = {"default": None, "no-overwrite": False, "overwrite": True}[mode]
        return Evaluation(result=BuildChoice(overwrite))


class DeletePoolDialog(Dialog[DeletePoolChoice | None]):
    """Undefine, or destroy the storage and undefine. What the look inside found first
    (PoolActions._prepare_delete: controller.stored_volumes) decides what destroying does:

      * `held` (a type whose delete erases volumes: fs, disk, logical): the volumes
        destroying erases. They are named; with any, destroying passes --force, which the
        typed pool name confirms, and the list goes back as `expected`, so a volume made
        meanwhile is never erased unseen;
      * `held` (a type whose delete only removes an empty directory, delete_needs_empty:
        dir, netfs): the entries of the directory, which make destroying refuse: with any,
        destroy is unavailable;
      * `held_error`: the storage could not be looked into (a journal that needs a
        replay, something blkid cannot read): destroying forces, erasing whatever is
        there, after the dialog said so;
      * `busy`: the pool or its device is busy (a Busy error: another job or process
        holds it). Busy is never a reason to force: destroy is unavailable until a new
        look (close, press X again) finds it free.
    """

    submit_label = "Undefine"
    submit_variant = "error"

    def __init__(self, pool: PoolStatus, *, held: list[str] | None = None,
                 held_error: str | None = None, busy: str | None = None,
                 ascii: bool = False) -> None:
        self.pool = pool
        self.held = held
        self.held_error = held_error
        self.busy = busy
        self.heading = f"Delete pool '{pool.name}'"
        super().__init__(ascii=ascii)

    @property
    def refuse_only(self) -> bool:
        return self.pool.type_features.delete_needs_empty

    @property
    def can_destroy(self) -> bool:
        return self.pool.type_features.can_delete_storage

    @property
    def unavailable(self) -> str | None:
        """Why destroying is not possible now (None: it is)."""
        if not self.can_destroy:  # its words say why: "is not possible: <why>"
            return self.pool.type_features.delete_does.removeprefix("is not possible: ")
        if self.busy is not None:
            return "the pool is busy"
        if self.refuse_only and self.held:
            return "the directory is not empty"
        return None

    @property
    def needs_force(self) -> bool:
        if self.busy is not None or self.refuse_only:
            return False
        return bool(self.held) or self.held_error is not None

    def _holds_text(self) -> str | None:
        a = self.ascii
        if self.busy is not None:
            return (f"Could not look inside: {shown(self.busy, a)}. Destroying the storage "
                    "is not possible while the pool is busy: close this and press X again "
                    "in a moment.")
        if self.held_error is not None:
            return (f"Could not tell what its storage holds: {shown(self.held_error, a)}. "
                    "Destroying it erases whatever is there.")
        if self.held is None:
            return None
        count = len(self.held)
        if self.refuse_only:
            if not count:
                return "The directory is empty."
            return (f"The directory is not empty ({count} entr{'ies' if count != 1 else 'y'}: "
                    f"{_names(self.held, a)}). Destroying the storage removes only an empty "
                    "directory, so it is refused: delete the volumes first.")
        if not count:
            return "Its storage holds no volumes."
        return (f"Its storage still holds {count} volume{'s' if count != 1 else ''}: "
                f"{_names(self.held, a)}. Destroying it erases {'them' if count != 1 else 'it'}.")

    def compose_body(self) -> ComposeResult:
        p = self.pool
        options = [("undefine", "undefine only (keep the data)")]
        if self.can_destroy:
            why = self.unavailable
            options.append(("destroy", "destroy the storage and undefine"
                            + (f" (unavailable: {why})" if why else "")))
        yield radio_set(options, "undefine", id="mode", ascii=self.ascii)
        yield Static("", markup=False, id="explain")
        holds = self._holds_text() if self.can_destroy else None
        if holds is not None:
            warn = self.needs_force or self.unavailable is not None
            yield Static(holds, markup=False, id="holds", classes="warning-text" if warn else "")
        yield TypedConfirm(p.name, id="confirm")

    def setup(self) -> None:
        if self.can_destroy and self.unavailable is not None:
            self.query_one("#opt-destroy", RadioButton).disabled = True

    def _destroy(self) -> bool:
        return radio_value(self.query_one("#mode", RadioSet)) == "destroy"

    def after_refresh(self, ev: Evaluation[DeletePoolChoice | None]) -> None:
        p = self.pool
        destroy = self._destroy()
        explain = self.query_one("#explain", Static)
        if destroy:
            does = _what(p.type_features.delete_does, p, self.ascii)
            explain.update(f"Destroying the storage of this {p.type} pool {does}. Then the "
                           "definition is removed. This cannot be undone.")
        else:
            explain.update(f"The definition of '{shown(p.name, self.ascii)}' is removed; its "
                           f"storage ({shown(p.target or p.source or p.type, self.ascii)}) and "
                           "volumes stay as they are.")
        explain.set_class(destroy, "warning-text")
        self.set_submit_label("Destroy" if destroy else "Undefine")
        confirm = self.query_one("#confirm", TypedConfirm)
        if confirm.display != destroy:
            confirm.display = destroy
            self.refresh_form()

    def evaluate(self) -> Evaluation[DeletePoolChoice | None]:
        if not self._destroy():
            return Evaluation(result=DeletePoolChoice(False))
        why = self.unavailable
        if why is not None:  # the option is disabled; never reached by keys or the mouse
            return Evaluation(form=(f"destroying the storage is not possible: {why}", "error"))
        expected = None if self.refuse_only or self.held is None else tuple(self.held)
        # reached only with the name typed (a shown TypedConfirm gates the submit)
        return Evaluation(result=DeletePoolChoice(True, force=self.needs_force,
                                                  expected=expected))
