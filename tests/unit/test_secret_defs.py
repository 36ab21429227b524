"""libvirt-shaped secrets: their XML (hostile input refused), the store's definitions and
values (0600, by uuid or usage), and CHAP values stored by usage name before definitions
existed, which keep working."""

from __future__ import annotations

import hashlib
import os
import stat
import threading

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from backends import xmlio
from backends.errors import AlreadyExists, ValidationError, XMLError
from backends.model import Encryption, EncryptionSecret, VolumeDef, VolumeTarget
from backends.secret_defs import SecretDef, format_secret, parse_secret
from backends.secrets import SecretNotFound, SecretStore

UUID = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
VOLUME_SECRET = (f"<secret ephemeral='no' private='yes'><description>mail disk</description>"
                 f"<uuid>{UUID}</uuid><usage type='volume'><volume>/var/lib/images/mail.img"
                 "</volume></usage></secret>")


def test_secret_xml_round_trips_in_libvirts_layout() -> None:
    sdef = parse_secret(VOLUME_SECRET)
    assert sdef == SecretDef(uuid=UUID, usage_type="volume",
                             usage_id="/var/lib/images/mail.img",
                             description="mail disk", private=True)
    assert format_secret(sdef) == (
        "<secret ephemeral='no' private='yes'>\n"
        f"  <uuid>{UUID}</uuid>\n"
        "  <description>mail disk</description>\n"
        "  <usage type='volume'>\n"
        "    <volume>/var/lib/images/mail.img</volume>\n"
        "  </usage>\n"
        "</secret>\n")
    assert parse_secret(format_secret(sdef)) == sdef
    odd = SecretDef(uuid=UUID, usage_type="iscsi", usage_id="a<b&c>'d\"", description="]]>")
    assert parse_secret(format_secret(odd)) == odd
    iscsi = parse_secret("<secret><usage type='iscsi'><target>libvirtiscsi</target></usage>"
                         "</secret>")
    assert (iscsi.usage_type, iscsi.usage_id, iscsi.private) == ("iscsi", "libvirtiscsi", False)
    assert len(iscsi.uuid) == 36  # a new uuid when none is given
    assert parse_secret(f"<secret><uuid>{UUID.replace('-', '').upper()}</uuid></secret>"
                        ).uuid == UUID


@pytest.mark.parametrize(("xml", "message"), [
    ("<!DOCTYPE secret [<!ENTITY x SYSTEM 'file:///etc/shadow'>]><secret>"
     "<description>&x;</description></secret>", "DOCTYPE"),
    ("<secret xmlns:xi='http://www.w3.org/2001/XInclude'><xi:include href='/etc/shadow'/>"
     "</secret>", "XInclude"),
    ("<pool><name>x</name></pool>", "must start with <secret>"),
    ("<secret><usage type='volume'><volume>rel/path</volume></usage></secret>", "full path"),
    ("<secret><usage type='nfs'><name>x</name></usage></secret>", "unknown secret usage type"),
    ("<secret><usage type='iscsi'><name>x</name></usage></secret>", "exactly one <target>"),
    ("<secret><uuid>not-a-uuid</uuid></secret>", "is not a UUID"),
    ("<secret><value>pw</value></secret>", "unknown element <value>"),
    ("<secret ephemeral='yes'/>", "ephemeral"),
    ("<secret private='maybe'/>", "'yes' or 'no'"),
    ("<secret colour='red'/>", "unknown attribute 'colour'"),
    (f"<secret><uuid>{UUID}</uuid><uuid>{UUID}</uuid></secret>", "given twice"),
    ("<secret>stray<uuid>" + UUID + "</uuid></secret>", "stray text"),
    ("<secret><description>a&#x85;b</description></secret>", "control characters"),
])
def test_hostile_or_wrong_secret_xml_is_refused(xml: str, message: str) -> None:
    with pytest.raises((XMLError, ValidationError), match=message):
        parse_secret(xml)


def test_store_defines_looks_up_and_keeps_values_private(tmp_path) -> None:
    store = SecretStore(tmp_path)
    sdef = store.define(VOLUME_SECRET)
    assert store.definitions() == [sdef]
    assert store.find(UUID) == sdef == store.find("/var/lib/images/mail.img")
    assert store.find(UUID.upper()) == sdef and store.find("other") is None
    assert not store.has_value(UUID)
    with pytest.raises(SecretNotFound, match=f"no value is stored for the secret '{UUID}'"):
        store.get(UUID)
    store.set_value(UUID, "pa55,phrase")
    assert store.get("/var/lib/images/mail.img") == "pa55,phrase"
    for name in os.listdir(tmp_path / "secrets"):
        assert stat.S_IMODE((tmp_path / "secrets" / name).stat().st_mode) == 0o600
    assert store.path(UUID) == tmp_path / "secrets" / f"val-{UUID}"
    # private: never revealed; a redefinition cannot make it readable
    with pytest.raises(ValidationError, match="is private"):
        store.reveal_value(UUID)
    with pytest.raises(ValidationError, match="cannot be made readable"):
        store.define(VOLUME_SECRET.replace("private='yes'", "private='no'"))
    # a second secret for the same usage is refused, naming the first
    other = VOLUME_SECRET.replace(UUID, "11111111-2222-3333-4444-555555555555")
    with pytest.raises(AlreadyExists, match=f"secret {UUID} is already defined for use with "
                       "volume /var/lib/images/mail.img"):
        store.define(other)
    assert store.undefine(UUID) == sdef
    assert store.definitions() == [] and os.listdir(tmp_path / "secrets") == []
    with pytest.raises(SecretNotFound, match="no secret with uuid"):
        store.undefine(UUID)


