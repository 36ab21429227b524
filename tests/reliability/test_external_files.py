"""Issue 13 item 1: every file qemu would open for an image must be a volume of an active pool.

A vmdk descriptor names other files as its extents, and qemu opens them: a text descriptor
planted in a pool, one uploaded into a vmdk volume, or the one a KDMV header with capacity 0
carries (a guest can write that at the start of its disk). An overlay on such an image would
read the extent, a clone to raw would copy it into a new volume, and vol-resize would have
qemu open it read-write. Each is refused before qemu-img runs, the message names the file,
and the canary (standing for /etc/shadow) is never opened (an inotify watch sees every open).
Extents that are volumes of active pools, named by full path, still work.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import UnsafePath
from backends.model import BackingStore
from tests.reliability.test_format_trust import (  # noqa: F401 (fixture 'qemu_calls')
    CANARY_BYTES,
    QCOW2,
    RAW,
    InotifyWatch,
    create,
    qemu_calls,
    sha,
)

MiB = 1 << 20


def descriptor(*extent_lines: str, magic: bool = True) -> bytes:
    """A vmdk descriptor file (monolithicFlat) with these extent lines."""
    head = ["# Disk DescriptorFile"] if magic else []
    return "\n".join([*head, "version=1", "CID=12345678", "parentCID=ffffffff",
                      'createType="monolithicFlat"', "# Extent description", *extent_lines,
                      'ddb.virtualHWVersion = "4"', ""]).encode()


def kdmv_carrier(text: bytes, size: int = MiB) -> bytes:
    """A KDMV header with capacity 0 whose descriptor (at sector 1) qemu reads as a
    descriptor file: what a guest can write at the start of its raw disk."""
    data = bytearray(size)
    data[0:4] = b"KDMV"
    struct.pack_into("<IIQQQQ", data, 4, 1, 0, 0, 128, 1, 20)  # version, flags, capacity 0,
    data[512:512 + len(text)] = text                          # grain, descriptor @1, 20 s
    return bytes(data)


def flat(path: Path | str) -> str:
    return f'RW 2048 FLAT "{path}" 0'


# Each case: how the hostile image comes to be in pool 'p' as hostile.vmdk, and what the
# refusal must name. The canary is tmp_path/canary (outside every pool).
def _planted(text: Callable[[Path], bytes]) -> Callable[..., None]:
    def make(ctl: StorageController, pool: Path, canary: Path) -> None:
        (pool / "hostile.vmdk").write_bytes(text(canary))
    return make


def _uploaded(text: Callable[[Path], bytes]) -> Callable[..., None]:
    """Created by poolkeeper as vmdk (so recorded vmdk), then a descriptor is uploaded."""
    def make(ctl: StorageController, pool: Path, canary: Path) -> None:
        create(ctl, "hostile.vmdk", 4 * MiB, "vmdk")
        upload = pool.parent / "upload.vmdk"
        upload.write_bytes(text(canary))
        ctl.upload_volume("p", "hostile.vmdk", str(upload)).wait(60)
    return make


def _carrier_extent(ctl: StorageController, pool: Path, canary: Path) -> None:
    """The extent is a pool volume, but a guest wrote a KDMV carrier into it: qemu opens a
    SPARSE extent as a sparse vmdk and then the files of the descriptor it carries."""
    create(ctl, "guest.img", MiB)
    (pool / "guest.img").write_bytes(kdmv_carrier(descriptor(flat(canary))))
    (pool / "hostile.vmdk").write_bytes(descriptor(f'RW 2048 SPARSE "{pool / "guest.img"}"'))


CASES = {
    # text descriptors someone put into the pool
    "planted-flat": (_planted(lambda c: descriptor(flat(c))), "{canary}"),
    "planted-sparse": (_planted(lambda c: descriptor(f'RW 2048 SPARSE "{c}"')), "{canary}"),
    "planted-vmfssparse-no-space": (  # %10s stops after 10 letters: the quote may follow
        _planted(lambda c: descriptor(f'RW 2048 VMFSSPARSE"{c}"')), "{canary}"),
    "planted-line-continued": (  # sscanf's white space matches newlines too
        _planted(lambda c: descriptor(f'RW\n2048\nFLAT\n"{c}" 0')), "{canary}"),
    "planted-kdmv-carrier": (  # a copied-in guest disk that carries a descriptor
        _planted(lambda c: kdmv_carrier(descriptor(flat(c)))), "{canary}"),
    "uploaded": (_uploaded(lambda c: descriptor(flat(c))), "{canary}"),
    "uploaded-without-magic": (  # qemu reads any non-KDMV vmdk as a descriptor
        _uploaded(lambda c: descriptor(flat(c), magic=False)), "now reads as raw"),
    "relative-extent": (  # under /dev/fd/N a relative name would find another file
        _planted(lambda c: descriptor(flat("guest.img"))), "relative"),
    "extent-carrying-a-descriptor": (_carrier_extent, "carries a vmdk descriptor"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_images_whose_extents_leave_the_pools_are_refused(
        ctl, pool, tmp_path, qemu_calls, case):  # noqa: F811 (the imported fixture)
    make, expect = CASES[case]
    canary = tmp_path / "canary"
    canary.write_bytes(CANARY_BYTES)
    make(ctl, pool, canary)
    hostile = pool / "hostile.vmdk"
    before = {name: sha(pool / name) for name in os.listdir(pool)}
    canary_before = (sha(canary), canary.stat().st_mtime_ns)
    calls_before = len(qemu_calls)
    watch = InotifyWatch(canary)
    try:
        attempts = {
            "overlay": lambda: create(ctl, "top.qcow2", 4 * MiB, "qcow2",
                                      BackingStore(path=str(hostile), format="vmdk")),
            "clone": lambda: ctl.clone_volume("p", "hostile.vmdk", "copy.vmdk").wait(60),
            "clone to raw": lambda: ctl.clone_volume("p", "hostile.vmdk", "conv.raw",
                                                     xml=RAW).wait(60),
            "resize": lambda: ctl.resize_volume("p", "hostile.vmdk", 8 * MiB).wait(60),
        }
        for verb, attempt in attempts.items():
            with pytest.raises(UnsafePath) as exc:
                attempt()
            assert expect.format(canary=canary) in str(exc.value), verb
        assert watch.events() == [], "something opened the canary"
    finally:
        watch.close()
    assert (sha(canary), canary.stat().st_mtime_ns) == canary_before
    assert {name: sha(pool / name) for name in os.listdir(pool)} == before
    assert qemu_calls[calls_before:] == []


def test_a_guest_written_descriptor_in_a_raw_volume_is_just_data(ctl, pool, tmp_path):
    """Made by poolkeeper as raw: whatever the guest wrote, every action reads it as raw."""
    canary = tmp_path / "canary"
    canary.write_bytes(CANARY_BYTES)
    create(ctl, "guest.img", 4 * MiB)
    data = kdmv_carrier(descriptor(flat(canary)), 4 * MiB)
    (pool / "guest.img").write_bytes(data)
    watch = InotifyWatch(canary)
    try:
        info = ctl.volume_info("p", "guest.img")
        assert (info.format, info.probed_format, info.extent_files) == ("raw", "vmdk", [])
        ctl.clone_volume("p", "guest.img", "conv.qcow2", xml=QCOW2).wait(60)
        create(ctl, "top.qcow2", 4 * MiB, "qcow2", BackingStore(path=str(pool / "guest.img")))
        assert ctl.resize_volume("p", "top.qcow2", 8 * MiB).wait(60).capacity == 8 * MiB
        assert watch.events() == []
    finally:
        watch.close()
    out = tmp_path / "out.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", str(pool / "conv.qcow2"), "-O", "raw",
                    str(out)], check=True, capture_output=True)
    assert out.read_bytes() == data


def test_extents_that_are_pool_volumes_by_full_path_are_used(ctl, pool, tmp_path):
    """A descriptor whose extent is a volume of an active pool: cloned to raw, the copy
    holds the extent's bytes (qemu read the extent, and nothing else)."""
    create(ctl, "data.img", MiB)
    data = os.urandom(MiB)
    (pool / "data.img").write_bytes(data)
    (pool / "desc.vmdk").write_bytes(descriptor(flat(pool / "data.img")))
    info = ctl.volume_info("p", "desc.vmdk")
    assert info.extent_files == [(str(pool / "data.img"), str(pool / "data.img"))]
    assert ctl.clone_volume("p", "desc.vmdk", "copy.raw", xml=RAW).wait(60) == \
        "qemu-img convert"
    assert (pool / "copy.raw").read_bytes() == data
    # a same-format clone is converted too: a copy of the descriptor would share the extent
    assert ctl.clone_volume("p", "desc.vmdk", "copy.vmdk").wait(60) == "qemu-img convert"
    assert ctl.volume_info("p", "copy.vmdk").extent_files == []


