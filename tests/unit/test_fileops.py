"""fileops on real bytes: tmp files on the host filesystem, and ext2/ext4/xfs/btrfs on
loop devices (root). Every test can fail; nothing is mocked except to record which
code path ran or to simulate a failure the machine cannot produce."""

# The imported `loopfs` fixture is a parameter name of the tests that use it:
# ruff: noqa: F811

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import errors, fileops, runner
from backends.fileops import clone, sizing, wipe
from backends.progress import JobContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ for the loopfs helper
from loopfs import LoopFS, can_use_loop_devices, loop_device, loopfs  # noqa: E402,F401

MiB = 1024 * 1024
needs_root = [
    pytest.mark.root,
    pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices"),
]


def root_test(fn: Callable) -> Callable:
    for mark in needs_root:
        fn = mark(fn)
    return fn


# ---------------------------------------------------------------------------- helpers


class Recorder(JobContext):
    """Records every update; cancels once `cancel_at` bytes are reported done."""

    def __init__(self, cancel_at: int | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[int, int | None]] = []
        self.cancel_at = cancel_at

    def update(self, done: int, total: int | None = None) -> None:
        self.calls.append((done, total))
        if self.cancel_at is not None and done >= self.cancel_at:
            self.cancel()
        super().update(done, total)


