"""The virsh-shaped secret commands, in-process: define, list, set a value (stdin or
--file, never argv), dump, reveal only when asked and never a private one, undefine; and
an encrypted volume made from the command line with a defined secret."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import stat
from pathlib import Path

import pytest

UUID = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
VALUE = "pa55,phrase=with spaces"


@pytest.fixture
def stdin(monkeypatch):
    def feed(data: bytes) -> None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    return feed


def secret_file(tmp_path: Path, private: str, usage: str = "") -> Path:
    path = tmp_path / "secret.xml"
    path.write_text(f"<secret ephemeral='no' private='{private}'><uuid>{UUID}</uuid>"
                    f"<description>disk key</description>{usage}</secret>")
    return path


def test_secret_verbs_end_to_end(cli, tmp_path, stdin, state_root):
    usage = f"<usage type='volume'><volume>{tmp_path}/images/v</volume></usage>"
    r = cli("secret-define", str(secret_file(tmp_path, "no", usage)))
    assert (r.code, r.out) == (0, f"Secret {UUID} created\n"), r
    r = cli("secret-list")
    assert r.code == 0 and f" {UUID}   volume {tmp_path}/images/v  (no value)" in r.out, r
    stdin(VALUE.encode() + b"\n")
    r = cli("secret-set-value", UUID)
    assert (r.code, r.out) == (0, "Secret value set\n"), r
    assert (state_root / "secrets" / f"val-{UUID}").read_text() == VALUE
    assert stat.S_IMODE((state_root / "secrets" / f"val-{UUID}").stat().st_mode) == 0o600
    r = cli("secret-list", "--json")
    assert '"has_value": true' in r.out and VALUE not in r.out
    r = cli("secret-dumpxml", UUID)
    assert r.code == 0 and r.out.startswith("<secret ephemeral='no' private='no'>\n")
    assert f"<volume>{tmp_path}/images/v</volume>" in r.out and VALUE not in r.out
    # the value is printed only when asked for explicitly
    r = cli("secret-get-value", UUID)
    assert r.code == 1 and "add --reveal" in r.err and VALUE not in r.out + r.err, r
    r = cli("secret-get-value", UUID, "--reveal")
    assert r.code == 0 and base64.b64decode(r.out.strip()).decode() == VALUE, r
    assert cli("secret-get-value", f"{tmp_path}/images/v", "--reveal", "--plain").out == (
        VALUE + "\n")
    # an encrypted volume from the command line, shown with its secret
    assert cli("pool-define-as", "p", "dir", "--target", str(tmp_path / "images")).code == 0
    assert cli("pool-build", "p").code == 0 and cli("pool-start", "p").code == 0
    vol = tmp_path / "v.xml"
    vol.write_text("<volume><name>v</name><capacity unit='MiB'>4</capacity><target>"
                   "<format type='qcow2'/><encryption format='luks'><secret type='passphrase' "
                   f"uuid='{UUID}'/></encryption></target></volume>")
    r = cli("vol-create", "p", str(vol))
    assert r.code == 0, r
    r = cli("vol-dumpxml", "v", "--pool", "p")
    assert f"<secret type='passphrase' uuid='{UUID}'/>" in r.out, r
    # vol-list --details has virsh's columns (no format); --json says it
    assert '"encryption": "luks"' in cli("vol-list", "p", "--json").out
    # the volume needs the value (maybe its only copy): refused, naming it, unless --force
    r = cli("secret-undefine", UUID)
    assert r.code == 1 and f"opens the encrypted volume(s) {tmp_path}/images/v;" in r.err, r
    assert "add --force" in r.err and cli("secret-list").out.count(UUID) == 1
    r = cli("secret-undefine", UUID, "--force")
    assert r.code == 0 and cli("secret-list").out.count("\n") == 3  # header, rule, blank
    assert sorted(p.name for p in (state_root / "secrets").iterdir()) == []


def test_a_private_secret_is_never_revealed(cli, tmp_path, stdin):
    assert cli("secret-define", str(secret_file(tmp_path, "yes"))).code == 0
    stdin(VALUE.encode())
    assert cli("secret-set-value", UUID).code == 0
    r = cli("secret-get-value", UUID, "--reveal")
    assert r.code == 1 and "is private" in r.err and VALUE not in r.out + r.err, r


def test_a_value_is_never_taken_from_argv(cli, tmp_path, state_root):
    assert cli("secret-define", str(secret_file(tmp_path, "no"))).code == 0
    for argv in ((UUID, base64.b64encode(VALUE.encode()).decode()),
                 (UUID, "--base64", base64.b64encode(VALUE.encode()).decode())):
        r = cli("secret-set-value", *argv)
        assert r.code == 1 and VALUE not in r.out + r.err, r
        assert "no value on the command line" in r.err or "unexpected data" in r.err, r
    assert not (state_root / "secrets" / f"val-{UUID}").exists()
    key = tmp_path / "key"
    key.write_text(base64.b64encode(VALUE.encode()).decode() + "\n")
    assert cli("secret-set-value", UUID, "--file", str(key)).code == 0  # base64, as virsh
    assert (state_root / "secrets" / f"val-{UUID}").read_text() == VALUE
    key.write_text("not base64!")
    r = cli("secret-set-value", UUID, "--file", str(key))
    assert r.code == 1 and "add --plain" in r.err
    key.write_text("plain\n")
    assert cli("secret-set-value", UUID, "--file", str(key), "--plain").code == 0
    assert (state_root / "secrets" / f"val-{UUID}").read_text() == "plain"
    r = cli("secret-set-value", "11111111-2222-3333-4444-555555555555", "--file", str(key))
    assert r.code == 1 and "no secret '11111111-2222-3333-4444-555555555555'" in r.err


def test_bad_secret_xml_is_refused_with_its_reason(cli, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<secret ephemeral='yes'/>")
    r = cli("secret-define", str(bad))
    assert r.code == 1 and "ephemeral='no'" in r.err, r
    bad.write_text("<!DOCTYPE s [<!ENTITY e SYSTEM '/etc/passwd'>]><secret>&e;</secret>")
    r = cli("secret-define", str(bad))
    assert r.code == 1 and "DOCTYPE" in r.err, r
    assert cli("secret-list").out.count("\n") == 3


def test_secret_list_names_usage_named_values(cli, stdin, state_root):
    """secret-set USAGE records the usage name beside the value (0600), so secret-list
    shows it as `iscsi USAGE`; one stored before that (no name beside it) is listed as
    not named; secret-undefine USAGE takes the value and its name."""
    stdin(b"chap-pw\n")
    assert cli("secret-set", "iqn.2026-12.test:tgt").code == 0
    secrets = state_root / "secrets"
    hashed = hashlib.sha256(b"iqn.2026-12.test:tgt").hexdigest()
    assert (secrets / f"{hashed}.usage").read_text() == "iqn.2026-12.test:tgt"
    assert stat.S_IMODE((secrets / f"{hashed}.usage").stat().st_mode) == 0o600
    old = secrets / hashlib.sha256(b"before-names").hexdigest()  # as older versions left
    old.write_text("old-pw")
    old.chmod(0o600)
    forged = secrets / hashlib.sha256(b"forged").hexdigest()  # a name that is not its own
    forged.write_text("pw")
    forged.chmod(0o600)
    (secrets / f"{forged.name}.usage").write_text("someone-else")
    (secrets / f"{forged.name}.usage").chmod(0o600)
    r = cli("secret-list")
    rows = [line.split(None, 1) for line in r.out.splitlines()[2:] if line.strip()]
    assert rows == [["-", "iscsi iqn.2026-12.test:tgt"],
                    ["-", "iscsi (usage name not recorded)"],
                    ["-", "iscsi (usage name not recorded)"]], r
    assert "pw" not in r.out.replace("(usage", "")
    listed = json.loads(cli("secret-list", "--json").out)
    assert [(e["uuid"], e["usage"], e["usage_named"], e["private"]) for e in listed] == [
        (None, "iqn.2026-12.test:tgt", True, True), (None, None, True, True),
        (None, None, True, True)]
    assert cli("secret-list", "--no-private").out.count("\n") == 3  # never revealed: private
    r = cli("secret-undefine", "iqn.2026-12.test:tgt")
    assert r.code == 0, r
    assert not (secrets / hashed).exists() and not (secrets / f"{hashed}.usage").exists()
    assert "iqn.2026-12.test:tgt" not in cli("secret-list").out


def test_a_chap_value_cannot_be_read_through_a_secret_of_another_type(cli, tmp_path, stdin):
    """secret-set's values are write-only: a secret of another type claiming the same usage
    text is refused, so `secret-get-value --reveal` never prints one."""
    stdin(b"CHAPPASS")
    assert cli("secret-set", "chap-tgt").code == 0
    iscsi = tmp_path / "iscsi.xml"
    iscsi.write_text("<secret private='yes'><usage type='iscsi'><target>chap-tgt</target>"
                     "</usage></secret>")
    assert cli("secret-define", str(iscsi)).code == 0
    ceph = tmp_path / "ceph.xml"
    ceph.write_text(f"<secret private='no'><uuid>{UUID}</uuid><usage type='ceph'>"
                    "<name>chap-tgt</name></usage></secret>")
    r = cli("secret-define", str(ceph))
    assert r.code == 1 and "is already defined for use with iscsi chap-tgt" in r.err, r
    r = cli("secret-get-value", "--reveal", "--plain", UUID)
    assert r.code == 1 and "CHAPPASS" not in r.out + r.err, r


def test_secret_set_refuses_bytes_that_are_not_utf8_as_secret_set_value_does(
        cli, tmp_path, stdin, state_root):
    assert cli("secret-define", str(secret_file(tmp_path, "no"))).code == 0
    for argv in (("secret-set", "tgt"), ("secret-set-value", UUID)):
        stdin(b"pa\xffss\n")
        r = cli(*argv)
        assert (r.code, r.out) == (1, ""), r
        assert r.err == "error: <secret>: the secret value is not valid UTF-8 text\n", r
        assert "Traceback" not in r.err
    assert sorted(p.name for p in (state_root / "secrets").iterdir()) == [f"def-{UUID}.xml"]
