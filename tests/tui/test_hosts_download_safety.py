"""A download from another host writes to this one: never into one of this host's own
pools, which the native engine refuses of its own downloads. Checked by name before the
job (Fleet.download_volume) and again on the file the job opened (a name swapped for a
hard link to a pool's volume meanwhile): a private libvirtd as the other host."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.connection_store import ConnectionStore, SavedConnection
from backends.controller import StorageController
from backends.errors import UnsafePath
from backends.fleet import Fleet
from backends.model import PoolDef, PoolTarget, VolumeDef, VolumeTarget
from tests.libvirtd import NOBODY, libvirtd_missing, start_libvirtd, stop_libvirtd

pytestmark = pytest.mark.skipif(libvirtd_missing() is not None,
                                reason=libvirtd_missing() or "")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
MiB = 1 << 20


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Fleet, Path]]:
    base = Path(tempfile.mkdtemp(prefix="pk-dl-"))
    base.chmod(0o755)
    proc, sock = start_libvirtd(base)
    native = StorageController(tmp_path / "state", autostart=False, create_default=False)
    fleet = None
    try:
        uri = f"qemu:///session?socket={sock}"
        pools = base / "pools"
        pools.mkdir()
        os.chown(pools, NOBODY, NOBODY)
        for args in (["pool-define-as", "rp", "dir", "--target", str(pools / "rp")],
                     ["pool-build", "rp"], ["pool-start", "rp"],
                     ["vol-create-as", "rp", "r.img", "4096"]):
            subprocess.run(["virsh", "-c", uri, *args], check=True, env=ENV,
                           capture_output=True)
        images = tmp_path / "images"
        native.define_pool_def(PoolDef(type="dir", name="local",
                                       target=PoolTarget(path=str(images))))
        native.build_pool("local").wait(30)
        native.start_pool("local")
        native.create_volume_def("local", VolumeDef(name="vm1.img", capacity=MiB,
                                                    target=VolumeTarget(format="raw"))).wait(30)
        (images / "vm1.img").write_bytes(b"\x5a" * MiB)
        ConnectionStore(native.paths.config_dir).save([SavedConnection("t", uri)])
        fleet = Fleet(native, native.paths.config_dir)
        fleet.open()
        deadline = time.monotonic() + 30
        while fleet.connections()[1].state != "connected":
            assert time.monotonic() < deadline, fleet.connections()
            time.sleep(0.05)
        fleet.list_volumes("rp@t")
        yield fleet, images / "vm1.img"
    finally:
        if fleet is not None:
            fleet.close()
        else:
            native.close()
        stop_libvirtd(proc)
        shutil.rmtree(base, ignore_errors=True)


def test_a_download_from_another_host_never_lands_in_a_pool_here(
        fleet: tuple[Fleet, Path], tmp_path: Path) -> None:
    fl, victim = fleet
    with pytest.raises(UnsafePath, match="a download never writes into a pool"):
        fl.download_volume("rp@t", "r.img", str(victim))
    # the same file by another name (a hard link outside the pools), given to the host's
    # own download (the name check passes: the job's check on the opened file refuses)
    link = tmp_path / "elsewhere.img"
    os.link(victim, link)
    member = fl.host_controller("t")
    job = member.download_volume("rp@t", "r.img", str(link))
    with pytest.raises(UnsafePath, match="is a hard link to volume 'vm1.img' of pool 'local'"):
        job.wait(30)
    assert job.state == "failed"
    assert victim.read_bytes() == b"\x5a" * MiB
    # elsewhere, it downloads
    out = tmp_path / "out.img"
    job = fl.download_volume("rp@t", "r.img", str(out))
    job.wait(30)
    assert job.state == "done" and out.read_bytes() == b"\0" * 4096
