"""The saved libvirt connections (backends.connection_store): round trip, owner-only,
bad names and URIs refused saying what to type, a damaged file reported and left alone,
qemu:///system offered once and only when a libvirt daemon listens here."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

import backends.connection_store as store_module
from backends.connection_store import ConnectionStore, SavedConnection, check_connection
from backends.errors import PoolkeeperError, ValidationError


def test_saved_connections_round_trip_owner_only(tmp_path: Path) -> None:
    store = ConnectionStore(tmp_path)
    assert store.load() == []
    saved = [SavedConnection("kvm2", "qemu+ssh://root@kvm2/system"),
             SavedConnection("lab.1", "test:///default")]
    store.save(saved)
    assert ConnectionStore(tmp_path).load() == saved
    assert (tmp_path / "connections.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("name", "uri", "words"), [
    ("", "test:///default", "connection name '' is not allowed"),
    ("-x", "test:///default", "starting with a letter or digit"),
    ("a/b", "test:///default", "is not allowed"),
    ("x" * 33, "test:///default", "1-32 letters"),
    ("kvm2", "kvm2", "is not a libvirt URI: e.g. qemu:///system"),
    ("kvm2", "qemu+ssh://root@kvm2/system --x", "is not a libvirt URI"),
    ("kvm2", "qemu:///system\n", None),  # surrounding blanks are trimmed
    ("kvm2", "qemu://\x1b]0;x\x07/system", "is not a libvirt URI"),
    ("kvm2", "qemu://\x9b2J/system", "is not a libvirt URI"),  # 8-bit CSI
    ("kvm2", "qemu+ssh://root@kvm2\u202e/system", "is not a libvirt URI"),  # bidi
    ("kvm2", "qemu+ssh://root@kvm\u00e9/system", "is not a libvirt URI"),
])
def test_names_and_uris_are_checked(name: str, uri: str, words: str | None) -> None:
    if words is None:
        assert check_connection(name, uri).uri == uri.strip()
        return
    with pytest.raises(ValidationError, match=words.replace("(", r"\(")):
        check_connection(name, uri)


def test_a_damaged_file_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    for damaged in (b"{not json", b'{"connections": 3}',
                    b'{"connections": [{"name": "bad name", "uri": "test:///default"}]}'):
        path.write_bytes(damaged)
        store = ConnectionStore(tmp_path)
        with pytest.raises(PoolkeeperError, match="mend or remove that file"):
            store.load()
        if b"bad name" not in damaged:
            with pytest.raises(PoolkeeperError, match="mend or remove that file"):
                store.save([SavedConnection("kvm2", "test:///default")])
        assert path.read_bytes() == damaged
        assert store.offer_system() is False
        assert path.read_bytes() == damaged


def test_system_is_offered_once_when_libvirtd_listens(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "libvirt-sock"
    monkeypatch.setattr(store_module, "LOCAL_SOCKETS", (str(sock_path),))
    store = ConnectionStore(tmp_path / "state")
    assert store.offer_system() is False  # no daemon
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    try:
        assert store.offer_system() is True
        assert store.offer_system() is False  # once
        data = json.loads((tmp_path / "state" / "connections.json").read_text())
        assert data == {"connections": [], "offered_system": True}
        other = ConnectionStore(tmp_path / "other")
        other.save([SavedConnection("kvm2", "test:///default")])
        assert other.offer_system() is False  # connections saved: not offered
    finally:
        listener.close()


@pytest.mark.parametrize(("uri", "name"), [
    ("qemu+ssh://root@kvm2.example.org/system", "kvm2"),
    ("qemu+ssh://root@10.0.0.5/system", "10.0.0.5"),  # not "10": every 10.x alike
    ("qemu+tls://kvm3:16514/system", "kvm3"),
    ("qemu:///system", "system"),
    ("test:///default", "default"),
])
def test_a_connection_is_named_from_its_uri(uri: str, name: str) -> None:
    from tui.dialogs.connection import suggest_name

    assert suggest_name(uri) == name
    check_connection(name, uri)  # a name the store takes