def test_a_readable_secret_is_revealed_only_by_its_own_call(tmp_path) -> None:
    store = SecretStore(tmp_path)
    store.define(VOLUME_SECRET.replace("private='yes'", "private='no'"))
    store.set_value(UUID, "pw")
    assert store.reveal_value(UUID) == "pw"


def test_a_tampered_definition_file_is_refused(tmp_path) -> None:
    store = SecretStore(tmp_path)
    store.define(VOLUME_SECRET)
    path = tmp_path / "secrets" / f"def-{UUID}.xml"
    os.chmod(path, 0o644)
    with pytest.raises(Exception, match="readable or writable by other users"):
        store.definitions()
    os.chmod(path, 0o600)
    path.write_text(VOLUME_SECRET.replace(UUID, "11111111-2222-3333-4444-555555555555"))
    with pytest.raises(Exception, match="names another uuid"):
        store.definition(UUID)
    path.write_text("<secret><bogus/></secret>")
    with pytest.raises(Exception, match=f"does not read as a secret .*secret-undefine {UUID}"):
        store.definitions()
    store.undefine(UUID)  # the way out it names
    assert store.definitions() == []


def test_usage_named_chap_values_keep_working(tmp_path) -> None:
    """A value stored by usage name (secret-set, before definitions) is still found by
    that name; defining a secret for that usage and setting its value replaces it."""
    store = SecretStore(tmp_path)
    store.set("tgt-chap", "old-pw")
    legacy = tmp_path / "secrets" / hashlib.sha256(b"tgt-chap").hexdigest()
    assert legacy.read_text() == "old-pw"
    store.define(f"<secret><uuid>{UUID}</uuid><usage type='iscsi'><target>tgt-chap"
                 "</target></usage></secret>")
    assert store.get("tgt-chap") == "old-pw"  # the definition has no value yet: the old one
    store.set("tgt-chap", "new-pw")  # secret-set USAGE: the defined secret's value now
    assert store.get("tgt-chap") == "new-pw" == store.get(UUID)
    assert not legacy.exists()
    assert store.delete("tgt-chap") and store.definitions() == []


@settings(max_examples=300, deadline=None)
@example("iscsi", "0", "0\r0", False)  # a bare CR read back as a line break
@given(st.sampled_from(["volume", "iscsi", "ceph", "tls", "vtpm"]),
       st.text(min_size=1, max_size=60), st.text(max_size=60), st.booleans())
@example("iscsi", "0", "0\r0", False)  # a raw CR in the XML would read back as a newline
def test_any_definition_written_reads_back_the_same_or_is_refused(
        kind: str, usage: str, description: str, private: bool) -> None:
    """Whatever text a usage or description holds (quotes, markup, controls, surrogates),
    the written XML reads back as the same secret, or the text is refused with a message:
    never another secret, never a crash."""
    sdef = SecretDef(uuid=UUID, usage_type=kind, usage_id=usage, description=description or None,
                     private=private)
    try:
        text = format_secret(sdef)
        back = parse_secret(text)
    except (XMLError, ValidationError):
        return
    assert back.uuid == UUID and back.usage_type == kind and back.private == private
    assert back.usage_id == usage.strip() and (back.description or "") == description.strip()


@pytest.mark.parametrize(("pool_type", "fmt", "message"), [
    ("logical", None, "encrypts image files only, not the volumes of logical pools"),
    ("disk", "linux", "encrypts image files only, not the volumes of disk pools"),
    ("dir", "vmdk", "raw or qcow2, not vmdk"),
    ("fs", "qcow2", None),
    ("netfs", "raw", None),
])
def test_which_pools_and_formats_take_encryption(pool_type: str, fmt: str | None,
                                                 message: str | None) -> None:
    vol = VolumeDef(name="v", capacity=1 << 20, target=VolumeTarget(
        format=fmt, encryption=Encryption("luks", [EncryptionSecret(uuid=UUID)])))
    if message is None:
        xmlio.refuse_unhonoured(vol, pool_type)
    else:
        with pytest.raises(ValidationError, match=message):
            xmlio.refuse_unhonoured(vol, pool_type)


def test_defines_of_one_usage_at_once_leave_one_secret(tmp_path) -> None:
    """The usage check and the write are one step under a lock on the secrets directory:
    of many defines of the same usage racing, exactly one is kept."""
    store = SecretStore(tmp_path)
    store.define("<secret/>")  # the directory exists: every thread starts at the lock
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def define(i: int) -> None:
        start.wait()
        try:
            SecretStore(tmp_path).define(
                f"<secret><uuid>{i:08d}-0000-0000-0000-000000000000</uuid><usage type='iscsi'>"
                "<target>same</target></usage></secret>")
            outcomes.append("defined")
        except AlreadyExists:
            outcomes.append("refused")

    threads = [threading.Thread(target=define, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["defined"] + ["refused"] * 7
    assert [s.usage_id for s in store.definitions()].count("same") == 1


def test_records_of_many_volumes_at_once_are_all_kept(tmp_path) -> None:
    store = SecretStore(tmp_path)
    store.define(f"<secret><uuid>{UUID}</uuid></secret>")
    start = threading.Barrier(8)

    def remember(i: int) -> None:
        start.wait()
        SecretStore(tmp_path).remember_volume(f"/pool/clone{i}", UUID)

    threads = [threading.Thread(target=remember, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(store.volume_secret(f"/pool/clone{i}").uuid == UUID for i in range(8))
    store.remember_volume("/pool/clone3", None)
    assert store.volume_secret("/pool/clone3") is None
    assert store.volume_secret("/pool/clone4") is not None
