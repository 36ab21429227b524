"""The listing's cache of what headers said (backends/drivers/probe_cache.py): a file's
header is reused only while the file is unchanged, on a local filesystem, from a cache
file this user alone could have written; anything else is read afresh."""

from __future__ import annotations

import marshal
import os
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from backends.drivers import probe_cache
from backends.drivers.dir import DirDriver
from backends.model import PoolDef, PoolTarget, VolumeInfo
from tests.conftest import needs_root

MiB = 1 << 20


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    qemu_img("create", "-q", "-f", "raw", str(images / "base.img"), "4M")
    qemu_img("create", "-q", "-f", "qcow2", "-F", "raw", "-b", "base.img",
             str(images / "child.qcow2"), "8M")
    (images / "plain.raw").write_bytes(b"\0" * MiB)
    return images


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files count as old enough at once (the racy window is tested on its own below)."""
    monkeypatch.setattr(probe_cache, "RACY_NS", 0)
    time.sleep(0.05)  # past the clock tick the files were written in


def driver(images: Path, runtime: Path, name: str = "p") -> DirDriver:
    runtime.mkdir(mode=0o700, exist_ok=True)  # the state root's, made by the Store
    return DirDriver(PoolDef(type="dir", name=name, target=PoolTarget(path=str(images))),
                     runtime_dir=runtime)


def listing(drv: DirDriver) -> dict[str, VolumeInfo]:
    return {v.name: v for batch in drv.refresh_batches() for v in batch}


def cache_file(runtime: Path, name: str = "p") -> Path:
    return runtime / probe_cache.CACHE_DIR / name


def read_cache(runtime: Path, name: str = "p") -> tuple:
    raw = cache_file(runtime, name).read_bytes()
    magic, crc, length = probe_cache._FRAME.unpack_from(raw)
    body = raw[probe_cache._FRAME.size:]
    assert (magic, length, zlib.crc32(body)) == (probe_cache._MAGIC, len(body), crc)
    return marshal.loads(body)


def write_cache(runtime: Path, data: tuple, name: str = "p") -> None:
    """What this code would write (a valid CRC): only the content is wrong."""
    body = marshal.dumps(data)
    cache_file(runtime, name).write_bytes(
        probe_cache._FRAME.pack(probe_cache._MAGIC, zlib.crc32(body), len(body)) + body)


def cached_names(runtime: Path, name: str = "p") -> set[str]:
    return set(read_cache(runtime, name)[4])


def tamper(runtime: Path, name: str, fmt: str, **fields: object) -> None:
    """Change what the cache says of `name`'s format (the file itself untouched), and any
    of its key fields (dev, ino, size, mtime, ctime) or header fields by name."""
    head, target, dev, ino, entries = read_cache(runtime)
    entry = list(entries[name])
    entry[6] = fmt
    for field, value in fields.items():
        entry[FIELDS.index(field)] = value
    entries[name] = tuple(entry)
    write_cache(runtime, (head, target, dev, ino, entries))


FIELDS = ("dev", "ino", "size", "mtime", "ctime", "file_id", "format", "capacity",
          "cluster", "compat", "features", "encryption", "backing", "backing_format",
          "data_file", "extents")


def test_a_second_listing_reads_the_same_from_the_cache(pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    fresh = listing(driver(pool, runtime))
    assert cached_names(runtime) == {"base.img", "child.qcow2", "plain.raw"}
    tamper(runtime, "plain.raw", "vmdk")  # proves the next answer is the cache's
    again = listing(driver(pool, runtime))
    assert again["plain.raw"].format == "vmdk"
    again["plain.raw"].format = again["plain.raw"].probed_format = "raw"
    for name, vol in again.items():  # the first listing's reads moved the atimes
        assert vol.times_ns is not None and fresh[name].times_ns is not None
        vol.times_ns = (fresh[name].times_ns[0], *vol.times_ns[1:])
    assert again == fresh  # every other field: sizes, backing, mtime, ctime, identity
    for vol in again.values():  # the numbers shared as a fresh read shares them
        assert vol.file_id is not None and vol.file_id[0] is vol.signature[0]
        assert vol.times_ns is not None and vol.signature[3] is vol.times_ns[1]
        assert vol.physical is vol.signature[1]
    child = again["child.qcow2"]
    assert (child.format, child.capacity) == ("qcow2", 8 * MiB)
    assert child.backing is not None and child.backing.path == str(pool / "base.img")
    assert child.backing.format == "raw"
    assert os.stat(cache_file(runtime)).st_mode & 0o777 == 0o600
    assert os.stat(cache_file(runtime).parent).st_mode & 0o777 == 0o700


def test_a_rewritten_header_is_read_again_even_with_its_times_put_back(
        pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    child = pool / "child.qcow2"
    assert listing(driver(pool, runtime))["child.qcow2"].backing is not None
    assert "child.qcow2" in cached_names(runtime)  # so the next answer could be stale
    before = os.stat(child)
    time.sleep(0.05)
    qemu_img("rebase", "-u", "-b", "", str(child))  # the header rewritten in place
    os.utime(child, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(child)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert listing(driver(pool, runtime))["child.qcow2"].backing is None


def test_a_replaced_file_of_the_same_name_is_read_again(pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    (pool / "plain.raw").unlink()
    qemu_img("create", "-q", "-f", "qcow2", str(pool / "plain.raw"), "2M")
    vol = listing(driver(pool, runtime))["plain.raw"]
    assert (vol.format, vol.capacity) == ("qcow2", 2 * MiB)


def test_files_changed_within_the_last_second_are_not_kept(pool, tmp_path):
    runtime = tmp_path / "run"
    vols = listing(driver(pool, runtime))  # the real window: every file is brand new
    assert vols["child.qcow2"].format == "qcow2"
    assert not cache_file(runtime).exists() or cached_names(runtime) == set()


def test_names_gone_drop_out_and_new_ones_come_in(pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    (pool / "base.img").unlink()
    (pool / "new.raw").write_bytes(b"x")
    time.sleep(0.05)
    assert set(listing(driver(pool, runtime))) == {"child.qcow2", "plain.raw", "new.raw"}
    assert cached_names(runtime) == {"child.qcow2", "plain.raw", "new.raw"}


@pytest.mark.parametrize("spoil", ["garbage", "bad-crc", "truncated", "huge-claim",
                                   "group-writable", "other-owner", "symlink"])
def test_a_cache_file_that_is_not_trustworthy_is_not_read(pool, tmp_path, trusting, spoil):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    path = cache_file(runtime)
    tamper(runtime, "plain.raw", "vmdk")
    if spoil == "garbage":
        path.write_bytes(b"\x00not marshal" * 100)
    elif spoil == "bad-crc":  # one bit flipped in the body
        raw = bytearray(path.read_bytes())
        raw[-40] ^= 1
        path.write_bytes(bytes(raw))
    elif spoil == "truncated":
        path.write_bytes(path.read_bytes()[:-7])
    elif spoil == "huge-claim":  # a length past the file's: never handed to marshal
        raw = path.read_bytes()
        magic, crc, length = probe_cache._FRAME.unpack_from(raw)
        path.write_bytes(probe_cache._FRAME.pack(magic, crc, length << 20)
                         + raw[probe_cache._FRAME.size:])
    elif spoil == "group-writable":
        path.chmod(0o620)
    elif spoil == "other-owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file away (CI runs as root)")
        os.chown(path, 65534, 65534)
    else:
        real = path.with_name("elsewhere")
        path.rename(real)
        path.symlink_to(real)
    vol = listing(driver(pool, runtime))["plain.raw"]
    assert vol.format == "raw"


def test_another_directory_under_the_same_pool_name_does_not_use_it(
        pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    other = tmp_path / "other"
    other.mkdir()
    qemu_img("create", "-q", "-f", "qcow2", str(other / "plain.raw"), "3M")
    time.sleep(0.05)
    vol = listing(driver(other, runtime))["plain.raw"]
    assert (vol.format, vol.capacity) == ("qcow2", 3 * MiB)


def test_a_partly_read_listing_keeps_the_cache_as_it_was(pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    (pool / "base.img").unlink()
    batches = driver(pool, runtime).refresh_batches(batch=1)
    next(batches)
    batches.close()  # a consumer that stopped: names it did not reach are not "gone"
    assert cached_names(runtime) == {"base.img", "child.qcow2", "plain.raw"}


def test_without_a_runtime_dir_nothing_is_kept(pool, tmp_path, trusting):
    drv = DirDriver(PoolDef(type="dir", name="p", target=PoolTarget(path=str(pool))))
    assert listing(drv)["child.qcow2"].format == "qcow2"
    assert not any(tmp_path.rglob(probe_cache.CACHE_DIR))


@needs_root
@pytest.mark.parametrize(("fstype", "magic"), [("ramfs", 0x858458F6), ("tmpfs", 0x01021994)])
def test_a_filesystem_not_known_to_stamp_every_write_reads_every_header(
        tmp_path, trusting, fstype, magic):
    """ramfs stands for NFS, CIFS, FUSE (a type outside the list); tmpfs never stamps a
    write made through a shared mapping: no cache on either."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", fstype, fstype, str(mnt)], check=True)
    try:
        qemu_img("create", "-q", "-f", "qcow2", str(mnt / "a.qcow2"), "1M")
        time.sleep(0.05)
        runtime = tmp_path / "run"
        fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert probe_cache.filesystem_type(fd) == magic
        finally:
            os.close(fd)
        for _ in range(2):
            assert listing(driver(mnt, runtime))["a.qcow2"].format == "qcow2"
        assert not cache_file(runtime).exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_the_filesystems_here_are_recognised(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert probe_cache.filesystem_type(fd) in probe_cache.LOCAL_FILESYSTEMS
    finally:
        os.close(fd)


def test_a_name_refused_for_its_characters_is_never_kept(pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    (pool / "bad\x1bname").write_bytes(b"\0" * 512)
    time.sleep(0.05)
    for _ in range(2):
        vol = listing(driver(pool, runtime))["bad\x1bname"]
        assert vol.error is not None and "rename it" in vol.error
    assert "bad\x1bname" not in cached_names(runtime)


def test_a_quick_listing_takes_whole_rows_from_it_and_leaves_it_as_it_was(
        pool, tmp_path, trusting):
    """The TUI's quick listing (headers=False): what the cache knows comes whole, the rest
    pending for the header thread; it saves nothing (it read no header)."""
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    (pool / "new.qcow2").write_bytes(b"x")
    time.sleep(0.05)
    before = cache_file(runtime).read_bytes()
    quick = {v.name: v for batch in driver(pool, runtime).refresh_batches(headers=False)
             for v in batch}
    child = quick["child.qcow2"]
    assert not child.pending and child.format == "qcow2" and child.backing is not None
    assert quick["new.qcow2"].pending and quick["new.qcow2"].format == ""
    assert cache_file(runtime).read_bytes() == before


@pytest.mark.parametrize(("field", "value"), [
    ("ino", 1), ("size", 12345), ("mtime", 1), ("ctime", 1), ("dev", 1)])
def test_an_entry_whose_key_differs_from_the_file_is_not_used(
        pool, tmp_path, trusting, field, value):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    tamper(runtime, "plain.raw", "vmdk", **{field: value})
    assert listing(driver(pool, runtime))["plain.raw"].format == "raw"


def test_an_entry_is_not_used_once_the_name_is_no_plain_file(pool, tmp_path, trusting):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    tamper(runtime, "plain.raw", "vmdk")
    (pool / "plain.raw").unlink()
    os.mkdir(pool / "plain.raw")  # a directory: a "dir" volume, never from the cache
    d = os.lstat(pool / "plain.raw")  # even with an entry keyed on it exactly
    tamper(runtime, "plain.raw", "vmdk", dev=d.st_dev, ino=d.st_ino, size=d.st_size,
           mtime=d.st_mtime_ns, ctime=d.st_ctime_ns)
    assert listing(driver(pool, runtime))["plain.raw"].type == "dir"


@pytest.mark.parametrize("part", ["fingerprint", "target", "dev", "ino"])
def test_a_cache_made_for_another_code_or_directory_is_not_used(
        pool, tmp_path, trusting, part):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    tamper(runtime, "plain.raw", "vmdk")
    data = list(read_cache(runtime))
    data[("fingerprint", "target", "dev", "ino").index(part)] = (
        "/elsewhere" if part == "target" else 1 if part in ("dev", "ino") else ("old",))
    write_cache(runtime, tuple(data))
    assert listing(driver(pool, runtime))["plain.raw"].format == "raw"


@pytest.mark.parametrize(("field", "value"), [
    ("features", 5), ("extents", 5), ("extents", ((1,),)), ("file_id", None)])
def test_an_entry_of_the_wrong_shape_is_read_again_not_a_failure(
        pool, tmp_path, trusting, field, value):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    tamper(runtime, "plain.raw", "vmdk", **{field: value})
    for _ in range(2):  # and the listing after (the bad entry replaced) is right too
        assert listing(driver(pool, runtime))["plain.raw"].format == "raw"


def test_a_refused_name_is_read_even_with_an_entry_for_it(pool, tmp_path, trusting):
    """A name first_unsafe refuses (control characters) is never served from the cache,
    whatever the cache holds for it."""
    runtime = tmp_path / "run"
    bad = "bad\x1bname"
    (pool / bad).write_bytes(b"\0" * 512)
    time.sleep(0.05)
    listing(driver(pool, runtime))
    head, target, dev, ino, entries = read_cache(runtime)
    st = os.lstat(pool / bad)
    entries[bad] = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                    (st.st_ino, None, None), "raw", 512, None, None, None, None, None,
                    None, None, ())
    write_cache(runtime, (head, target, dev, ino, entries))
    vol = listing(driver(pool, runtime))[bad]
    assert vol.error is not None and "rename it" in vol.error


def test_refresh_reads_every_header_afresh(pool, tmp_path, trusting):
    """refresh() is what the checks before a delete list: never from the cache."""
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    tamper(runtime, "plain.raw", "vmdk")
    _sizes, volumes = driver(pool, runtime).refresh()
    assert {v.name: v.format for v in volumes}["plain.raw"] == "raw"
    assert listing(driver(pool, runtime))["plain.raw"].format == "vmdk"  # views: cached


def test_the_racy_window_covers_the_kernels_writeback(monkeypatch):
    """A page dirtied through a mapping is stamped once, then changed unstamped until
    writeback cleans it: entries wait twice that horizon, and at least a minute."""
    monkeypatch.setattr(probe_cache, "RACY_NS", None)
    horizon = sum(int(Path(f"/proc/sys/vm/{k}").read_text()) * 10_000_000
                  for k in ("dirty_expire_centisecs", "dirty_writeback_centisecs"))
    assert probe_cache.racy_ns() == max(60 * 10**9, 2 * horizon)
