"""libvirt fidelity of the XML layer: the defaults libvirt fills in and prints, what it
accepts back from a dump, and what its schema refuses (nothing poolkeeper writes).

libvirt itself is the reference where it can be run: its test driver
(`virsh -c test:///default`) for what it prints, `virt-xml-validate` for its schema.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from lxml import etree

from backends import xmlio
from backends.drivers.dir import _qcow2_options
from backends.errors import ValidationError
from backends.model import VolumeDef, VolumeTarget

MINIMAL_POOLS = {
    "fs": "<source><device path='/dev/pk-a'/></source><target><path>/srv/pk-fs</path></target>",
    "netfs": "<source><host name='127.0.0.1'/><dir path='/exp'/></source>"
             "<target><path>/srv/pk-netfs</path></target>",
    "logical": "<source><device path='/dev/pk-b'/></source>"
               "<target><path>/srv/not-the-vg</path></target>",
    "disk": "<source><device path='/dev/pk-c'/></source><target><path>/dev</path></target>",
    "dir": "<target><path>/srv/pk-dir</path></target>",
    "iscsi": "<source><host name='127.0.0.1'/><device path='iqn.2013-06.com.example:t'/>"
             "</source><target><path>/dev/disk/by-path</path></target>",
}


def _source_and_target(text: str) -> tuple[str, str]:
    root = etree.fromstring(text.encode())
    return tuple(etree.tostring(root.find(tag), encoding="unicode").strip()  # type: ignore
                 for tag in ("source", "target"))


def test_defaults_are_filled_and_printed_as_libvirts_test_driver_prints_them(tmp_path):
    cmds = []
    for ptype, body in MINIMAL_POOLS.items():
        doc = tmp_path / f"{ptype}.xml"
        doc.write_text(f"<pool type='{ptype}'><name>pk{ptype}</name>{body}</pool>")
        cmds += [f"pool-define {doc}", f"pool-dumpxml pk{ptype}"]
    proc = subprocess.run(["virsh", "-q", "-c", "test:///default", "; ".join(cmds)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    theirs = [d + "</pool>" for d in proc.stdout.split("</pool>") if "<pool" in d]
    assert len(theirs) == len(MINIMAL_POOLS)
    for (ptype, body), libvirt_dump in zip(MINIMAL_POOLS.items(), theirs, strict=True):
        ours = xmlio.format_pool(xmlio.parse_pool(
            f"<pool type='{ptype}'><name>pk{ptype}</name>{body}</pool>"))
        assert _source_and_target(ours) == _source_and_target(libvirt_dump), ptype


@pytest.mark.parametrize("ptype,fmt", [("fs", "auto"), ("netfs", "auto"),
                                       ("logical", "lvm2"), ("disk", "unknown")])
def test_a_pool_without_format_gets_libvirts_default(ptype, fmt):
    pool = xmlio.parse_pool(f"<pool type='{ptype}'><name>p</name>{MINIMAL_POOLS[ptype]}</pool>")
    assert pool.source.format == fmt
    assert f"<format type='{fmt}'/>" in xmlio.format_pool(pool)
    given = MINIMAL_POOLS[ptype].replace("</source>", "<format type='lvm2'/></source>") \
        if ptype in ("logical", "disk") else None
    if given:  # a format that is given is kept
        assert xmlio.parse_pool(f"<pool type='{ptype}'><name>p</name>{given}</pool>"
                                ).source.format == "lvm2"


def test_a_logical_pools_target_is_rewritten_to_the_volume_groups_directory():
    for target in ("/srv/elsewhere", "/dev/other", "/dev/vg0/"):
        pool = xmlio.parse_pool(f"<pool type='logical'><name>p</name><source><name>vg0</name>"
                                f"</source><target><path>{target}</path></target></pool>")
        assert pool.target.path == "/dev/vg0"


def test_allocation_above_capacity_is_accepted_and_means_fully_allocated():
    vol = xmlio.parse_volume("<volume><name>v</name><capacity>1000</capacity>"
                             "<allocation>4096</allocation></volume>", "dir")
    assert vol.allocation == 4096  # read as given ...
    xmlio.check_allocation_fits(vol)
    assert vol.allocation == 1000  # ... and made as the whole capacity, never more
    sparse = VolumeDef(name="s", capacity=1000, allocation=0)
    xmlio.check_allocation_fits(sparse)
    assert sparse.allocation == 0


def test_capacity_0_is_a_valid_volume():
    vol = xmlio.parse_volume("<volume><name>v</name><capacity>0</capacity></volume>", "dir")
    assert vol.capacity == 0
    assert "<capacity unit='bytes'>0</capacity>" in xmlio.format_volume(vol)


@pytest.mark.parametrize("fmt,words", [
    ("iso", "xorriso; create a raw volume of its size and vol-upload"),
    ("dmg", "it creates only raw, qcow2"),
    ("dir", "mkdir"),
])
def test_a_format_poolkeeper_cannot_make_is_refused_saying_how(fmt, words):
    vol = VolumeDef(name="v", capacity=1, target=VolumeTarget(format=fmt))
    with pytest.raises(ValidationError, match=f"cannot create {fmt} volumes: .*{words}") as exc:
        xmlio.refuse_unhonoured(vol, "dir")
    assert exc.value.element == "format"
    xmlio.refuse_unhonoured(vol, "dir", clone=True)  # a clone copies its source's format


def test_data_file_is_read_but_never_written():
    text = ("<volume><name>v</name><capacity>1</capacity><target><format type='qcow2'/>"
            "<features><lazy_refcounts/><data_file/></features></target></volume>")
    vol = xmlio.parse_volume(text, "dir")
    assert vol.target.features == ["lazy_refcounts", "data_file"]
    out = xmlio.format_volume(vol)
    assert "data_file" not in out and "<lazy_refcounts/>" in out
    only = VolumeDef(name="v", capacity=1, target=VolumeTarget(format="qcow2",
                                                               features=["data_file"]))
    assert "<features/>" in xmlio.format_volume(only)  # still a v3 image
    with pytest.raises(ValidationError, match="external data file"):
        xmlio.refuse_unhonoured(vol, "dir")


def test_qcow2_compat_defaults_to_1_1_as_qemu_img_and_libvirt_10_2():
    """A documented choice (README): libvirt 9 makes 0.10 here."""
    def options(target: VolumeTarget) -> list[str]:
        return _qcow2_options(VolumeDef(name="v.qcow2", capacity=1, target=target))

    assert options(VolumeTarget(format="qcow2"))[0] == "compat=1.1"
    assert options(VolumeTarget(format="qcow2", compat="0.10"))[0] == "compat=0.10"


# Rich definitions, each formatted and put through libvirt's own validator.
RICH_POOLS = [
    "<pool type='netfs'><name>n</name><source><host name='h.example' port='2049'/>"
    "<dir path='/e'/><format type='nfs'/><protocol ver='4.1'/></source><target>"
    "<path>/mnt/x</path><permissions><mode>0755</mode><owner>1</owner><group>2</group>"
    "<label>system_u:object_r:virt_image_t:s0</label></permissions></target></pool>",
    "<pool type='netfs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'>"
    "<name>n2</name><source><host name='h'/><dir path='share'/><format type='cifs'/>"
    "</source><target><path>/mnt/y</path></target><fs:mount_opts><fs:option name='ro'/>"
    "<fs:option name='vers=3.0'/></fs:mount_opts></pool>",
    "<pool type='iscsi'><name>i</name><source><host name='10.0.0.1' port='3260'/>"
    "<device path='iqn.2013-06.com.example:t0'/><initiator>"
    "<iqn name='iqn.2013-06.com.example:i0'/></initiator><auth type='chap' username='u'>"
    "<secret usage='s'/></auth></source><target><path>/dev/disk/by-path</path></target>"
    "</pool>",
    "<pool type='iscsi-direct'><name>id</name><source><host name='10.0.0.1'/>"
    "<device path='iqn.2013-06.com.example:t0'/><initiator>"
    "<iqn name='iqn.2013-06.com.example:i0'/></initiator><auth type='chap' username='u'>"
    "<secret uuid='0123456789abcdef0123456789abcdef'/></auth></source></pool>",
    "<pool type='dir'><name>d</name><features><cow state='no'/></features>"
    "<target><path>/var/lib/x</path></target></pool>",
    "<pool type='disk'><name>dk</name><source><device path='/dev/sdb' part_separator='yes'>"
    "<freeExtent start='1048576' end='2097152'/></device><format type='gpt'/></source>"
    "<target><path>/dev</path></target></pool>",
    "<pool type='logical'><name>vg</name><source><device path='/dev/sdc'/>"
    "<device path='/dev/sdd'/></source></pool>",
    "<pool type='fs'><name>f</name><source><device path='/dev/sde'/><format type='ext4'/>"
    "</source><target><path>/mnt/f</path></target></pool>",
]
RICH_VOLUMES = [
    "<volume><name>a</name><capacity unit='G'>1</capacity><allocation>0</allocation><target>"
    "<format type='qcow2'/><compat>1.1</compat><clusterSize unit='KiB'>64</clusterSize>"
    "<nocow/><features><lazy_refcounts/><extended_l2/><data_file/></features><permissions>"
    "<mode>0600</mode><label>x</label></permissions><timestamps><atime>1.5</atime>"
    "<mtime>2</mtime></timestamps></target></volume>",
    "<volume type='block'><name>sdb1</name><key>/dev/sdb1</key><source>"
    "<device path='/dev/sdb'><extent start='1048576' end='2097152'/></device></source>"
    "<capacity>1048576</capacity><allocation>1048576</allocation><physical>1048576</physical>"
    "<target><path>/dev/sdb1</path><format type='linux'/></target></volume>",
    "<volume><name>o</name><capacity>0</capacity><target><format type='qcow2'/></target>"
    "<backingStore><path>/x/base</path><format type='raw'/><permissions><mode>0644</mode>"
    "</permissions><timestamps><ctime>3</ctime></timestamps></backingStore></volume>",
    "<volume><name>d</name><target><format type='dir'/></target></volume>",
    "<volume><name>z</name><capacity>0</capacity><allocation>4096</allocation></volume>",
    "<volume><name>we&lt;ird&amp;'name</name><capacity>1000</capacity>"
    "<allocation>4096</allocation><target><format type='iso'/></target></volume>",
]


def test_rich_definitions_format_to_xml_libvirts_validator_accepts(tmp_path: Path):
    files: list[tuple[Path, str]] = []
    for i, doc in enumerate(RICH_POOLS):
        path = tmp_path / f"pool{i}.xml"
        path.write_text(xmlio.format_pool(xmlio.parse_pool(doc)))
        files.append((path, "storagepool"))
    for i, doc in enumerate(RICH_VOLUMES):
        path = tmp_path / f"vol{i}.xml"
        path.write_text(xmlio.format_volume(xmlio.parse_volume(doc)))
        files.append((path, "storagevol"))
    for path, kind in files:
        proc = subprocess.run(["virt-xml-validate", str(path), kind], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, path.read_text() + proc.stderr
