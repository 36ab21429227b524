"""A format read from a header is never trusted, and no file outside the pools
is ever opened because an image names it.

A guest owns the bytes of its raw disk, so it can write a qcow2 header there that names a
backing file or an external data file anywhere on the host (the canary below stands for
/etc/shadow). Whatever poolkeeper does with such a volume, qemu-img must see `-f raw`, the
canary must never be opened (an inotify watch sees every open and read), and what comes out
is the volume's own bytes. Images planted in a pool by someone else may name such files in
their real headers: those are refused before any tool runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import PoolkeeperError, UnsafePath, ValidationError, VolumeNotFound
from backends.model import BackingStore, VolumeDef, VolumeTarget
from backends.runner import COMMAND_LOG, Completed

MiB = 1 << 20
CANARY_BYTES = b"CANARY: nobody may read this through a pool\n" * 100

# == inotify: did anything open or read the canary? =====================================
IN_ACCESS, IN_MODIFY, IN_OPEN = 0x001, 0x002, 0x020
_libc = ctypes.CDLL(None, use_errno=True)
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then len bytes of name)


class InotifyWatch:
    """Every open, read or write of one file, by any process, from now on."""

    def __init__(self, path: Path) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = IN_OPEN | IN_ACCESS | IN_MODIFY
        if _libc.inotify_add_watch(self.fd, os.fsencode(path), mask) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {path}")

    def events(self) -> list[int]:
        masks: list[int] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return masks
            off = 0
            while off < len(buf):
                _wd, mask, _cookie, length = _EVENT.unpack_from(buf, off)
                masks.append(mask)
                off += _EVENT.size + length

    def close(self) -> None:
        os.close(self.fd)


def test_the_watch_sees_an_open_and_a_read(tmp_path):
    """The watch itself must be able to fail the tests below."""
    target = tmp_path / "watched"
    target.write_bytes(b"x")
    watch = InotifyWatch(target)
    try:
        assert watch.events() == []
        subprocess.run(["qemu-img", "info", "-f", "raw", str(target)], check=True,
                       capture_output=True)
        masks = watch.events()
        assert any(m & IN_OPEN for m in masks), masks
    finally:
        watch.close()


# == fixtures and helpers ================================================================
def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def qemu_calls() -> Iterator[list[Completed]]:
    """Every qemu-img call poolkeeper makes during the test (the runner's command log), with
    each /dev/fd/N it passed resolved to the file (the listener runs while N is still open)."""
    calls: list[Completed] = []

    def resolve(match: re.Match[str]) -> str:
        return os.readlink(f"/proc/self/fd/{match.group(1)}")

    def record(c: Completed) -> None:
        if c.argv and c.argv[0] == "qemu-img":
            calls.append(dataclasses.replace(
                c, argv=[re.sub(r"/dev/fd/(\d+)", resolve, a) for a in c.argv]))

    remove = COMMAND_LOG.add_listener(record)
    try:
        yield calls
    finally:
        remove()


def hostile_image(scratch: Path, kind: str, canary: Path) -> bytes:
    """A real qcow2 image made by qemu-img whose header names `canary` as its backing file
    or (data_file_raw) as the file holding its data. Made before the canary is written:
    qemu-img create truncates a data file."""
    image = scratch / f"hostile-{kind}.qcow2"
    opts = (["-u", "-b", str(canary), "-F", "raw"] if kind == "backing"
            else ["-o", f"data_file={canary},data_file_raw=on"])
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *opts, str(image), "1G"],
                   check=True, capture_output=True)
    return image.read_bytes()


def strip_backing_format(path: Path) -> None:
    """Turn the backing-format header extension into an unknown one: the image then names
    its backing file without saying its format, so qemu would guess it from that file."""
    data = bytearray(path.read_bytes()[:65536])
    at = data.find(struct.pack(">I", 0xE2792ACA))
    assert at > 0
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(struct.pack(">I", 0x0BADF00D))


def formats_for(argv: list[str], path: str) -> list[str | None]:
    """The formats qemu-img is told for `path`: -F's value where it is the -b backing file,
    -f's where it is an image operand (None when the argv gives none), and the driver of
    every node of a json: image spec whose file is `path`."""
    found: list[str | None] = []
    for i, arg in enumerate(argv):
        if arg == path:
            flag = "-F" if argv[i - 1] == "-b" else "-f"
            found.append(argv[argv.index(flag) + 1] if flag in argv else None)
        elif arg.startswith("json:"):
            nodes = [json.loads(arg[5:])]
            while nodes:
                node = nodes.pop()
                if node.get("file", {}).get("filename") == path:
                    found.append(node.get("driver"))
                nodes += [v for v in node.values() if isinstance(v, dict)]
    return found


def create(ctl: StorageController, name: str, capacity: int, fmt: str | None = None,
           backing: BackingStore | None = None):
    return ctl.create_volume_def("p", VolumeDef(name=name, capacity=capacity, allocation=0,
                                                target=VolumeTarget(format=fmt),
                                                backing=backing)).wait(60)


QCOW2 = ("<volume><name>x</name><capacity>1</capacity>"
         "<target><format type='qcow2'/></target></volume>")
RAW = QCOW2.replace("qcow2", "raw")


# == a raw volume with a hostile header stays raw ======================================
@pytest.mark.parametrize("kind", ["backing", "data-file"])
def test_raw_volume_with_a_hostile_qcow2_header_stays_raw(ctl, pool, tmp_path, qemu_calls,
                                                           kind):
    canary = tmp_path / "canary"
    header = hostile_image(tmp_path, kind, canary)
    canary.write_bytes(CANARY_BYTES)
    create(ctl, "guest.img", 4 * MiB)  # poolkeeper records it as raw
    guest = pool / "guest.img"
    with open(guest, "r+b") as fh:  # what the guest writes into its own disk
        fh.write(header)
        fh.seek(3 * MiB)
        fh.write(b"guest data" * 1000)
    volume_bytes = guest.read_bytes()
    canary_before = (sha(canary), canary.stat().st_mtime_ns)
    watch = InotifyWatch(canary)
    try:
        # refresh and vol-info: raw, the file's size, no backing, no data file
        listed = {v.name: v for v in ctl.list_volumes("p")}["guest.img"]
        info = ctl.volume_info("p", "guest.img")
        for vol in (listed, info):
            assert vol.probed_format == "qcow2"  # shown as found, never acted on
            assert (vol.format, vol.format_recorded) == ("raw", True)
            assert vol.capacity == 4 * MiB and vol.backing is None and vol.data_file is None
        assert str(canary) not in ctl.volume_xml("p", "guest.img")

        # clone: a byte-for-byte copy of the volume, itself recorded raw
        ctl.clone_volume("p", "guest.img", "copy.img").wait(60)
        assert (pool / "copy.img").read_bytes() == volume_bytes
        assert ctl.volume_info("p", "copy.img").format == "raw"
        # clone to qcow2 goes through qemu-img convert, which must read it as raw
        assert ctl.clone_volume("p", "guest.img", "conv.qcow2",
                                xml=QCOW2).wait(60) == "qemu-img convert"
        subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2", str(guest),
                        str(pool / "conv.qcow2")], check=True, capture_output=True)

        # an overlay on it: the recorded format goes into the overlay as -F raw
        create(ctl, "overlay.qcow2", 4 * MiB, "qcow2", BackingStore(path=str(guest)))
        overlay = ctl.volume_info("p", "overlay.qcow2")
        assert overlay.backing is not None and overlay.backing.format == "raw"
        # resizing the overlay opens its backing file: as raw, named by poolkeeper
        assert ctl.resize_volume("p", "overlay.qcow2", 6 * MiB).wait(60).capacity == 6 * MiB

        # resize: the file grows, the header's 1 GiB means nothing
        resized = ctl.resize_volume("p", "guest.img", 8 * MiB).wait(60)
        assert (resized.format, resized.capacity) == ("raw", 8 * MiB)
        assert guest.read_bytes() == volume_bytes + bytes(4 * MiB)

        # download: the volume's bytes, not the canary's
        out = tmp_path / "out.img"
        ctl.download_volume("p", "guest.img", str(out)).wait(60)
        assert out.read_bytes() == volume_bytes + bytes(4 * MiB)

        assert watch.events() == [], "something opened the canary"
    finally:
        watch.close()
    assert (sha(canary), canary.stat().st_mtime_ns) == canary_before
    guest_formats = [formats_for(c.argv, str(guest)) for c in qemu_calls]
    assert sum(map(len, guest_formats)) >= 3, qemu_calls  # convert, create and resize
    assert {f for formats in guest_formats for f in formats} == {"raw"}, qemu_calls
    assert not any(str(canary) in " ".join(c.argv) for c in qemu_calls)


# == backing stores that are not volumes of a pool =====================================
@contextlib.contextmanager
def nbd_listener() -> Iterator[tuple[str, socket.socket]]:
    """A TCP socket on 127.0.0.1 that would see any connection an nbd:// URL made."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.setblocking(False)
        yield f"nbd://127.0.0.1:{srv.getsockname()[1]}/export", srv
    finally:
        srv.close()


def test_remote_or_outside_backing_stores_are_refused_at_create(ctl, pool, tmp_path,
                                                                 qemu_calls):
    canary = tmp_path / "canary"
    canary.write_bytes(CANARY_BYTES)
    spec = json.dumps({"driver": "raw", "file": {"driver": "file", "filename": str(canary)}})
    watch = InotifyWatch(canary)
    try:
        with nbd_listener() as (url, srv):
            for path, fmt in ((f"json:{spec}", "raw"), (f"json:{spec}", None), (url, "raw"),
                              (str(canary), "raw"), (f"file:{canary}", "raw")):
                with pytest.raises((UnsafePath, ValidationError, VolumeNotFound),
                                   match="not a local file|not a volume of an active pool"):
                    create(ctl, "o.qcow2", MiB, "qcow2", BackingStore(path=path, format=fmt))
            with pytest.raises(BlockingIOError):
                srv.accept()  # nothing connected to the nbd server
        assert watch.events() == []
    finally:
        watch.close()
    assert qemu_calls == [] and sorted(os.listdir(pool)) == []


def test_an_overlay_needs_the_format_of_its_backing_volume(ctl, pool, tmp_path, qemu_calls):
    """Not created by poolkeeper (no record): the format must be declared, never probed."""
    (pool / "planted.img").write_bytes(bytes(MiB))
    with pytest.raises(ValidationError, match="backing-vol-format"):
        create(ctl, "o.qcow2", MiB, "qcow2", BackingStore(path=str(pool / "planted.img")))
    assert qemu_calls == [] and not (pool / "o.qcow2").exists()
    create(ctl, "o.qcow2", MiB, "qcow2", BackingStore(path=str(pool / "planted.img"),
                                                      format="raw"))
    assert ctl.volume_info("p", "o.qcow2").backing.format == "raw"


# == planted images that would make qemu open the canary ===============================
def plant(pool: Path, tmp_path: Path, canary: Path, kind: str) -> Path:
    """An image someone else put into the pool, which poolkeeper did not create."""
    path = pool / f"{kind}.qcow2"
    if kind == "data-file":
        path.write_bytes(hostile_image(tmp_path, "data-file", canary))
        return path
    backing = {"outside": (canary, "raw"), "no-format": (pool / "guest.img", "raw"),
               "lies": (pool / "guest.img", "qcow2")}[kind]
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", str(backing[0]),
                    "-F", backing[1], str(path), "4M"], check=True, capture_output=True)
    if kind == "no-format":
        strip_backing_format(path)
    return path


