"""`poolkeeper -c URI` against a real private libvirtd (tests/libvirtd.py): transient pools
(pool-create, pool-create-as), pool-edit (never saving over a change made meanwhile),
pool-capabilities, source discovery's refusal, and libvirt's secrets (define, set and get
a value, list, dump, undefine; a value never on argv), checked against `virsh -c URI`.
Needs root (the daemon runs as nobody), libvirt-daemon, qemu-img and libvirt-python.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.test_connect_libvirtd import ENV, MISSING, REPO, Host

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def pk_in(host: Host, *args: str, data: bytes = b"",
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """poolkeeper with `data` on stdin (not a terminal)."""
    return subprocess.run([sys.executable, "-m", "cli", "-c", host.uri, *args], input=data,
                          capture_output=True, env=env or ENV, cwd=REPO, timeout=120,
                          check=False)


def test_transient_pools_capabilities_and_discovery(host: Host) -> None:
    ours = host.pk("pool-capabilities").stdout
    assert "<storagepoolCapabilities>" in ours
    # libvirt's document as it gave it; virsh adds two newlines after it
    assert ours.endswith(">\n") and ours + "\n\n" == host.virsh("pool-capabilities")

    target = host.pools / "tp"
    xml = host.pk("pool-create-as", "tp", "dir", "--target", str(target),
                  "--print-xml").stdout
    assert f"<path>{target}</path>" in xml and "tp" not in host.virsh("pool-list", "--all")
    assert host.pk("pool-create-as", "tp", "dir", "--target", str(target), "--build").stdout \
        == "Pool tp created\n"
    assert target.is_dir()
    assert host.pk("pool-list", "--transient", "--name").stdout == "tp                  \n\n"
    assert host.pk("pool-info", "tp").stdout == host.virsh("pool-info", "tp")
    assert "Persistent:     no\n" in host.virsh("pool-info", "tp")
    host.pk("pool-destroy", "tp")
    assert "tp" not in host.virsh("pool-list", "--all", "--name").split()  # transient: gone

    spec = host.pools.parent / "tq.xml"
    spec.write_text(f"<pool type='dir'><name>tq</name><target><path>{target}</path>"
                    "</target></pool>\n")
    assert host.pk("pool-create", str(spec)).stdout == f"Pool tq created from {spec}\n"
    assert host.virsh("pool-list", "--transient", "--name").split() == ["tq"]
    r = host.pk("pool-create", str(spec), ok=False)  # running already: libvirt's refusal
    assert r.returncode == 1 and r.stderr.startswith("error: cannot create the pool: ")
    host.pk("pool-destroy", "tq")
    r = host.pk("pool-create", "--validate", str(spec), ok=False)
    assert r.returncode == 1 and "no --validate" in r.stderr
    assert "tq" not in host.virsh("pool-list", "--all", "--name").split()

    r = host.pk("find-storage-pool-sources-as", "dir", ok=False)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("error: cannot find dir pool sources: ")
    assert "does not support source discovery" in r.stderr
    shutil.rmtree(target)


def editor(tmp: Path, script: str) -> dict[str, str]:
    path = tmp / "editor.sh"
    path.write_text("#!/bin/sh\nset -e\n" + script)
    path.chmod(0o755)
    return {**ENV, "EDITOR": str(path), "VISUAL": ""}


def test_pool_edit_saves_only_over_what_was_edited(host: Host, tmp_path: Path) -> None:
    a, b, c = (str(host.pools / n) for n in ("ea", "eb", "ec"))
    host.pk("pool-define-as", "e", "dir", "--target", a)
    try:
        r = host.pk("pool-edit", "e", env=editor(tmp_path, f'sed -i "s#{a}<#{b}<#" "$1"\n'))
        assert r.stdout == "Pool e XML configuration edited.\n"
        assert f"<path>{b}</path>" in host.virsh("pool-dumpxml", "--inactive", "e")
        r = host.pk("pool-edit", "e", env=editor(tmp_path, "true\n"))
        assert r.stdout == "Pool e XML configuration not changed.\n"

        # another client redefines the pool while it is being edited: never saved over
        other = tmp_path / "other.xml"
        other.write_text(host.virsh("pool-dumpxml", "--inactive", "e").replace(b, c))
        r = host.pk("pool-edit", "e", ok=False, env=editor(
            tmp_path, f"virsh -q -c '{host.uri}' pool-define {other} >/dev/null\n"
                      f'sed -i "s#{b}<#{a}<#" "$1"\n'))
        assert (r.returncode, r.stdout) == (1, "")
        assert "was changed by someone else while it was being edited" in r.stderr
        assert r.stderr.endswith("error: pool 'e' was not changed\n")
        assert f"<path>{c}</path>" in host.virsh("pool-dumpxml", "--inactive", "e")

        r = host.pk("pool-edit", "e", ok=False,
                    env=editor(tmp_path, 'sed -i "s#<name>e<#<name>f<#" "$1"\n'))
        assert r.returncode == 1 and "does not rename one" in r.stderr
        assert "f" not in host.virsh("pool-list", "--all", "--name").split()
    finally:
        host.virsh("pool-undefine", "e")


def test_secrets_over_the_connection(host: Host, tmp_path: Path) -> None:
    assert host.pk("secret-list").stdout == host.virsh("secret-list")
    xml = tmp_path / "s.xml"
    xml.write_text("<secret ephemeral='no' private='no'><description>disk key</description>"
                   "<usage type='volume'><volume>/srv/x.img</volume></usage></secret>\n")
    r = host.pk("secret-define", str(xml))
    uuid = r.stdout.removeprefix("Secret ").removesuffix(" created\n")
    assert host.virsh("secret-list").split()[3:] == [uuid, "volume", "/srv/x.img"]

    assert pk_in(host, "secret-set-value", uuid, data=b"hunter2\n").stdout == \
        b"Secret value set\n"
    assert host.virsh("secret-get-value", uuid).strip() == base64.b64encode(b"hunter2").decode()
    r = pk_in(host, "secret-get-value", uuid)
    assert r.returncode == 1 and b"--reveal" in r.stderr and r.stdout == b""
    assert pk_in(host, "secret-get-value", "--reveal", uuid).stdout == b"aHVudGVyMg==\n"
    assert pk_in(host, "secret-get-value", "--reveal", "--plain", "/srv/x.img").stdout == \
        b"hunter2\n"  # by usage, too
    (tmp_path / "v.b64").write_text(base64.b64encode(b"s3cret").decode() + "\n")
    pk_in(host, "secret-set-value", uuid, "--file", str(tmp_path / "v.b64"))
    assert pk_in(host, "secret-get-value", "--reveal", "--plain", uuid).stdout == b"s3cret\n"
    r = pk_in(host, "secret-set-value", uuid, "--base64", "c2VjcmV0")  # never from argv
    assert r.returncode == 1 and b"no value on the command line" in r.stderr
    assert pk_in(host, "secret-get-value", "--reveal", "--plain", uuid).stdout == b"s3cret\n"

    assert host.pk("secret-list").stdout == host.virsh("secret-list")
    assert host.pk("secret-dumpxml", uuid).stdout + "\n" == host.virsh("secret-dumpxml", uuid)
    listed = json.loads(host.pk("secret-list", "--json").stdout)
    assert listed == [{"uuid": uuid, "usage_type": "volume", "usage": "/srv/x.img",
                       "description": "disk key", "private": False, "has_value": None,
                       "usage_named": False}]

    private = tmp_path / "p.xml"
    private.write_text("<secret ephemeral='no' private='yes'><usage type='ceph'>"
                       "<name>client.admin</name></usage></secret>\n")
    puuid = host.pk("secret-define", str(private)).stdout.split()[1]
    pk_in(host, "secret-set-value", puuid, data=b"k")
    r = pk_in(host, "secret-get-value", "--reveal", puuid)
    assert r.returncode == 1 and b"private" in r.stderr and r.stdout == b""
    assert host.pk("secret-list", "--private").stdout.split()[3:] == [puuid, "ceph",
                                                                      "client.admin"]
    assert host.pk("secret-list", "--no-private").stdout.split()[3:] == [uuid, "volume",
                                                                         "/srv/x.img"]

    # a secret an encrypted volume needs is not undefined unless forced
    target = host.pools / "enc"
    host.pk("pool-create-as", "enc", "dir", "--target", str(target), "--build")
    try:
        vol = tmp_path / "enc.xml"
        vol.write_text("<volume><name>e.img</name><capacity unit='M'>8</capacity><target>"
                       "<format type='raw'/><encryption format='luks'><secret "
                       f"type='passphrase' uuid='{uuid}'/></encryption></target></volume>\n")
        host.pk("vol-create", "enc", str(vol))
        r = host.pk("secret-undefine", uuid, ok=False)
        assert r.returncode == 1 and "key of encrypted volumes" in r.stderr
        assert str(target / "e.img") in r.stderr and uuid in host.virsh("secret-list")
        assert host.pk("secret-undefine", "--force", uuid).stdout == f"Secret {uuid} deleted\n"
        assert host.pk("secret-undefine", puuid).stdout == f"Secret {puuid} deleted\n"
        assert host.pk("secret-list").stdout == host.virsh("secret-list")
        r = host.pk("secret-dumpxml", uuid, ok=False)
        assert r.returncode == 1 and "no secret" in r.stderr
    finally:
        host.virsh("pool-destroy", "enc")
        shutil.rmtree(target, ignore_errors=True)


def test_pool_event_over_the_connection_prints_libvirts_events(host: Host) -> None:
    """libvirt's own events, any client's (virsh here), as virsh prints them; the same
    lines as `virsh pool-event` over the same connection."""
    target = host.pools / "ev"
    host.virsh("pool-define-as", "ev", "dir", "--target", str(target))
    host.virsh("pool-build", "ev")
    ours = subprocess.Popen([sys.executable, "-m", "cli", "-c", host.uri, "pool-event",
                             "--event", "lifecycle", "--pool", "ev", "--loop",
                             "--timeout", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO)
    theirs = subprocess.Popen(["virsh", "-c", host.uri, "pool-event", "--event", "lifecycle",
                               "--pool", "ev", "--loop", "--timeout", "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        time.sleep(2)  # both registered
        host.virsh("pool-start", "ev")
        host.virsh("pool-destroy", "ev")
        out, err = ours.communicate(timeout=30)
        vout, _ = theirs.communicate(timeout=30)
    finally:
        for proc in (ours, theirs):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert err == b""
    lines = out.decode().splitlines()
    assert lines == ["event 'lifecycle' for storage pool ev: Started",
                     "event 'lifecycle' for storage pool ev: Stopped",
                     "event loop timed out", "events received: 2", ""]
    assert lines == vout.decode().splitlines()
    assert ours.returncode == 0
    # refresh events, and nothing heard in time: status 1, as virsh
    r = host.pk("pool-event", "--event", "refresh", "--pool", "ev", "--timeout", "1",
                ok=False)
    assert (r.returncode, r.stdout) == (1, "event loop timed out\nevents received: 0\n\n")
    host.virsh("pool-undefine", "ev")


def test_secret_set_over_the_connection(host: Host) -> None:
    """secret-set USAGE: a private iSCSI secret defined for a usage no secret has (once:
    set again, the same one), the value of an existing one's set (virsh reads it back);
    the value only from stdin."""
    def usages() -> list[str]:
        return [line for line in host.virsh("secret-list").splitlines()[2:] if line.strip()]

    before = usages()
    r = pk_in(host, "secret-set", "pk-chap-new", data=b"s3cret\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"Secret pk-chap-new set\n", b"")
    made = [line for line in usages() if line not in before]
    assert len(made) == 1 and made[0].split()[1:] == ["iscsi", "pk-chap-new"]
    uuid = made[0].split()[0]
    assert "private='yes'" in host.virsh("secret-dumpxml", uuid)
    assert pk_in(host, "secret-set", "pk-chap-new", data=b"other").returncode == 0
    assert len(usages()) == len(before) + 1  # the same secret again
    # an existing, readable one: its value is what was given
    xml = host.pools.parent / "chap2.xml"
    xml.write_text("<secret ephemeral='no' private='no'><usage type='iscsi'>"
                   "<target>pk-chap-two</target></usage></secret>")
    uuid2 = host.virsh("secret-define", str(xml)).split()[1]
    assert pk_in(host, "secret-set", "pk-chap-two", data=b"pw-two\n").returncode == 0
    assert base64.b64decode(host.virsh("secret-get-value", uuid2).strip()) == b"pw-two"
    r = pk_in(host, "secret-set", "pk-chap-two", data=b"")
    assert r.returncode == 1 and b"an empty value was given" in r.stderr
    # a ceph secret of the same name is another secret: never overwritten
    ceph = host.pools.parent / "ceph.xml"
    ceph.write_text("<secret ephemeral='no' private='no'><usage type='ceph'>"
                    "<name>pk-chap-two</name></usage></secret>")
    uuid3 = host.virsh("secret-define", str(ceph)).split()[1]
    value = host.pools.parent / "ceph.key"
    value.write_bytes(base64.b64encode(b"ceph-key"))
    host.virsh("secret-set-value", uuid3, "--file", str(value))
    assert pk_in(host, "secret-set", "pk-chap-two", data=b"pw-three\n").returncode == 0
    assert base64.b64decode(host.virsh("secret-get-value", uuid3).strip()) == b"ceph-key"
    assert base64.b64decode(host.virsh("secret-get-value", uuid2).strip()) == b"pw-three"
    for ref in (uuid, uuid2, uuid3):
        host.virsh("secret-undefine", ref)
