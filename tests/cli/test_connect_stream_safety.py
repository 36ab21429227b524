"""`-c URI` streams keep the native engine's rules, against a real private libvirtd on
this host (tests/libvirtd.py): a download never writes into a pool (its own source, another
volume, the pool's directory); a refused or failing download leaves an existing file as it
was; an upload never grows a raw volume past its end (a pipe included), and --length
works on a pipe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_connect_libvirtd import ENV, MISSING, REPO, Host

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
MiB = 1 << 20


@pytest.fixture
def pool(host: Host, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A running dir pool with two 1 MiB raw volumes of known bytes, a.img and b.img."""
    name = request.node.name.removeprefix("test_")[:30].replace("[", "-").rstrip("]")
    target = host.pools / name
    host.virsh("pool-define-as", name, "dir", "--target", str(target))
    host.virsh("pool-build", name)
    host.virsh("pool-start", name)
    try:
        for vol, byte in (("a.img", b"a"), ("b.img", b"b")):
            host.pk("vol-create-as", name, vol, "1M")
            (target / vol).write_bytes(byte * MiB)
        yield target
    finally:
        host.virsh("pool-destroy", name)
        shutil.rmtree(target, ignore_errors=True)
        host.virsh("pool-undefine", name)


@pytest.mark.parametrize("into", ["own-source", "other-volume", "new-file-in-pool"])
def test_a_download_never_writes_into_a_pool(host, pool, into):
    dst = {"own-source": pool / "a.img", "other-volume": pool / "b.img",
           "new-file-in-pool": pool / "new.bin"}[into]
    r = host.pk("vol-download", "--pool", pool.name, "a.img", str(dst), ok=False)
    assert r.returncode == 1 and "a download never writes into a pool" in r.stderr, r
    assert (pool / "a.img").read_bytes() == b"a" * MiB
    assert (pool / "b.img").read_bytes() == b"b" * MiB
    assert not (pool / "new.bin").exists()


def test_a_refused_download_leaves_an_existing_file_as_it_was(host, pool, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_bytes(b"precious")
    r = host.pk("vol-download", "--pool", pool.name, "--offset", str(99 * MiB), "a.img",
                str(keep), ok=False)
    assert r.returncode == 1 and "past the end" in r.stderr, r
    assert keep.read_bytes() == b"precious"
    ok = host.pk("vol-download", "--pool", pool.name, "--offset", str(MiB - 3), "a.img",
                 str(keep))
    assert "Downloaded 3 bytes" in ok.stdout and keep.read_bytes() == b"aaa"


def test_an_upload_never_grows_a_raw_volume(host, pool, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (2 * MiB))
    r = host.pk("vol-upload", "--pool", pool.name, "a.img", str(big), ok=False)
    assert r.returncode == 1 and "do not fit in 'a.img'" in r.stderr, r
    assert (pool / "a.img").read_bytes() == b"a" * MiB  # nothing was written
    r = host.pk("vol-upload", "--pool", pool.name, "--offset", str(MiB - 10), "a.img",
                str(big), ok=False)
    assert r.returncode == 1 and "do not fit" in r.stderr, r


def test_a_pipe_is_stopped_at_a_raw_volumes_end(host, pool):
    cmd = [sys.executable, "-m", "cli", "-c", host.uri, "vol-upload", "--pool", pool.name,
           "b.img", "/dev/stdin"]
    r = subprocess.run(cmd, input=b"y" * (MiB + 4096), capture_output=True, env=ENV,
                       cwd=REPO, timeout=120, check=False)
    assert r.returncode == 1 and b"holds more than the 1048576 bytes" in r.stderr, r
    assert os.path.getsize(pool / "b.img") == MiB  # the volume kept its size


def test_length_works_on_a_pipe(host, pool):
    cmd = [sys.executable, "-m", "cli", "-c", host.uri, "vol-upload", "--pool", pool.name,
           "--length", "4096", "b.img", "/dev/stdin"]
    r = subprocess.run(cmd, input=b"z" * 10000, capture_output=True, env=ENV, cwd=REPO,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    data = (pool / "b.img").read_bytes()
    assert data[:4096] == b"z" * 4096 and data[4096:] == b"b" * (MiB - 4096)
