"""Every file qemu would open for an image must be a volume of an active pool.

A vmdk descriptor names other files as its extents, and qemu opens them: a text descriptor
planted in a pool, one uploaded into a vmdk volume, or the one a KDMV header with capacity 0
carries (a guest can write that at the start of its disk). An overlay on such an image would
read the extent, a clone to raw would copy it into a new volume, and vol-resize would have
qemu open it read-write. Each is refused before qemu-img runs, the message names the file,
and the canary (standing for /etc/shadow) is never opened (an inotify watch sees every open).
Extents that are volumes of active pools, named by full path, still work.

The checks are made again when a job starts (it may have waited in the queue for hours
behind others, while the volume was rewritten or its name given to another file), and the
driver hands qemu-img only the very file that was checked (same identity), whose header,
read again from the fd qemu-img gets, still names nothing the check did not see.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import UnsafePath, ValidationError
from backends.model import BackingStore, VolumeDef, VolumeTarget
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
    from backends.imageprobe import probe_fd

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


# == checked again when a queued job starts ==================
WORKERS = 4  # the controller's job workers (StorageController(max_jobs=4), the default)
WAIT_CAP = 60.0  # seconds a condition may take to come true on a loaded machine


def _open_writer(fifo: Path) -> int:
    """A writer on the FIFO, once its reader (an upload) has it open."""
    deadline = time.monotonic() + WAIT_CAP
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: the upload has not opened it yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class BusyWorkers:
    """fill(): every job worker busy with an upload from a FIFO whose writer writes nothing,
    until release(): a job asked for meanwhile waits in the queue (on a busy system: for
    hours), and the volume it acts on can change before it starts."""

    def __init__(self, ctl: StorageController, scratch: Path) -> None:
        self.ctl, self.scratch = ctl, scratch
        self.writers: list[int] = []
        self.jobs: list = []

    def fill(self) -> None:
        for i in range(WORKERS):  # the sinks first: a create is a job too
            create(self.ctl, f"sink{i}.raw", MiB)
        for i in range(WORKERS):
            fifo = self.scratch / f"fifo{i}"
            os.mkfifo(fifo)
            self.jobs.append(self.ctl.upload_volume("p", f"sink{i}.raw", str(fifo)))
        for i in range(WORKERS):  # each upload has its FIFO open: it holds a worker
            self.writers.append(_open_writer(self.scratch / f"fifo{i}"))

    def release(self) -> None:
        while self.writers:
            os.close(self.writers.pop())  # end of file: the upload is done
        for job in self.jobs:
            job.wait(WAIT_CAP)


@pytest.fixture
def workers(ctl: StorageController, pool: Path, tmp_path: Path) -> Iterator[BusyWorkers]:
    (tmp_path / "fifos").mkdir()
    busy = BusyWorkers(ctl, tmp_path / "fifos")
    try:
        yield busy
    finally:
        busy.release()


def _hostile_qcow2(scratch: Path, canary: Path, size: str = "1M") -> bytes:
    """A qcow2 whose data file (data_file_raw) is `canary`: made before the canary is
    written (qemu-img create truncates its data file)."""
    image = scratch / "hostile-small.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                    f"data_file={canary},data_file_raw=on", str(image), size], check=True,
                   capture_output=True)
    return image.read_bytes()


def _overwrite(path: Path, data: bytes) -> None:
    """Rewrite the file in place (same inode: its record still applies)."""
    with open(path, "r+b") as fh:
        fh.write(data)
        fh.truncate(len(data))


def _replace(path: Path, data: bytes) -> None:
    """Give the name to another file (its record does not apply to that one)."""
    new = path.with_name(path.name + ".new")
    new.write_bytes(data)
    os.rename(new, path)


# case -> (the volume made first, its format, the verb queued, what it must not leave,
#          how the volume changes while the verb waits)
QUEUED = {
    "resize-rewritten": ("q.qcow2", "qcow2",
                         lambda ctl: ctl.resize_volume("p", "q.qcow2", 2 * MiB), None, _overwrite),
    "resize-replaced": ("r.raw", None,
                        lambda ctl: ctl.resize_volume("p", "r.raw", 8 * MiB), None, _replace),
    "clone-to-raw-rewritten": ("q.qcow2", "qcow2",
                               lambda ctl: ctl.clone_volume("p", "q.qcow2", "copy.raw", xml=RAW),
                               "copy.raw", _overwrite),
    "clone-rewritten": ("q.qcow2", "qcow2",
                        lambda ctl: ctl.clone_volume("p", "q.qcow2", "copy.qcow2"),
                        "copy.qcow2", _overwrite),
    "clone-replaced": ("r.raw", None,
                       lambda ctl: ctl.clone_volume("p", "r.raw", "copy.qcow2", xml=QCOW2),
                       "copy.qcow2", _replace),
    "overlay-on-a-rewritten-base": (
        "q.qcow2", "qcow2",
        lambda ctl: ctl.create_volume_def("p", VolumeDef(
            name="top.qcow2", capacity=MiB, target=VolumeTarget(format="qcow2"),
            backing=BackingStore(path=str(ctl.volume_info("p", "q.qcow2").path),
                                 format="qcow2"))),
        "top.qcow2", _overwrite),
}


@pytest.mark.parametrize("case", list(QUEUED))
def test_a_queued_job_checks_the_volume_again_when_it_starts(
        ctl, pool, tmp_path, qemu_calls, workers, case):  # noqa: F811
    """The checks made when the verb was asked passed; then, while the job waited behind
    four others, the volume was rewritten (or its name given to another file) as a qcow2
    whose data file is the canary. When the job starts it must look again and refuse:
    qemu-img never gets the image, the canary is never opened (qemu 7.2 opens a qcow2's
    data file even with "data-file": null in the spec), nothing is made, and the volume
    keeps the bytes it was given."""
    name, fmt, verb, made, change = QUEUED[case]
    create(ctl, name, MiB, fmt)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    canary = tmp_path / "canary"
    hostile = _hostile_qcow2(scratch, canary)
    canary.write_bytes(CANARY_BYTES)
    workers.fill()
    calls_before = len(qemu_calls)
    job = verb(ctl)
    assert job.state == "queued"  # every worker is busy
    change(pool / name, hostile)
    watch = InotifyWatch(canary)
    try:
        workers.release()
        with pytest.raises(UnsafePath, match=rf"external data file '{canary}'"):
            job.wait(WAIT_CAP)
        assert watch.events() == [], "something opened the canary"
    finally:
        watch.close()
    assert canary.read_bytes() == CANARY_BYTES
    assert (pool / name).read_bytes() == hostile
    assert made is None or not (pool / made).exists()
    assert qemu_calls[calls_before:] == []


def test_a_queued_grow_is_not_turned_into_a_shrink(ctl, pool, workers):
    """Asked as a grow (4 -> 8 MiB); the volume grew to 16 MiB while the job waited: run
    as asked it would cut the end off, which needs --shrink."""
    create(ctl, "g.raw", 4 * MiB)
    workers.fill()
    job = ctl.resize_volume("p", "g.raw", 8 * MiB)
    assert job.state == "queued"
    data = os.urandom(16 * MiB)
    _overwrite(pool / "g.raw", data)
    workers.release()
    with pytest.raises(ValidationError, match="would discard the data at its end"):
        job.wait(WAIT_CAP)
    assert (pool / "g.raw").read_bytes() == data


GROWN_QCOW2 = QCOW2.replace("<capacity>1</capacity>", f"<capacity>{2 * MiB}</capacity>")
DRIVER_VERBS = {  # verb -> (the driver method it reaches, the request)
    "resize": ("resize_volume", lambda ctl: ctl.resize_volume("p", "q.qcow2", 2 * MiB)),
    "clone-to-raw": ("clone_volume",
                     lambda ctl: ctl.clone_volume("p", "q.qcow2", "copy.raw", xml=RAW)),
    "clone": ("clone_volume", lambda ctl: ctl.clone_volume("p", "q.qcow2", "copy.qcow2")),
    # a byte copy, then qemu-img resize of the copy
    "clone-grown": ("clone_volume",
                    lambda ctl: ctl.clone_volume("p", "q.qcow2", "copy.qcow2", xml=GROWN_QCOW2)),
}


@pytest.mark.parametrize("change", ["rewritten", "replaced"])
@pytest.mark.parametrize("verb", list(DRIVER_VERBS))
def test_the_driver_hands_qemu_only_the_file_and_header_that_were_checked(
        ctl, pool, tmp_path, qemu_calls, monkeypatch, verb, change):  # noqa: F811
    """The last window: the volume changes after the controller's last check, just as the
    driver starts (a hook runs the change there). The driver opens the volume, refuses a
    file that is not the one checked (same inode, birth time), and reads the header again
    from the very fd it would hand qemu-img (and from the copy it made): the canary is
    never opened and nothing is made."""
    from backends.drivers.dir import DirDriver

    method, ask = DRIVER_VERBS[verb]
    create(ctl, "q.qcow2", MiB, "qcow2")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    canary = tmp_path / "canary"
    hostile = _hostile_qcow2(scratch, canary)
    canary.write_bytes(CANARY_BYTES)
    real = getattr(DirDriver, method)

    def changed_first(self, *args, **kwargs):
        (_overwrite if change == "rewritten" else _replace)(pool / "q.qcow2", hostile)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DirDriver, method, changed_first)
    calls_before = len(qemu_calls)
    watch = InotifyWatch(canary)
    try:
        expect = ("was replaced by another file" if change == "replaced"
                  else rf"changed after poolkeeper checked it \(it now names an external "
                       rf"data file '{canary}'\)")
        with pytest.raises(UnsafePath, match=expect):
            ask(ctl).wait(60)
        assert watch.events() == [], "something opened the canary"
    finally:
        watch.close()
    assert canary.read_bytes() == CANARY_BYTES
    assert sorted(n for n in os.listdir(pool) if not n.startswith("sink")) == ["q.qcow2"]
    assert qemu_calls[calls_before:] == []
