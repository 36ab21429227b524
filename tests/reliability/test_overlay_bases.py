"""An overlay and its base stay together.

Item 8: a base could be deleted while an overlay in a stopped pool used it (only active pools
were looked at, and only by the path string). Now every defined pool whose volumes can be read
is looked at, files are compared by device and inode, and the refusal names the overlay and
its pool.

Item 9: a byte-for-byte clone of an overlay keeps its backing name; a relative name then
resolves in the destination's directory, where another file of that name may be. The clone
now names its backing file by full path (qemu-img rebase -u, for qcow2 and qed) or is
flattened (vmdk, qcow), and the job's result says which.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from backends.errors import InUse
from tests.conftest import make_dir_pool
from tests.reliability.test_format_trust import InotifyWatch, create

MiB = 1 << 20


def qemu_img(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True,
                          cwd=cwd).stdout


def info(path: Path, fmt: str) -> dict:
    return json.loads(qemu_img("info", "--output=json", "-U", "-f", fmt, str(path)))


def contents(path: Path, fmt: str, out: Path) -> bytes:
    """The guest-visible bytes of an image, as qemu reads it with its whole chain."""
    qemu_img("convert", "-f", fmt, str(path), "-O", "raw", str(out))
    return out.read_bytes()


# == item 8 ===============================================================================
@pytest.mark.parametrize("spelling", ["path", "symlinked directory"])
def test_a_base_used_by_an_overlay_in_a_stopped_pool_cannot_be_deleted(ctl, pool, tmp_path,
                                                                        spelling):
    create(ctl, "base.img", 4 * MiB)
    other = make_dir_pool(ctl, "q", tmp_path / "other")
    link = tmp_path / "images-link"
    link.symlink_to(pool)
    base = (link if spelling == "symlinked directory" else pool) / "base.img"
    # an overlay someone made there (poolkeeper itself names the base by its pool path)
    qemu_img("create", "-q", "-u", "-f", "qcow2", "-b", str(base), "-F", "raw",
             str(other / "ovl.qcow2"), "4M")
    ctl.stop_pool("q")
    with pytest.raises(InUse) as exc:
        ctl.delete_volume("p", "base.img")
    assert "'ovl.qcow2'" in str(exc.value) and "pool 'q'" in str(exc.value)
    assert "stopped" in str(exc.value)
    assert (pool / "base.img").exists()
    ctl.start_pool("q")  # and while it runs, too
    with pytest.raises(InUse, match="backing store of 'ovl.qcow2' in pool 'q'"):
        ctl.delete_volume("p", "base.img")
    (other / "ovl.qcow2").unlink()
    ctl.refresh_pool("q")
    ctl.delete_volume("p", "base.img")
    assert not (pool / "base.img").exists()


def test_a_volume_a_vmdk_in_a_stopped_pool_uses_as_extent_cannot_be_deleted(ctl, pool,
                                                                             tmp_path):
    create(ctl, "data.img", MiB)
    other = make_dir_pool(ctl, "q", tmp_path / "other")
    (other / "d.vmdk").write_text('# Disk DescriptorFile\ncreateType="monolithicFlat"\n'
                                  f'RW 2048 FLAT "{pool / "data.img"}" 0\n')
    ctl.stop_pool("q")
    with pytest.raises(InUse, match="a vmdk extent of 'd.vmdk' in pool 'q'"):
        ctl.delete_volume("p", "data.img")


# == item 9 ===============================================================================
def plant_overlay(pool: Path, fmt: str) -> bytes:
    """An overlay in `pool` whose header names its base relative to the pool directory,
    with data of its own over half of the base; returns what a guest reads through it."""
    base_fmt = "vmdk" if fmt == "vmdk" else "raw"  # a vmdk's parent is a vmdk
    base_data = os.urandom(4 * MiB)
    (pool / "src.raw").write_bytes(base_data)
    qemu_img("convert", "-f", "raw", "-O", base_fmt, "src.raw", "base.img", cwd=pool)
    (pool / "src.raw").unlink()
    qemu_img("create", "-q", "-f", fmt, "-b", "base.img", "-F", base_fmt, "ovl.img", "4M",
             cwd=pool)
    subprocess.run(["qemu-io", "-f", fmt, "-c", "write -P 0x5a 0 1M", "ovl.img"], cwd=pool,
                   check=True, capture_output=True)
    return b"\x5a" * MiB + base_data[MiB:]


# (qcow v1 cannot state its backing file's format, so poolkeeper refuses its overlays)
@pytest.mark.parametrize(("fmt", "how"), [("qcow2", "full path"), ("qed", "full path"),
                                          ("vmdk", "flattened")])
def test_a_cross_pool_clone_of_an_overlay_reads_the_same_base(ctl, pool, tmp_path, cli, fmt,
                                                              how):
    expected = plant_overlay(pool, fmt)
    other = make_dir_pool(ctl, "q", tmp_path / "other")
    # the destination holds another file under the base's name
    decoy = os.urandom(4 * MiB)
    (other / "base.img").write_bytes(decoy)
    base_fmt = "vmdk" if fmt == "vmdk" else "raw"
    assert contents(pool / "ovl.img", fmt, tmp_path / "a.raw") == expected
    watch = InotifyWatch(other / "base.img")
    try:
        result = ctl.clone_volume("p", "ovl.img", "copy.img", target_pool="q").wait(60)
        assert watch.events() == [], "the clone opened the other pool's base.img"
    finally:
        watch.close()
    assert contents(other / "copy.img", fmt, tmp_path / "b.raw") == expected
    assert how in result
    clone = info(other / "copy.img", fmt)
    if how == "full path":
        assert clone["backing-filename"] == str(pool / "base.img")
        assert clone["backing-filename-format"] == base_fmt
    else:
        assert "backing-filename" not in clone
    # the CLI says it too
    r = cli("vol-clone", "ovl.img", "again.img", "--pool", "p", "--newpool", "q")
    assert r.code == 0 and how in r.out, r


def test_a_clone_in_the_same_pool_keeps_the_relative_name(ctl, pool, tmp_path):
    expected = plant_overlay(pool, "qcow2")
    result = ctl.clone_volume("p", "ovl.img", "copy.img").wait(60)
    assert "full path" not in result and "flattened" not in result
    assert info(pool / "copy.img", "qcow2")["backing-filename"] == "base.img"
    assert contents(pool / "copy.img", "qcow2", tmp_path / "c.raw") == expected
