"""The dumps of block pools and their volumes (a gpt disk's partitions, a volume group's
LVs, on loop devices: needs root) validate against libvirt's schema, and poolkeeper's own
vol-create takes them back: a partition's dump re-creates it where it was once it is
gone (and is refused, saying why, while it is still there); an LV's dump under another
name makes an LV of the same size.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from backends.controller import StorageController
from backends.errors import InsufficientSpace, ValidationError
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice, VolumeDef
from tests.conftest import gpt_disk_pool
from tests.lvmenv import Lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')

MiB = 1 << 20


def valid_for_libvirt(text: str, kind: str, tmp_path: Path) -> None:
    path = tmp_path / f"check-{kind}.xml"
    path.write_text(text)
    proc = subprocess.run(["virt-xml-validate", str(path), kind], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, text + proc.stderr


def comparable(text: str, *, extents: bool = True) -> str:
    root = etree.fromstring(text.encode())
    drop = ["name", "key", "target/path", "target/timestamps"]
    if not extents:
        drop.append("source")
    for path in drop:
        for el in root.findall(path):
            el.getparent().remove(el)
    return etree.tostring(root, encoding="unicode")


def test_a_partitions_dump_is_valid_and_re_creates_it(ctl: StorageController, tmp_path):
    with gpt_disk_pool(ctl, tmp_path / "disk.img"):
        name = ctl.volume_name_for("d", VolumeDef(name="", capacity=8 * MiB))
        assert name
        ctl.create_volume_def("d", VolumeDef(name=name, capacity=8 * MiB)).wait(60)
        first = ctl.volume_xml("d", name)
        valid_for_libvirt(first, "storagevol", tmp_path)
        valid_for_libvirt(ctl.pool_xml("d"), "storagepool", tmp_path)  # with <freeExtent>
        # where the dump says it starts is taken: refused, saying so; nothing made
        with pytest.raises(InsufficientSpace, match="start 1048576 is not in a usable free"):
            ctl.create_volume("d", first.replace(f"<name>{name}</name>",
                                                 f"<name>{name[:-1]}2</name>"))
        assert [v.name for v in ctl.list_volumes("d")] == [name]
        ctl.delete_volume("d", name)
        ctl.create_volume("d", first).wait(60)
        again = ctl.volume_xml("d", name)
        assert comparable(again) == comparable(first)


def test_an_lvs_dump_is_valid_and_makes_an_lv_of_its_size(ctl: StorageController,
                                                          lvm: Lvm, tmp_path):  # noqa: F811
    vg = "pkd" + tmp_path.name[-6:].replace("-", "").replace("_", "")
    ctl.define_pool_def(PoolDef(type="logical", name=vg,
                                source=PoolSource(name=vg, devices=[SourceDevice(lvm.disk(64))]),
                                target=PoolTarget(path="/ignored")))
    ctl.build_pool(vg).wait()
    ctl.start_pool(vg)
    pool_dump = ctl.pool_xml(vg)
    assert f"<path>/dev/{vg}</path>" in pool_dump and "<format type='lvm2'/>" in pool_dump
    valid_for_libvirt(pool_dump, "storagepool", tmp_path)
    ctl.create_volume_def(vg, VolumeDef(name="lv1", capacity=8 * MiB)).wait()
    first = ctl.volume_xml(vg, "lv1")
    valid_for_libvirt(first, "storagevol", tmp_path)
    ctl.create_volume(vg, first.replace("<name>lv1</name>", "<name>lv2</name>")).wait()
    second = ctl.volume_xml(vg, "lv2")
    valid_for_libvirt(second, "storagevol", tmp_path)
    # the same but for where it lies on the PV
    assert comparable(second, extents=False) == comparable(first, extents=False)


def test_empty_partitions_and_lvs_are_refused_saying_why(ctl: StorageController, lvm: Lvm,
                                                         tmp_path):  # noqa: F811
    """Capacity 0 is a valid volume (an empty file), but not one a disk or VG can hold."""
    with gpt_disk_pool(ctl, tmp_path / "disk.img") as disk:
        with pytest.raises(ValidationError, match="a partition cannot be empty"):
            ctl.create_volume("d", f"<volume><name>{Path(disk).name}p1</name>"
                                   "<capacity>0</capacity></volume>")
        assert ctl.list_volumes("d") == []
    vg = "pke" + tmp_path.name[-6:].replace("-", "").replace("_", "")
    ctl.define_pool_def(PoolDef(type="logical", name=vg,
                                source=PoolSource(name=vg, devices=[SourceDevice(lvm.disk(64))])))
    ctl.build_pool(vg).wait()
    ctl.start_pool(vg)
    with pytest.raises(ValidationError, match="a logical volume cannot be empty"):
        ctl.create_volume(vg, "<volume><name>lv0</name><capacity>0</capacity></volume>")
    assert ctl.list_volumes(vg) == []
