"""The controller's libvirt-shaped secret verbs (secret-define, secret-set-value, ...), a
mixin of StorageController: each one a call on the state root's SecretStore. A value is
taken as an argument from the front end (which read it from stdin, a file or a hidden
field) and never returned except by `secret_value`, which refuses private secrets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .secret_defs import SecretDef, format_secret
from .secrets import SecretStore

if TYPE_CHECKING:
    from .store import StorePaths


class SecretVerbs:
    paths: StorePaths

    @property
    def secret_store(self) -> SecretStore:
        return SecretStore(self.paths.config_dir)

    def define_secret(self, xml: str | bytes) -> SecretDef:
        return self.secret_store.define(xml)

    def undefine_secret(self, uuid: str, force: bool = False) -> SecretDef:
        return self.secret_store.undefine(uuid, force)

    def list_secrets(self) -> list[tuple[SecretDef, bool]]:
        """Every defined secret, and whether it has a value."""
        store = self.secret_store
        return [(sdef, store.has_value(sdef.uuid)) for sdef in store.definitions()]

    def usage_named_secrets(self) -> list[str | None]:
        """The usage names of the values stored by usage name (secret-set USAGE), sorted;
        None for each stored before poolkeeper recorded the name beside the value."""
        return self.secret_store.usage_named()

    def secret_xml(self, uuid: str) -> str:
        return format_secret(self.secret_store.definition(uuid))

    def set_secret_value(self, uuid: str, value: str | bytes) -> SecretDef:
        return self.secret_store.set_value(uuid, value)

    def secret_value(self, uuid: str) -> str:
        """The value of a secret that is not private (secret-get-value --reveal)."""
        return self.secret_store.reveal_value(uuid)

    # usage-named secrets (iSCSI CHAP, `secret-set USAGE`), kept working beside these
    def set_secret(self, usage: str, value: str | bytes) -> None:
        """Store the value of the secret a pool names with <secret usage='USAGE'/> (a 0600
        file in a 0700 dir under the state root; the value is never logged)."""
        self.secret_store.set(usage, value)

    def delete_secret(self, usage: str, force: bool = False) -> bool:
        """Undefine the secret (or forget the usage-named value); `force`: even while an
        encrypted volume needs it."""
        return self.secret_store.delete(usage, force)

    def has_secret(self, usage: str) -> bool:
        return self.secret_store.has(usage)
