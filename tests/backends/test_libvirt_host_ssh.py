"""LibvirtHostController over qemu+ssh:// for real (tests/cli/test_connect_ssh.py's sshd
of the test's own on 127.0.0.1 in front of a private libvirtd): libvirt's pool events
come through the ssh link (a refresh by another client, over the daemon's local socket,
relists the pool here), and an upload and a download move the right bytes through it.
Needs root, openssh-server, netcat-openbsd, libvirt-daemon and libvirt-python.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from backends.events import VolumesChanged
from backends.libvirt_host import LibvirtHostController
from backends.model import PoolDef, PoolTarget, VolumeDef
from tests.backends.test_libvirt_host_test_driver import Recorder
from tests.cli.test_connect_ssh import MISSING, Remote, remote, sshd, virsh
from tests.libvirtd import NOBODY
from tests.sshd import Sshd

__all__ = ["remote", "sshd"]  # the fixtures, for this module
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
MiB = 1 << 20


def test_events_and_bytes_over_ssh(remote: Remote, sshd: Sshd, tmp_path: Path) -> None:
    local = f"qemu:///session?socket={remote.socket}"  # another client, not through ssh
    ctl = LibvirtHostController(sshd.uri("/session", socket=remote.socket), "far")
    seen = Recorder()
    ctl.subscribe(seen)
    target = remote.pools / "hostssh"
    try:
        pid = ctl.define_pool_def(PoolDef(type="dir", name="hostssh",
                                          target=PoolTarget(path=str(target)))).name
        assert pid == "hostssh@far"
        ctl.build_pool(pid).wait(60)
        ctl.start_pool(pid)
        seen.wait(lambda ev: seen.pool_reasons(pid) == ["defined", "built", "started"])
        assert ctl.list_volumes(pid) == []
        virsh(local, "vol-create-as", "hostssh", "other.img", "2M")
        virsh(local, "pool-refresh", "hostssh")  # the event crosses the ssh link
        seen.wait(lambda ev: "other.img" in seen.changed(pid), timeout=30)
        assert ctl.cached_volumes(pid, ["other.img"])[0].capacity == 2 * MiB

        ctl.create_volume_def(pid, VolumeDef(name="v.raw", capacity=4 * MiB)).wait(60)
        data = os.urandom(3 * MiB + 17)
        (tmp_path / "src").write_bytes(data)
        assert ctl.upload_volume(pid, "v.raw", str(tmp_path / "src")).wait(60) == len(data)
        assert (target / "v.raw").read_bytes()[:len(data)] == data
        assert ctl.download_volume(pid, "v.raw", str(tmp_path / "out")).wait(60) == 4 * MiB
        assert hashlib.sha256((tmp_path / "out").read_bytes()).digest() == \
            hashlib.sha256((target / "v.raw").read_bytes()).digest()
        assert target.stat().st_uid == NOBODY
        assert any(isinstance(e, VolumesChanged) and e.pool == pid for e in seen.events)
    finally:
        ctl.close()  # (the daemon is this module's own, and goes with it)
