"""disk pools end to end, for real: partition tables on loop devices and image files.

parted writes the tables; the checks read them back with tools of their own (sfdisk
--json, sysfs, the raw bytes), never through backends.drivers.disk. The kernel here does not
read partition tables itself: partition nodes exist only as BLKPG (parted, partx) made them.
Every loop device a test attaches is released by the fixtures (partx -d, then losetup -d),
and only if it still has the test's own image behind it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import runner, xmlio
from backends.drivers import disk as diskdrv
from backends.errors import (
    InsufficientSpace,
    InUse,
    StateError,
    Unsupported,
    ValidationError,
    VolumeNotFound,
)
from backends.model import Extent, VolumeDef, VolumeTarget
from tests.loopfs import (
    can_use_loop_devices,
    loops_of,
    release_partitioned,
    sparse_images,
    wait_until,
)

needs_loops = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")

MiB = 1 << 20
GiB = 1 << 30
EXTENDED_TYPES = {"5", "F", "85"}
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
GPT_TYPES = {  # what each volume format is written as on gpt
    "none": GPT_LINUX, "linux": GPT_LINUX,
    "fat16": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
    "fat32": "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
    "linux-swap": "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
    "linux-lvm": "E6D6D379-F507-44C2-A23C-238F2A3DF928",
    "linux-raid": "A19D880F-05FC-4D3B-A006-743F0F84911E",
}


# == reading what is on the disk, independently of the driver ==============================
def sfdisk(dev: str) -> dict:
    done = subprocess.run(["sfdisk", "--json", dev], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["partitiontable"]


def size_of(dev: str) -> int:
    with open(dev, "rb") as fh:
        return fh.seek(0, os.SEEK_END)


def sf_partitions(dev: str) -> dict[int, dict]:
    """number -> {start, end (bytes, exclusive), type} as sfdisk reads them."""
    table = sfdisk(dev)
    ss = table["sectorsize"]
    out = {}
    for p in table.get("partitions", []):
        number = int(re.search(r"([0-9]+)$", p["node"]).group(1))
        out[number] = {"start": p["start"] * ss, "end": (p["start"] + p["size"]) * ss,
                       "type": p["type"].upper()}
    return out


def ebr_offsets(dev: str, ext_start: int, ss: int) -> list[int]:
    """The EBR chain of a dos extended partition, read from the raw bytes."""
    found = []
    with open(dev, "rb") as fh:
        at = ext_start
        while at not in found and len(found) < 64:
            fh.seek(at)
            sector = fh.read(512)
            if sector[510:] != b"\x55\xaa":
                break
            found.append(at)
            kind, rel = sector[462 + 4], struct.unpack("<I", sector[462 + 8:462 + 12])[0]
            if not kind or not rel:
                break
            at = ext_start + rel * ss
    return found


def holes(start: int, end: int, used: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, pos = [], start
    for a, b in sorted(used):
        if a > pos:
            out.append((pos, a))
        pos = max(pos, b)
    if pos < end:
        out.append((pos, end))
    return out


def usable(gaps: list[tuple[int, int]], skip: int = 0) -> list[tuple[int, int]]:
    """The rule for a free extent (parted_table.py): from the gap's first 1 MiB boundary
    (after `skip` bytes: a logical partition's EBR sector), at least 1 MiB."""
    out = []
    for start, end in gaps:
        first = -(-max(start + skip, MiB) // MiB) * MiB
        if end - first >= MiB:
            out.append((first, end))
    return out


def expected_free(dev: str) -> list[tuple[int, int]]:
    """The free extents the pool must report, from sfdisk --json: the gaps (gpt between
    firstlba and lastlba; dos from sector 1 to the end while a primary slot is free and,
    inside the extended partition, around the logical partitions and their EBR sectors),
    by the rule of `usable`."""
    table = sfdisk(dev)
    ss = table["sectorsize"]
    parts = sf_partitions(dev)
    if table["label"] == "gpt":
        return usable(holes(table["firstlba"] * ss, (table["lastlba"] + 1) * ss,
                            [(p["start"], p["end"]) for p in parts.values()]))
    assert table["label"] == "dos"
    top = [(p["start"], p["end"]) for n, p in parts.items() if n <= 4]
    free = usable(holes(ss, size_of(dev), top)) if len(top) < 4 else []
    ext = next((p for n, p in parts.items() if n <= 4 and p["type"] in EXTENDED_TYPES), None)
    if ext is not None:
        used = [(p["start"], p["end"]) for n, p in parts.items() if n > 4]
        used += [(e, e + ss) for e in ebr_offsets(dev, ext["start"], ss)]
        free += usable(holes(ext["start"], ext["end"], used), ss)
    return sorted(free)


def digest(dev: str, ranges: list[tuple[int, int]]) -> str:
    h = hashlib.sha256()
    with open(dev, "rb") as fh:
        for start, end in ranges:
            fh.seek(start)
            left = end - start
            while left:
                chunk = fh.read(min(left, 8 * MiB))
                assert chunk, "short read"
                h.update(chunk)
                left -= len(chunk)
    return h.hexdigest()


def outside(dev: str, start: int, end: int) -> str:
    """Hash of every byte of the disk that is not in [start, end)."""
    return digest(dev, [(0, start), (end, size_of(dev))])


def write_at(dev: str, offset: int, data: bytes) -> None:
    fd = os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_at(dev: str, offset: int, length: int) -> bytes:
    with open(dev, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def sysfs_partition(node: str) -> tuple[int, int] | None:
    """(start, size) in bytes of a kernel partition, None if there is no such node."""
    base = Path("/sys/class/block") / os.path.basename(node)
    try:
        return (int((base / "start").read_text()) * 512, int((base / "size").read_text()) * 512)
    except OSError:
        return None


def pn(dev: str, number: int) -> str:
    return f"{os.path.basename(dev)}p{number}"


# == fixtures ============================================================================
@pytest.fixture
def make_loop(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """make_loop(size_mib, sector=None) -> /dev/loopN on a new sparse image."""
    made: list[tuple[str, Path]] = []

    def make(size_mib: int = 1024, sector: int | None = None) -> str:
        image = tmp_path / f"disk{len(made)}.img"
        with open(image, "wb") as fh:
            fh.truncate(size_mib * MiB)
        argv = ["losetup", "--find", "--show", *(["-b", str(sector)] if sector else []),
                str(image)]
        dev = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
        made.append((dev, image))
        return dev

    try:
        yield make
    finally:
        for dev, image in reversed(made):
            release_partitioned(dev, image)


def _release_loops_of(image: Path) -> None:
    for dev in loops_of(image):
        release_partitioned(dev, image)


@pytest.fixture
def make_image(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """make_image(size_mib) -> a sparse image file; loops of it are released at the end."""
    with sparse_images(tmp_path, 1024, _release_loops_of) as make:
        yield make


@pytest.fixture
def holder() -> Iterator[Callable[[str], subprocess.Popen]]:
    """holder(path): a process that keeps `path` open until the test ends."""
    procs: list[subprocess.Popen] = []

    def hold(path: str) -> subprocess.Popen:
        with open(path, "rb") as fh:
            proc = subprocess.Popen(["sleep", "300"], stdin=fh)
        procs.append(proc)
        return proc

    try:
        yield hold
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def disk_xml(name: str, dev: str, fmt: str | None = "gpt", target: str = "/dev") -> str:
    fmt_el = f"<format type='{fmt}'/>" if fmt else ""
    return (f"<pool type='disk'><name>{name}</name><source><device path='{dev}'/>{fmt_el}"
            f"</source><target><path>{target}</path></target></pool>")


def new_pool(ctl, dev: str, fmt: str = "gpt", name: str = "d") -> None:
    ctl.define_pool(disk_xml(name, dev, fmt))
    ctl.build_pool(name).wait(120)
    ctl.start_pool(name)


def create(ctl, name: str, capacity: int, fmt: str | None = None, start: int | None = None,
           pool: str = "d") -> None:
    source = [("/dev/x", [Extent(start, start + capacity)])] if start is not None else []
    ctl.create_volume_def(pool, VolumeDef(name=name, capacity=capacity, source_devices=source,
                                          target=VolumeTarget(format=fmt))).wait(120)


def pool_free(ctl, pool: str = "d") -> list[tuple[int, int]]:
    """The free extents of the live pool XML, after a parse round trip; they must also be
    what the layout (extent bar) shows."""
    pdef = xmlio.parse_pool(ctl.pool_xml(pool))
    from_xml = [(e.start, e.end) for e in pdef.source.devices[0].free_extents]
    [layout] = ctl.pool_layout(pool)
    assert [(e.start, e.end) for e in layout.free] == from_xml
    return from_xml


def check_free(ctl, dev: str, pool: str = "d") -> list[tuple[int, int]]:
    free = pool_free(ctl, pool)
    assert free == expected_free(dev)
    return free


def check_nodes(ctl, dev: str, pool: str = "d") -> None:
    """Every partition has its node, exactly where sfdisk says it is."""
    for number, part in sf_partitions(dev).items():
        found = sysfs_partition(f"/dev/{pn(dev, number)}")
        assert found is not None, f"no node for partition {number}"
        if part["type"] not in EXTENDED_TYPES:
            assert found == (part["start"], part["end"] - part["start"])
    for vol in ctl.list_volumes(pool):
        assert vol.error is None, vol


def volumes(ctl, pool: str = "d") -> dict[str, object]:
    return {v.name: v for v in ctl.list_volumes(pool)}


# == names (no devices needed) =============================================================
@pytest.mark.parametrize("disk, first, tenth", [
    ("sda", "sda1", "sda10"),
    ("/dev/sdb", "sdb1", "sdb10"),
    ("nvme0n1", "nvme0n1p1", "nvme0n1p10"),
    ("/dev/loop0", "loop0p1", "loop0p10"),
    ("loop12", "loop12p1", "loop12p10"),
    ("mmcblk0", "mmcblk0p1", "mmcblk0p10"),
])
def test_partition_names_follow_the_kernel(disk, first, tenth):
    assert diskdrv.partition_name(disk, 1) == first
    assert diskdrv.partition_name(disk, 10) == tenth
    assert diskdrv.partition_number(disk, first) == 1
    assert diskdrv.partition_number(disk, tenth) == 10


def test_partition_numbers_are_parsed_against_the_disk_name():
    number = diskdrv.partition_number
    assert number("/dev/loop0", "loop0p2") == 2  # libvirt 9.0 passes 'p2' to parted here
    for bad in ("p2", "loop02", "loop0p", "loop0p0", "loop0p02", "loop1p2", "loop0p2x",
                "loop0p١", "sda1"):
        assert number("/dev/loop0", bad) is None, bad
    assert number("sda", "sda1") == 1 and number("sda", "sdb1") is None
    assert number("sda", "sdap1") is None and number("sda", "sda") is None
    # part_separator='yes' (multipath-style names) and 'no'
    assert diskdrv.partition_name("mpatha", 1, True) == "mpathap1"
    assert number("mpatha", "mpathap1", True) == 1
    assert diskdrv.partition_name("dm0", 3, False) == "dm03"


def test_partition_types_name_the_volume_format():
    fmt = diskdrv.volume_format
    assert fmt("0x83") == "linux" and fmt("0x82") == "linux-swap"
    assert fmt("0x8e") == "linux-lvm" and fmt("0xfd") == "linux-raid"
    assert fmt("0x6") == "fat16" and fmt("0xe") == "fat16" and fmt("0xc") == "fat32"
    assert fmt("0xf") == fmt("0x5") == "extended"
    assert fmt("0xef") == "none"  # EFI system: no libvirt name for it
    assert fmt(GPT_LINUX.lower()) == "linux"
    assert fmt("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7") == "fat32"
    assert fmt("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "fat16") == "fat16"
    assert fmt("c12a7328-f81f-11d2-ba4b-00a0c93ec93b") == "none"  # EFI system partition
    assert fmt("0x83", "", ("lvm",)) == "linux-lvm"  # parted's flags win
    assert fmt(None, "ext4") == "linux" and fmt(None, "") == "none"
    assert fmt(None, "linux-swap(v1)") == "linux-swap"


def test_parted_machine_output_is_parsed():
    text = ("BYT;\n/dev/loop3:1073741824B:loopback:512:4096:gpt:Loopback device:;\n"
            "1:17408B:1048575B:1031168B:free;\n"
            "1:1048576B:105906175B:104857600B:ext4:my\\:data:boot, esp;\n"
            "2:105906176B:206569471B:100663296B::primary:lvm;\n"
            "1:206569472B:1073724927B:867155456B:free;\n")
    disk, rows = diskdrv.parse_parted(text)
    assert disk == {"size": GiB, "sector": 512, "physical": 4096, "label": "gpt"}
    assert rows[0] == {"free": True, "start": 17408, "end": 1048576}
    assert rows[1]["name"] == "my:data" and rows[1]["flags"] == ("boot", "esp")
    assert rows[1]["fs"] == "ext4" and rows[1]["end"] == 105906176
    assert rows[2]["number"] == 2 and rows[2]["flags"] == ("lvm",)
    with pytest.raises(ValueError):
        diskdrv.parse_parted("Error: no such device\n")


def test_definitions_are_checked(ctl, tmp_path):
    dev = "/dev/loop-does-not-matter"
    for target in ("/tmp", "/dev/disk", "/dev/mapper", "/var/lib/x"):
        with pytest.raises(ValidationError, match="target"):
            ctl.define_pool(disk_xml("t", dev, "gpt", target))
    ctl.define_pool(disk_xml("ok", dev, "gpt", "/dev/disk/by-path"))
    with pytest.raises(ValidationError):
        ctl.define_pool(disk_xml("bad", "/dev/../etc/x", "gpt"))
    with pytest.raises(ValidationError):
        ctl.define_pool(disk_xml("bad", dev, "ext4"))


# == gpt: build, every type until full, extents, resize, delete =============================
@needs_loops
def test_gpt_pool_lifecycle(ctl, make_loop):
    dev = make_loop(1024)
    ctl.define_pool(disk_xml("d", dev, "gpt"))
    ctl.build_pool("d").wait(120)
    assert sfdisk(dev)["label"] == "gpt" and sf_partitions(dev) == {}

    before = digest(dev, [(0, size_of(dev))])
    for overwrite in (None, False):
        with pytest.raises(StateError, match=f"{dev} holds a gpt partition table; pass "
                                             "--overwrite"):
            ctl.build_pool("d", overwrite).wait(120)
    assert digest(dev, [(0, size_of(dev))]) == before

    ctl.start_pool("d")
    info = ctl.pool_info("d")
    free = check_free(ctl, dev)
    assert free == [(MiB, GiB - 33 * 512)]  # from the first 1 MiB boundary, not 17408
    assert info.capacity == GiB and info.allocation == 0
    assert info.available == info.largest_free == GiB - 33 * 512 - MiB
    assert info.detail.startswith("gpt label, 0 partitions, ")

    formats = ["none", "linux", "fat16", "fat32", "linux-swap", "linux-lvm", "linux-raid"]
    for i, fmt in enumerate(formats, start=1):
        create(ctl, pn(dev, i), 100 * MiB, fmt)
        part = sf_partitions(dev)[i]
        assert part["start"] == MiB + (i - 1) * 100 * MiB  # 1 MiB aligned, in order
        assert part["end"] - part["start"] == 100 * MiB
        assert part["type"] == GPT_TYPES[fmt]
        check_free(ctl, dev)
    check_nodes(ctl, dev)
    vols = volumes(ctl)
    listed = {name: v.format for name, v in vols.items()}
    # The format is the partition type: 'none' gets Linux's, fat16 and fat32 share a GUID.
    assert listed == {pn(dev, 1): "linux", pn(dev, 2): "linux", pn(dev, 3): "fat32",
                      pn(dev, 4): "fat32", pn(dev, 5): "linux-swap", pn(dev, 6): "linux-lvm",
                      pn(dev, 7): "linux-raid"}
    v6 = vols[pn(dev, 6)]
    assert v6.path == v6.key == f"/dev/{pn(dev, 6)}" and v6.type == "block"
    assert v6.capacity == v6.allocation == 100 * MiB and v6.attributes == "lvm"
    assert v6.extents == [(dev, [Extent(501 * MiB, 601 * MiB)])]
    assert ctl.pool_info("d").allocation == 700 * MiB

    # Fill the rest with one partition of exactly the available size.
    available = ctl.pool_info("d").available
    create(ctl, pn(dev, 8), available)
    assert ctl.pool_info("d").available == 0
    free = check_free(ctl, dev)
    assert free == []  # the gpt's unaligned head (17408 to 1 MiB) is no free extent
    assert "no free space" in ctl.pool_info("d").detail
    with pytest.raises(InsufficientSpace, match=r"has no free extent for a new partition"):
        create(ctl, pn(dev, 9), MiB)

    # Delete in the middle: the hole is exactly the partition; neighbours merge with it.
    ctl.delete_volume("d", pn(dev, 3))
    assert sysfs_partition(f"/dev/{pn(dev, 3)}") is None
    free = check_free(ctl, dev)
    assert (201 * MiB, 301 * MiB) in free
    ctl.delete_volume("d", pn(dev, 4))
    free = check_free(ctl, dev)
    assert (201 * MiB, 401 * MiB) in free  # one extent, not two
    assert set(volumes(ctl)) == {pn(dev, n) for n in (1, 2, 5, 6, 7, 8)}

    # Too large for the largest extent: refused before parted runs, naming that extent.
    with pytest.raises(InsufficientSpace, match=r"largest free extent is 210763776-420478976 "
                                                r"\(200\.00 MiB\), of which 200\.00 MiB"):
        create(ctl, pn(dev, 3), 250 * MiB)
    assert sorted(sf_partitions(dev)) == [1, 2, 5, 6, 7, 8]

    # The next name is the lowest free number; any other name is refused with that one.
    with pytest.raises(ValidationError, match=f"must be named '{pn(dev, 3)}'"):
        create(ctl, pn(dev, 4), 10 * MiB)
    with pytest.raises(ValidationError, match=f"must be named '{pn(dev, 3)}'"):
        create(ctl, "p3", 10 * MiB)

    # An explicit start (1 MiB aligned) inside the hole.
    create(ctl, pn(dev, 3), 20 * MiB, "linux", start=300 * MiB)
    assert sf_partitions(dev)[3]["start"] == 300 * MiB
    with pytest.raises(ValidationError, match="not aligned to 1 MiB"):
        create(ctl, pn(dev, 4), 20 * MiB, start=250 * MiB + 4096)
    with pytest.raises(InsufficientSpace, match="is not in a usable free extent"):
        create(ctl, pn(dev, 4), 20 * MiB, start=100 * MiB)
    with pytest.raises(InsufficientSpace, match="does not fit in the free extent"):
        create(ctl, pn(dev, 4), 100 * MiB, start=250 * MiB)
    free = check_free(ctl, dev)

    # Grow into the free space right after; never past it; never shrink.
    ctl.resize_volume("d", pn(dev, 3), 60 * MiB).wait(60)
    assert sf_partitions(dev)[3]["end"] == 360 * MiB
    assert sysfs_partition(f"/dev/{pn(dev, 3)}") == (300 * MiB, 60 * MiB)
    assert volumes(ctl)[pn(dev, 3)].capacity == 60 * MiB
    with pytest.raises(InsufficientSpace, match=r"grow only into the free space right after it"):
        ctl.resize_volume("d", pn(dev, 3), 200 * MiB).wait(60)
    with pytest.raises(Unsupported, match="does not shrink partitions"):
        ctl.resize_volume("d", pn(dev, 3), 10 * MiB, shrink=True).wait(60)
    assert sf_partitions(dev)[3]["end"] == 360 * MiB
    check_free(ctl, dev)
    check_nodes(ctl, dev)

    # Partition numbers past 9 and names that are not ours.
    with pytest.raises(VolumeNotFound):
        ctl.delete_volume("d", "p2")

    ctl.stop_pool("d")
    assert sysfs_partition(f"/dev/{pn(dev, 1)}") is not None  # a real disk keeps its nodes
    before = sf_partitions(dev)
    held = ctl.stored_volumes("d")
    assert set(held) == {pn(dev, n) for n in before} and len(held) == 7
    with pytest.raises(StateError, match=f"still holds 7 volumes \\({pn(dev, 1)}, .* and 2 "
                                         "more\\).*pool-delete d --force"):
        ctl.delete_pool("d")
    assert sf_partitions(dev) == before
    ctl.delete_pool("d", force=True)
    assert subprocess.run(["blkid", "-p", dev], capture_output=True).returncode == 2


@needs_loops
def test_pool_xml_round_trip_with_free_extents(ctl, make_loop):
    dev = make_loop(1024)
    new_pool(ctl, dev, "gpt")
    create(ctl, pn(dev, 1), 100 * MiB)
    create(ctl, pn(dev, 2), 100 * MiB, start=500 * MiB)
    xml = ctl.pool_xml("d")
    assert f"<freeExtent start='{101 * MiB}' end='{500 * MiB}'/>" in xml
    assert "17408" not in xml  # the gpt's unaligned head is no free extent
    pdef = xmlio.parse_pool(xml)
    [device] = pdef.source.devices
    assert device.path == dev and pdef.source.format == "gpt"
    assert [(e.start, e.end) for e in device.free_extents] == expected_free(dev)
    assert pdef.capacity == GiB and pdef.allocation == 200 * MiB
    assert xmlio.format_pool(pdef) == xml  # what we print parses back to the same document
    # The stored definition carries no runtime extents.
    assert "freeExtent" not in ctl.pool_xml("d", inactive=True)
    vol_xml = ctl.volume_xml("d", pn(dev, 2))
    assert f"<device path='{dev}'>" in vol_xml
    assert f"<extent start='{500 * MiB}' end='{600 * MiB}'/>" in vol_xml
    assert xmlio.parse_volume(vol_xml, "disk").source_devices == [
        (dev, [Extent(500 * MiB, 600 * MiB)])]


@needs_loops
def test_4k_sector_disk(ctl, make_loop):
    dev = make_loop(512, sector=4096)
    new_pool(ctl, dev, "gpt")
    table = sfdisk(dev)
    assert table["sectorsize"] == 4096
    create(ctl, pn(dev, 1), 10 * MiB + 1)  # rounded up to whole 4 KiB sectors
    create(ctl, pn(dev, 2), 20 * MiB)
    parts = sf_partitions(dev)
    assert parts[1]["start"] == MiB and parts[1]["end"] == 11 * MiB + 4096
    assert parts[2]["start"] == 12 * MiB
    # gpt with 4 KiB sectors: firstlba 6; neither that head nor the 1 MiB - 4 KiB between
    # the two partitions holds 1 MiB from a 1 MiB boundary
    assert check_free(ctl, dev)[0][0] == 32 * MiB
    check_nodes(ctl, dev)
    assert volumes(ctl)[pn(dev, 1)].capacity == 10 * MiB + 4096


# == dos: four primaries, the extended partition, logical partitions ========================
@needs_loops
def test_dos_primaries_extended_and_logicals(ctl, make_loop):
    dev = make_loop(1024)
    new_pool(ctl, dev, "dos")
    assert sfdisk(dev)["label"] == "dos"
    assert check_free(ctl, dev) == [(MiB, GiB)]

    for i, fmt in enumerate(["linux", "fat16", "fat32", "linux-swap"], start=1):
        create(ctl, pn(dev, i), 100 * MiB, fmt)
        check_free(ctl, dev)
    types = {n: p["type"] for n, p in sf_partitions(dev).items()}
    assert types[1] == "83" and types[2] in ("6", "E") and types[3] in ("B", "C")
    assert types[4] == "82"
    assert [volumes(ctl)[pn(dev, n)].format for n in range(1, 5)] == [
        "linux", "fat16", "fat32", "linux-swap"]
    with pytest.raises(StateError, match="4 primary partitions and no extended one"):
        create(ctl, pn(dev, 5), 10 * MiB)
    assert ctl.pool_info("d").available == 0  # free space, but no slot for it
    assert sorted(sf_partitions(dev)) == [1, 2, 3, 4]

    # Make room, then an explicit extended partition over the rest of the disk.
    ctl.delete_volume("d", pn(dev, 4))
    check_free(ctl, dev)
    with pytest.raises(ValidationError, match=f"must be named '{pn(dev, 4)}'"):
        create(ctl, pn(dev, 5), 600 * MiB, "extended")
    create(ctl, pn(dev, 4), 600 * MiB, "extended")
    assert sf_partitions(dev)[4]["type"] in EXTENDED_TYPES
    free = check_free(ctl, dev)
    # outside the extended partition there is no slot left: no free extent there
    assert all(start < 901 * MiB for start, _ in free)
    with pytest.raises(StateError, match="already has an extended partition"):
        create(ctl, pn(dev, 5), 10 * MiB, "extended")
    assert volumes(ctl)[pn(dev, 4)].format == "extended"
    assert ctl.pool_info("d").allocation == 300 * MiB  # the extended one holds no data

    # Logical partitions go inside it, numbered from 5, each after its own EBR.
    for n, fmt in ((5, "linux-lvm"), (6, "linux-raid"), (7, "none")):
        create(ctl, pn(dev, n), 100 * MiB, fmt)
        check_free(ctl, dev)
    parts = sf_partitions(dev)
    assert [parts[n]["type"] for n in (5, 6, 7)] == ["8E", "FD", "83"]
    ext = parts[4]
    for n in (5, 6, 7):
        assert ext["start"] < parts[n]["start"] and parts[n]["end"] <= ext["end"]
        assert parts[n]["start"] % MiB == 0
    assert len(ebr_offsets(dev, ext["start"], 512)) == 3
    check_nodes(ctl, dev)
    largest = ctl.pool_info("d").largest_free
    assert largest == ext["end"] - parts[7]["end"] - MiB  # the next EBR needs its sector
    with pytest.raises(InsufficientSpace, match="the largest free extent is"):
        create(ctl, pn(dev, 8), largest + MiB)

    # The extended partition is a container: not wiped, not deleted while it holds any.
    with pytest.raises(Unsupported, match="extended partition"):
        ctl.wipe_volume("d", pn(dev, 4)).wait(60)
    with pytest.raises(StateError, match=f"still holds the logical partitions {pn(dev, 5)}"):
        ctl.delete_volume("d", pn(dev, 4))

    # Deleting a logical partition renumbers the ones after it, as the kernel numbers them.
    lvm_start = parts[7]["start"]
    ctl.delete_volume("d", pn(dev, 6))
    parts = sf_partitions(dev)
    assert sorted(parts) == [1, 2, 3, 4, 5, 6] and parts[6]["start"] == lvm_start
    assert sysfs_partition(f"/dev/{pn(dev, 7)}") is None
    assert set(volumes(ctl)) == {pn(dev, n) for n in range(1, 7)}
    check_free(ctl, dev)
    check_nodes(ctl, dev)

    # A new logical partition fills the hole (first fit) and takes the next number.
    create(ctl, pn(dev, 7), 50 * MiB)
    assert ext["start"] < sf_partitions(dev)[7]["start"] < lvm_start
    check_free(ctl, dev)
    check_nodes(ctl, dev)
    ctl.stop_pool("d")


# == data goes only through the partition ===================================================
@needs_loops
def test_wipe_stays_inside_its_partition(ctl, make_loop):
    dev = make_loop(1024)
    new_pool(ctl, dev, "gpt")
    for n in (1, 2, 3):
        create(ctl, pn(dev, n), 64 * MiB)
    p2 = sf_partitions(dev)[2]
    start, end = p2["start"], p2["end"]
    noise = os.urandom(MiB)
    for offset in (start - MiB, start, end - MiB, end):  # the neighbours' edges and its own
        write_at(dev, offset, noise)
    around = outside(dev, start, end)

    ctl.wipe_volume("d", pn(dev, 2), "zero").wait(120)
    assert outside(dev, start, end) == around
    assert read_at(dev, start, end - start) == bytes(end - start)
    assert read_at(dev, start - MiB, MiB) == noise and read_at(dev, end, MiB) == noise

    ctl.wipe_volume("d", pn(dev, 2), "random").wait(120)
    assert outside(dev, start, end) == around
    inside = read_at(dev, start, end - start)
    assert inside[:MiB] != bytes(MiB) and inside[-MiB:] != bytes(MiB)


@needs_loops
def test_upload_and_download_through_the_partition(ctl, make_loop, tmp_path):
    dev = make_loop(1024)
    new_pool(ctl, dev, "dos")
    create(ctl, pn(dev, 1), 32 * MiB)
    create(ctl, pn(dev, 2), 16 * MiB)
    p2 = sf_partitions(dev)[2]
    start, end = p2["start"], p2["end"]
    around = outside(dev, start, end)

    payload = os.urandom(5 * MiB + 123)
    src = tmp_path / "in.bin"
    src.write_bytes(payload)
    ctl.upload_volume("d", pn(dev, 2), str(src), offset=MiB).wait(60)
    assert read_at(dev, start + MiB, len(payload)) == payload
    assert outside(dev, start, end) == around

    dst = tmp_path / "out.bin"
    ctl.download_volume("d", pn(dev, 2), str(dst)).wait(60)
    data = dst.read_bytes()
    assert len(data) == 16 * MiB and data == read_at(dev, start, end - start)
    assert data[MiB:MiB + len(payload)] == payload
    part = tmp_path / "part.bin"
    ctl.download_volume("d", pn(dev, 2), str(part), offset=MiB, length=len(payload)).wait(60)
    assert part.read_bytes() == payload

    # Data that would run past the partition's end is refused; nothing is written.
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(16 * MiB))
    with pytest.raises(ValidationError, match="do not fit in .*grow the partition first"):
        ctl.upload_volume("d", pn(dev, 2), str(big), offset=4096).wait(60)
    assert outside(dev, start, end) == around
    assert read_at(dev, start + MiB, len(payload)) == payload


@needs_loops
def test_missing_partition_node_is_refused_never_the_whole_disk(ctl, make_loop, tmp_path):
    dev = make_loop(256)
    new_pool(ctl, dev, "gpt")
    create(ctl, pn(dev, 1), 16 * MiB)
    create(ctl, pn(dev, 2), 16 * MiB)
    subprocess.run(["partx", "-d", "--nr", "2:2", dev], check=True)
    assert sysfs_partition(f"/dev/{pn(dev, 2)}") is None
    whole = digest(dev, [(0, size_of(dev))])
    src = tmp_path / "x.bin"
    src.write_bytes(os.urandom(MiB))
    for act in (lambda: ctl.wipe_volume("d", pn(dev, 2)).wait(60),
                lambda: ctl.upload_volume("d", pn(dev, 2), str(src)).wait(60),
                lambda: ctl.download_volume("d", pn(dev, 2), str(tmp_path / "o")).wait(60)):
        with pytest.raises(StateError, match=f"/dev/{pn(dev, 2)} does not exist"):
            act()
    assert digest(dev, [(0, size_of(dev))]) == whole
    assert not (tmp_path / "o").exists()
    vol = volumes(ctl)[pn(dev, 2)]
    assert vol.error and "partx -u" in vol.error

    # A node that exists but does not match the table (1 MiB too large, through BLKPG's
    # resizepart) is refused the same way.
    subprocess.run(["partx", "-a", "--nr", "2:2", dev], check=True)
    p2 = sf_partitions(dev)[2]
    sectors = (p2["end"] - p2["start"]) // 512
    subprocess.run(["resizepart", dev, "2", str(sectors + 2048)], check=True)
    assert sysfs_partition(f"/dev/{pn(dev, 2)}") == (p2["start"], p2["end"] - p2["start"] + MiB)
    with pytest.raises(StateError, match="does not match the table"):
        ctl.wipe_volume("d", pn(dev, 2)).wait(60)
    assert digest(dev, [(0, size_of(dev))]) == whole
    subprocess.run(["partx", "-u", "--nr", "2:2", dev], check=True)
    ctl.wipe_volume("d", pn(dev, 2)).wait(60)  # in line again: it works


@needs_loops
def test_partitions_in_use_are_refused(ctl, make_loop, holder):
    dev = make_loop(256)
    new_pool(ctl, dev, "dos")
    create(ctl, pn(dev, 1), 16 * MiB)
    create(ctl, pn(dev, 2), 16 * MiB, "extended")
    create(ctl, pn(dev, 5), 4 * MiB)
    create(ctl, pn(dev, 6), 4 * MiB)
    proc = holder(f"/dev/{pn(dev, 1)}")
    with pytest.raises(InUse, match=rf"open by sleep \(pid {proc.pid}\)"):
        ctl.delete_volume("d", pn(dev, 1))
    with pytest.raises(InUse):
        ctl.wipe_volume("d", pn(dev, 1)).wait(60)
    ctl.stop_pool("d")
    with pytest.raises(InUse, match="even with --overwrite"):
        ctl.build_pool("d", True).wait(60)
    ctl.start_pool("d")
    # Deleting loopNp5 would renumber loopNp6, which is open: refused too.
    holder(f"/dev/{pn(dev, 6)}")
    with pytest.raises(InUse, match="renumbers the logical partitions after it"):
        ctl.delete_volume("d", pn(dev, 5))
    assert sorted(sf_partitions(dev)) == [1, 2, 5, 6]


# == build refusals ======================================================================
@needs_loops
def test_build_refuses_a_filesystem_unless_overwrite(ctl, make_loop, monkeypatch):
    dev = make_loop(64)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "keep", dev], check=True)
    ctl.define_pool(disk_xml("d", dev, "dos"))
    before = digest(dev, [(0, size_of(dev))])
    with pytest.raises(StateError, match="holds an ext4 filesystem \\(label 'keep'\\)"):
        ctl.build_pool("d").wait(60)
    with pytest.raises(StateError, match="holds a filesystem; build pool 'd' first|holds a "
                                         "filesystem and no partition table"):
        ctl.start_pool("d")
    assert digest(dev, [(0, size_of(dev))]) == before

    from backends import blockprobe

    def uncertain(device):
        return blockprobe.Probe(device, [], "blkid found several conflicting signatures")

    monkeypatch.setattr(blockprobe, "probe", uncertain)
    with pytest.raises(StateError, match="cannot tell whether"):
        ctl.build_pool("d", False).wait(60)
    monkeypatch.undo()
    ctl.build_pool("d", True).wait(60)
    found = subprocess.run(["blkid", "-p", "-o", "export", dev], capture_output=True,
                           text=True).stdout
    assert "PTTYPE=dos" in found and "ext4" not in found
    ctl.start_pool("d")
    assert ctl.pool_info("d").state == "running"
    ctl.stop_pool("d")

    # A label other than the one defined: start says so.
    ctl.define_pool(disk_xml("d", dev, "gpt"))
    with pytest.raises(StateError, match="has a dos partition table, but pool 'd' expects gpt"):
        ctl.start_pool("d")
    ctl.define_pool(disk_xml("d", dev, "lvm2"))
    with pytest.raises(Unsupported, match="lvm2"):
        ctl.build_pool("d", True).wait(60)


# == the exact argv ======================================================================
@needs_loops
def test_parted_argv(ctl, make_loop, monkeypatch):
    dev = make_loop(512)
    new_pool(ctl, dev, "dos")
    seen: list[list[str]] = []
    real = runner.run

    def recording(argv, **kw):
        seen.append([str(a) for a in argv])
        return real(argv, **kw)

    monkeypatch.setattr(diskdrv.runner, "run", recording)

    def changes() -> list[list[str]]:
        verbs = ("mkpart", "set", "rm", "resizepart", "mklabel")
        out = [a for a in seen if a[0] == "parted" and any(v in a for v in verbs)]
        seen.clear()
        return out

    create(ctl, pn(dev, 1), 100 * MiB, "linux-lvm")
    assert changes() == [
        ["parted", "-s", dev, "mkpart", "primary", "ext2", "1048576B", "105906175B"],
        ["parted", "-s", dev, "set", "1", "lvm", "on"],
    ]
    create(ctl, pn(dev, 2), 200 * MiB, "extended")
    assert changes() == [["parted", "-s", dev, "mkpart", "extended", "105906176B",
                          "315621375B"]]
    create(ctl, pn(dev, 5), 10 * MiB, "linux-swap")
    assert changes() == [["parted", "-s", dev, "mkpart", "logical", "linux-swap",
                          "106954752B", "117440511B"]]
    create(ctl, pn(dev, 3), 10 * MiB, "none", start=301 * MiB)  # past the extended one
    assert changes() == [["parted", "-s", dev, "mkpart", "primary", "315621376B",
                          "326107135B"]]
    ctl.resize_volume("d", pn(dev, 5), 20 * MiB).wait(60)
    assert changes() == [["parted", "-s", dev, "resizepart", "5", "127926271B"]]
    ctl.delete_volume("d", pn(dev, 5))
    assert changes() == [["parted", "-s", dev, "rm", "5"]]
    # A wrong name, a too-large size: refused before any parted change.
    with pytest.raises(ValidationError):
        create(ctl, pn(dev, 9), MiB)
    with pytest.raises(InsufficientSpace):
        create(ctl, pn(dev, 4), 400 * MiB)
    assert changes() == []
    check_nodes(ctl, dev)


# == an image file as the source =========================================================
@needs_loops
def test_image_file_source_attaches_on_start(ctl, state_root, make_image):
    from backends.controller import StorageController

    image = make_image(256)
    ctl.define_pool(disk_xml("img", str(image), "gpt"))
    ctl.build_pool("img").wait(60)
    assert loops_of(image) == []  # parted wrote the label on the file itself
    assert sfdisk(str(image))["label"] == "gpt"

    ctl.start_pool("img")
    [loop] = loops_of(image)
    extras = json.loads((state_root / "run" / "img.json").read_text())
    assert extras["loop"]["device"] == loop and extras["loop"]["image"] == str(image)
    create(ctl, pn(loop, 1), 32 * MiB, pool="img")
    create(ctl, pn(loop, 2), 32 * MiB, pool="img")
    assert sysfs_partition(f"/dev/{pn(loop, 1)}") == (MiB, 32 * MiB)
    assert set(volumes(ctl, "img")) == {pn(loop, 1), pn(loop, 2)}
    assert f"attached as {loop}" in ctl.pool_info("img").detail
    assert volumes(ctl, "img")[pn(loop, 1)].extents == [(str(image),
                                                         [Extent(MiB, 33 * MiB)])]

    with StorageController(state_root, create_default=False, autostart=False) as again:
        assert again.pool_info("img").state == "running"
        again.stop_pool("img")
    assert wait_until(lambda: loops_of(image) == [])
    assert sysfs_partition(f"/dev/{pn(loop, 1)}") is None
    assert not (state_root / "run" / "img.json").exists()
    assert sorted(sf_partitions(str(image))) == [1, 2]  # the table stayed in the file

    ctl.start_pool("img")  # again: whichever loop device it gets, the partitions are there
    [loop] = loops_of(image)
    assert set(volumes(ctl, "img")) == {pn(loop, 1), pn(loop, 2)}
    check_nodes(ctl, loop, "img")
    ctl.stop_pool("img")
    assert wait_until(lambda: loops_of(image) == [])
    assert ctl.stored_volumes("img") == ["partition 1 (32.00 MiB)", "partition 2 (32.00 MiB)"]
    with pytest.raises(StateError, match="still holds 2 volumes"):
        ctl.delete_pool("img")
    assert sorted(sf_partitions(str(image))) == [1, 2] and loops_of(image) == []
    ctl.delete_pool("img", force=True)
    assert subprocess.run(["blkid", "-p", str(image)], capture_output=True).returncode == 2


@needs_loops
def test_image_attached_elsewhere_is_refused(ctl, make_image):
    image = make_image(64)
    subprocess.run(["parted", "-s", str(image), "mklabel", "gpt"], check=True)
    loop = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                          text=True, check=True).stdout.strip()
    ctl.define_pool(disk_xml("img", str(image), "gpt"))
    with pytest.raises(InUse, match=f"already attached as {loop}"):
        ctl.start_pool("img")
    with pytest.raises(InUse, match=f"attached as {loop}"):
        ctl.build_pool("img", True).wait(60)
    assert loops_of(image) == [loop]


# == discovery and the CLI ===============================================================
@needs_loops
def test_find_sources_lists_disks_with_their_label(ctl, make_loop):
    gpt = make_loop(64)
    dos = make_loop(64)
    blank = make_loop(64)
    subprocess.run(["parted", "-s", gpt, "mklabel", "gpt"], check=True)
    subprocess.run(["parted", "-s", dos, "mklabel", "msdos"], check=True)
    xml = ctl.find_pool_sources("disk", device=gpt)
    assert f'<device path="{gpt}"/>' in xml and '<format type="gpt"/>' in xml
    everything = ctl.find_pool_sources("disk")
    assert f'<device path="{gpt}"/>' in everything
    assert f'<device path="{dos}"/>\n    <format type="dos"/>' in everything
    assert f'<device path="{blank}"/>' not in everything
    with pytest.raises(ValidationError):
        ctl.find_pool_sources("disk", host="example.com")


@needs_loops
def test_cli_flow(cli, make_loop):
    dev = make_loop(512)
    name = pn(dev, 1)
    r = cli("pool-define-as", "d", "disk", "--source-dev", dev, "--source-format", "gpt",
            "--target", "/dev")
    assert r.code == 0, r
    assert cli("pool-build", "d").code == 0
    r = cli("pool-build", "d", "--no-overwrite")
    assert r.code == 1 and "holds a gpt partition table; pass --overwrite" in r.err, r
    r = cli("pool-start", "d")
    assert r.code == 0, r
    r = cli("vol-create-as", "d", pn(dev, 2), "100M", "--format", "linux")
    assert r.code == 1 and f"must be named '{name}'" in r.err, r
    r = cli("vol-create-as", "d", name, "100M", "--format", "linux")
    assert r.code == 0, r
    r = cli("vol-list", "d", "--json")
    assert r.code == 0, r
    [vol] = json.loads(r.out)
    assert vol["name"] == name and vol["path"] == f"/dev/{name}" and vol["format"] == "linux"
    assert vol["type"] == "block" and vol["capacity"] == 100 * MiB and vol["error"] is None
    r = cli("pool-info", "d", "--json")
    info = json.loads(r.out)
    assert info["allocation"] == 100 * MiB and info["capacity"] == 512 * MiB
    r = cli("vol-delete", name, "--pool", "d")
    assert r.code == 0, r
    assert sf_partitions(dev) == {} and sysfs_partition(f"/dev/{name}") is None
    r = cli("pool-destroy", "d")
    assert r.code == 0, r


def test_no_tool_runs_for_a_bad_definition(monkeypatch, tmp_path):
    """Definitions that did not come through xmlio are checked again by the driver."""
    from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice

    calls: list[list[str]] = []
    monkeypatch.setattr(diskdrv.runner, "run", lambda argv, **kw: calls.append(list(argv)))
    for device, target, message in (("-x", "/dev", "absolute path"),
                                    ("/dev/a,b", "/dev", "absolute path"),
                                    ("/dev/a\nb", "/dev", "control character"),
                                    ("/dev/sdz", "/srv", "target")):
        pool = PoolDef(type="disk", name="h", source=PoolSource(devices=[SourceDevice(device)],
                                                                format="gpt"),
                       target=PoolTarget(path=target))
        for verb in (lambda d: d.start(), lambda d: d.build(True, None), lambda d: d.delete()):
            with pytest.raises(ValidationError, match=message):
                verb(diskdrv.DiskDriver(pool))
    assert calls == []


# == the other labels parted writes ======================================================
@needs_loops
@pytest.mark.parametrize("label, reserved", [("mac", 1), ("bsd", None), ("dvh", 9)])
def test_other_labels(ctl, make_loop, label, reserved):
    dev = make_loop(256)
    new_pool(ctl, dev, label)
    vols = volumes(ctl)
    taken = {diskdrv.partition_number(dev, n) for n in vols}
    numbers = [n for n in range(1, 20) if n not in taken][:2]
    for number, fmt in zip(numbers, ("linux", "linux-swap"), strict=True):
        create(ctl, pn(dev, number), 32 * MiB, fmt)
    vols = volumes(ctl)
    for number in numbers:
        vol = vols[pn(dev, number)]
        assert vol.error is None and vol.capacity == 32 * MiB
        start = vol.extents[0][1][0].start
        assert start % MiB == 0 and sysfs_partition(vol.path) == (start, 32 * MiB)
    free = pool_free(ctl)
    for vol in vols.values():  # nothing free overlaps a partition
        [(_, [ext])] = vol.extents
        assert all(end <= ext.start or start >= ext.end for start, end in free)
    if reserved is not None:  # the label's own partition is listed but left alone
        with pytest.raises(Unsupported, match="part of the partition table itself"):
            ctl.delete_volume("d", pn(dev, reserved))
        with pytest.raises(Unsupported, match="part of the partition table itself"):
            ctl.wipe_volume("d", pn(dev, reserved)).wait(60)
    ctl.delete_volume("d", pn(dev, numbers[0]))
    assert pn(dev, numbers[0]) not in volumes(ctl)
    assert sysfs_partition(f"/dev/{pn(dev, numbers[0])}") is None


@needs_loops
@pytest.mark.parametrize("label", ["sun", "pc98"])
def test_cylinder_labels_are_listed_but_not_partitioned(ctl, make_loop, label):
    dev = make_loop(128)
    new_pool(ctl, dev, label)
    info = ctl.pool_info("d")
    assert info.state == "running" and info.available == 0
    assert "does not create partitions" in info.detail
    with pytest.raises(Unsupported, match="cylinder boundaries"):
        create(ctl, pn(dev, 1), 8 * MiB)


@needs_loops
def test_monitor_sees_partitions_made_behind_its_back(ctl, make_loop):
    from backends.events import VolumesChanged

    dev = make_loop(256)
    new_pool(ctl, dev, "gpt")
    seen: list[VolumesChanged] = []
    ctl.subscribe(lambda ev: seen.append(ev) if isinstance(ev, VolumesChanged) else None)
    ctl.poll()  # first round: learns the token
    ctl.poll()
    assert seen == []
    subprocess.run(["parted", "-s", dev, "mkpart", "primary", "1MiB", "9MiB"], check=True)
    subprocess.run(["partx", "-u", dev], capture_output=True)
    ctl.poll()
    assert any(pn(dev, 1) in ev.added for ev in seen)
    assert {v.name for v in ctl.cached_volumes("d")} == {pn(dev, 1)}


@needs_loops
def test_clone_into_a_partition(ctl, make_loop, tmp_path):
    from tests.conftest import make_dir_pool

    dev = make_loop(256)
    new_pool(ctl, dev, "gpt")
    create(ctl, pn(dev, 1), 8 * MiB)
    data = os.urandom(8 * MiB)
    write_at(dev, sf_partitions(dev)[1]["start"], data)
    ctl.clone_volume("d", pn(dev, 1), pn(dev, 2)).wait(60)
    p2 = sf_partitions(dev)[2]
    assert p2["end"] - p2["start"] == 8 * MiB and read_at(dev, p2["start"], 8 * MiB) == data
    with pytest.raises(ValidationError, match=f"must be named '{pn(dev, 3)}'"):
        ctl.clone_volume("d", pn(dev, 1), "copy").wait(60)
    assert sorted(sf_partitions(dev)) == [1, 2]

    # From a file in a dir pool: the partition is as large as the file, the bytes the same.
    make_dir_pool(ctl, "files", tmp_path / "files")
    (tmp_path / "files" / "a.raw").write_bytes(data[:3 * MiB])
    xml = (f"<volume><name>{pn(dev, 3)}</name><capacity>1048576</capacity>"
           "<target><format type='linux'/></target></volume>")
    ctl.clone_volume("files", "a.raw", pn(dev, 3), target_pool="d", xml=xml).wait(60)
    p3 = sf_partitions(dev)[3]
    assert p3["end"] - p3["start"] == 3 * MiB
    assert read_at(dev, p3["start"], 3 * MiB) == data[:3 * MiB]
    assert volumes(ctl)[pn(dev, 3)].format == "linux"

    # And back out into a file: the partition's bytes, recorded raw (its type stays behind).
    ctl.clone_volume("d", pn(dev, 1), "p1.img", target_pool="files").wait(60)
    assert (tmp_path / "files" / "p1.img").read_bytes() == data
    assert ctl.volume_info("files", "p1.img").format == "raw"
