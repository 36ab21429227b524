"""Header probing against real images (qemu-img) and hand-built headers of the other formats.

Every qemu-made image is checked against `qemu-img info --output=json -f FMT` of the same file,
mapped through poolkeeper's (libvirt's) reporting rules, which are spelled out in
`expected_from_qemu`. Formats qemu-img cannot create are built here from their documented
layouts; where qemu can read them (bochs, cloop, vpc variants) qemu-img info cross-checks them.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends import imageprobe
from backends.imageprobe import FORMATS, HEADER_BYTES, ProbeResult, probe_bytes, probe_fd

QEMU_IMG = shutil.which("qemu-img")
needs_qemu = pytest.mark.skipif(
    QEMU_IMG is None, reason="qemu-img is missing: apt-get install qemu-utils"
)
SECRET = ["--object", "secret,id=s0,data=poolkeeper"]
ENV = {**os.environ, "LC_ALL": "C"}
SIZE = 3 * 1024 * 1024 + 64 * 1024  # not a power of two: a wrong field shows up


def qemu_img(*args: str, cwd: Path) -> str:
    assert QEMU_IMG is not None
    for _ in range(10):
        proc = subprocess.run(
            [QEMU_IMG, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120
        )
        # qemu's PBKDF calibration for LUKS fails now and then on a VM's coarse CPU clock.
        if "Unable to get accurate CPU usage" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def qemu_info(path: Path, fmt: str) -> dict[str, Any]:
    return json.loads(qemu_img("info", "--output=json", "-f", fmt, path.name, cwd=path.parent))


def probe_path(path: Path) -> ProbeResult:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        return probe_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def file_reader(data: bytes, size: int | None = None) -> tuple[Callable[[int, int], bytes], list]:
    """read_at over `data` (zeros after it up to `size`) that records every call."""
    total = len(data) if size is None else size
    calls: list[tuple[int, int]] = []

    def read_at(off: int, n: int) -> bytes:
        calls.append((off, n))
        assert off >= 0 and n > 0 and off + n <= total, (off, n, total)
        chunk = data[off : off + n]
        return chunk + bytes(min(n, total - off) - len(chunk))

    return read_at, calls


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


# --- images made by qemu-img, checked against qemu-img info -------------------------------

# id -> (qemu format, create options, what this case must show so it cannot pass vacuously)
QEMU_CASES: dict[str, tuple[str, list[str], dict[str, Any]]] = {
    "raw": ("raw", [], {"format": "raw", "capacity": None}),
    "qcow": ("qcow", [], {"format": "qcow", "backing": None}),
    "qcow-backing": ("qcow", ["-b", "base.raw", "-F", "raw"], {"backing": "base.raw"}),
    "qcow-aes": (
        "qcow", [*SECRET, "-o", "encrypt.format=aes,encrypt.key-secret=s0"],
        {"encryption": "qcow"},
    ),
    "qcow2-compat-0.10": ("qcow2", ["-o", "compat=0.10"], {"compat": None, "features": None}),
    "qcow2-compat-1.1": ("qcow2", ["-o", "compat=1.1"], {"compat": "1.1", "features": []}),
    "qcow2-lazy-refcounts": (
        "qcow2", ["-o", "lazy_refcounts=on"], {"features": ["lazy_refcounts"]},
    ),
    "qcow2-cluster-4k": ("qcow2", ["-o", "cluster_size=4096"], {"cluster_size": 4096}),
    "qcow2-cluster-2m": ("qcow2", ["-o", "cluster_size=2M"], {"cluster_size": 2 * 1024 * 1024}),
    "qcow2-extended-l2": ("qcow2", ["-o", "extended_l2=on"], {"features": ["extended_l2"]}),
    "qcow2-all-features": (
        "qcow2", ["-o", "lazy_refcounts=on,extended_l2=on,data_file=all.data"],
        {"features": ["lazy_refcounts", "extended_l2", "data_file"], "data_file": "all.data"},
    ),
    "qcow2-backing-raw": (
        "qcow2", ["-b", "base.raw", "-F", "raw"],
        {"backing": "base.raw", "backing_format": "raw"},
    ),
    "qcow2-backing-qcow2": (
        "qcow2", ["-b", "base.qcow2", "-F", "qcow2"],
        {"backing": "base.qcow2", "backing_format": "qcow2"},
    ),
    "qcow2-0.10-backing": (
        "qcow2", ["-o", "compat=0.10", "-b", "base.qcow2", "-F", "qcow2"],
        {"backing": "base.qcow2", "backing_format": "qcow2", "compat": None},
    ),
    "qcow2-backing-long-name": (  # 808 bytes of "./" still name base.raw
        "qcow2", ["-b", "./" * 400 + "base.raw", "-F", "raw"],
        {"backing": "./" * 400 + "base.raw"},
    ),
    "qcow2-data-file": ("qcow2", ["-o", "data_file=img.data"], {"data_file": "img.data"}),
    "qcow2-data-file-raw": (
        "qcow2", ["-o", "data_file=raw.data,data_file_raw=on"],
        {"data_file": "raw.data", "features": ["data_file"]},
    ),
    "qcow2-backing-and-data-file": (  # backing_fmt "raw" (3 bytes) then data file: padding
        "qcow2", ["-b", "base.raw", "-F", "raw", "-o", "data_file=both.data"],
        {"backing_format": "raw", "data_file": "both.data"},
    ),
    "qcow2-aes": (
        "qcow2", [*SECRET, "-o", "encrypt.format=aes,encrypt.key-secret=s0"],
        {"encryption": "qcow"},
    ),
    "qcow2-luks": (
        "qcow2",
        [*SECRET, "-o", "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10"],
        {"encryption": "luks"},
    ),
    "qed": ("qed", [], {"format": "qed", "backing": None}),
    "qed-backing-raw": (
        "qed", ["-b", "base.raw", "-F", "raw"], {"backing": "base.raw", "backing_format": "raw"},
    ),
    "qed-backing-qcow2": (  # only "raw" is recorded by qed; anything else is probed later
        "qed", ["-b", "base.qcow2", "-F", "qcow2"],
        {"backing": "base.qcow2", "backing_format": None},
    ),
    "vmdk-monolithic-sparse": ("vmdk", [], {"format": "vmdk", "backing": None}),
    "vmdk-sparse-backing": (
        "vmdk", ["-b", "base.vmdk", "-F", "vmdk"],
        {"backing": "base.vmdk", "backing_format": "vmdk"},
    ),
    "vmdk-stream-optimized": ("vmdk", ["-o", "subformat=streamOptimized"], {"format": "vmdk"}),
    "vmdk-descriptor-flat": ("vmdk", ["-o", "subformat=monolithicFlat"], {"format": "vmdk"}),
    "vmdk-descriptor-2gb-sparse": (
        "vmdk", ["-o", "subformat=twoGbMaxExtentSparse"], {"format": "vmdk"},
    ),
    "vpc-dynamic": ("vpc", [], {"format": "vpc"}),
    "vpc-force-size": ("vpc", ["-o", "force_size=on"], {"capacity": SIZE}),
    "vdi": ("vdi", [], {"format": "vdi"}),
    "parallels": ("parallels", [], {"format": "ploop"}),
    "luks": (
        "luks", [*SECRET, "-o", "key-secret=s0,iter-time=10"],
        {"format": "raw", "encryption": "luks"},
    ),
}


def expected_from_qemu(info: dict[str, Any], st_size: int) -> dict[str, Any]:
    """What the probe must report for an image, derived from qemu-img info.

    The rules are libvirt's (reference facts §5.3): compat and features only for qcow2 v3,
    cluster size only for qcow2, LUKS is raw + encryption, qemu's "aes" is libvirt's "qcow",
    parallels is ploop, raw gets no header capacity (the caller uses st_size).
    """
    fmt = {"parallels": "ploop", "luks": "raw"}.get(info["format"], info["format"])
    data = info.get("format-specific", {}).get("data", {})
    expected: dict[str, Any] = {
        "format": fmt,
        "capacity": info["virtual-size"],
        "backing": info.get("backing-filename"),
        "backing_format": info.get("backing-filename-format"),
        "cluster_size": info.get("cluster-size") if fmt == "qcow2" else None,
        "compat": None,
        "features": None,
        "encryption": None,
        "data_file": data.get("data-file"),
        # files qemu opened as extents (a sparse vmdk is its own only extent); relative
        # names come back as written, the image being named relative to the cwd
        "extents": [e["filename"] for e in data.get("extents", [])
                    if e["filename"] != info["filename"]],
    }
    if info["format"] == "raw":
        assert info["virtual-size"] == st_size
        expected["capacity"] = None
    if fmt == "qcow2" and data["compat"] == "1.1":
        expected["compat"] = "1.1"
        expected["features"] = [
            name for key, name in (
                ("lazy-refcounts", "lazy_refcounts"),
                ("extended-l2", "extended_l2"),
                ("data-file", "data_file"),
            ) if data.get(key)
        ]
    elif fmt == "qcow2":
        assert data["compat"] == "0.10"  # qemu names v2 "0.10"; libvirt reports no compat
    if info.get("encrypted"):
        qemu_enc = data.get("encrypt", {}).get("format", "aes")  # qcow v1 has no details
        expected["encryption"] = {"aes": "qcow", "luks": "luks"}[qemu_enc]
    if info["format"] == "luks":
        expected["encryption"] = "luks"
    return expected


def as_dict(res: ProbeResult) -> dict[str, Any]:
    return {name: getattr(res, name) for name in ProbeResult.__slots__}


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the backing files the cases refer to by relative name."""
    d = tmp_path_factory.mktemp("images")
    if QEMU_IMG is not None:
        qemu_img("create", "-f", "raw", "base.raw", "1M", cwd=d)
        qemu_img("create", "-f", "qcow2", "base.qcow2", "1M", cwd=d)
        qemu_img("create", "-f", "vmdk", "base.vmdk", str(SIZE), cwd=d)
    return d