@pytest.mark.parametrize("kind", ["data-file", "outside", "no-format", "lies"])
def test_planted_images_that_name_outside_files_are_refused(ctl, pool, tmp_path, qemu_calls,
                                                             kind):
    """data-file: qemu would read (and on resize, grow) the canary as the image's data.
    outside: the backing file is no volume. no-format: qemu would probe guest.img, whose
    guest-written header names the canary. lies: the header says guest.img is qcow2, but
    poolkeeper created it raw (its qcow2 header is the guest's)."""
    canary = tmp_path / "canary"
    create(ctl, "guest.img", 4 * MiB)
    planted = plant(pool, tmp_path, canary, kind)
    with open(pool / "guest.img", "r+b") as fh:
        fh.write(hostile_image(tmp_path, "backing", canary))
    canary.write_bytes(CANARY_BYTES)
    before = {name: sha(pool / name) for name in os.listdir(pool)}
    canary_before = (sha(canary), canary.stat().st_mtime_ns)
    calls_before = len(qemu_calls)
    watch = InotifyWatch(canary)
    try:
        attempts = [
            lambda: ctl.clone_volume("p", planted.name, "copy.qcow2").wait(60),
            lambda: ctl.clone_volume("p", planted.name, "conv.raw", xml=RAW).wait(60),
            lambda: ctl.resize_volume("p", planted.name, 8 * MiB).wait(60),
            lambda: create(ctl, "top.qcow2", 4 * MiB, "qcow2",
                           BackingStore(path=str(planted), format="qcow2")),
        ]
        for attempt in attempts:
            with pytest.raises(UnsafePath) as exc:
                attempt()
            assert planted.name in str(exc.value)
        assert watch.events() == [], "something opened the canary"
    finally:
        watch.close()
    assert (sha(canary), canary.stat().st_mtime_ns) == canary_before
    assert {name: sha(pool / name) for name in os.listdir(pool)} == before
    assert qemu_calls[calls_before:] == []


