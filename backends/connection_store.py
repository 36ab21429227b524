"""The libvirt connections the TUI opens at start: CONFIG/connections.json.

Each is a short name (shown in the tree, and the suffix of its pools' ids: `default@kvm2`)
and a libvirt URI. The file also remembers whether qemu:///system was offered on a first
start, so that it is offered once. Written atomically, owner-only (a URI may hold a user
name and a key file's path). A file that cannot be read is not overwritten: the TUI says
why and opens this host only, and saving refuses until it is mended or removed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import PoolkeeperError, ValidationError
from .store import atomic_write

FILE_NAME = "connections.json"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
MAX_URI = 1024
SYSTEM_URI = "qemu:///system"
# Where a libvirt daemon on this host listens (monolithic libvirtd or modular virtqemud).
LOCAL_SOCKETS = ("/run/libvirt/libvirt-sock", "/run/libvirt/virtqemud-sock")


@dataclass(frozen=True)
class SavedConnection:
    name: str
    uri: str


def check_connection_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise ValidationError(f"connection name '{name}' is not allowed: use 1-32 letters, "
                              "digits, '.', '_' or '-', starting with a letter or digit "
                              "(e.g. kvm2)")
    return name


def check_uri(uri: str) -> str:
    uri = uri.strip()
    # printable ASCII only (libvirt's URIs are, percent-encoded): no control character,
    # no 8-bit CSI, no bidi override reaches a terminal or a field showing it
    if not uri or "://" not in uri or len(uri) > MAX_URI or any(
            not 0x21 <= ord(c) <= 0x7E for c in uri):
        raise ValidationError(f"'{uri}' is not a libvirt URI: e.g. qemu:///system, "
                              "qemu+ssh://root@kvm2/system, test:///default")
    return uri


def check_connection(name: str, uri: str) -> SavedConnection:
    """The connection as saved, or ValidationError saying what to change."""
    return SavedConnection(check_connection_name(name), check_uri(uri))


class ConnectionStore:
    """The saved connections of the state root `config_dir`."""

    def __init__(self, config_dir: Path) -> None:
        self.path = Path(config_dir) / FILE_NAME

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"connections": [], "offered_system": False}
        except (OSError, ValueError) as exc:
            raise PoolkeeperError(f"cannot read the saved connections in '{self.path}': "
                                  f"{exc}; mend or remove that file") from exc
        if not isinstance(data, dict) or not isinstance(data.get("connections"), list):
            raise PoolkeeperError(f"the saved connections in '{self.path}' are not in "
                                  "poolkeeper's shape; mend or remove that file")
        return data

    def load(self) -> list[SavedConnection]:
        saved = []
        for item in self._read()["connections"]:
            try:
                saved.append(check_connection(str(item["name"]), str(item["uri"])))
            except (KeyError, TypeError, ValidationError) as exc:
                raise PoolkeeperError(f"a saved connection in '{self.path}' is not valid "
                                      f"({exc}); mend or remove that file") from None
        return saved

    def save(self, connections: list[SavedConnection]) -> None:
        data = self._read()
        data["connections"] = [{"name": c.name, "uri": c.uri} for c in connections]
        self._write(data)

    def _write(self, data: dict) -> None:
        atomic_write(self.path, (json.dumps(data, indent=1) + "\n").encode(), mode=0o600)

    def offer_system(self) -> bool:
        """True once: nothing is saved, qemu:///system was never offered, and a libvirt
        daemon listens on this host. Remembered as offered from then on."""
        try:
            data = self._read()
        except PoolkeeperError:
            return False
        if data.get("offered_system") or data["connections"]:
            return False
        if not any(os.path.exists(sock) for sock in LOCAL_SOCKETS):
            return False
        data["offered_system"] = True
        try:
            self._write(data)
        except PoolkeeperError:
            return False  # a read-only state root: not offered rather than every time
        return True