def make_image(image_dir: Path, case: str) -> tuple[Path, str]:
    fmt, opts, _ = QEMU_CASES[case]
    path = image_dir / f"{case}.img"
    if not path.exists():
        qemu_img("create", "-f", fmt, *opts, path.name, str(SIZE), cwd=image_dir)
    return path, fmt


@needs_qemu
@pytest.mark.parametrize("case", list(QEMU_CASES))
def test_qemu_image_matches_qemu_img_info(image_dir: Path, case: str) -> None:
    path, fmt = make_image(image_dir, case)
    res = probe_path(path)
    got = as_dict(res)
    assert got == expected_from_qemu(qemu_info(path, fmt), path.stat().st_size)
    for key, value in QEMU_CASES[case][2].items():  # the case really shows what it is for
        assert got[key] == value, key


@needs_qemu
@pytest.mark.parametrize("case", list(QEMU_CASES))
def test_probe_bytes_agrees_with_probe_fd(image_dir: Path, case: str) -> None:
    path, _ = make_image(image_dir, case)
    data = path.read_bytes()
    read_at, calls = file_reader(data)
    assert probe_bytes(data[:HEADER_BYTES], len(data), read_at) == probe_path(path)
    # One buffer with everything gives the same answer without any further read.
    assert probe_bytes(data[:65536], len(data)) == probe_path(path)


