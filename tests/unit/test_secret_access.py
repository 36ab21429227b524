"""Who can read which value in the secret store: a defined secret's value is its own
val-UUID file only (a usage-named CHAP value, write-only, is never revealed through a
definition that shares its usage text); one usage text names one secret whatever its type;
the old usage-named file still serves a pool's CHAP login, for an iscsi secret only; and
undefine holds the directory's lock and refuses while encrypted volumes need the secret."""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time

import pytest

from backends.errors import AlreadyExists, StateError, ValidationError
from backends.secret_defs import SecretDef, format_secret
from backends.secrets import SecretNotFound, SecretStore

ISCSI = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
CEPH = "11111111-2222-3333-4444-555555555555"


def secret(uuid: str, kind: str, tag: str, text: str, private: str) -> str:
    return (f"<secret private='{private}'><uuid>{uuid}</uuid><usage type='{kind}'>"
            f"<{tag}>{text}</{tag}></usage></secret>")


def test_a_chap_value_is_never_revealed_through_another_definition(tmp_path) -> None:
    store = SecretStore(tmp_path)
    store.set("chap-tgt", "CHAPPASS")  # write-only: secret-set
    store.define(secret(ISCSI, "iscsi", "target", "chap-tgt", "yes"))
    with pytest.raises(AlreadyExists, match=f"secret {ISCSI} is already defined for use with "
                       "iscsi chap-tgt"):
        store.define(secret(CEPH, "ceph", "name", "chap-tgt", "no"))
    assert [s.uuid for s in store.definitions()] == [ISCSI]
    # a readable iscsi secret with no value of its own: the old file is not its value
    store.undefine(ISCSI)
    store.set("chap-tgt", "CHAPPASS")
    store.define(secret(ISCSI, "iscsi", "target", "chap-tgt", "no"))
    with pytest.raises(SecretNotFound):
        store.reveal_value(ISCSI)
    # ... but it still logs a pool in (the value it was stored for)
    assert store.get("chap-tgt") == "CHAPPASS" == store.get(ISCSI)
    assert store.has("chap-tgt")


def test_the_old_usage_file_serves_iscsi_secrets_only(tmp_path) -> None:
    store = SecretStore(tmp_path)
    store.set("client.admin", "OLDVALUE")
    store.define(secret(CEPH, "ceph", "name", "client.admin", "no"))
    for read in (store.get, store.path, store.reveal_value):
        with pytest.raises(SecretNotFound):
            read(CEPH)
    with pytest.raises(SecretNotFound):
        store.get("client.admin")
    legacy = tmp_path / "secrets" / hashlib.sha256(b"client.admin").hexdigest()
    assert legacy.read_text() == "OLDVALUE"  # kept: never destroyed, never read


def test_two_secrets_sharing_a_usage_text_are_refused_not_picked(tmp_path) -> None:
    """Definitions written before the usage text alone was checked (by an older
    poolkeeper): find refuses to pick one, so no value goes to the wrong user."""
    store = SecretStore(tmp_path)
    store.define(secret(ISCSI, "iscsi", "target", "shared", "yes"))
    (tmp_path / "secrets" / f"def-{CEPH}.xml").write_text(format_secret(
        SecretDef(uuid=CEPH, usage_type="ceph", usage_id="shared")))
    os.chmod(tmp_path / "secrets" / f"def-{CEPH}.xml", 0o600)
    for call in (store.find, store.get, store.has):
        with pytest.raises(ValidationError, match=f"secrets {ISCSI}, {CEPH} all have the usage "
                           "'shared'; name the one you mean by its uuid"):
            call("shared")
    assert store.find(CEPH).usage_type == "ceph"  # by uuid, as the message says


def test_undefine_refuses_while_a_recorded_volume_needs_the_secret(tmp_path) -> None:
    store = SecretStore(tmp_path)
    store.define(f"<secret><uuid>{ISCSI}</uuid></secret>")
    store.set_value(ISCSI, "pw")
    image = tmp_path / "img"
    image.write_bytes(b"LUKS\xba\xbe\x00\x01" + bytes(4088))  # a LUKS1 header's start
    store.remember_volume(str(image), ISCSI)
    store.remember_volume(str(tmp_path / "gone"), ISCSI)  # deleted outside: not counted
    with pytest.raises(StateError, match=f"opens the encrypted volume\\(s\\) {image}; "):
        store.undefine(ISCSI)
    assert store.has_value(ISCSI)
    image.write_bytes(bytes(4096))  # no longer encrypted (wiped): nothing needs it
    assert store.undefine(ISCSI).uuid == ISCSI


@pytest.mark.parametrize("call", ["undefine", "set_value"])
def test_undefine_and_set_value_wait_for_the_directory_lock(tmp_path, call) -> None:
    """A set_value and an undefine at once: never a value left without its definition."""
    store = SecretStore(tmp_path)
    store.define(f"<secret><uuid>{ISCSI}</uuid></secret>")
    fd = os.open(tmp_path / "secrets", os.O_RDONLY | os.O_DIRECTORY)
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            if call == "undefine":
                store.undefine(ISCSI)
            else:
                store.set_value(ISCSI, "pw")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
        done.set()

    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)
        assert not done.is_set()  # waiting for the lock, nothing changed yet
        assert sorted(os.listdir(tmp_path / "secrets")) == [f"def-{ISCSI}.xml"]
    finally:
        os.close(fd)  # releases the lock
    thread.join(10)
    assert done.is_set() and not errors
    names = sorted(os.listdir(tmp_path / "secrets"))
    assert names == ([] if call == "undefine" else [f"def-{ISCSI}.xml", f"val-{ISCSI}"])
    # and once undefined, a late set_value finds no secret rather than leaving a value
    if call == "set_value":
        store.undefine(ISCSI)
    with pytest.raises(SecretNotFound, match="no secret with uuid"):
        store.set_value(ISCSI, "late")
    assert os.listdir(tmp_path / "secrets") == []