# == the probe against qemu itself =========================================================
def _qcow2_data_file_far_out(tmp: Path, files: list[Path]) -> Path:
    """A qcow2 (2 MiB clusters) whose data file extension comes after 70000 bytes of an
    unknown one: qemu scans extensions to the end of cluster 0."""
    path = tmp / "far.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    f"cluster_size=2M,data_file={files[0]},data_file_raw=on", str(path), "1M"],
                   check=True, capture_output=True)
    data = bytearray(path.read_bytes())
    start = struct.unpack_from(">I", data, 100)[0]
    pos, exts = start, []
    while (head := struct.unpack_from(">II", data, pos))[0]:
        exts.append(bytes(data[pos:pos + 8 + (head[1] + 7) // 8 * 8]))
        pos += 8 + (head[1] + 7) // 8 * 8
    block = struct.pack(">II", 0x12345678, 70000) + bytes(70000) + b"".join(exts) + bytes(8)
    data[start:start + len(block)] = block
    path.write_bytes(data)
    return path


def _vmdk_parent_without_quote(tmp: Path, files: list[Path]) -> Path:
    """qemu takes the parent name 20 bytes after 'parentFileNameHint', whatever is there."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-b", str(files[0]), "-F", "vmdk",
                    str(tmp / "child.vmdk"), "1M"], check=True, capture_output=True)
    data = (tmp / "child.vmdk").read_bytes().replace(b'parentFileNameHint="',
                                                     b"parentFileNameHintXY")
    (tmp / "child.vmdk").write_bytes(data)
    return tmp / "child.vmdk"


def _text(text: Callable[[list[Path]], str]) -> Callable[[Path, list[Path]], Path]:
    def make(tmp: Path, files: list[Path]) -> Path:
        path = tmp / "d.vmdk"
        path.write_bytes(descriptor(*text(files).split("\n\n")))
        return path
    return make


PROBE_CASES: dict[str, tuple[str, Callable[[Path, list[Path]], Path]]] = {
    "flat-and-rdonly": ("vmdk", _text(lambda f: f'{flat(f[0])}\n\nRDONLY 2048 FLAT "{f[1]}" 0')),
    "line-continued": ("vmdk", _text(lambda f: f'RW\n2048\nFLAT\n"{f[0]}" 0')),
    "vmfssparse-no-space": ("vmdk", _text(lambda f: f'RW 2048 VMFSSPARSE"{f[0]}"')),
    "sparse-and-comment": ("vmdk", _text(lambda f: f'RW 2048 SPARSE "{f[0]}"\n\n# {flat(f[1])}')),
    "kdmv-carrier": ("vmdk", lambda tmp, f: _write(tmp / "k.raw",
                                                    kdmv_carrier(descriptor(flat(f[0]))))),
    "kdmv-carrier-version-9": ("vmdk", lambda tmp, f: _write(tmp / "k9.raw", _version(
        kdmv_carrier(descriptor(flat(f[0]))), 9))),
    "vmdk-parent-without-quote": ("vmdk", _vmdk_parent_without_quote),
    "qcow2-data-file-past-64k": ("qcow2", _qcow2_data_file_far_out),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _version(data: bytes, version: int) -> bytes:
    return data[:4] + struct.pack("<I", version) + data[8:]


@pytest.mark.parametrize("case", list(PROBE_CASES))
def test_the_probe_names_every_file_qemu_opens(tmp_path, case):
    """qemu-img convert reads each hostile image while every candidate file is watched:
    each one qemu opened must be among what the probe reports, and qemu must have opened at
    least one (else the case shows nothing)."""
    from backends.probe import probe_fd

    fmt, make = PROBE_CASES[case]
    files = [tmp_path / f"target{i}" for i in range(2)]
    for path in files:
        subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(path), "1M"], check=True,
                       capture_output=True)
    image = make(tmp_path, files)
    fd = os.open(image, os.O_RDONLY)
    try:
        found = probe_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    reported = {name for name in (found.backing, found.data_file, *found.extents) if name}
    watches = {str(path): InotifyWatch(path) for path in files}
    try:
        subprocess.run(["qemu-img", "convert", "-f", fmt, str(image), "-O", "raw",
                        str(tmp_path / "out.raw")], capture_output=True)
        opened = {path for path, watch in watches.items() if watch.events()}
    finally:
        for watch in watches.values():
            watch.close()
    assert opened, "qemu opened none of the files: the case tests nothing"
    assert opened <= reported, (opened, found)


@pytest.mark.parametrize("fmt", ["qcow2", "qcow", "qed", "vmdk", "vpc", "vdi"])
def test_qemu_img_takes_the_spec_with_backing_null_for_every_format(ctl, pool, tmp_path, fmt):
    """image_spec always says "backing": null (or names the chain): real qemu-img must take
    that for every format poolkeeper makes, in convert (clone) and resize."""
    create(ctl, "v", 4 * MiB, fmt)
    assert ctl.clone_volume("p", "v", "v.raw", xml=RAW).wait(60) == "qemu-img convert"
    data = (pool / "v.raw").read_bytes()  # (vpc rounds the size to its disk geometry)
    assert len(data) >= 4 * MiB and not data.strip(b"\0")
    if fmt in ("qcow2", "qed"):  # the formats whose qemu driver can resize
        assert ctl.resize_volume("p", "v", 8 * MiB).wait(60).capacity == 8 * MiB