@needs_qemu
def test_qcow2_without_backing_format_extension(image_dir: Path, tmp_path: Path) -> None:
    # qemu-img insists on -F now; older images lack the extension: rename its magic away.
    path = tmp_path / "nofmt.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", str(image_dir / "base.raw"), "-F", "raw",
             str(path), "1M", cwd=tmp_path)
    data = path.read_bytes()
    i = data.index(struct.pack(">I", 0xE2792ACA))
    patch(path, i, struct.pack(">I", 0x0BADF00D))  # unknown extensions are skipped
    res = probe_path(path)
    assert res.backing == str(image_dir / "base.raw")
    assert res.backing_format is None  # AUTO: the caller decides; the probe never looks
    assert "backing-filename-format" not in qemu_info(path, "qcow2")


@needs_qemu
def test_qcow2_unknown_backing_format_name_is_raw(tmp_path: Path) -> None:
    path = tmp_path / "odd.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "base.vhdx", "-F", "vhdx", "-u",
             path.name, "1M", cwd=tmp_path)
    assert qemu_info(path, "qcow2")["backing-filename-format"] == "vhdx"
    assert probe_path(path).backing_format == "raw"  # facts §5.3: not a known name -> raw


@needs_qemu
def test_qcow2_backing_name_beyond_first_read(image_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "far.qcow2"
    shutil.copy(image_dir / "base.raw", tmp_path / "base.raw")
    qemu_img("create", "-f", "qcow2", "-o", "compat=0.10", "-b", "base.raw", "-F", "raw",
             path.name, "1M", cwd=tmp_path)
    name = b"./" * 30 + b"base.raw"
    patch(path, 20000, name)
    patch(path, 8, struct.pack(">QI", 20000, len(name)))
    info = qemu_info(path, "qcow2")
    assert info["backing-filename"] == name.decode()
    res = probe_path(path)
    assert res.backing == name.decode()
    assert res.backing_format == "raw"  # extensions now scanned up to offset 20000
    data = path.read_bytes()
    # Without read_at only the first read is there: no backing, no exception.
    assert probe_bytes(data[:HEADER_BYTES], len(data)).backing is None


@needs_qemu
def test_qcow2_extensions_beyond_first_read(image_dir: Path, tmp_path: Path) -> None:
    # A 5000-byte unknown extension pushes the backing-format one past HEADER_BYTES.
    path = tmp_path / "ext.qcow2"
    shutil.copy(image_dir / "base.qcow2", tmp_path / "base.qcow2")
    qemu_img("create", "-f", "qcow2", "-o", "compat=0.10", "-b", "base.qcow2", "-F", "qcow2",
             path.name, "1M", cwd=tmp_path)
    exts = struct.pack(">II", 0x0BADF00D, 5000) + bytes(5000)
    exts += struct.pack(">II", 0xE2792ACA, 5) + b"qcow2\0\0\0" + struct.pack(">II", 0, 0)
    assert 72 + len(exts) < 8000
    patch(path, 72, exts)
    patch(path, 8000, b"base.qcow2")
    patch(path, 8, struct.pack(">QI", 8000, 10))
    info = qemu_info(path, "qcow2")
    assert (info["backing-filename"], info["backing-filename-format"]) == ("base.qcow2", "qcow2")
    res = probe_path(path)
    assert (res.backing, res.backing_format) == ("base.qcow2", "qcow2")
    data = path.read_bytes()
    res = probe_bytes(data[:HEADER_BYTES], len(data))  # no read_at: the first read only
    assert (res.format, res.backing_format) == ("qcow2", None)


@needs_qemu
def test_qed_backing_only_with_feature_bit(image_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "nb.qed"
    shutil.copy(make_image(image_dir, "qed-backing-raw")[0], path)
    features = struct.unpack_from("<Q", path.read_bytes(), 16)[0]
    patch(path, 16, struct.pack("<Q", features & ~1))  # offset/length stay in the header
    assert "backing-filename" not in qemu_info(path, "qed")
    assert probe_path(path) == ProbeResult("qed", SIZE)


@needs_qemu
def test_qcow2_version_7_is_raw(image_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "v7.qcow2"
    shutil.copy(make_image(image_dir, "qcow2-compat-1.1")[0], path)
    assert probe_path(path).format == "qcow2"
    patch(path, 4, struct.pack(">I", 7))
    assert probe_path(path) == ProbeResult("raw", None)


@needs_qemu
@pytest.mark.parametrize("keep", [8, 50, 71, 103])
def test_truncated_qcow2_header_is_raw(image_dir: Path, tmp_path: Path, keep: int) -> None:
    data = make_image(image_dir, "qcow2-compat-1.1")[0].read_bytes()
    path = tmp_path / "short"
    path.write_bytes(data[:keep])
    assert probe_path(path) == ProbeResult("raw", None)


@needs_qemu
def test_qcow2_v3_header_of_exactly_104_bytes(image_dir: Path) -> None:
    data = make_image(image_dir, "qcow2-lazy-refcounts")[0].read_bytes()[:104]
    res = probe_bytes(data, len(data))
    assert (res.format, res.capacity, res.features) == ("qcow2", SIZE, ["lazy_refcounts"])


@needs_qemu
@pytest.mark.parametrize(
    ("creator", "current", "expect"),
    [
        (b"win ", SIZE - 4096, "current"),  # Hyper-V sizes by the footer's current size
        (b"vpc ", SIZE + 8 * 1024 * 1024, "chs"),  # Virtual PC sizes by geometry
    ],
)
def test_vpc_size_rule_matches_qemu(
    tmp_path: Path, creator: bytes, current: int, expect: str
) -> None:
    path = tmp_path / "x.vpc"
    qemu_img("create", "-f", "vpc", path.name, str(SIZE), cwd=tmp_path)
    footer = bytearray(path.read_bytes()[:512])
    cyls, heads, secs = struct.unpack_from(">HBB", footer, 56)
    footer[28:32] = creator
    struct.pack_into(">Q", footer, 40, SIZE + 1024 * 1024)  # "original size": not the answer
    struct.pack_into(">Q", footer, 48, current)
    footer[64:68] = bytes(4)
    struct.pack_into(">I", footer, 64, ~sum(footer) & 0xFFFFFFFF)
    patch(path, 0, bytes(footer))
    patch(path, path.stat().st_size - 512, bytes(footer))
    want = current if expect == "current" else cyls * heads * secs * 512
    assert qemu_info(path, "vpc")["virtual-size"] == want
    assert probe_path(path) == ProbeResult("vpc", want)


@needs_qemu
def test_vpc_fixed_is_raw(tmp_path: Path) -> None:
    # A fixed VHD has its footer only at the end: libvirt (facts §5.3) probes it as raw.
    path = tmp_path / "fixed.vpc"
    qemu_img("create", "-f", "vpc", "-o", "subformat=fixed", path.name, str(SIZE), cwd=tmp_path)
    assert qemu_info(path, "vpc")["format"] == "vpc"
    assert probe_path(path) == ProbeResult("raw", None)


@needs_qemu
def test_vmdk_descriptor_backing_and_extents_never_opened(image_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "d.vmdk"
    path.write_text(
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=87654321\n"
        'createType="monolithicFlat"\nparentFileNameHint="/srv/parent.vmdk"\n\n'
        "# Extent description\n"
        'RW 2048 FLAT "/etc/shadow" 0\n'
        'RDONLY 4096 SPARSE "d-s001.vmdk"\n'
        "NOACCESS 1024 ZERO\n"
        '# RW 999999 FLAT "commented.vmdk" 0\n'
        '\n#DDB\nddb.virtualHWVersion = "4"\n'
    )
    res = probe_path(path)
    assert res == ProbeResult(  # qemu opens RW extents only (and never commented ones)
        "vmdk", (2048 + 4096 + 1024) * 512, backing="/srv/parent.vmdk", backing_format="vmdk",
        extents=["/etc/shadow"],
    )


# --- hand-built headers of formats qemu-img cannot create ---------------------------------


def write(path: Path, data: bytes, size: int | None = None) -> Path:
    path.write_bytes(data)
    if size is not None:
        os.truncate(path, size)
    return path


def test_iso(tmp_path: Path) -> None:
    pvd = b"\x01CD001\x01" + bytes(2041)  # primary volume descriptor at sector 16
    path = write(tmp_path / "a.iso", bytes(32768) + pvd, 1024 * 1024)
    assert probe_path(path) == ProbeResult("iso", None)
    # The mark must be inside the file and at 32769 exactly.
    assert probe_path(write(tmp_path / "b", bytes(32768) + b"\x01CD00")) == ProbeResult("raw", None)
    assert probe_path(write(tmp_path / "c", bytes(32769) + pvd)) == ProbeResult("raw", None)
    # Smallest file that can hold the mark.
    assert probe_path(write(tmp_path / "d", bytes(32769) + b"CD001")) == ProbeResult("iso", None)


def test_iso_needs_read_beyond_head() -> None:
    data = bytes(32768) + b"\x01CD001\x01" + bytes(100)
    read_at, calls = file_reader(data)
    assert probe_bytes(data[:HEADER_BYTES], len(data), read_at).format == "iso"
    assert calls and all(off >= HEADER_BYTES for off, _ in calls)
    assert probe_bytes(data[:HEADER_BYTES], len(data)) == ProbeResult("raw", None)


def cow_header(backing: bytes, size: int, version: int = 2) -> bytes:
    # UML COW v2: magic, version, backing_file[1024], mtime, size (all big-endian), sectorsize
    return (
        b"OOOM" + struct.pack(">I", version) + backing.ljust(1024, b"\0")
        + struct.pack(">IQI", 0, size, 512)
    )


def test_cow(tmp_path: Path) -> None:
    path = write(tmp_path / "u.cow", cow_header(b"/var/lib/uml/root_fs", 123456789 * 512), 65536)
    assert probe_path(path) == ProbeResult("cow", 123456789 * 512, backing="/var/lib/uml/root_fs")
    path = write(tmp_path / "nob.cow", cow_header(b"", 7 * 512))
    assert probe_path(path) == ProbeResult("cow", 7 * 512)
    path = write(tmp_path / "v3.cow", cow_header(b"x", 512, version=3))
    assert probe_path(path) == ProbeResult("raw", None)
    assert probe_bytes(cow_header(b"x", 512)[:1043], 1043) == ProbeResult("raw", None)


def bochs_image(disk: int, version: int) -> bytes:
    extent = 64 * 1024
    catalog = -(-disk // extent)
    head = (
        b"Bochs Virtual HD Image".ljust(32, b"\0") + b"Redolog".ljust(16, b"\0")
        + b"Growing".ljust(16, b"\0") + struct.pack("<IIIII", version, 512, catalog, 512, extent)
    )
    if version == 0x00020000:
        head += struct.pack("<IQ", 0, disk)
    else:
        head += struct.pack("<Q", disk)
    return head.ljust(512, b"\0") + b"\xff" * (4 * catalog)


@needs_qemu
@pytest.mark.parametrize("version", [0x00020000, 0x00010000])
def test_bochs_cross_checked_by_qemu(tmp_path: Path, version: int) -> None:
    disk = 5 * 1024 * 1024 + 512 * 3
    path = write(tmp_path / "b.img", bochs_image(disk, version))
    assert qemu_info(path, "bochs")["virtual-size"] == disk
    assert probe_path(path) == ProbeResult("bochs", disk)


def test_bochs_wrong_version_is_raw(tmp_path: Path) -> None:
    path = write(tmp_path / "b.img", bochs_image(1024 * 1024, 0x00030000))
    assert probe_path(path) == ProbeResult("raw", None)


CLOOP_MAGIC = (
    b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"
)


@needs_qemu
def test_cloop_cross_checked_by_qemu(tmp_path: Path) -> None:
    block_size, n_blocks = 4096, 3
    blocks = [zlib.compress(bytes([i]) * block_size) for i in range(n_blocks)]
    offsets = [128 + 8 + 8 * (n_blocks + 1)]
    for b in blocks:
        offsets.append(offsets[-1] + len(b))
    data = (
        CLOOP_MAGIC.ljust(128, b"\0") + struct.pack(">II", block_size, n_blocks)
        + struct.pack(f">{n_blocks + 1}Q", *offsets) + b"".join(blocks)
    )
    path = write(tmp_path / "c.cloop", data)
    info = qemu_info(path, "cloop")
    assert (info["format"], info["virtual-size"]) == ("cloop", block_size * n_blocks)
    assert probe_path(path) == ProbeResult("cloop", None)  # capacity left to the caller
    assert probe_bytes(CLOOP_MAGIC[:-1], 200) == ProbeResult("raw", None)


def koly(sectors: int, header_size: int = 512) -> bytes:
    t = bytearray(512)
    t[0:4] = b"koly"
    struct.pack_into(">III", t, 4, 4, header_size, 1)  # version, header size, flags
    struct.pack_into(">Q", t, 492, sectors)  # SectorCount
    return bytes(t)


def test_dmg(tmp_path: Path) -> None:
    path = write(tmp_path / "a.dmg", os.urandom(8192) + koly(2048))
    assert probe_path(path) == ProbeResult("dmg", 2048 * 512)
    assert probe_path(write(tmp_path / "b", koly(0))) == ProbeResult("dmg", None)
    path = write(tmp_path / "c", bytes(8192) + koly(2048, header_size=200))
    assert probe_path(path) == ProbeResult("raw", None)
    path = write(tmp_path / "d", bytes(8192) + koly(2048) + b"\0")  # not at end-512
    assert probe_path(path) == ProbeResult("raw", None)


def test_ploop_hand_built(tmp_path: Path) -> None:
    head = b"WithouFreSpacExt" + struct.pack("<IIIII", 2, 16, 8, 2048, 64) + struct.pack(
        "<Q", 409600
    )
    assert probe_path(write(tmp_path / "root.hds", head, 1 << 20)) == ProbeResult(
        "ploop", 409600 * 512
    )
    # The old Parallels magic is not ploop for libvirt.
    old = b"WithoutFreeSpace" + head[16:]
    assert probe_path(write(tmp_path / "old.hds", old, 1 << 20)) == ProbeResult("raw", None)


def test_vdi_wrong_version_is_raw(tmp_path: Path) -> None:
    head = bytearray(512)
    head[64:68] = b"\x7f\x10\xda\xbe"
    struct.pack_into("<I", head, 68, 0x00010001)
    struct.pack_into("<Q", head, 368, 77 * 1024 * 1024)
    assert probe_bytes(bytes(head), 512) == ProbeResult("vdi", 77 * 1024 * 1024)
    struct.pack_into("<I", head, 68, 0x00020000)
    assert probe_bytes(bytes(head), 512) == ProbeResult("raw", None)


def luks2_image(segments: dict[str, Any], hdr_size: int = 16384) -> bytes:
    binary = bytearray(4096)
    binary[0:6] = b"LUKS\xba\xbe"
    struct.pack_into(">HQ", binary, 6, 2, hdr_size)
    area = json.dumps({
        "keyslots": {}, "tokens": {}, "digests": {}, "segments": segments,
        "config": {"json_size": str(hdr_size - 4096), "keyslots_size": "16744448"},
    }).encode()
    return bytes(binary) + area.ljust(hdr_size - 4096, b"\0")


def test_luks2(tmp_path: Path) -> None:
    seg = {"type": "crypt", "offset": "16777216", "size": "dynamic", "iv_tweak": "0",
           "encryption": "aes-xts-plain64", "sector_size": 512}
    path = write(tmp_path / "l2", luks2_image({"0": seg}), 20 * 1024 * 1024)
    assert probe_path(path) == ProbeResult("raw", 4 * 1024 * 1024, encryption="luks")
    path = write(tmp_path / "fixed", luks2_image({"0": {**seg, "size": "1048576"}}), 20 << 20)
    assert probe_path(path) == ProbeResult("raw", 1024 * 1024, encryption="luks")
    # Unreadable JSON, or two segments (re-encryption): still LUKS, size left to the caller.
    broken = bytearray(luks2_image({"0": seg}))
    broken[4096] = ord("[")  # JSON that does not parse
    assert probe_path(write(tmp_path / "b", bytes(broken), 20 << 20)) == ProbeResult(
        "raw", None, encryption="luks"
    )
    path = write(tmp_path / "two", luks2_image({"0": seg, "1": seg}), 20 << 20)
    assert probe_path(path) == ProbeResult("raw", None, encryption="luks")


def test_luks_bad_version_and_short(tmp_path: Path) -> None:
    head = bytearray(592)
    head[0:6] = b"LUKS\xba\xbe"
    struct.pack_into(">H", head, 6, 3)
    assert probe_bytes(bytes(head), 1 << 20) == ProbeResult("raw", None)
    struct.pack_into(">H", head, 6, 1)
    struct.pack_into(">I", head, 104, 4096)
    assert probe_bytes(bytes(head), 1 << 30) == ProbeResult(
        "raw", (1 << 30) - 4096 * 512, encryption="luks"
    )
    assert probe_bytes(bytes(head[:100]), 1 << 30) == ProbeResult("raw", None)
    # A payload offset past the end leaves nothing usable, never a negative size.
    assert probe_bytes(bytes(head), 4096).capacity == 0


def minimal_headers() -> dict[str, tuple[bytes, int, int]]:
    """format -> (a valid header of it, magic offset, magic length)."""
    vpc = bytearray(512)
    vpc[0:8] = b"conectix"
    struct.pack_into(">I", vpc, 12, 0x00010000)
    vpc[28:32] = b"win "
    struct.pack_into(">Q", vpc, 48, 1 << 20)
    vdi = bytearray(512)
    vdi[64:68] = b"\x7f\x10\xda\xbe"
    struct.pack_into("<I", vdi, 68, 0x00010001)
    struct.pack_into("<Q", vdi, 368, 1 << 20)
    luks = bytearray(592)
    luks[0:8] = b"LUKS\xba\xbe\x00\x01"
    kdmv = bytearray(512)
    kdmv[0:4] = b"KDMV"
    struct.pack_into("<IIQ", kdmv, 4, 1, 3, 2048)
    return {
        "vpc": (bytes(vpc), 0, 8),
        "vdi": (bytes(vdi), 64, 4),
        "ploop": (b"WithouFreSpacExt".ljust(64, b"\1"), 0, 16),
        "cow": (cow_header(b"b", 512), 0, 4),
        "luks": (bytes(luks), 0, 6),
        "bochs": (bochs_image(1 << 20, 0x00020000), 0, 23),
        "cloop": (CLOOP_MAGIC + bytes(64), 0, len(CLOOP_MAGIC)),
        "vmdk": (bytes(kdmv), 0, 4),
        "vmdk-text": (b"# Disk DescriptorFile\nRW 8 FLAT \"f\" 0\n", 0, 21),
    }


@pytest.mark.parametrize("name", list(minimal_headers()))
def test_near_miss_magic_is_raw(name: str) -> None:
    data, off, length = minimal_headers()[name]
    assert probe_bytes(data, 1 << 20).format == {"luks": "raw", "vmdk-text": "vmdk"}.get(name, name)
    assert name != "luks" or probe_bytes(data, 1 << 20).encryption == "luks"
    for i in (off, off + length - 1):  # first and last byte of the magic
        bad = bytearray(data)
        bad[i] ^= 0x20
        assert probe_bytes(bytes(bad), 1 << 20) == ProbeResult("raw", None), i


def test_qfi_and_qed_magics_are_three_bytes() -> None:
    # libvirt compares strlen(magic) bytes: "QFI" and "QED" (facts §5.2).
    head = bytearray(qcow2_v2_header(1 << 20, 0, 0))
    head[3] = 0
    assert probe_bytes(bytes(head), 1 << 20).format == "qcow2"
    qed = bytearray(64)
    qed[0:4] = b"QED\x07"
    struct.pack_into("<Q", qed, 48, 12345 * 512)
    assert probe_bytes(bytes(qed), 1 << 20) == ProbeResult("qed", 12345 * 512)


# --- garbage, short files, hostile numbers ------------------------------------------------


@pytest.mark.parametrize("size", [0, 1])
def test_empty_and_one_byte_files(tmp_path: Path, size: int) -> None:
    path = write(tmp_path / "f", b"Q"[:size])
    assert probe_path(path) == ProbeResult("raw", None)
    assert probe_bytes(b"Q"[:size], size) == ProbeResult("raw", None)


def test_garbage(tmp_path: Path) -> None:
    rng = random.Random(1234)
    for i in range(50):
        data = rng.randbytes(rng.randrange(0, 40000))
        path = write(tmp_path / f"g{i}", data)
        assert probe_path(path) == ProbeResult("raw", None)


def qcow2_v2_header(size: int, backing_off: int, backing_len: int, cluster_bits: int = 16) -> bytes:
    head = bytearray(72)
    head[0:4] = b"QFI\xfb"
    struct.pack_into(">IQIIQ", head, 4, 2, backing_off, backing_len, cluster_bits, size)
    return bytes(head)


@pytest.mark.parametrize(
    ("off", "length"),
    [(10_000_000, 11), (72, 0xFFFFFFFF), (72, 1024), (2**64 - 1, 8), (290, 20)],
)
def test_hostile_backing_numbers(tmp_path: Path, off: int, length: int) -> None:
    data = qcow2_v2_header(1 << 30, off, length).ljust(300, b"A")
    path = write(tmp_path / "h", data)
    # (290, 20) runs past the end: qemu reads zeros there, so the name is the 10 bytes left
    expect = ProbeResult("qcow2", 1 << 30, cluster_size=65536,
                         backing="A" * 10 if off == 290 else None)
    assert probe_path(path) == expect
    read_at, calls = file_reader(data)
    assert probe_bytes(data, 300, read_at) == expect
    assert calls == []


def test_backing_name_longer_than_1023_is_ignored() -> None:
    for length, expect in ((1023, "x" * 1023), (1024, None)):
        data = qcow2_v2_header(1 << 20, 100, length).ljust(2000, b"x")
        assert probe_bytes(data, len(data)).backing == expect


def test_hostile_extensions() -> None:
    head = bytearray(qcow2_v2_header(1 << 20, 0, 0, cluster_bits=12).ljust(4096, b"\0"))
    struct.pack_into(">II", head, 72, 0xE2792ACA, 0xFFFFFFF0)  # length past everything
    assert probe_bytes(bytes(head), 1 << 20).backing_format is None
    # A chain of empty unknown extensions up to the end of the cluster: walks and stops.
    for off in range(72, 4096, 8):
        struct.pack_into(">II", head, off, 0x1234, 0)
    read_at, _ = file_reader(bytes(head), 1 << 20)
    assert probe_bytes(bytes(head), 1 << 20, read_at).format == "qcow2"
    struct.pack_into(">I", head, 20, 63)  # absurd cluster bits: no cluster size reported
    assert probe_bytes(bytes(head), 1 << 20, read_at).cluster_size is None


def test_short_read_at_is_tolerated() -> None:
    # The file shrank between fstat and read: read_at returns less than asked.
    data = qcow2_v2_header(1 << 20, 9000, 8)
    res = probe_bytes(data, 1 << 20, lambda off, n: b"")
    assert res == ProbeResult("qcow2", 1 << 20, cluster_size=65536)
    assert probe_bytes(bytes(100), 1 << 20, lambda off, n: b"") == ProbeResult("raw", None)


def test_oserror_propagates(tmp_path: Path) -> None:
    def failing(off: int, n: int) -> bytes:
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        probe_bytes(bytes(HEADER_BYTES), 1 << 20, failing)
    fd = os.open(write(tmp_path / "x", b"x"), os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError):
        probe_fd(fd, 1)


# --- security: the probe opens nothing ------------------------------------------------------

_AUDIT: list[tuple[str, tuple]] | None = None
_AUDIT_INSTALLED = False
_WATCHED = ("open", "os.", "shutil.", "subprocess.", "socket.", "glob.")


def _audit_hook(event: str, args: tuple) -> None:
    if _AUDIT is not None and event.startswith(_WATCHED):
        _AUDIT.append((event, args))


@pytest.fixture
def no_opens(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, tuple]]]:
    """Fail any open through Python and record every file-system audit event meanwhile."""
    global _AUDIT, _AUDIT_INSTALLED
    if not _AUDIT_INSTALLED:
        sys.addaudithook(_audit_hook)  # cannot be removed: it records only while armed
        _AUDIT_INSTALLED = True

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the probe opened something: {args!r}")

    for target, name in ((os, "open"), (builtins, "open"), (io, "open"), (os, "stat"),
                         (os, "lstat"), (os, "scandir"), (os, "listdir")):
        monkeypatch.setattr(target, name, refuse)
    events: list[tuple[str, tuple]] = []
    _AUDIT = events
    try:
        yield events
    finally:
        _AUDIT = None


@pytest.mark.parametrize("backing", [b"/etc/shadow", b"json:{\"file.filename\":\"/etc/shadow\"}",
                                     b"nbd://evil:10809/x"])
def test_hostile_qcow2_header_in_raw_file_opens_nothing(
    tmp_path: Path, backing: bytes, request: pytest.FixtureRequest
) -> None:
    # A guest wrote a qcow2 header into its raw disk, naming a host file as backing.
    data = qcow2_v2_header(1 << 30, 512, len(backing)).ljust(512, b"\0") + backing
    path = write(tmp_path / "guest.raw", data, 64 * 1024 * 1024)
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        events = request.getfixturevalue("no_opens")
        res = probe_fd(fd, size)
        assert events == []
    finally:
        os.close(fd)
    assert res == ProbeResult("qcow2", 1 << 30, backing=backing.decode(), cluster_size=65536)


@needs_qemu
def test_real_images_open_nothing(image_dir: Path, request: pytest.FixtureRequest) -> None:
    fds = {}
    for case in ("qcow2-backing-and-data-file", "vmdk-sparse-backing", "qed-backing-raw",
                 "vmdk-descriptor-flat"):
        path, _ = make_image(image_dir, case)
        fds[case] = os.open(path, os.O_RDONLY)
    try:
        sizes = {case: os.fstat(fd).st_size for case, fd in fds.items()}
        events = request.getfixturevalue("no_opens")
        results = {case: probe_fd(fd, sizes[case]) for case, fd in fds.items()}
        assert events == []
    finally:
        for fd in fds.values():
            os.close(fd)
    assert results["qcow2-backing-and-data-file"].data_file == "both.data"
    assert results["vmdk-sparse-backing"].backing == "base.vmdk"


def test_backing_name_bytes_kept_exactly() -> None:
    name = b"dir/\xff\xfename with spaces"
    data = qcow2_v2_header(4096, 72, len(name)) + name
    res = probe_bytes(data, len(data))
    assert res.backing is not None and os.fsencode(res.backing) == name


# --- property tests --------------------------------------------------------------------------

MAGICS = [
    b"", b"conectix", b"WithouFreSpacExt", b"OOOM\0\0\0\x02", b"QFI\xfb\0\0\0\x01",
    b"QFI\xfb\0\0\0\x02", b"QFI\xfb\0\0\0\x03", b"QED\0", b"KDMV\x01\0\0\0", b"KDMV\x03\0\0\0",
    b"# Disk DescriptorFile\n", b"LUKS\xba\xbe\0\x01", b"LUKS\xba\xbe\0\x02",
    b"Bochs Virtual HD Image\0", CLOOP_MAGIC,
]


def check_result(res: ProbeResult) -> None:
    assert isinstance(res, ProbeResult)
    assert res.format in FORMATS
    assert res.capacity is None or (isinstance(res.capacity, int) and res.capacity >= 0)
    for name in ("backing", "backing_format", "compat", "encryption", "data_file"):
        value = getattr(res, name)
        assert value is None or (isinstance(value, str) and value)
    assert res.features is None or all(isinstance(f, str) for f in res.features)
    assert res.cluster_size is None or 512 <= res.cluster_size <= 2 * 1024 * 1024


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.sampled_from(MAGICS),
    body=st.binary(max_size=1500),
    fill=st.sampled_from([b"\0", b"\xff", b"\x01", b"A"]),
    extra=st.integers(min_value=0, max_value=1 << 40),
)
def test_random_bytes_never_raise(prefix: bytes, body: bytes, fill: bytes, extra: int) -> None:
    data = prefix + body
    # Header-sized numbers are more interesting when the rest is not all zero.
    data = data + fill * (min(len(data), 1200) // 3)
    size = len(data) + extra
    read_at, calls = file_reader(data, size)
    # The internal function has no safety net: a missed bound shows here as an exception.
    check_result(imageprobe._probe(data[:HEADER_BYTES], size, read_at))
    check_result(imageprobe._probe(data[:HEADER_BYTES], size, None))
    check_result(probe_bytes(data, len(data)))


@settings(max_examples=300, deadline=None)
@given(
    version=st.sampled_from([2, 3]),
    fields=st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=12, max_size=12),
    tail=st.binary(max_size=600),
)
def test_random_qcow2_headers(version: int, fields: list[int], tail: bytes) -> None:
    head = bytearray(b"QFI\xfb" + struct.pack(">I", version) + bytes(96))
    offsets = [8, 16, 20, 24, 32, 72, 80, 100, 40, 48, 56, 64]
    formats = [">Q", ">I", ">I", ">Q", ">I", ">Q", ">Q", ">I", ">Q", ">Q", ">Q", ">Q"]
    for off, fmt, value in zip(offsets, formats, fields, strict=True):
        struct.pack_into(fmt, head, off, value & (0xFFFFFFFF if fmt == ">I" else 2**64 - 1))
    data = bytes(head) + tail
    read_at, _ = file_reader(data)
    res = imageprobe._probe(data, len(data), read_at)
    check_result(res)
    assert res.format == "qcow2"
