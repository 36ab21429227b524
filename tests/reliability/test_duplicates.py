"""Two pools never share a device, a target directory or an NFS export.

The second define is refused with a message naming the first pool, however the shared
thing is spelled: a trailing slash, `//`, `/./`, `..`, a symlink, another device node of the
same disk, a hard link of the same image, a host name in other case or with its final dot,
an IPv6 address written out. What is refused is only what is really the same: a directory
nested inside another pool's target is allowed (libvirt allows it, and ISO directories
inside an image directory are a common layout), but the outer pool cannot delete it as a
volume while it is the inner pool's target.

Definitions only: nothing here builds, mounts or opens a device (device nodes are made
with mknod in the test's tmp dir and only stat'ed).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import AlreadyExists, InUse

# A block device number no test opens: the nodes are only stat'ed.
SPARE_RDEV = os.makedev(7, 250)


def dir_xml(name: str, path: str | Path, pool_type: str = "dir") -> str:
    source = ""
    if pool_type == "fs":
        source = f"<source><device path='/dev/pk-none-{name}'/><format type='ext4'/></source>"
    return (f"<pool type='{pool_type}'><name>{name}</name>{source}"
            f"<target><path>{path}</path></target></pool>")


def netfs_xml(name: str, host: str, export: str, target: Path) -> str:
    return (f"<pool type='netfs'><name>{name}</name><source><host name='{host}'/>"
            f"<dir path='{export}'/><format type='nfs'/></source>"
            f"<target><path>{target}</path></target></pool>")


def device_xml(pool_type: str, name: str, device: str | Path) -> str:
    if pool_type == "fs":
        return (f"<pool type='fs'><name>{name}</name><source><device path='{device}'/>"
                f"<format type='ext4'/></source><target><path>/srv/pk-{name}</path></target>"
                "</pool>")
    if pool_type == "disk":
        return (f"<pool type='disk'><name>{name}</name><source><device path='{device}'/>"
                "<format type='gpt'/></source><target><path>/dev</path></target></pool>")
    return (f"<pool type='logical'><name>{name}</name><source><device path='{device}'/>"
            f"<name>vg{name}</name><format type='lvm2'/></source>"
            f"<target><path>/dev/vg{name}</path></target></pool>")


def refused(ctl: StorageController, xml: str, first: str, what: str) -> None:
    """The define fails naming the first pool and what they share; nothing is stored."""
    before = ctl.pool_names()
    with pytest.raises(AlreadyExists, match=f"pool '{first}'.*{what}"):
        ctl.define_pool(xml)
    assert ctl.pool_names() == before


# == target directories ================================================================
def test_same_target_directory_in_every_spelling(ctl, tmp_path):
    real = tmp_path / "images"
    real.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "link").symlink_to(real)
    (tmp_path / "linkdir").symlink_to(tmp_path)
    ctl.define_pool(dir_xml("first", real))
    for i, spelling in enumerate([
        f"{real}/", f"{real}//", f"{tmp_path}//images", f"{tmp_path}/./images",
        f"{tmp_path}/other/../images", tmp_path / "link", f"{tmp_path / 'link'}/",
        tmp_path / "linkdir" / "images",
    ]):
        refused(ctl, dir_xml(f"second{i}", spelling), "first", "target path")
    # fs and netfs pools mount on their target: the same directory is the same conflict
    refused(ctl, dir_xml("fs", tmp_path / "link", "fs"), "first", "target path")
    refused(ctl, netfs_xml("nfs", "nas.example", "/vm", tmp_path / "link"), "first",
            "target path")


def test_a_target_that_does_not_exist_yet_is_compared_as_written(ctl, tmp_path):
    ctl.define_pool(dir_xml("first", tmp_path / "later" / "images"))
    refused(ctl, dir_xml("second", f"{tmp_path}/later//images/"), "first", "target path")


def test_redefining_a_pool_with_another_spelling_of_its_own_target_is_allowed(ctl, tmp_path):
    real = tmp_path / "images"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    ctl.define_pool(dir_xml("first", real))
    ctl.define_pool(dir_xml("first", f"{real}/"))  # itself: no conflict
    ctl.define_pool(dir_xml("first", tmp_path / "link"))
    assert ctl.pool_names() == ["first"]


def test_nested_targets_are_allowed_but_the_inner_one_is_not_a_deletable_volume(ctl, tmp_path):
    outer = tmp_path / "images"
    inner = outer / "iso"
    ctl.define_pool(dir_xml("outer", outer))
    ctl.define_pool(dir_xml("inner", inner))
    ctl.define_pool(dir_xml("side", tmp_path / "images-2"))  # a common prefix is no parent
    for name in ("outer", "inner"):
        ctl.build_pool(name).wait(30)
        ctl.start_pool(name)
    vols = {v.name: v for v in ctl.list_volumes("outer")}
    assert vols["iso"].type == "dir"
    # Empty, so rmdir would succeed: the outer pool must not pull the inner one's
    # directory from under it.
    with pytest.raises(InUse, match="target directory of pool 'inner'"):
        ctl.delete_volume("outer", "iso")
    assert inner.is_dir() and ctl.pool_info("inner").state == "running"
    # A plain empty directory in the pool is still deletable.
    (outer / "scratch").mkdir()
    ctl.delete_volume("outer", "scratch")
    assert not (outer / "scratch").exists()


# == devices ===========================================================================
@pytest.mark.parametrize("first_type", ["fs", "disk", "logical"])
@pytest.mark.parametrize("second_type", ["fs", "disk", "logical"])
def test_same_device_by_any_path_or_node(ctl, tmp_path, first_type, second_type):
    node = tmp_path / "disk-node"
    os.mknod(node, 0o600 | stat.S_IFBLK, SPARE_RDEV)
    twin = tmp_path / "twin-node"  # another node of the same disk (as /dev/sdb and a copy)
    os.mknod(twin, 0o600 | stat.S_IFBLK, SPARE_RDEV)
    (tmp_path / "by-id").mkdir()
    (tmp_path / "by-id" / "wwn-1").symlink_to(node)
    ctl.define_pool(device_xml(first_type, "first", node))
    for i, spelling in enumerate([node, tmp_path / "by-id" / "wwn-1",
                                  f"{tmp_path}//./disk-node", twin]):
        refused(ctl, device_xml(second_type, f"second{i}", spelling), "first",
                "source device")


def test_same_image_file_by_link_or_hard_link(ctl, tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"")
    os.link(image, tmp_path / "hard.img")
    (tmp_path / "soft.img").symlink_to(image)
    ctl.define_pool(device_xml("fs", "first", image))
    refused(ctl, device_xml("disk", "second", tmp_path / "hard.img"), "first", "source device")
    refused(ctl, device_xml("fs", "third", tmp_path / "soft.img"), "first", "source device")


def test_other_devices_and_other_volume_groups_are_allowed(ctl, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    os.mknod(one, 0o600 | stat.S_IFBLK, SPARE_RDEV)
    os.mknod(two, 0o600 | stat.S_IFBLK, os.makedev(7, 251))
    ctl.define_pool(device_xml("logical", "a", one))
    ctl.define_pool(device_xml("logical", "b", two))
    # the same VG name on another device is the same VG
    refused(ctl, device_xml("logical", "a", two).replace("<name>a</name>", "<name>c</name>"),
            "a", "volume group 'vga'")
    assert ctl.pool_names() == ["a", "b"]


# == NFS exports =======================================================================
@pytest.mark.parametrize("host, export", [
    ("nas.example", "/export/vm"),
    ("nas.example", "/export/vm/"),
    ("nas.example", "/export//vm"),
    ("nas.example", "//export/vm"),
    ("nas.example", "/export/./vm"),
    ("NAS.Example", "/export/vm"),
    ("nas.example.", "/export/vm"),
])
def test_same_nfs_export_in_every_spelling(ctl, tmp_path, host, export):
    ctl.define_pool(netfs_xml("first", "nas.example", "/export/vm", tmp_path / "m1"))
    refused(ctl, netfs_xml("second", host, export, tmp_path / "m2"), "first", "export")


def test_same_ip_address_written_differently(ctl, tmp_path):
    ctl.define_pool(netfs_xml("first", "fd00::10", "/vm", tmp_path / "m1"))
    refused(ctl, netfs_xml("second", "fd00:0:0:0:0:0:0:10", "/vm", tmp_path / "m2"), "first",
            "export")


def test_other_exports_are_allowed(ctl, tmp_path):
    ctl.define_pool(netfs_xml("first", "nas.example", "/export/vm", tmp_path / "m1"))
    ctl.define_pool(netfs_xml("sub", "nas.example", "/export/vm/iso", tmp_path / "m2"))
    ctl.define_pool(netfs_xml("other", "nas2.example", "/export/vm", tmp_path / "m3"))
    ctl.define_pool(netfs_xml("sibling", "nas.example", "/export/vm2", tmp_path / "m4"))
    assert ctl.pool_names() == sorted(["first", "sub", "other", "sibling"])


def test_cli_names_the_first_pool(cli, tmp_path):
    target = tmp_path / "images"
    assert cli("pool-define-as", "first", "dir", "--target", str(target)).code == 0
    r = cli("pool-define-as", "second", "dir", "--target", f"{target}/")
    assert r.code == 1 and "pool 'first'" in r.err and r.err.startswith("error: "), r
    assert "Traceback" not in r.err
