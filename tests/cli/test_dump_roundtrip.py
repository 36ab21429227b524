"""Every dump poolkeeper prints is a definition: its own vol-create / pool-define takes it
back, and so do libvirt's schema (virt-xml-validate) and parser (virsh's test driver).

Volumes are real images (qemu-img, or files written as libvirt finds them: a 1000-byte
raw file, an empty file, an ISO); each is listed, dumped, validated, fed back under
another name and the two dumps compared (all but what names the file and what is live:
key, path, timestamps, allocation, physical).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from lxml import etree

MiB = 1 << 20
ISO = bytes(32768) + b"\x01CD001\x01" + bytes(2041) + bytes(4096)  # a PVD at sector 16


def valid_for_libvirt(text: str, kind: str, tmp_path: Path) -> None:
    """virt-xml-validate (libvirt's own RelaxNG, through xmllint) accepts `text`."""
    path = tmp_path / f"check-{kind}.xml"
    path.write_text(text)
    proc = subprocess.run(["virt-xml-validate", str(path), kind], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "validates" in proc.stderr + proc.stdout, (
        text + proc.stderr)


def libvirt_takes(text: str, kind: str, tmp_path: Path) -> None:
    """libvirt's parser takes it: virsh vol-create / pool-define on the test driver."""
    path = tmp_path / f"libvirt-{kind}.xml"
    path.write_text(text)
    cmd = f"vol-create default-pool {path}" if kind == "storagevol" else f"pool-define {path}"
    proc = subprocess.run(["virsh", "-q", "-c", "test:///default", cmd], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "error" not in proc.stderr.lower(), text + proc.stderr


def renamed(text: str, old: str, new: str) -> str:
    """The dump with only its <name> changed (path and key are ignored on input)."""
    assert text.count(f"<name>{old}</name>") == 1
    return text.replace(f"<name>{old}</name>", f"<name>{new}</name>")


def comparable(text: str) -> str:
    """A volume dump without what names the file or is measured live."""
    root = etree.fromstring(text.encode())
    for path in ("name", "key", "allocation", "physical", "target/path", "target/timestamps"):
        for el in root.findall(path):
            el.getparent().remove(el)
    return etree.tostring(root, encoding="unicode")


@pytest.fixture
def images(cli, tmp_path: Path) -> Path:
    images = tmp_path / "images"
    for args in (("pool-define-as", "p", "dir", "--target", str(images)),
                 ("pool-build", "p"), ("pool-start", "p")):
        r = cli(*args)
        assert r.code == 0, r
    return images


def dump_checked(cli, name: str, tmp_path: Path) -> str:
    r = cli("vol-dumpxml", name, "--pool", "p")
    assert r.code == 0, r
    valid_for_libvirt(r.out, "storagevol", tmp_path)
    libvirt_takes(r.out, "storagevol", tmp_path)
    return r.out


def round_trip(cli, images: Path, name: str, tmp_path: Path) -> tuple[str, str]:
    """Dump `name`, check it, vol-create the dump as copy-NAME; both dumps."""
    first = dump_checked(cli, name, tmp_path)
    doc = tmp_path / f"again-{name}.xml"
    doc.write_text(renamed(first, name, f"copy-{name}"))
    r = cli("vol-create", "p", str(doc))
    assert r.code == 0, r
    second = dump_checked(cli, f"copy-{name}", tmp_path)
    assert comparable(second) == comparable(first)
    return first, second


def qemu_info(path: Path) -> dict:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return json.loads(out)


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", "create", "-q", *args], check=True, timeout=60)


# == volumes ===========================================================================
def test_a_small_raw_file_dumps_allocation_above_capacity_and_comes_back(cli, images,
                                                                         tmp_path):
    (images / "small.raw").write_bytes(b"x" * 1000)  # takes one whole block
    assert cli("pool-refresh", "p").code == 0
    first, second = round_trip(cli, images, "small.raw", tmp_path)
    assert "<capacity unit='bytes'>1000</capacity>" in first
    alloc = int(etree.fromstring(first.encode()).findtext("allocation"))
    assert alloc > 1000  # the live value, more than the capacity: accepted back
    made = images / "copy-small.raw"
    assert made.stat().st_size == 1000 and made.stat().st_blocks * 512 >= 1000
    assert "<capacity unit='bytes'>1000</capacity>" in second


def test_qcow2_volumes_round_trip_with_their_header_options(cli, images, tmp_path):
    assert cli("vol-create-as", "p", "new.qcow2", "64M", "--format", "qcow2").code == 0
    lazy = tmp_path / "lazy.xml"
    lazy.write_text("<volume><name>lazy.qcow2</name><capacity unit='MiB'>8</capacity>"
                    "<target><format type='qcow2'/><clusterSize unit='KiB'>128</clusterSize>"
                    "<features><lazy_refcounts/></features></target></volume>")
    assert cli("vol-create", "p", str(lazy)).code == 0
    qemu_img("-f", "qcow2", "-o", "compat=0.10", str(images / "v2.qcow2"), "4M")
    assert cli("pool-refresh", "p").code == 0
    for name, compat in (("new.qcow2", "1.1"), ("lazy.qcow2", "1.1"), ("v2.qcow2", "0.10")):
        first, _second = round_trip(cli, images, name, tmp_path)
        assert f"<compat>{compat}</compat>" in first, first
        made = qemu_info(images / f"copy-{name}")
        assert made["format-specific"]["data"]["compat"] == compat  # v2 stays v2
        assert made["virtual-size"] == qemu_info(images / name)["virtual-size"]
    assert qemu_info(images / "copy-lazy.qcow2")["cluster-size"] == 128 << 10
    assert qemu_info(images / "copy-lazy.qcow2")["format-specific"]["data"]["lazy-refcounts"]


def test_an_overlay_round_trips_with_its_backing_file(cli, images, tmp_path):
    assert cli("vol-create-as", "p", "base.qcow2", "16M", "--format", "qcow2").code == 0
    assert cli("vol-create-as", "p", "top.qcow2", "16M", "--format", "qcow2",
               "--backing-vol", "base.qcow2", "--backing-vol-format", "qcow2").code == 0
    first, second = round_trip(cli, images, "top.qcow2", tmp_path)
    assert f"<path>{images / 'base.qcow2'}</path>" in first.split("<backingStore>")[1]
    made = qemu_info(images / "copy-top.qcow2")
    assert made["backing-filename"] == str(images / "base.qcow2")
    assert made["backing-filename-format"] == "qcow2"


def test_a_qcow2_with_an_external_data_file_dumps_valid_xml(cli, images, tmp_path):
    """libvirt's schema and parser know no <data_file/>: it is left out of the dump; the
    dump re-creates a qcow2 that holds its data itself (nothing of the original changes)."""
    qemu_img("-f", "qcow2", "-o", f"data_file={images / 'df.data'}", str(images / "df.qcow2"),
             "4M")
    assert cli("pool-refresh", "p").code == 0
    first, _second = round_trip(cli, images, "df.qcow2", tmp_path)
    assert "data_file" not in first and "<features/>" in first
    assert "data-file" not in qemu_info(images / "copy-df.qcow2")["format-specific"]["data"]
    assert "data-file" in qemu_info(images / "df.qcow2")["format-specific"]["data"]


def test_empty_files_and_capacity_0_images_list_dump_and_round_trip(cli, images, tmp_path):
    (images / "empty.raw").write_bytes(b"")
    qemu_img("-f", "qcow2", str(images / "zero.qcow2"), "0")
    assert cli("pool-refresh", "p").code == 0
    vols = {v["name"]: v for v in json.loads(cli("vol-list", "p", "--json").out)}
    assert (vols["empty.raw"]["format"], vols["empty.raw"]["capacity"]) == ("raw", 0)
    # a header saying 0 bytes: the file's size, as libvirt reports it
    zero_size = (images / "zero.qcow2").stat().st_size
    assert (vols["zero.qcow2"]["format"], vols["zero.qcow2"]["capacity"]) == ("qcow2",
                                                                              zero_size)
    first, _second = round_trip(cli, images, "empty.raw", tmp_path)
    assert "<capacity unit='bytes'>0</capacity>" in first
    assert (images / "copy-empty.raw").stat().st_size == 0
    round_trip(cli, images, "zero.qcow2", tmp_path)
    # and made empty from the start, as libvirt makes them
    assert cli("vol-create-as", "p", "none.raw", "0").code == 0
    assert (images / "none.raw").stat().st_size == 0
    assert cli("vol-create-as", "p", "none.qcow2", "0", "--format", "qcow2").code == 0
    assert qemu_info(images / "none.qcow2")["virtual-size"] == 0
    dump_checked(cli, "none.qcow2", tmp_path)


def test_an_iso_lists_and_dumps_and_its_dump_is_refused_saying_how(cli, images, tmp_path):
    (images / "cd.iso").write_bytes(ISO)
    assert cli("pool-refresh", "p").code == 0
    vols = {v["name"]: v for v in json.loads(cli("vol-list", "p", "--json").out)}
    assert (vols["cd.iso"]["format"], vols["cd.iso"]["capacity"]) == ("iso", len(ISO))
    first = dump_checked(cli, "cd.iso", tmp_path)
    assert "<format type='iso'/>" in first
    doc = tmp_path / "iso.xml"
    doc.write_text(renamed(first, "cd.iso", "copy.iso"))
    before = sorted(os.listdir(images))
    r = cli("vol-create", "p", str(doc))
    assert r.code == 1 and "cannot create iso volumes" in r.err and "vol-upload" in r.err, r
    assert "Traceback" not in r.err and sorted(os.listdir(images)) == before
    # what it says works: a raw volume of its size, the image uploaded into it
    assert cli("vol-create-as", "p", "up.iso", str(len(ISO))).code == 0
    assert cli("vol-upload", "up.iso", str(images / "cd.iso"), "--pool", "p").code == 0
    assert (images / "up.iso").read_bytes() == ISO


def test_other_listed_formats_dump_valid_xml(cli, images, tmp_path):
    for fmt in ("vmdk", "vpc", "vdi", "qed", "qcow"):
        qemu_img("-f", fmt, str(images / f"img.{fmt}"), "1M")
    (images / "subdir").mkdir()
    assert cli("pool-refresh", "p").code == 0
    for fmt in ("vmdk", "vpc", "vdi", "qed", "qcow"):
        first, _ = round_trip(cli, images, f"img.{fmt}", tmp_path)
        assert f"<format type='{fmt}'/>" in first
    assert "<format type='dir'/>" in dump_checked(cli, "subdir", tmp_path)


# == pools =============================================================================
POOLS = {  # each token ONE is replaced by TWO for the second pool
    "dir": "<source/><target><path>{tmp}/dirONE</path></target>",
    "fs": "<source><device path='/dev/pk-fsONE'/></source>"
          "<target><path>{tmp}/fsONE</path></target>",
    "netfs": "<source><host name='127.0.0.1'/><dir path='/export/ONE'/></source>"
             "<target><path>{tmp}/netfsONE</path></target>",
    "logical": "<source><device path='/dev/pk-lvONE'/></source>"
               "<target><path>/anywhere/ONE</path></target>",
    "disk": "<source><device path='/dev/pk-diskONE'/></source><target><path>/dev</path>"
            "</target>",
    "iscsi": "<source><host name='127.0.0.1'/><device path='iqn.2013-06.com.example:ONE'/>"
             "</source><target><path>/dev/disk/by-path</path></target>",
    "iscsi-direct": "<source><host name='127.0.0.1'/>"
                    "<device path='iqn.2013-06.com.example:dONE'/>"
                    "<initiator><iqn name='iqn.2013-06.com.example:init'/></initiator>"
                    "</source>",
}
DEFAULT_FORMATS = {"fs": "auto", "netfs": "auto", "logical": "lvm2", "disk": "unknown"}


@pytest.mark.parametrize("ptype", sorted(POOLS))
def test_each_pool_types_dump_is_valid_and_defines_again(cli, tmp_path, ptype):
    name = ptype.replace("-", "") + "ONE"
    doc = tmp_path / "pool.xml"
    doc.write_text(f"<pool type='{ptype}'><name>{name}</name>"
                   + POOLS[ptype].format(tmp=tmp_path) + "</pool>")
    assert cli("pool-define", str(doc)).code == 0
    first = cli("pool-dumpxml", name).out
    valid_for_libvirt(first, "storagepool", tmp_path)
    libvirt_takes(first, "storagepool", tmp_path)
    fmt = DEFAULT_FORMATS.get(ptype)
    assert (f"<format type='{fmt}'/>" in first) == (fmt is not None), first
    if ptype == "logical":  # the volume group's directory, whatever the input said
        assert "<path>/dev/logicalONE</path>" in first and "/anywhere" not in first
    again = tmp_path / "again.xml"
    lines = [ln for ln in first.splitlines(keepends=True) if "<uuid>" not in ln]
    again.write_text("".join(lines).replace("ONE", "TWO"))
    r = cli("pool-define", str(again))
    assert r.code == 0, r
    second = cli("pool-dumpxml", name.replace("ONE", "TWO")).out
    assert [ln for ln in second.splitlines(keepends=True) if "<uuid>" not in ln] == [
        ln.replace("ONE", "TWO") for ln in lines]


def test_a_running_pools_dump_is_valid_and_defines_again(cli, images, tmp_path):
    first = cli("pool-dumpxml", "p").out
    assert "<available unit='bytes'>" in first and "<permissions>" in first
    valid_for_libvirt(first, "storagepool", tmp_path)
    libvirt_takes(first, "storagepool", tmp_path)
    again = tmp_path / "again.xml"
    lines = [ln for ln in first.splitlines(keepends=True) if "<uuid>" not in ln]
    again.write_text("".join(lines).replace(">p<", ">q<").replace(str(images),
                                                                 str(tmp_path / "q")))
    assert cli("pool-define", str(again)).code == 0
    inactive = cli("pool-dumpxml", "q").out
    valid_for_libvirt(inactive, "storagepool", tmp_path)
    assert f"<path>{tmp_path / 'q'}</path>" in inactive


def test_print_xml_output_is_valid_for_libvirt(cli, images, tmp_path):
    r = cli("vol-create-as", "p", "x.qcow2", "1G", "--format", "qcow2", "--allocation", "0",
            "--backing-vol", "/srv/base.qcow2", "--backing-vol-format", "qcow2", "--print-xml")
    assert r.code == 0 and "<backingStore>" in r.out, r
    valid_for_libvirt(r.out, "storagevol", tmp_path)
    for args in (("dir", "--target", "/srv/x"),
                 ("fs", "--source-dev", "/dev/pk-x", "--target", "/srv/x"),
                 ("netfs", "--source-host", "nfs.example", "--source-path", "/e",
                  "--source-protocol-ver", "4", "--target", "/srv/x"),
                 ("logical", "--source-name", "vgx", "--source-dev", "/dev/pk-y"),
                 ("disk", "--source-dev", "/dev/pk-z", "--source-format", "gpt",
                  "--target", "/dev"),
                 ("iscsi", "--source-host", "10.0.0.1", "--source-dev",
                  "iqn.2013-06.com.example:t", "--target", "/dev/disk/by-path")):
        r = cli("pool-define-as", "x", *args, "--print-xml")
        assert r.code == 0, r
        valid_for_libvirt(r.out, "storagepool", tmp_path)
        libvirt_takes(r.out, "storagepool", tmp_path)
