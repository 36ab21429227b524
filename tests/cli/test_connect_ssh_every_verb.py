"""Every CLI verb over `qemu+ssh://` (issue 17: "every CLI verb works over -c against a
real private libvirtd and over qemu+ssh to it"): the test's own sshd on 127.0.0.1 in front
of a private libvirtd (tests/cli/test_connect_ssh.py's fixtures). Each verb is run once
through the ssh link, on a dir pool it makes and removes, with the bytes it moves checked;
the set of verbs run is the set -c offers (cli.connect_verbs), so a new verb fails here
until it is run over ssh too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from cli.connect_verbs import CONNECT_VERBS
from tests.cli.test_connect_ssh import ENV, REPO, Remote, pytestmark, remote, sshd  # noqa: F401
from tests.sshd import Sshd

MiB = 1 << 20


def test_every_verb_over_ssh(remote: Remote, sshd: Sshd, tmp_path: Path) -> None:  # noqa: F811
    uri = sshd.uri("/session", socket=remote.socket)
    ran: set[str] = set()

    def pk(verb: str, *args: str, data: bytes = b"", ok: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        ran.add(verb)
        r = subprocess.run([sys.executable, "-m", "cli", "-c", uri, verb, *args], input=data,
                           capture_output=True, env=env or ENV, cwd=REPO, timeout=120,
                           check=False)
        if ok:
            assert r.returncode == 0, (verb, args, r.stderr)
            assert r.stderr == b"", (verb, r.stderr)
        return r

    target = remote.pools / "everyverb"
    try:
        # == pools ==
        assert pk("pool-define-as", "everyverb", "dir", "--target", str(target)).stdout == \
            b"Pool everyverb defined\n"
        xml = pk("pool-dumpxml", "everyverb", "--inactive").stdout
        assert b"<name>everyverb</name>" in xml
        pk("pool-build", "everyverb")
        pk("pool-start", "everyverb")
        pk("pool-autostart", "everyverb")
        assert b"Autostart:      yes" in pk("pool-info", "everyverb").stdout
        assert b"everyverb" in pk("pool-list", "--all").stdout
        uuid = pk("pool-uuid", "everyverb").stdout.decode().strip()
        assert pk("pool-name", uuid).stdout.decode().strip() == "everyverb"
        pk("pool-refresh", "everyverb")
        pk("pool-edit", "everyverb", env={**ENV, "EDITOR": "true", "VISUAL": "true"})
        assert b"<storagepoolCapabilities" in pk("pool-capabilities").stdout
        for verb, args in (("find-storage-pool-sources-as", ("logical",)),
                           ("find-storage-pool-sources", ("logical",))):
            r = pk(verb, *args, ok=False)  # libvirt's answer through the link, either way
            assert r.returncode == 0 or r.stderr.startswith(b"error: "), (verb, r.stderr)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "cli", "-c", uri, "pool-event", "--event", "lifecycle",
             "--pool", "everyverb", "--loop", "--timeout", "12"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO)
        ran.add("pool-event")

        # == volumes ==
        pk("vol-create-as", "everyverb", "a.img", "1M")
        vol_xml = tmp_path / "b.xml"
        vol_xml.write_text("<volume><name>b.img</name><capacity>1048576</capacity>"
                           "<target><format type='raw'/></target></volume>")
        pk("vol-create", "everyverb", str(vol_xml))
        names = [line.split()[0] for line in pk("vol-list", "everyverb", "--details").stdout
                 .decode().splitlines()[2:] if line.strip()]
        assert names == ["a.img", "b.img"]
        assert b"Capacity:       1.00 MiB" in pk("vol-info", "--pool", "everyverb",
                                                   "a.img").stdout
        assert b"<name>a.img</name>" in pk("vol-dumpxml", "--pool", "everyverb",
                                           "a.img").stdout
        path = pk("vol-path", "--pool", "everyverb", "a.img").stdout.decode().strip()
        assert path == str(target / "a.img")
        key = pk("vol-key", "--pool", "everyverb", "a.img").stdout.decode().strip()
        assert pk("vol-name", key).stdout.decode().strip() == "a.img"
        assert pk("vol-pool", key).stdout.decode().strip() == "everyverb"
        data = os.urandom(MiB)
        src = tmp_path / "src.bin"
        src.write_bytes(data)
        pk("vol-upload", "--pool", "everyverb", "a.img", str(src))
        assert (target / "a.img").read_bytes() == data
        dst = tmp_path / "dst.bin"
        pk("vol-download", "--pool", "everyverb", "a.img", str(dst))
        assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()
        pk("vol-clone", "--pool", "everyverb", "a.img", "c.img")
        assert (target / "c.img").read_bytes() == data
        from_xml = tmp_path / "d.xml"
        from_xml.write_text("<volume><name>d.img</name><capacity>1048576</capacity>"
                            "<target><format type='raw'/></target></volume>")
        pk("vol-create-from", "everyverb", str(from_xml), "a.img", "--inputpool", "everyverb")
        assert (target / "d.img").read_bytes() == data
        pk("vol-resize", "--pool", "everyverb", "c.img", "2M")
        assert (target / "c.img").stat().st_size == 2 * MiB
        pk("vol-wipe", "--pool", "everyverb", "c.img")
        assert (target / "c.img").read_bytes() == b"\0" * (2 * MiB)
        for name in ("a.img", "b.img", "c.img", "d.img"):
            pk("vol-delete", "--pool", "everyverb", name)
        assert os.listdir(target) == []

        # == transient pools, the end of the pool, its events ==
        pk("pool-destroy", "everyverb")
        deadline = time.monotonic() + 30
        out, err = watcher.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert b"event 'lifecycle' for storage pool everyverb: Stopped" in out, (out, err)
        pk("pool-delete", "everyverb")
        pk("pool-undefine", "everyverb")
        define_xml = tmp_path / "pool.xml"
        define_xml.write_bytes(xml)
        pk("pool-define", str(define_xml))
        pk("pool-undefine", "everyverb")
        tr = remote.pools / "transient1"
        tr.mkdir()
        os.chown(tr, 65534, 65534)
        tr_xml = tmp_path / "tr.xml"
        tr_xml.write_text(f"<pool type='dir'><name>transient1</name><target><path>{tr}"
                          "</path></target></pool>")
        pk("pool-create", str(tr_xml))
        pk("pool-destroy", "transient1")
        pk("pool-create-as", "transient2", "dir", "--target", str(remote.pools / "t2"),
           "--build")
        pk("pool-destroy", "transient2")

        # == secrets ==
        secret_xml = tmp_path / "secret.xml"
        secret_xml.write_text("<secret ephemeral='no' private='no'><usage type='iscsi'>"
                              "<target>pk-ssh-every</target></usage></secret>")
        suuid = pk("secret-define", str(secret_xml)).stdout.decode().split()[1]
        pk("secret-set-value", suuid, data=b"first")
        got = pk("secret-get-value", suuid, "--reveal").stdout.decode().strip()
        assert base64.b64decode(got) == b"first"
        pk("secret-set", "pk-ssh-every", data=b"second\n")
        got = pk("secret-get-value", suuid, "--reveal").stdout.decode().strip()
        assert base64.b64decode(got) == b"second"
        assert b"iscsi pk-ssh-every" in pk("secret-list").stdout
        assert b"pk-ssh-every" in pk("secret-dumpxml", suuid).stdout
        pk("secret-undefine", suuid)
    finally:
        local = f"qemu:///session?socket={remote.socket}"
        for verb, name in (("pool-destroy", "everyverb"), ("pool-delete", "everyverb"),
                           ("pool-undefine", "everyverb"), ("pool-destroy", "transient1"),
                           ("pool-destroy", "transient2")):
            subprocess.run(["virsh", "-c", local, verb, name], capture_output=True,
                           check=False, timeout=60)
    assert ran == set(CONNECT_VERBS), sorted(set(CONNECT_VERBS) - ran)