def test_resize_of_a_planted_overlay_with_a_relative_backing_name(ctl, pool, tmp_path):
    """Its chain is inside the pool and states its format, so it may be resized; the backing
    file is opened as raw even though its guest-written header says qcow2."""
    canary = tmp_path / "canary"
    create(ctl, "guest.img", 4 * MiB)
    with open(pool / "guest.img", "r+b") as fh:
        fh.write(hostile_image(tmp_path, "backing", canary))
    canary.write_bytes(CANARY_BYTES)
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", "guest.img", "-F",
                    "raw", "ovl.qcow2", "4M"], cwd=pool, check=True, capture_output=True)
    watch = InotifyWatch(canary)
    try:
        assert ctl.resize_volume("p", "ovl.qcow2", 8 * MiB).wait(60).capacity == 8 * MiB
        assert watch.events() == []
    finally:
        watch.close()
    info = json.loads(subprocess.run(
        ["qemu-img", "info", "--output=json", "-U", "-f", "qcow2", str(pool / "ovl.qcow2")],
        check=True, capture_output=True, text=True).stdout)
    assert info["virtual-size"] == 8 * MiB
    assert (info["backing-filename"], info["backing-filename-format"]) == ("guest.img", "raw")


def test_refusals_say_what_was_wrong(ctl, pool, tmp_path):
    canary = tmp_path / "canary"
    create(ctl, "guest.img", 4 * MiB)
    messages = {}
    for kind in ("data-file", "outside", "no-format", "lies"):
        planted = plant(pool, tmp_path, canary, kind)
        with pytest.raises(PoolkeeperError) as exc:
            ctl.clone_volume("p", planted.name, "c.raw", xml=RAW).wait(60)
        messages[kind] = str(exc.value)
    assert "data file" in messages["data-file"] and str(canary) in messages["data-file"]
    assert "not a volume of an active pool" in messages["outside"]
    assert "format of its backing file" in messages["no-format"]
    assert "created it as raw" in messages["lies"]
