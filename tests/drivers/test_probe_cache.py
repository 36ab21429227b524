"""The listing's cache of what headers said (backends/drivers/probe_cache.py): a file's
header is reused only while the file is unchanged, on a local filesystem, from a cache
file this user alone could have written; anything else is read afresh."""

from __future__ import annotations

import marshal
import os
import subprocess
import time
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


def cached_names(runtime: Path, name: str = "p") -> set[str]:
    return set(marshal.loads(cache_file(runtime, name).read_bytes())[4])


def tamper(runtime: Path, name: str, fmt: str) -> None:
    """Change what the cache says of `name`'s format (the file itself untouched)."""
    path = cache_file(runtime)
    version, target, dev, ino, entries = marshal.loads(path.read_bytes())
    entry = list(entries[name])
    entry[6] = fmt
    entries[name] = tuple(entry)
    path.write_bytes(marshal.dumps((version, target, dev, ino, entries)))


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


@pytest.mark.parametrize("spoil", ["garbage", "group-writable", "other-owner", "symlink"])
def test_a_cache_file_that_is_not_trustworthy_is_not_read(pool, tmp_path, trusting, spoil):
    runtime = tmp_path / "run"
    listing(driver(pool, runtime))
    path = cache_file(runtime)
    tamper(runtime, "plain.raw", "vmdk")
    if spoil == "garbage":
        path.write_bytes(b"\x00not marshal" * 100)
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
def test_a_filesystem_not_known_to_be_local_reads_every_header(tmp_path, trusting):
    """ramfs stands for NFS, CIFS, FUSE: a type outside the list, so no cache."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(mnt)], check=True)
    try:
        qemu_img("create", "-q", "-f", "qcow2", str(mnt / "a.qcow2"), "1M")
        time.sleep(0.05)
        runtime = tmp_path / "run"
        fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert probe_cache.filesystem_type(fd) == 0x858458F6  # RAMFS_MAGIC
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
