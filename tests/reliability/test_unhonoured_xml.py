"""What a volume definition asks for is done or refused, never dropped.

`<encryption>` used to be parsed and ignored: a plaintext image was made and the command
said it worked (now it is made, encrypted, when its secret is defined: tests/drivers/
test_luks.py; refused before anything is made when it is not). Every element poolkeeper
parses but does not act on is now refused with a clear error before anything is made
(vol-create, vol-create-as from a definition, clones), unless libvirt ignores it on input
too (key, path, timestamps, label: see xmlio.refuse_unhonoured). Where poolkeeper can do
what is asked, it does (qcow2 options of a clone that is converted).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from backends.errors import ValidationError
from backends.model import (
    Permissions,
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    VolumeDef,
    VolumeTarget,
)
from tests.lvmenv import can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')
from tests.reliability.test_format_trust import create

MiB = 1 << 20
ENCRYPTION = ("<encryption format='luks'><secret type='passphrase' usage='pk-test'/>"
              "</encryption>")


def volume_xml(fmt: str, extra: str = "", name: str = "v", top: str = "") -> str:
    return (f"<volume><name>{name}</name><capacity unit='MiB'>4</capacity>{top}"
            f"<target><format type='{fmt}'/>{extra}</target></volume>")


REFUSED = {
    "encryption-qcow2": (volume_xml("qcow2", ENCRYPTION), "no secret 'pk-test' is defined"),
    "encryption-raw": (volume_xml("raw", ENCRYPTION), "no secret 'pk-test' is defined"),
    "compat-on-raw": (volume_xml("raw", "<compat>1.1</compat>"), "qcow2 volumes only"),
    "clusterSize-on-qed": (volume_xml("qed", "<clusterSize unit='KiB'>128</clusterSize>"),
                           "qcow2 volumes only"),
    "features-on-vmdk": (volume_xml("vmdk", "<features><lazy_refcounts/></features>"),
                         "qcow2 volumes only"),
    "data-file-feature": (volume_xml("qcow2", "<features><data_file/></features>"),
                          "external data file"),
    "nocow-on-vmdk": (volume_xml("vmdk", "<nocow/>"), "no-copy-on-write"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_create_refuses_what_it_would_not_do(ctl, pool, tmp_path, cli, case):
    xml, message = REFUSED[case]
    with pytest.raises(ValidationError, match=message):
        ctl.create_volume("p", xml)
    path = tmp_path / "v.xml"
    path.write_text(xml)
    r = cli("vol-create", "p", str(path))
    assert r.code != 0 and message in r.err, r
    assert os.listdir(pool) == []


@pytest.mark.parametrize("case", ["encryption-qcow2", "compat-on-raw", "nocow-on-vmdk"])
def test_a_clone_refuses_what_it_would_not_do(ctl, pool, case):
    create(ctl, "src.img", 4 * MiB)
    xml, message = REFUSED[case]
    if case.startswith("encryption"):  # a plain source is copied as it is
        message = "'src.img' is not encrypted and a clone copies it as it is"
    with pytest.raises(ValidationError, match=message):
        ctl.clone_volume("p", "src.img", "v", xml=xml)
    assert os.listdir(pool) == ["src.img"]


def test_a_clone_refuses_a_header_it_would_copy_unchanged(ctl, pool):
    """A same-format clone is a byte copy: the source's qcow2 header comes along as it is."""
    create(ctl, "src.qcow2", 4 * MiB, "qcow2")
    for extra, element in (("<compat>0.10</compat>", "compat"),
                           ("<clusterSize unit='KiB'>128</clusterSize>", "clusterSize"),
                           ("<features><lazy_refcounts/></features>", "features")):
        with pytest.raises(ValidationError, match=f"<{element}> stays"):
            ctl.clone_volume("p", "src.qcow2", "v", xml=volume_xml("qcow2", extra))
    # what it has anyway is fine (a dumpxml of the source says exactly that)
    ctl.clone_volume("p", "src.qcow2", "v",
                     xml=volume_xml("qcow2", "<compat>1.1</compat><features/>")).wait(60)
    # nocow cannot be set on a copy; a preallocated raw copy is not what a clone makes
    with pytest.raises(ValidationError, match="no-copy-on-write"):
        ctl.clone_volume("p", "src.qcow2", "w", xml=volume_xml("qcow2", "<nocow/>"))
    create(ctl, "src.img", 4 * MiB)
    with pytest.raises(ValidationError, match="sparse"):
        ctl.clone_volume("p", "src.img", "w",
                         xml=volume_xml("raw", top="<allocation unit='MiB'>4</allocation>"))
    ctl.clone_volume("p", "src.img", "w",
                     xml=volume_xml("raw", top="<allocation>0</allocation>")).wait(60)
    # a clone's backing file is its source's: a <backingStore> would be dropped
    backing = f"<backingStore><path>{pool / 'src.img'}</path><format type='raw'/></backingStore>"
    with pytest.raises(ValidationError, match="backingStore"):
        ctl.clone_volume("p", "src.qcow2", "x", xml=volume_xml("qcow2").replace(
            "</volume>", backing + "</volume>"))


def test_a_converting_clone_honours_qcow2_options(ctl, pool):
    create(ctl, "src.img", 4 * MiB)
    extra = ("<compat>0.10</compat><clusterSize unit='KiB'>128</clusterSize>")
    ctl.clone_volume("p", "src.img", "v.qcow2", xml=volume_xml("qcow2", extra)).wait(60)
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", "-f", "qcow2", str(pool / "v.qcow2")],
        check=True, capture_output=True, text=True).stdout)
    assert info["cluster-size"] == 128 * 1024
    assert info["format-specific"]["data"]["compat"] == "0.10"


def test_what_libvirt_ignores_on_input_is_accepted(ctl, pool):
    """key, target path, timestamps, physical and a permissions label are output values
    (or never applied) in libvirt too: a dumped definition can be fed back."""
    xml = ("<volume type='file'><name>v</name><key>/elsewhere/v</key>"
           "<capacity unit='MiB'>4</capacity><physical>1</physical>"
           "<target><path>/elsewhere/v</path><format type='raw'/>"
           "<permissions><mode>0640</mode><label>system_u:object_r:virt_image_t:s0</label>"
           "</permissions><timestamps><mtime>1</mtime></timestamps></target></volume>")
    info = ctl.create_volume("p", xml).wait(60)
    assert info.path == str(pool / "v") and info.permissions.mode == 0o640


@pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")
def test_a_logical_pool_refuses_permissions_and_nocow(ctl, lvm):
    vg = "pkt" + uuid.uuid4().hex[:8]
    ctl.define_pool_def(PoolDef(type="logical", name=vg,
                                source=PoolSource(name=vg, devices=[SourceDevice(lvm.disk(64))],
                                                  format="lvm2"),
                                target=PoolTarget(path=f"/dev/{vg}")))
    ctl.build_pool(vg).wait()
    ctl.start_pool(vg)
    for target, message in ((VolumeTarget(permissions=Permissions(mode=0o600)), "permissions"),
                            (VolumeTarget(nocow=True), "no-copy-on-write")):
        with pytest.raises(ValidationError, match=message):
            ctl.create_volume_def(vg, VolumeDef(name="lv", capacity=8 * MiB, target=target))
    assert ctl.list_volumes(vg) == []
    ctl.stop_pool(vg)
