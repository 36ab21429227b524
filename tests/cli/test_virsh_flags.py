"""virsh's storage flags: --prealloc-metadata (qcow2 metadata preallocated, qemu-img
-o preallocation=metadata), --reflink (a reflink or nothing), vol-upload --sparse (zeros
become holes), --validate; through the real CLI on dir pools, real qemu-img, and (root) a
real xfs on a loop device for the reflink that works."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.loopfs import LoopFS, loopfs  # noqa: F401  (the fixture)

MiB = 1 << 20


@pytest.fixture
def vms(cli, tmp_path):
    target = tmp_path / "vms"
    assert cli("pool-define-as", "vms", "dir", "--target", str(target)).code == 0
    assert cli("pool-start", "vms", "--build").code == 0
    return target


def metadata_preallocated(path: Path) -> bool:
    """qemu-img map: preallocated metadata maps every cluster (data, reading as zeros)."""
    extents = json.loads(subprocess.run(["qemu-img", "map", "--output=json", str(path)],
                                        capture_output=True, text=True, check=True).stdout)
    return all(e["data"] for e in extents)


def test_prealloc_metadata_on_create(cli, vms, tmp_path):
    assert cli("vol-create-as", "vms", "plain.qcow2", "8M", "--format", "qcow2").code == 0
    assert not metadata_preallocated(vms / "plain.qcow2")
    r = cli("vol-create-as", "vms", "pre.qcow2", "8M", "--format", "qcow2",
            "--prealloc-metadata")
    assert r.code == 0, r
    assert metadata_preallocated(vms / "pre.qcow2")
    xml = tmp_path / "v.xml"
    xml.write_text("<volume><name>x.qcow2</name><capacity unit='M'>8</capacity>"
                   "<target><format type='qcow2'/></target></volume>")
    assert cli("vol-create", "vms", str(xml), "--prealloc-metadata").code == 0
    assert metadata_preallocated(vms / "x.qcow2")
    # raw has no metadata: refused, nothing made
    r = cli("vol-create-as", "vms", "r.img", "8M", "--prealloc-metadata")
    assert r.code == 1 and "--prealloc-metadata" in r.err, r
    assert not (vms / "r.img").exists()


def test_prealloc_metadata_on_clone_and_create_from(cli, vms, tmp_path):
    assert cli("vol-create-as", "vms", "src.qcow2", "8M", "--format", "qcow2").code == 0
    image = tmp_path / "data.raw"
    image.write_bytes(os.urandom(MiB))
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k",
                    str(vms / "src.qcow2")], check=True, capture_output=True)
    r = cli("vol-clone", "src.qcow2", "c.qcow2", "vms", "--prealloc-metadata")
    assert r.code == 0, r
    assert metadata_preallocated(vms / "c.qcow2")
    assert subprocess.run(["qemu-img", "compare", str(vms / "src.qcow2"),
                           str(vms / "c.qcow2")], capture_output=True).returncode == 0
    xml = tmp_path / "f.xml"
    xml.write_text("<volume><name>f.qcow2</name><capacity unit='M'>8</capacity>"
                   "<target><format type='qcow2'/></target></volume>")
    r = cli("vol-create-from", "vms", str(xml), "src.qcow2", "--inputpool", "vms",
            "--prealloc-metadata")
    assert r.code == 0 and metadata_preallocated(vms / "f.qcow2"), r


def test_reflink_fails_rather_than_copy(cli, vms):
    """The tests' filesystem here is ext4 (no shared extents): refused, nothing made."""
    if subprocess.run(["stat", "-f", "-c", "%T", str(vms)], capture_output=True,
                      text=True).stdout.strip() in ("xfs", "btrfs"):
        pytest.skip("this temp directory's filesystem can reflink")
    assert cli("vol-create-as", "vms", "a.img", "4M").code == 0
    r = cli("vol-clone", "a.img", "b.img", "vms", "--reflink")
    assert r.code == 1 and "--reflink" in r.err and "nothing was copied" in r.err, r
    assert sorted(os.listdir(vms)) == ["a.img"]
    assert cli("vol-clone", "a.img", "b.img", "vms").code == 0  # without it: a copy


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a loop-mounted xfs")
def test_reflink_on_xfs_shares_extents(cli, tmp_path,
                                       loopfs: Callable[[str, int], LoopFS]):  # noqa: F811
    fs = loopfs("xfs", 300)
    target = fs.mount / "pool"
    assert cli("pool-create-as", "x", "dir", "--target", str(target), "--build").code == 0
    try:
        assert cli("vol-create-as", "x", "a.img", "32M").code == 0
        (target / "a.img").write_bytes(os.urandom(32 * MiB))  # written extents to share
        os.sync()
        r = cli("vol-clone", "a.img", "b.img", "x", "--reflink")
        assert r.code == 0 and "(reflink)" in r.out, r
        frag = subprocess.run(["filefrag", "-v", str(target / "b.img")], capture_output=True,
                              text=True, check=True).stdout
        assert "shared" in frag
        assert (target / "b.img").read_bytes() == (target / "a.img").read_bytes()
        # a conversion cannot be a reflink: refused, nothing made
        xml = tmp_path / "q.xml"
        xml.write_text("<volume><name>c.qcow2</name><capacity unit='M'>32</capacity>"
                       "<target><format type='qcow2'/></target></volume>")
        r = cli("vol-create-from", "x", str(xml), "a.img", "--inputpool", "x", "--reflink")
        assert r.code == 1 and "conversion" in r.err, r
        assert sorted(os.listdir(target)) == ["a.img", "b.img"]
    finally:
        cli("pool-destroy", "x")


def test_upload_sparse_makes_holes_of_zeros(cli, vms, tmp_path):
    assert cli("vol-create-as", "vms", "v.img", "8M").code == 0
    (vms / "v.img").write_bytes(b"\xff" * 8 * MiB)  # old data everywhere
    src = tmp_path / "src.img"
    data = bytearray(8 * MiB)
    data[:MiB] = os.urandom(MiB)
    data[7 * MiB:] = os.urandom(MiB)
    src.write_bytes(bytes(data))
    r = cli("vol-upload", "v.img", str(src), "vms", "--sparse")
    assert r.code == 0, r
    assert (vms / "v.img").read_bytes() == bytes(data)  # the old 0xff is gone too
    assert os.stat(vms / "v.img").st_blocks * 512 <= 3 * MiB  # the zeros are holes
    # without --sparse the zeros are written
    (vms / "v.img").write_bytes(b"\xff" * 8 * MiB)
    assert cli("vol-upload", "v.img", str(src), "vms").code == 0
    assert (vms / "v.img").read_bytes() == bytes(data)
    assert os.stat(vms / "v.img").st_blocks * 512 >= 8 * MiB


def test_validate_is_accepted_and_every_definition_is_validated(cli, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text(f"<pool type='dir'><name>b</name><target><path>{tmp_path}/b</path>"
                   "</target><bogus/></pool>")
    for verb in ("pool-define", "pool-create"):
        r = cli(verb, str(bad), "--validate")
        assert r.code == 1 and "bogus" in r.err, r
    good = tmp_path / "good.xml"
    good.write_text(f"<pool type='dir'><name>g</name><target><path>{tmp_path}/g</path>"
                    "</target></pool>")
    assert cli("pool-define", "--validate", str(good)).code == 0
