"""pool-build and pool-delete/undefine: the two pool verbs that can destroy data."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import RadioSet, Static

from backends.model import PoolStatus

from ..shown import shown, shown_message
from .base import Dialog, Evaluation
from .fields import TypedConfirm, radio_set, radio_value
from .results import BuildChoice, DeletePoolChoice

# What building does, per pool type.
BUILD_DOES = {
    "dir": "creates the target directory {target}",
    "fs": "makes a filesystem on the source device {source} (mkfs)",
    "netfs": "creates the mount point {target}",
    "logical": "creates the volume group on {source} (pvcreate + vgcreate)",
    "disk": "writes a new partition table on {source} (parted mklabel)",
    "iscsi": "has nothing to build (the target is managed on the server)",
    "iscsi-direct": "has nothing to build (the target is managed on the server)",
}
# What destroying the storage (pool-delete) does, per pool type.
DELETE_DOES = {
    "dir": "removes the directory {target}, which must be empty",
    "fs": "wipes the filesystem signature on {source}: every file on it is lost",
    "netfs": "removes the mount point directory {target} (the export is not touched)",
    "logical": "removes the volume group and the LVM labels of {source}: every logical "
               "volume in it is lost",
    "disk": "wipes the partition table of {source}: every partition on it is lost",
    "iscsi": "is not possible: iSCSI storage is managed on the server",
    "iscsi-direct": "is not possible: iSCSI storage is managed on the server",
}


_HELD_SHOWN = 8  # volume names listed in the delete dialog; the rest are counted


def _what(template: str, pool: PoolStatus) -> str:
    return template.format(target=shown(pool.target) if pool.target else "(no target)",
                           source=shown(pool.source) if pool.source else "the source")


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
        does = _what(BUILD_DOES.get(p.type, "prepares its storage"), p)
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
    """Undefine, or destroy the storage and undefine. `held` is what the storage still
    holds (controller.stored_volumes: None when its delete erases no volumes), or
    `held_error` why that could not be told: destroying it then passes --force, which
    the typed pool name confirms."""

    submit_label = "Undefine"
    submit_variant = "error"

    def __init__(self, pool: PoolStatus, *, held: list[str] | None = None,
                 held_error: str | None = None, ascii: bool = False) -> None:
        self.pool = pool
        self.held = held
        self.held_error = held_error
        self.heading = f"Delete pool '{pool.name}'"
        super().__init__(ascii=ascii)

    @property
    def needs_force(self) -> bool:
        return bool(self.held) or self.held_error is not None

    def _holds_text(self) -> str | None:
        if self.held_error is not None:
            return (f"Could not tell what its storage holds: "
                    f"{shown_message(self.held_error, self.ascii)}. Destroying it erases "
                    "whatever is there.")
        if self.held is None:
            return None
        if not self.held:
            return "Its storage holds no volumes."
        count = len(self.held)
        names = ", ".join(shown(name, self.ascii) for name in self.held[:_HELD_SHOWN])
        if count > _HELD_SHOWN:
            names += f" and {count - _HELD_SHOWN} more"
        return (f"Its storage still holds {count} volume{'s' if count != 1 else ''}: "
                f"{names}. Destroying it erases {'them' if count != 1 else 'it'}.")

    @property
    def can_destroy(self) -> bool:
        return not self.pool.type.startswith("iscsi")

    def compose_body(self) -> ComposeResult:
        p = self.pool
        options = [("undefine", "undefine only (keep the data)")]
        if self.can_destroy:
            options.append(("destroy", "destroy the storage and undefine"))
        yield radio_set(options, "undefine", id="mode", ascii=self.ascii)
        yield Static("", markup=False, id="explain")
        holds = self._holds_text() if self.can_destroy else None
        if holds is not None:
            yield Static(holds, markup=False, id="holds",
                         classes="warning-text" if self.needs_force else "")
        yield TypedConfirm(p.name, id="confirm")

    def _destroy(self) -> bool:
        return radio_value(self.query_one("#mode", RadioSet)) == "destroy"

    def after_refresh(self, ev: Evaluation[DeletePoolChoice | None]) -> None:
        p = self.pool
        destroy = self._destroy()
        explain = self.query_one("#explain", Static)
        if destroy:
            does = _what(DELETE_DOES.get(p.type, "destroys its storage"), p)
            explain.update(f"Destroying the storage of this {p.type} pool {does}. Then the "
                           "definition is removed. This cannot be undone.")
        else:
            explain.update(f"The definition of '{shown(p.name, self.ascii)}' is removed; its "
                           f"storage ({shown(p.target or p.source or p.type, self.ascii)}) and "
                           "volumes stay as they are.")
        explain.set_class(destroy, "warning-text")
        submit = self.query_one("#submit")
        submit.label = "Destroy" if destroy else "Undefine"  # type: ignore[attr-defined]
        confirm = self.query_one("#confirm", TypedConfirm)
        if confirm.display != destroy:
            confirm.display = destroy
            self.refresh_form()

    def evaluate(self) -> Evaluation[DeletePoolChoice | None]:
        destroy = self._destroy()
        # reached only with the name typed (a shown TypedConfirm gates the submit)
        return Evaluation(result=DeletePoolChoice(destroy, force=destroy and self.needs_force))
