"""Which secret an encrypted volume opens with, with real qemu-img images: a clone keeps
its source's key, so a clone asking for another secret (in its XML, or through a secret
defined for its path) is refused, as is one that qemu-img convert would write
(--prealloc-metadata); the secret a volume was made with wins over one whose usage names
its path later; and a secret that volumes need is not undefined silently."""

from __future__ import annotations

import os

import pytest

from backends.errors import StateError, Unsupported, ValidationError
from tests.drivers.test_luks import (
    PASSPHRASE,
    UUID,
    WRONG,
    MiB,
    qemu_io,
    secret_xml,
    virtual_size,
    volume_xml,
)

OTHER = "11111111-2222-3333-4444-555555555555"


def clone_xml(name: str, secret: str | None) -> str:
    enc = (f"<encryption format='luks'><secret type='passphrase' uuid='{secret}'/>"
           "</encryption>" if secret else "")
    return (f"<volume><name>{name}</name><target><format type='qcow2'/>{enc}</target>"
            "</volume>")


@pytest.fixture
def source(ctl, pool, store):
    """An encrypted qcow2 'v' made with secret UUID (whose usage names it); OTHER defined
    with another passphrase and no usage."""
    store.define(secret_xml(str(pool / "v")))
    store.set_value(UUID, PASSPHRASE)
    store.define(secret_xml(None, uuid=OTHER))
    store.set_value(OTHER, WRONG)
    ctl.create_volume("p", volume_xml("v", "qcow2", mib=2)).wait(120)
    return pool / "v"


def test_a_clone_naming_another_secret_is_refused(ctl, pool, store, source):
    for make in (lambda: ctl.clone_volume("p", "v", "c", xml=clone_xml("c", OTHER)),
                 lambda: ctl.clone_volume("p", "v", "c", xml=clone_xml("c", OTHER)).wait(120)):
        with pytest.raises(ValidationError, match=(
                f"a clone of an encrypted volume keeps its key: 'v' opens with secret {UUID}, "
                f"not with the secret '{OTHER}'; leave the <secret> out")):
            make()
        assert sorted(os.listdir(pool)) == ["v"] and store.volume_secret(str(pool / "c")) is None
    # the same secret, or none named, is the byte copy it always was
    ctl.clone_volume("p", "v", "c", xml=clone_xml("c", UUID)).wait(120)
    ctl.clone_volume("p", "v", "d", xml=clone_xml("d", None)).wait(120)
    for name in ("c", "d"):
        assert f"uuid='{UUID}'" in ctl.volume_xml("p", name)
        assert store.volume_secret(str(pool / name)).uuid == UUID


def test_an_encrypted_clone_is_never_written_by_qemu_img_convert(ctl, pool, store, source):
    for make in (lambda: ctl.clone_volume("p", "v", "c", prealloc_metadata=True),
                 lambda: ctl.clone_volume("p", "v", "c", prealloc_metadata=True).wait(120)):
        with pytest.raises(Unsupported, match="'v' is encrypted: its clone is a byte copy.*"
                           "leave --prealloc-metadata out"):
            make()
        assert sorted(os.listdir(pool)) == ["v"]


def test_a_secret_defined_for_the_path_does_not_override_the_one_it_was_made_with(
        ctl, pool, store, keyfile):
    store.define(secret_xml(None, uuid=OTHER))
    store.set_value(OTHER, PASSPHRASE)
    ctl.create_volume("p", volume_xml("enc", "qcow2", mib=2, secret=OTHER)).wait(120)
    # a secret defined afterwards (or left from an older volume) for the same path
    store.define(secret_xml(str(pool / "enc")))
    store.set_value(UUID, WRONG)
    assert f"uuid='{OTHER}'" in ctl.volume_xml("p", "enc")
    ctl.resize_volume("p", "enc", 4 * MiB).wait(120)  # opened with OTHER's passphrase
    assert virtual_size(pool / "enc") == 4 * MiB
    assert qemu_io(pool / "enc", False, keyfile, "read 0 4k").returncode == 0


def test_a_volume_made_where_another_secret_names_the_path_is_refused(ctl, pool, store,
                                                                     source):
    # UUID's usage names v: a new v (after the old one is deleted) with OTHER is refused
    ctl.delete_volume("p", "v")
    with pytest.raises(ValidationError, match=(
            f"secret {UUID} is defined for the volume {pool / 'v'}, but the volume would be "
            f"encrypted with secret {OTHER}")):
        ctl.create_volume("p", volume_xml("v", "qcow2", mib=2, secret=OTHER)).wait(120)
    assert os.listdir(pool) == []
    # and a clone of a volume keyed with OTHER onto a path UUID names
    ctl.create_volume("p", volume_xml("w", "qcow2", mib=2, secret=OTHER)).wait(120)
    with pytest.raises(ValidationError, match=(
            f"secret {UUID} is defined for the volume {pool / 'v'}, but the volume would be "
            f"a clone keyed with secret {OTHER}")):
        ctl.clone_volume("p", "w", "v").wait(120)
    assert sorted(os.listdir(pool)) == ["w"]


def test_a_secret_encrypted_volumes_need_is_not_undefined_silently(ctl, pool, store, source):
    ctl.clone_volume("p", "v", "c").wait(120)
    with pytest.raises(StateError, match=(
            f"secret {UUID} opens the encrypted volume\\(s\\) {pool / 'v'}, {pool / 'c'}; "
            ".*add --force")):
        store.undefine(UUID)
    assert store.has_value(UUID)
    # OTHER opens nothing; UUID once its volumes are gone; or with force
    assert store.undefine(OTHER).uuid == OTHER
    ctl.delete_volume("p", "c")
    with pytest.raises(StateError, match=f"opens the encrypted volume\\(s\\) {pool / 'v'};"):
        store.undefine(UUID)
    assert store.undefine(UUID, force=True).uuid == UUID
    assert store.definitions() == []
