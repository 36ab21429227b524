"""The main screen's pool keys: define, start/stop, build, autostart, delete, and the CHAP
secret a pool names.

Build and delete first look at the storage in a worker (what building would destroy, what
the storage still holds), so the dialog can name it before anything is destroyed; like the
secret dialog, they open through MainScreenBase._open (tui.screens.main_base).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work

from backends.errors import Busy, PoolkeeperError
from backends.model import PoolDef, PoolFeatures
from backends.volume_requests import Refusal
from backends.volume_requests import refusal as refusal_of

from .. import dialogs
from ..bridge import Outcome

if TYPE_CHECKING:
    from .main_base import MainScreenBase as _Screen
    from .main_base import Preparing
else:
    _Screen = object  # mixed into MainScreen, which is a MainScreenBase


class PoolActions(_Screen):
    """Mixin for MainScreen: the actions of the pool keys."""

    def action_define_pool(self) -> None:
        # on the host the cursor is on, now: the dialog's calls are bound to it
        ctl, where = self.calls_for(), self.host_words()
        if self.pool_types is not None and where in ("", " on this host"):
            self._open_define_dialog(None, ctl, where, self.pool_types)  # (read at start)
        elif prep := self._prepare("define"):
            self._prepare_define(prep, ctl, where)

    @work(thread=True, group="verbs")
    def _prepare_define(self, prep: Preparing, ctl: Any, where: str) -> None:
        types: dict[str, PoolFeatures] = {}
        try:
            types = ctl.pool_types()
        except PoolkeeperError as exc:
            self.app.notify(f"could not open the define dialog{where}: {exc}",
                            severity="error", timeout=10, markup=False)
        finally:
            self.app.call_from_thread(self._open_define_dialog, prep, ctl, where, types)

    def _open_define_dialog(self, prep: Preparing | None, ctl: Any, where: str,
                            types: dict[str, PoolFeatures],
                            typed: dict[str, object] | None = None,
                            refused: tuple[PoolDef, Refusal] | None = None) -> None:
        """The back end checks the definition before the dialog closes (a name taken, a
        target or source another pool has, the type's rules); `typed`, `refused`: opened
        again with what was typed when the define was refused anyway (a race). `ctl`:
        the calls of the host it defines on (calls_for), `where` says which."""
        def discover(pool_type: str, host: str | None) -> str:
            return ctl.find_pool_sources(pool_type, host=host)

        def done(pdef: Any) -> None:
            if pdef is not None and dialog is not None:
                self._define(pdef, ctl, where, types, dialog.typed)

        dialog: dialogs.DefinePoolDialog | None = None

        def make() -> dialogs.DefinePoolDialog:
            nonlocal dialog
            dialog = dialogs.DefinePoolDialog(
                discover, types=types, devices=ctl.block_devices, ascii=self.ascii,
                check=ctl.check_pool_def, typed=typed, refused=refused)
            dialog.heading += where
            return dialog

        self._open(prep, "the define dialog", make if types else None, done)

    @work(thread=True, group="verbs")
    def _define(self, pdef: PoolDef, ctl: Any, where: str, types: dict[str, PoolFeatures],
                typed: dict[str, object]) -> None:
        try:
            ctl.define_pool_def(pdef)
        except PoolkeeperError as exc:
            self.app.call_from_thread(self._define_refused, pdef, ctl, where, types, typed,
                                      refusal_of(exc), str(exc))
            return
        except OSError as exc:
            self.app.notify(f"could not define pool {pdef.name}: {exc.strerror or exc}",
                            severity="error", timeout=15, markup=False)
            return
        self.app.notify(f"pool {pdef.name} defined{where}", markup=False)

    def _define_refused(self, pdef: PoolDef, ctl: Any, where: str,
                        types: dict[str, PoolFeatures], typed: dict[str, object],
                        refusal: Refusal, message: str) -> None:
        if self.app.screen is not self:  # nowhere to show the form again
            self.notify(f"could not define pool {pdef.name}: {message}", severity="error",
                        timeout=15, markup=False)
            return
        self._open_define_dialog(None, ctl, where, types, typed, (pdef, refusal))

    def action_start_stop(self) -> None:
        name = self.selected
        if name is None:
            return
        if self.pools[name].started:  # an inaccessible pool too: s stops it
            self.run_verb(f"stop pool {name}", f"pool {name} stopped", self.ctl.stop_pool,
                          name)
        else:
            self.run_verb(f"start pool {name}", f"pool {name} started", self.ctl.start_pool,
                          name)

    def action_build_pool(self) -> None:
        name = self.selected
        if name is not None and (prep := self._prepare("build",
                                                       f"the build dialog of pool {name}")):
            self._prepare_build(prep, name)

    @work(thread=True, group="verbs")
    def _prepare_build(self, prep: Preparing, name: str) -> None:
        """Probe what is on the device first (I/O), so the dialog can name it."""
        warning: str | None = None
        try:
            warning = self.ctl.build_warning(name)
        except PoolkeeperError as exc:
            warning = f"could not tell what is on the device: {exc}"
        finally:
            self.app.call_from_thread(self._open_build_dialog, prep, name, warning)

    def _open_build_dialog(self, prep: Preparing, name: str, warning: str | None) -> None:
        def done(choice: Any) -> None:
            if choice is not None:
                self.run_verb(f"build pool {name}", f"building pool {name}",
                              self.ctl.build_pool, name, choice.overwrite)

        self._open(prep, f"the build dialog of pool {name}",
                   None if name not in self.pools else  # (undefined while it was probed)
                   lambda: dialogs.BuildPoolDialog(self.pools[name], warning,
                                                   ascii=self.ascii), done)

    def action_toggle_autostart(self) -> None:
        name = self.selected
        if name is not None:
            enabled = not self.pools[name].autostart
            state = "on" if enabled else "off"
            self.run_verb(f"turn autostart {state} for pool {name}",
                          f"autostart {state} for pool {name}",
                          self.ctl.set_autostart, name, enabled)

    def action_delete_pool(self) -> None:
        name = self.selected
        if name is not None and (prep := self._prepare("delete",
                                                       f"the delete dialog of pool {name}")):
            self._prepare_delete(prep, name,
                                 not self.pools[name].type_features.can_delete_storage)

    @work(thread=True, group="verbs")
    def _prepare_delete(self, prep: Preparing, name: str, undefine_only: bool) -> None:
        """Look at what the storage still holds first (I/O: a read-only mount, a table,
        LVM metadata, a directory), so the dialog can name it before anything is
        destroyed. Busy (a lock held, a device in use) is told apart by its type: it is
        never a reason to force, unlike storage that cannot be looked into."""
        held: list[str] | None = None
        error: str | None = None
        busy: str | None = None
        try:
            if not undefine_only:
                held = self.ctl.stored_volumes(name)
        except Busy as exc:  # InUse too
            busy = str(exc)
        except (PoolkeeperError, OSError) as exc:
            error = str(exc)
        finally:
            self.app.call_from_thread(self._open_delete_dialog, prep, name, held, error, busy)

    def _open_delete_dialog(self, prep: Preparing, name: str, held: list[str] | None,
                            error: str | None, busy: str | None) -> None:
        def done(choice: Any) -> None:
            if choice is None:
                return
            if choice.destroy_storage:
                self.run_verb(f"remove pool {name}", f"pool {name} removed", self._delete_pool,
                              name, choice.force, choice.expected)
            else:
                self.run_verb(f"undefine pool {name}", f"pool {name} undefined",
                              self.ctl.undefine_pool, name)

        self._open(prep, f"the delete dialog of pool {name}",
                   None if name not in self.pools else  # (undefined while it was looked into)
                   lambda: dialogs.DeletePoolDialog(self.pools[name], held=held,
                                                    held_error=error, busy=busy,
                                                    ascii=self.ascii), done)

    def _delete_pool(self, name: str, force: bool, expected: tuple[str, ...] | None
                     ) -> Outcome | None:
        """Destroy the storage, then undefine: a refused undefine is half of it done."""
        self.ctl.delete_pool(name, force=force, expected=expected)
        try:
            self.ctl.undefine_pool(name)
        except PoolkeeperError as exc:
            return Outcome(f"destroyed the storage of pool {name}, but could not undefine "
                           f"it: {exc}", "warning")
        return None

    def action_set_secret(self) -> None:
        view = self.view
        usage = view.secret_usage if view is not None else None
        if view is None or view.status.name != self.selected:
            return  # (the view of a pool no longer selected: its usage is not this one's)
        if usage and (prep := self._prepare("secret", f"the secret dialog of {usage}")):
            self._open_secret(prep, usage, self.calls_for(view.status.name))

    @work(thread=True, group="verbs")
    def _open_secret(self, prep: Preparing, usage: str, ctl: Any) -> None:
        exists = False
        try:
            exists = ctl.has_secret(usage)
        except PoolkeeperError:
            pass
        finally:
            self.app.call_from_thread(self._push_secret, prep, usage, exists, ctl)

    def _push_secret(self, prep: Preparing, usage: str, exists: bool, ctl: Any) -> None:
        def done(result: Any) -> None:
            if result is not None:  # the value goes straight to the controller, unlogged
                self.run_verb(f"save secret {usage}", f"secret {usage} saved",
                              ctl.set_secret, result.usage, result.value)

        self._open(prep, f"the secret dialog of {usage}",
                   lambda: dialogs.SecretDialog(usage, exists=exists, ascii=self.ascii), done)