@pytest.fixture
def dir_fd(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.fixture
def opened() -> Iterator[Callable[..., int]]:
    """open a path; every fd is closed at teardown."""
    fds: list[int] = []

    def _open(path: Path | str, flags: int = os.O_RDWR) -> int:
        fd = os.open(path, flags | os.O_CLOEXEC)
        fds.append(fd)
        return fd

    yield _open
    for fd in fds:
        os.close(fd)


def dirfd_of(path: Path, opened: Callable[..., int]) -> int:
    return opened(path, os.O_RDONLY | os.O_DIRECTORY)


def sha(path: Path) -> str:
    """sha256 of the file's bytes. Holes (found with the kernel's SEEK_HOLE, not with
    fileops) are hashed as zeros without reading them: a first read of a 1 GiB hole
    fills the page cache with zero pages and takes seconds here."""
    h = hashlib.sha256()
    zero, buf = bytes(4 * MiB), bytearray(4 * MiB)

    def feed_zeros(n: int) -> None:
        for left in range(n, 0, -len(zero)):
            h.update(zero[: min(left, len(zero))])

    fd = os.open(path, os.O_RDONLY)
    try:
        size, pos = os.fstat(fd).st_size, 0
        while pos < size:
            try:
                data = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                data = size
            feed_zeros(data - pos)
            end = os.lseek(fd, data, os.SEEK_HOLE) if data < size else size
            pos = data
            while pos < end:
                n = os.preadv(fd, [memoryview(buf)[: min(len(buf), end - pos)]], pos)
                h.update(memoryview(buf)[:n])
                pos += n
    finally:
        os.close(fd)
    return h.hexdigest()


def alloc(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def write_blocks(path: Path, size: int, blocks: dict[int, bytes]) -> None:
    """A sparse file of `size` bytes with data only at the given offsets."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        for offset, data in blocks.items():
            fh.seek(offset)
            fh.write(data)


def scattered(size: int, count: int, block: int = MiB) -> dict[int, bytes]:
    step = size // count
    return {i * step + (i % 3) * 4096 * 7: os.urandom(block) for i in range(count)}


def all_zero(path: Path) -> bool:
    zero, buf = bytes(4 * MiB), bytearray(4 * MiB)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            if buf[:n] != zero[:n]:
                return False
    return True


def run_with_timeout(fn: Callable[[], object], seconds: float = 5.0) -> object:
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"call blocked for more than {seconds} s"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("result")


# ---------------------------------------------------------------------------- open_volume


def test_open_volume_regular_file(tmp_path: Path, dir_fd: int) -> None:
    (tmp_path / "v").write_bytes(b"abc")
    fd = fileops.open_volume(dir_fd, "v", os.O_RDONLY)
    try:
        assert os.read(fd, 10) == b"abc"
        assert not fcntl_flags(fd) & os.O_NONBLOCK
        assert fcntl_fd_flags(fd) & 1  # FD_CLOEXEC
    finally:
        os.close(fd)


def fcntl_flags(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFL)


def fcntl_fd_flags(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_GETFD)


def test_open_volume_without_proc(tmp_path: Path, dir_fd: int, monkeypatch) -> None:
    (tmp_path / "v").write_bytes(b"abc")
    (tmp_path / "l").symlink_to("v")
    monkeypatch.setattr(os.path, "isdir", lambda p: p != "/proc/self/fd")
    fd = fileops.open_volume(dir_fd, "v", os.O_RDWR)
    try:
        assert os.read(fd, 10) == b"abc" and not fcntl_flags(fd) & os.O_NONBLOCK
    finally:
        os.close(fd)
    with pytest.raises(errors.UnsafePath, match="symbolic link"):
        fileops.open_volume(dir_fd, "l", os.O_RDWR)


def test_open_volume_missing(dir_fd: int) -> None:
    with pytest.raises(errors.VolumeNotFound, match="'nope'"):
        fileops.open_volume(dir_fd, "nope", os.O_RDONLY)


@pytest.mark.parametrize("flags", [os.O_RDONLY, os.O_WRONLY, os.O_RDWR])
def test_open_volume_refuses_fifo_without_hanging(tmp_path: Path, dir_fd: int, flags: int) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(errors.UnsafePath, match="'pipe' is a FIFO; poolkeeper only acts on"):
        run_with_timeout(lambda: fileops.open_volume(dir_fd, "pipe", flags))


@pytest.mark.parametrize("target", ["real", "missing", "/etc/passwd"])
def test_open_volume_refuses_symlink(tmp_path: Path, dir_fd: int, target: str) -> None:
    (tmp_path / "real").write_bytes(b"data")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(errors.UnsafePath, match="'link' is a symbolic link"):
        fileops.open_volume(dir_fd, "link", os.O_RDWR)
    assert (tmp_path / "real").read_bytes() == b"data"


def test_open_volume_refuses_directory_and_socket(tmp_path: Path, dir_fd: int) -> None:
    import socket

    (tmp_path / "sub").mkdir()
    with pytest.raises(errors.UnsafePath, match="'sub' is a directory"):
        fileops.open_volume(dir_fd, "sub", os.O_RDONLY)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        with pytest.raises(errors.UnsafePath, match="'sock' is a socket"):
            fileops.open_volume(dir_fd, "sock", os.O_RDWR)
    finally:
        sock.close()


@root_test
def test_open_volume_refuses_character_device(tmp_path: Path, dir_fd: int) -> None:
    os.mknod(tmp_path / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(errors.UnsafePath, match="'null' is a character device"):
        fileops.open_volume(dir_fd, "null", os.O_RDWR)


def test_open_volume_refuses_paths(dir_fd: int) -> None:
    for bad in ("", ".", "..", "a/b", "../x"):
        with pytest.raises(errors.UnsafePath):
            fileops.open_volume(dir_fd, bad, os.O_RDONLY)
    with pytest.raises(ValueError):
        fileops.open_volume(dir_fd, "x", os.O_RDWR | os.O_CREAT)


# ---------------------------------------------------------------------------- create_raw


def test_create_raw_sparse(tmp_path: Path, dir_fd: int) -> None:
    fileops.create_raw(dir_fd, "sparse", 512 * MiB, 0)
    st = os.stat(tmp_path / "sparse")
    assert st.st_size == 512 * MiB
    assert st.st_blocks * 512 <= 64 * 1024
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_create_raw_full_reports_progress(tmp_path: Path, dir_fd: int) -> None:
    ctx = Recorder()
    fileops.create_raw(dir_fd, "full", 200 * MiB, 200 * MiB, mode=0o640, ctx=ctx)
    st = os.stat(tmp_path / "full")
    assert st.st_size == 200 * MiB
    assert st.st_blocks * 512 >= 200 * MiB
    assert stat.S_IMODE(st.st_mode) == 0o640  # not narrowed by the umask
    assert all_zero(tmp_path / "full")
    dones = [d for d, _ in ctx.calls]
    assert dones == sorted(dones) and dones[-1] == 200 * MiB
    assert max(b - a for a, b in zip(dones, dones[1:], strict=False)) <= 64 * MiB
    assert all(t == 200 * MiB for _, t in ctx.calls)


def test_create_raw_partial_allocation(tmp_path: Path, dir_fd: int) -> None:
    fileops.create_raw(dir_fd, "part", 100 * MiB, 30 * MiB)
    st = os.stat(tmp_path / "part")
    assert st.st_size == 100 * MiB
    assert 30 * MiB <= st.st_blocks * 512 < 40 * MiB
    # the allocation is the start of the file; the rest is a hole
    fd = os.open(tmp_path / "part", os.O_RDONLY)
    try:
        assert os.lseek(fd, 30 * MiB, os.SEEK_HOLE) == 30 * MiB
    finally:
        os.close(fd)


def test_create_raw_allocation_capped_at_capacity(tmp_path: Path, dir_fd: int) -> None:
    fileops.create_raw(dir_fd, "cap", 4 * MiB, 40 * MiB)
    assert os.stat(tmp_path / "cap").st_size == 4 * MiB


def test_create_raw_refuses_existing_name(tmp_path: Path, dir_fd: int) -> None:
    (tmp_path / "taken").write_bytes(b"precious")
    with pytest.raises(errors.AlreadyExists, match="'taken' already exists"):
        fileops.create_raw(dir_fd, "taken", MiB, MiB)
    assert (tmp_path / "taken").read_bytes() == b"precious"
    # a (dangling) symlink is never followed to create its target
    (tmp_path / "lnk").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(errors.AlreadyExists):
        fileops.create_raw(dir_fd, "lnk", MiB, MiB)
    assert not (tmp_path / "elsewhere").exists()


def test_create_raw_cancel_removes_file(tmp_path: Path, dir_fd: int) -> None:
    ctx = Recorder(cancel_at=1)  # cancel as soon as the first chunk is reported
    with pytest.raises(errors.Cancelled):
        fileops.create_raw(dir_fd, "c", 512 * MiB, 512 * MiB, ctx=ctx)
    assert not (tmp_path / "c").exists()
    assert ctx.calls[-1][0] == fileops.EXTENT_CHUNK  # stopped after exactly one chunk


def test_create_raw_negative_size(dir_fd: int) -> None:
    with pytest.raises(errors.InvalidSize):
        fileops.create_raw(dir_fd, "neg", -1, 0)


@root_test
def test_create_raw_ext2_falls_back_to_zero_writes(
    loopfs: Callable[[str, int], LoopFS], opened, monkeypatch
) -> None:
    fs = loopfs("ext2", 64)
    d = dirfd_of(fs.mount, opened)
    probe = opened(fs.mount / "probe", os.O_RDWR | os.O_CREAT)
    with pytest.raises(OSError) as info:  # the premise: ext2 has no fallocate
        fileops.fallocate(probe, 0, 0, MiB)
    assert info.value.errno == errno.EOPNOTSUPP

    ran: list[tuple[int, int]] = []
    real = sizing._zero_fill

    def spy(fd: int, start: int, end: int, progress, origin: int) -> None:
        ran.append((start, end))
        real(fd, start, end, progress, origin)

    monkeypatch.setattr(sizing, "_zero_fill", spy)
    fileops.create_raw(d, "full", 20 * MiB, 20 * MiB)
    assert ran == [(0, 20 * MiB)]
    st = os.stat(fs.mount / "full")
    assert st.st_size == 20 * MiB and st.st_blocks * 512 >= 20 * MiB
    assert all_zero(fs.mount / "full")


@root_test
def test_create_raw_enospc_is_clear_and_removes_file(
    loopfs: Callable[[str, int], LoopFS], opened
) -> None:
    fs = loopfs("ext4", 32)
    d = dirfd_of(fs.mount, opened)
    with pytest.raises(errors.InsufficientSpace, match="not enough free space"):
        fileops.create_raw(d, "huge", 256 * MiB, 256 * MiB)
    assert not (fs.mount / "huge").exists()


@root_test
def test_create_raw_nocow_on_btrfs(loopfs: Callable[[str, int], LoopFS], opened) -> None:
    fs = loopfs("btrfs", 128)
    d = dirfd_of(fs.mount, opened)
    fileops.create_raw(d, "nocow", 8 * MiB, 8 * MiB, nocow=True)
    fileops.create_raw(d, "cow", 8 * MiB, 0)
    attrs = lambda name: subprocess.run(  # noqa: E731
        ["lsattr", str(fs.mount / name)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert "C" in attrs("nocow")
    assert "C" not in attrs("cow")


def test_create_raw_nocow_ignored_where_unsupported(tmp_path: Path, dir_fd: int) -> None:
    fileops.create_raw(dir_fd, "n", MiB, 0, nocow=True)  # host fs: ENOTTY/EOPNOTSUPP ignored
    assert os.stat(tmp_path / "n").st_size == MiB


def test_allocation_of(tmp_path: Path, dir_fd: int, opened) -> None:
    fileops.create_raw(dir_fd, "a", 8 * MiB, 4 * MiB)
    fd = opened(tmp_path / "a", os.O_RDONLY)
    assert fileops.allocation_of(fd) == alloc(tmp_path / "a") >= 4 * MiB


# ---------------------------------------------------------------------------- clone


def _clone_and_check(src_dir: Path, dst_dir: Path, opened, **kw) -> str:
    """clone_file src -> dst; the source keeps its bytes and mtime; dst equals src."""
    src = src_dir / "src"
    before_hash, before_mtime = sha(src), os.stat(src).st_mtime_ns
    method = fileops.clone_file(
        dirfd_of(src_dir, opened), "src", dirfd_of(dst_dir, opened), "dst", **kw
    )
    assert sha(src) == before_hash
    assert os.stat(src).st_mtime_ns == before_mtime
    if kw.get("capacity") is None:
        assert sha(dst_dir / "dst") == before_hash
    return method


def _extent_flags(path: Path) -> str:
    return subprocess.run(
        ["filefrag", "-v", str(path)], capture_output=True, text=True, check=True
    ).stdout


@root_test
@pytest.mark.parametrize(("fstype", "size"), [("xfs", 300), ("btrfs", 256)])
def test_clone_reflink_shares_extents(
    loopfs: Callable[[str, int], LoopFS], opened, fstype: str, size: int
) -> None:
    fs = loopfs(fstype, size)
    write_blocks(fs.mount / "src", 64 * MiB, {0: os.urandom(48 * MiB)})
    os.sync()
    free_before = os.statvfs(fs.mount).f_bavail * os.statvfs(fs.mount).f_frsize
    method = _clone_and_check(fs.mount, fs.mount, opened)
    os.sync()
    free_after = os.statvfs(fs.mount).f_bavail * os.statvfs(fs.mount).f_frsize
    assert method == "reflink"
    assert "shared" in _extent_flags(fs.mount / "dst")
    assert free_before - free_after < 8 * MiB  # not another 48 MiB
    assert os.stat(fs.mount / "dst").st_size == 64 * MiB


@root_test
def test_clone_reflink_not_sparse_fills_holes(loopfs: Callable[[str, int], LoopFS], opened) -> None:
    fs = loopfs("xfs", 300)
    write_blocks(fs.mount / "src", 64 * MiB, {0: os.urandom(4 * MiB)})
    assert _clone_and_check(fs.mount, fs.mount, opened, sparse=False) == "reflink"
    assert alloc(fs.mount / "dst") >= 64 * MiB
    assert alloc(fs.mount / "src") < 8 * MiB


@root_test
def test_clone_ext4_sparse_copy_keeps_holes(loopfs: Callable[[str, int], LoopFS], opened) -> None:
    fs = loopfs("ext4", 256)
    write_blocks(fs.mount / "src", 1024 * MiB, scattered(1024 * MiB, 12))
    ctx = Recorder()
    method = _clone_and_check(fs.mount, fs.mount, opened, ctx=ctx)
    assert method == "sparse-copy"
    src_alloc, dst_alloc = alloc(fs.mount / "src"), alloc(fs.mount / "dst")
    assert 12 * MiB <= dst_alloc <= src_alloc + MiB
    assert os.stat(fs.mount / "dst").st_size == 1024 * MiB
    assert ctx.calls[-1] == (1024 * MiB, 1024 * MiB)


def test_read_ahead_window_keeps_every_segment_in_order(monkeypatch) -> None:
    """With a window smaller than the data, segments are still passed on once each, in order,
    each only after the kernel was asked for the ones behind it."""
    monkeypatch.setattr(clone, "READAHEAD", 10)
    hinted: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: hinted.append((off, n)))
    segments = [(i * 100, i * 100 + 4) for i in range(300)]
    out = []
    for seg in clone._read_ahead(-1, iter(segments)):
        out.append(seg)
        assert len(hinted) >= len(out)  # never handed out before it was hinted
    assert out == segments and hinted == [(b, 4) for b, _ in segments]


@root_test
def test_clone_ext4_sparse_copy_of_many_pieces_past_the_window(
        loopfs: Callable[[str, int], LoopFS], opened, monkeypatch) -> None:
    monkeypatch.setattr(clone, "READAHEAD", 256 * 1024)
    fs = loopfs("ext4", 128)
    write_blocks(fs.mount / "src", 256 * MiB, scattered(256 * MiB, 300, 64 * 1024))
    assert _clone_and_check(fs.mount, fs.mount, opened) == "sparse-copy"


@root_test
def test_clone_not_sparse_allocates_everything(
    loopfs: Callable[[str, int], LoopFS], opened
) -> None:
    fs = loopfs("ext4", 256)
    write_blocks(fs.mount / "src", 64 * MiB, scattered(64 * MiB, 4))
    _clone_and_check(fs.mount, fs.mount, opened, sparse=False)
    assert alloc(fs.mount / "dst") >= 64 * MiB


@root_test
def test_clone_across_filesystems_falls_back_to_copy(
    loopfs: Callable[[str, int], LoopFS], opened
) -> None:
    ext4, xfs = loopfs("ext4", 128), loopfs("xfs", 300)
    blocks = scattered(256 * MiB, 6)
    blocks[100 * MiB] = bytes(MiB)  # written zeros become a hole in the copy
    write_blocks(ext4.mount / "src", 256 * MiB, blocks)
    method = _clone_and_check(ext4.mount, xfs.mount, opened)
    assert method == "copy"
    assert alloc(xfs.mount / "dst") <= 6 * MiB + 256 * 1024
    assert alloc(ext4.mount / "src") >= 7 * MiB


def test_clone_capacity_grows_destination(tmp_path: Path, opened) -> None:
    (tmp_path / "src").write_bytes(b"x" * 5000)
    _clone_and_check(tmp_path, tmp_path, opened, capacity=MiB, mode=0o644)
    st = os.stat(tmp_path / "dst")
    assert st.st_size == MiB and stat.S_IMODE(st.st_mode) == 0o644
    data = (tmp_path / "dst").read_bytes()
    assert data[:5000] == b"x" * 5000 and data[5000:] == bytes(MiB - 5000)


def test_clone_refuses_existing_destination(tmp_path: Path, opened) -> None:
    (tmp_path / "src").write_bytes(b"new")
    (tmp_path / "dst").write_bytes(b"old")
    d = dirfd_of(tmp_path, opened)
    with pytest.raises(errors.AlreadyExists):
        fileops.clone_file(d, "src", d, "dst")
    assert (tmp_path / "dst").read_bytes() == b"old"


def test_clone_cancel_removes_destination(tmp_path: Path, opened) -> None:
    write_blocks(tmp_path / "src", 128 * MiB, {0: os.urandom(128 * MiB)})
    before = sha(tmp_path / "src")
    d = dirfd_of(tmp_path, opened)
    with pytest.raises(errors.Cancelled):
        fileops.clone_file(d, "src", d, "dst", ctx=Recorder(cancel_at=1))
    assert not (tmp_path / "dst").exists()
    assert sha(tmp_path / "src") == before


def test_clone_fd_stream_fallback_when_copy_file_range_refused(
    tmp_path: Path, opened, monkeypatch
) -> None:
    blocks = scattered(32 * MiB, 3)
    write_blocks(tmp_path / "src", 32 * MiB, blocks)

    def refuse(*_a, **_k):
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refuse)
    monkeypatch.setattr(clone, "_try_reflink", lambda *_a: False)
    src = opened(tmp_path / "src", os.O_RDONLY)
    dst = opened(tmp_path / "dst", os.O_RDWR | os.O_CREAT)
    assert fileops.clone_fd(src, dst, 32 * MiB) == "copy"
    assert sha(tmp_path / "dst") == sha(tmp_path / "src")
    assert alloc(tmp_path / "dst") <= 3 * MiB + 64 * 1024


@root_test
def test_clone_from_block_device_uses_copy(tmp_path: Path, opened) -> None:
    content = os.urandom(3 * MiB)
    with loop_device(tmp_path, 8, content) as dev:
        src = opened(dev, os.O_RDONLY)
        dst = opened(tmp_path / "dst", os.O_RDWR | os.O_CREAT)
        assert fileops.clone_fd(src, dst, 8 * MiB) == "copy"
    data = (tmp_path / "dst").read_bytes()
    assert data == content + bytes(5 * MiB)
    assert alloc(tmp_path / "dst") <= 3 * MiB + 64 * 1024  # trailing zeros left as a hole


# ---------------------------------------------------------------------------- wipe


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        for left in range(size, 0, -4 * MiB):
            fh.write(os.urandom(min(left, 4 * MiB)))
        os.fsync(fh.fileno())


def test_wipe_zero_full_file_keeps_allocation(tmp_path: Path, opened, monkeypatch) -> None:
    size = 24 * MiB + 1000  # an unaligned tail goes through the buffered path
    _random_file(tmp_path / "v", size)
    direct: list[int | None] = []
    real = wipe._open_direct
    monkeypatch.setattr(wipe, "_open_direct", lambda fd: direct.append(real(fd)) or direct[-1])
    ctx = Recorder()
    fileops.wipe_fd(opened(tmp_path / "v"), "zero", ctx=ctx)
    assert direct and direct[0] is not None  # O_DIRECT was used on this filesystem
    assert os.stat(tmp_path / "v").st_size == size
    assert alloc(tmp_path / "v") >= size
    assert all_zero(tmp_path / "v")
    assert ctx.calls[-1] == (size, size)


def test_wipe_zero_sparse_file_punches_holes_and_never_changes_its_size(
        tmp_path: Path, opened, monkeypatch) -> None:
    """The size is the same after every step (a kill between two steps
    must not leave a 0-byte volume), the content reads as zeros and the file stays sparse."""
    size = 256 * MiB + 4096
    write_blocks(tmp_path / "v", size, scattered(256 * MiB, 4) | {256 * MiB: b"t" * 4096})
    monkeypatch.setattr(wipe, "_overwrite", lambda *a: pytest.fail("wrote zeros"))
    monkeypatch.setattr(os, "ftruncate", lambda *a: pytest.fail("changed the size"))
    sizes: list[int] = []
    real = fileops.fallocate

    def watched(fd: int, mode: int, offset: int, length: int) -> None:
        real(fd, mode, offset, length)
        sizes.append(os.fstat(fd).st_size)

    monkeypatch.setattr(wipe, "fallocate", watched)
    ctx = Recorder()
    fileops.wipe_fd(opened(tmp_path / "v"), "zero", ctx=ctx)
    assert sizes and set(sizes) == {size}
    assert os.stat(tmp_path / "v").st_size == size
    assert alloc(tmp_path / "v") == 0
    assert all_zero(tmp_path / "v")
    assert ctx.calls[-1] == (size, size)


def test_wipe_zero_sparse_without_punch_writes_zeros_over_the_data_only(
        tmp_path: Path, opened, monkeypatch) -> None:
    """Where the filesystem cannot punch holes: zeros over the data, holes left alone (the
    file does not become fully allocated), the size never changes."""
    blocks = scattered(256 * MiB, 4)
    write_blocks(tmp_path / "v", 256 * MiB, blocks)
    before = alloc(tmp_path / "v")

    def refuse(*_a) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(wipe, "fallocate", refuse)
    monkeypatch.setattr(os, "ftruncate", lambda *a: pytest.fail("changed the size"))
    fileops.wipe_fd(opened(tmp_path / "v"), "zero")
    assert os.stat(tmp_path / "v").st_size == 256 * MiB
    assert alloc(tmp_path / "v") <= before + MiB
    assert all_zero(tmp_path / "v")


def test_wipe_zero_with_length(tmp_path: Path, opened) -> None:
    _random_file(tmp_path / "v", 4 * MiB)
    tail = (tmp_path / "v").read_bytes()[MiB:]
    fileops.wipe_fd(opened(tmp_path / "v"), "zero", length=MiB)
    data = (tmp_path / "v").read_bytes()
    assert data[:MiB] == bytes(MiB) and data[MiB:] == tail


def test_wipe_zero_without_o_direct(opened) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir():
        pytest.skip("no /dev/shm")
    path = shm / f"poolkeeper-wipe-{os.getpid()}"
    try:
        _random_file(path, 3 * MiB)
        fileops.wipe_fd(opened(path), "zero")
        assert all_zero(path) and os.stat(path).st_size == 3 * MiB
    finally:
        path.unlink(missing_ok=True)


def test_wipe_random_differs_each_time(tmp_path: Path, opened) -> None:
    fileops.create_raw(dirfd_of(tmp_path, opened), "v", 8 * MiB, 8 * MiB)
    fd = opened(tmp_path / "v")
    fileops.wipe_fd(fd, "random")
    first = (tmp_path / "v").read_bytes()
    fileops.wipe_fd(fd, "random")
    second = (tmp_path / "v").read_bytes()
    assert first != bytes(8 * MiB) and second != bytes(8 * MiB)
    assert first != second
    assert first[:MiB] != first[MiB : 2 * MiB]  # not one chunk repeated
    assert alloc(tmp_path / "v") >= 8 * MiB and len(first) == 8 * MiB


def test_wipe_trim_punches_holes(tmp_path: Path, opened) -> None:
    _random_file(tmp_path / "v", 16 * MiB)
    fileops.wipe_fd(opened(tmp_path / "v"), "trim")
    assert os.stat(tmp_path / "v").st_size == 16 * MiB
    assert alloc(tmp_path / "v") <= 64 * 1024
    assert all_zero(tmp_path / "v")


@root_test
def test_wipe_trim_on_ext2(loopfs: Callable[[str, int], LoopFS], opened) -> None:
    # ext2 has no fallocate(mode 0) but the kernel can punch holes in it
    fs = loopfs("ext2", 32)
    _random_file(fs.mount / "v", 4 * MiB)
    fileops.wipe_fd(opened(fs.mount / "v"), "trim")
    assert alloc(fs.mount / "v") <= 64 * 1024 and all_zero(fs.mount / "v")


def test_wipe_trim_unsupported(tmp_path: Path, opened, monkeypatch) -> None:
    def refuse(*_a) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(wipe, "fallocate", refuse)  # as on a filesystem without punch
    _random_file(tmp_path / "v", MiB)
    with pytest.raises(errors.Unsupported, match="cannot punch holes.*'zero'"):
        fileops.wipe_fd(opened(tmp_path / "v"), "trim")


@root_test
def test_wipe_block_device_zero_and_trim(tmp_path: Path, opened) -> None:
    with loop_device(tmp_path, 8, os.urandom(8 * MiB)) as dev:
        fd = opened(dev)
        fileops.wipe_fd(fd, "zero", length=2 * MiB)
        assert os.pread(fd, 2 * MiB, 0) == bytes(2 * MiB)
        assert os.pread(fd, MiB, 2 * MiB) != bytes(MiB)
        fileops.wipe_fd(fd, "trim")  # BLKDISCARD; a loop device passes it on as a hole punch
        assert os.pread(fd, 8 * MiB, 0) == bytes(8 * MiB)


def test_wipe_scrub_overwrites_the_opened_file(tmp_path: Path, opened) -> None:
    if not runner.have_tool("scrub"):
        pytest.fail("scrub is not installed (apt-get install scrub)")
    (tmp_path / "vol").write_bytes(bytes(MiB))
    fd = opened(tmp_path / "vol")
    # Move the opened file away and put a decoy under its name: scrub must follow the fd.
    os.rename(tmp_path / "vol", tmp_path / "moved")
    (tmp_path / "vol").write_bytes(b"decoy" * 1000)
    (tmp_path / "other").write_bytes(bytes(4096))
    fileops.wipe_fd(fd, "dod")
    data = (tmp_path / "moved").read_bytes()
    assert len(data) == MiB and data != bytes(MiB)
    assert b"SCRUBBED!" in data[:64]  # scrub's own signature
    assert (tmp_path / "vol").read_bytes() == b"decoy" * 1000
    assert (tmp_path / "other").read_bytes() == bytes(4096)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moved", "other", "vol"]


def test_wipe_scrub_missing_names_the_package(tmp_path: Path, opened, monkeypatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    (tmp_path / "v").write_bytes(b"keep")
    with pytest.raises(errors.ToolMissing, match="scrub") as info:
        fileops.wipe_fd(opened(tmp_path / "v"), "nnsa")
    assert info.value.package == "scrub"
    assert (tmp_path / "v").read_bytes() == b"keep"


def test_wipe_unknown_algorithm_lists_valid_ones(tmp_path: Path, opened) -> None:
    (tmp_path / "v").write_bytes(b"keep")
    with pytest.raises(errors.ValidationError, match="zero, nnsa, dod.*trim"):
        fileops.wipe_fd(opened(tmp_path / "v"), "shred")
    assert (tmp_path / "v").read_bytes() == b"keep"


def test_wipe_cancel_stops_between_chunks(tmp_path: Path, opened) -> None:
    _random_file(tmp_path / "v", 64 * MiB)
    ctx = Recorder(cancel_at=1)
    with pytest.raises(errors.Cancelled):
        fileops.wipe_fd(opened(tmp_path / "v"), "zero", ctx=ctx)
    assert ctx.calls[-1][0] <= fileops.PROGRESS_STEP
    assert (tmp_path / "v").read_bytes()[-MiB:] != bytes(MiB)  # the end was not reached


# ---------------------------------------------------------------------------- resize


def test_resize_grow_sparse_and_shrink(tmp_path: Path, opened) -> None:
    write_blocks(tmp_path / "v", 4 * MiB, {0: b"head" * 1024})
    fd = opened(tmp_path / "v")
    fileops.resize_raw_fd(fd, 64 * MiB)
    assert os.stat(tmp_path / "v").st_size == 64 * MiB
    assert alloc(tmp_path / "v") <= 64 * 1024
    fileops.resize_raw_fd(fd, 4096)
    assert (tmp_path / "v").read_bytes() == b"head" * 1024


def test_resize_grow_allocates_new_range(tmp_path: Path, opened) -> None:
    write_blocks(tmp_path / "v", 8 * MiB, {0: b"a" * 4096})
    fd = opened(tmp_path / "v")
    ctx = Recorder()
    fileops.resize_raw_fd(fd, 72 * MiB, allocate=True, ctx=ctx)
    assert os.stat(tmp_path / "v").st_size == 72 * MiB
    assert 64 * MiB <= alloc(tmp_path / "v") < 66 * MiB  # the new 64 MiB, not the old hole
    assert ctx.calls[-1] == (64 * MiB, 64 * MiB)
    assert (tmp_path / "v").read_bytes()[:4096] == b"a" * 4096


def test_resize_cancelled_allocation_restores_size(tmp_path: Path, opened) -> None:
    write_blocks(tmp_path / "v", 8 * MiB, {0: b"a" * 4096})
    with pytest.raises(errors.Cancelled):
        fileops.resize_raw_fd(
            opened(tmp_path / "v"), 512 * MiB, allocate=True, ctx=Recorder(cancel_at=1)
        )
    assert os.stat(tmp_path / "v").st_size == 8 * MiB


@root_test
def test_resize_allocate_on_ext2_keeps_data(loopfs: Callable[[str, int], LoopFS], opened) -> None:
    fs = loopfs("ext2", 64)
    write_blocks(fs.mount / "v", 2 * MiB, {0: b"z" * 8192, MiB: b"y" * 4096})
    fileops.resize_raw_fd(opened(fs.mount / "v"), 10 * MiB, allocate=True)
    assert alloc(fs.mount / "v") >= 8 * MiB
    data = (fs.mount / "v").read_bytes()
    assert data[:8192] == b"z" * 8192 and data[MiB : MiB + 4096] == b"y" * 4096
    assert len(data) == 10 * MiB


@root_test
def test_resize_refuses_block_device(tmp_path: Path, opened) -> None:
    with loop_device(tmp_path, 4) as dev, pytest.raises(errors.Unsupported):
        fileops.resize_raw_fd(opened(dev), 8 * MiB)


def test_has_data_beyond(tmp_path: Path, opened) -> None:
    write_blocks(tmp_path / "v", 64 * MiB, {0: b"a" * 4096, 16 * MiB: b"b" * 4096})
    fd = opened(tmp_path / "v", os.O_RDONLY)
    assert fileops.has_data_beyond(fd, 0)
    assert fileops.has_data_beyond(fd, 8 * MiB)
    assert not fileops.has_data_beyond(fd, 17 * MiB)
    assert not fileops.has_data_beyond(fd, 64 * MiB)
    assert not fileops.has_data_beyond(fd, 100 * MiB)


# ---------------------------------------------------------------------------- upload / download


def test_upload_at_offset_with_length(tmp_path: Path, opened) -> None:
    (tmp_path / "vol").write_bytes(bytes(4 * MiB))
    src = os.urandom(3 * MiB)
    (tmp_path / "in").write_bytes(src)
    n = fileops.upload_fd(
        opened(tmp_path / "vol"), str(tmp_path / "in"), offset=MiB, length=2 * MiB
    )
    assert n == 2 * MiB
    data = (tmp_path / "vol").read_bytes()
    assert len(data) == 4 * MiB
    assert data[:MiB] == bytes(MiB) and data[MiB : 3 * MiB] == src[: 2 * MiB]
    assert data[3 * MiB :] == bytes(MiB)


def test_upload_from_pipe(tmp_path: Path, opened) -> None:
    (tmp_path / "vol").write_bytes(b"")
    payload = os.urandom(5 * MiB + 17)
    os.mkfifo(tmp_path / "fifo")

    def writer() -> None:
        with open(tmp_path / "fifo", "wb") as fh:
            fh.write(payload)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    n = run_with_timeout(
        lambda: fileops.upload_fd(opened(tmp_path / "vol"), str(tmp_path / "fifo")), 20
    )
    thread.join(5)
    assert n == len(payload)
    assert (tmp_path / "vol").read_bytes() == payload


@root_test
def test_upload_too_big_for_block_device(tmp_path: Path, opened) -> None:
    (tmp_path / "in").write_bytes(os.urandom(3 * MiB))
    with loop_device(tmp_path, 4) as dev:
        fd = opened(dev)
        with pytest.raises(errors.InsufficientSpace):
            fileops.upload_fd(fd, str(tmp_path / "in"), offset=2 * MiB)
        assert os.pread(fd, 4 * MiB, 0) == bytes(4 * MiB)  # refused before writing


def test_download_full(tmp_path: Path, opened) -> None:
    _random_file(tmp_path / "vol", 5 * MiB + 3)
    n = fileops.download_fd(opened(tmp_path / "vol", os.O_RDONLY), str(tmp_path / "out"))
    assert n == 5 * MiB + 3
    assert sha(tmp_path / "out") == sha(tmp_path / "vol")
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o600


def test_download_sparse_preserves_holes(tmp_path: Path, opened) -> None:
    blocks = scattered(200 * MiB, 5)
    blocks[50 * MiB] = bytes(2 * MiB)  # written zeros are skipped too
    write_blocks(tmp_path / "vol", 256 * MiB, blocks)  # trailing 56 MiB hole
    ctx = Recorder()
    n = fileops.download_fd(
        opened(tmp_path / "vol", os.O_RDONLY), str(tmp_path / "out"), sparse=True, ctx=ctx
    )
    assert n == 256 * MiB
    assert os.stat(tmp_path / "out").st_size == 256 * MiB
    assert alloc(tmp_path / "out") <= 5 * MiB + 256 * 1024
    assert sha(tmp_path / "out") == sha(tmp_path / "vol")
    assert ctx.calls[-1] == (256 * MiB, 256 * MiB)


def test_download_offset_and_length(tmp_path: Path, opened) -> None:
    content = os.urandom(4 * MiB)
    (tmp_path / "vol").write_bytes(content)
    n = fileops.download_fd(
        opened(tmp_path / "vol", os.O_RDONLY),
        str(tmp_path / "out"),
        offset=4096 + 5,
        length=MiB,
        sparse=True,
    )
    assert n == MiB
    assert (tmp_path / "out").read_bytes() == content[4101 : 4101 + MiB]


def test_download_truncates_existing_file(tmp_path: Path, opened) -> None:
    (tmp_path / "vol").write_bytes(b"short")
    (tmp_path / "out").write_bytes(b"much longer old content" * 1000)
    fileops.download_fd(opened(tmp_path / "vol", os.O_RDONLY), str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == b"short"


def test_download_into_pipe_writes_the_zeros(tmp_path: Path, opened) -> None:
    write_blocks(tmp_path / "vol", 3 * MiB, {MiB: b"q" * 4096})
    os.mkfifo(tmp_path / "fifo")
    got = bytearray()

    def reader() -> None:
        with open(tmp_path / "fifo", "rb") as fh:
            while chunk := fh.read(MiB):
                got.extend(chunk)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    run_with_timeout(
        lambda: fileops.download_fd(
            opened(tmp_path / "vol", os.O_RDONLY), str(tmp_path / "fifo"), sparse=True
        ),
        20,
    )
    thread.join(5)
    assert bytes(got) == (tmp_path / "vol").read_bytes()


def test_download_cancel_removes_what_it_created(tmp_path: Path, opened) -> None:
    _random_file(tmp_path / "vol", 64 * MiB)
    src = opened(tmp_path / "vol", os.O_RDONLY)
    with pytest.raises(errors.Cancelled):
        fileops.download_fd(src, str(tmp_path / "new"), ctx=Recorder(cancel_at=1))
    assert not (tmp_path / "new").exists()
    # an existing target is the user's file: truncated by the download, but not deleted
    (tmp_path / "old").write_bytes(b"x")
    with pytest.raises(errors.Cancelled):
        fileops.download_fd(src, str(tmp_path / "old"), ctx=Recorder(cancel_at=1))
    assert (tmp_path / "old").exists()


def test_download_target_is_checked_before_it_is_emptied(tmp_path: Path, opened) -> None:
    """The check (the controller refuses pool volumes) sees the opened file before a byte
    of it changes; a new file it refuses is removed again."""
    (tmp_path / "vol").write_bytes(b"new content")
    src = opened(tmp_path / "vol", os.O_RDONLY)
    (tmp_path / "old").write_bytes(b"keep me")
    seen: list[tuple[int, str]] = []

    def refuse(st: os.stat_result, path: str) -> None:
        seen.append((st.st_size, path))
        raise errors.UnsafePath("refused")

    with fileops.checking_download_targets(refuse):
        for name in ("old", "new"):
            with pytest.raises(errors.UnsafePath, match="refused"):
                fileops.download_fd(src, str(tmp_path / name))
    assert seen == [(7, str(tmp_path / "old")), (0, str(tmp_path / "new"))]
    assert (tmp_path / "old").read_bytes() == b"keep me"
    assert not (tmp_path / "new").exists()
    fileops.download_fd(src, str(tmp_path / "old"))  # no check outside the block
    assert (tmp_path / "old").read_bytes() == b"new content"


def test_download_offset_past_end(tmp_path: Path, opened) -> None:
    (tmp_path / "vol").write_bytes(b"abc")
    with pytest.raises(errors.ValidationError):
        fileops.download_fd(opened(tmp_path / "vol", os.O_RDONLY), str(tmp_path / "o"), offset=10)
    assert not (tmp_path / "o").exists()
