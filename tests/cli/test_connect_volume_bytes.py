"""`poolkeeper -c URI` verbs that move a volume's bytes, against a real private libvirtd
(tests/libvirtd.py) on a dir pool in the test's directory: vol-clone, vol-create-from,
vol-resize, vol-wipe, vol-pool, vol-upload and vol-download, each checked on disk (sha256
of the bytes, qemu-img info and compare) and against `virsh -c URI` where virsh defines
the output; Ctrl-C aborts a stream and leaves no file of ours half-written.
Needs root (the daemon runs as nobody), libvirt-daemon, qemu-img, scrub, libvirt-python.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_connect_libvirtd import ENV, MISSING, REPO, Host

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
MiB = 1 << 20


@pytest.fixture
def pool(host: Host, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A running dir pool named after the test, emptied and removed afterwards."""
    name = request.node.name.removeprefix("test_")[:30]
    target = host.pools / name
    host.virsh("pool-define-as", name, "dir", "--target", str(target))
    host.virsh("pool-build", name)
    host.virsh("pool-start", name)
    try:
        yield target
    finally:
        host.virsh("pool-destroy", name)
        shutil.rmtree(target, ignore_errors=True)
        host.virsh("pool-undefine", name)


def sha(path: Path, start: int = 0, length: int | None = None) -> str:
    with open(path, "rb") as fh:
        fh.seek(start)
        return hashlib.sha256(fh.read() if length is None else fh.read(length)).hexdigest()


def qemu_info(path: Path) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def no_times(xml: str) -> str:
    return re.sub(r"<timestamps>.*</timestamps>", "", xml, flags=re.S)


def fill(path: Path, *pieces: tuple[int, bytes]) -> None:
    """Write `data` at `offset` for each piece, into a volume file libvirt made."""
    with open(path, "r+b") as fh:
        for offset, data in pieces:
            fh.seek(offset)
            fh.write(data)


def test_clone_create_from_resize_wipe_and_vol_pool(host: Host, pool: Path) -> None:
    p = pool.name
    host.pk("vol-create-as", p, "src.img", "4M", "--allocation", "0")
    src = pool / "src.img"
    fill(src, (0, os.urandom(MiB)), (3 * MiB, os.urandom(4096)))

    # vol-clone: virsh's XML (only the name replaced), libvirt's copy, byte for byte
    ours = host.pk("vol-clone", "--pool", p, "src.img", "copy.img", "--print-xml").stdout
    theirs = host.virsh("vol-clone", "--pool", p, "src.img", "copy.img", "--print-xml")
    assert "<name>copy.img</name>" in ours
    assert no_times(ours) == no_times(theirs)  # atime moves as the file is read
    assert not (pool / "copy.img").exists()
    assert host.pk("vol-clone", "--pool", p, "src.img", "copy.img").stdout == \
        "Vol copy.img cloned from src.img\n"
    assert sha(pool / "copy.img") == sha(src)
    assert (qemu_info(pool / "copy.img")["format"],
            qemu_info(pool / "copy.img")["virtual-size"]) == ("raw", 4 * MiB)
    r = host.pk("vol-clone", "--pool", p, "src.img", "copy.img", ok=False)  # exists
    assert r.returncode == 1 and r.stderr.startswith("error: cannot create the volume from "
                                                     "'src.img': ")
    # --reflink is libvirt's FICLONE with no fallback: on ext4 it fails and leaves nothing
    r = host.pk("vol-clone", "--pool", p, "src.img", "rl.img", "--reflink", ok=False)
    if r.returncode == 0:
        assert sha(pool / "rl.img") == sha(src)
    else:
        assert r.stderr.startswith("error: cannot create the volume from 'src.img': ")
        assert not (pool / "rl.img").exists()

    # vol-create-from: a qcow2 of the raw source's bytes, from another pool's volume;
    # vol-clone --newpool: a copy into another pool
    other = host.pools / f"{p}-other"
    host.virsh("pool-create-as", f"{p}-o", "dir", "--target", str(other), "--build")
    try:
        xml = pool.parent / f"{p}-conv.xml"
        xml.write_text("<volume><name>conv.qcow2</name><capacity>0</capacity>"
                       "<target><format type='qcow2'/></target></volume>\n")
        assert host.pk("vol-create-from", f"{p}-o", str(xml), "src.img", "--inputpool",
                       p).stdout == "Vol conv.qcow2 created from input vol src.img\n"
        assert host.pk("vol-clone", "--pool", f"{p}-o", "conv.qcow2", "conv.qcow2",
                       "--newpool", p).stdout == "Vol conv.qcow2 cloned from conv.qcow2\n"
        subprocess.run(["qemu-img", "compare", str(pool / "conv.qcow2"),
                        str(other / "conv.qcow2")], check=True, capture_output=True)
    finally:
        host.virsh("pool-destroy", f"{p}-o")
        shutil.rmtree(other, ignore_errors=True)
    info = qemu_info(pool / "conv.qcow2")
    assert (info["format"], info["virtual-size"]) == ("qcow2", 4 * MiB)
    subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "raw", str(pool / "conv.qcow2"),
                    str(src)], check=True, capture_output=True)
    assert host.pk("vol-clone", "--pool", p, "conv.qcow2", "meta.qcow2",
                   "--prealloc-metadata").stdout == "Vol meta.qcow2 cloned from conv.qcow2\n"
    subprocess.run(["qemu-img", "compare", str(pool / "meta.qcow2"), str(src)], check=True,
                   capture_output=True)

    # vol-resize: libvirt's flags as virsh maps them; libvirt's refusals as its messages
    assert host.pk("vol-resize", "--pool", p, "src.img", "8M").stdout == \
        "Size of volume 'src.img' successfully changed to 8.00 MiB\n"
    assert src.stat().st_size == 8 * MiB
    assert host.pk("vol-resize", "--pool", p, "src.img", "1M", "--delta").stdout == \
        "Size of volume 'src.img' successfully changed to 9.00 MiB\n"
    r = host.pk("vol-resize", "--pool", p, "src.img", "2M", ok=False)
    assert r.returncode == 1 and "shrink" in r.stderr and r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: cannot resize volume 'src.img': ")
    r = host.pk("vol-resize", "--pool", p, "src.img", "-1M", ok=False)
    assert r.stderr == "error: a negative size needs --shrink\n"
    assert src.stat().st_size == 9 * MiB
    assert host.pk("vol-resize", "--pool", p, "src.img", "--shrink", "--", "-2M").stdout == \
        "Size of volume 'src.img' successfully changed to 7.00 MiB\n"
    assert src.stat().st_size == 7 * MiB
    host.pk("vol-resize", "--pool", p, "copy.img", "6M", "--allocate")
    assert (pool / "copy.img").stat().st_blocks * 512 >= 6 * MiB
    host.pk("vol-resize", "--pool", p, "conv.qcow2", "16M")
    assert qemu_info(pool / "conv.qcow2")["virtual-size"] == 16 * MiB
    r = host.pk("vol-resize", "--pool", p, "conv.qcow2", "32M", "--allocate", ok=False)
    assert r.returncode == 1 and "preallocate is only supported for raw" in r.stderr
    assert qemu_info(pool / "conv.qcow2")["virtual-size"] == 16 * MiB

    # vol-wipe: zero (libvirt's own) and a scrub algorithm by virsh's name
    before = sha(pool / "copy.img")
    assert host.pk("vol-wipe", "--pool", p, "copy.img").stdout == "Vol copy.img wiped\n"
    assert (pool / "copy.img").read_bytes() == bytes(6 * MiB)
    assert host.pk("vol-wipe", "--pool", p, "copy.img", "--algorithm", "pfitzner7").stdout \
        == "Vol copy.img wiped\n"
    assert sha(pool / "copy.img") not in (before, hashlib.sha256(bytes(6 * MiB)).hexdigest())
    r = host.pk("vol-wipe", "--pool", p, "copy.img", "--algorithm", "bogus", ok=False)
    assert r.returncode == 1 and "bogus" in r.stderr

    # vol-pool: the pool of a volume by path or key, by name or UUID
    assert host.pk("vol-pool", str(src)).stdout == f"{p}\n"
    assert host.pk("vol-pool", "--uuid", str(src)).stdout == host.virsh("pool-uuid", p)[:-1]
    for vol in ("src.img", "copy.img", "conv.qcow2"):
        host.pk("vol-delete", "--pool", p, vol)


def test_upload_and_download_through_streams(host: Host, pool: Path) -> None:
    p = pool.name
    work = pool.parent / f"{p}-files"
    work.mkdir()
    try:
        host.pk("vol-create-as", p, "v.img", "4M", "--allocation", "0")
        vol = pool / "v.img"
        data = work / "data.bin"
        data.write_bytes(os.urandom(4 * MiB))
        assert host.pk("vol-upload", "--pool", p, "v.img", str(data)).stdout == \
            "Uploaded 4194304 bytes to v.img\n"
        assert sha(vol) == sha(data)

        out = work / "out.bin"
        assert host.pk("vol-download", "--pool", p, "v.img", str(out)).stdout == \
            f"Downloaded 4194304 bytes of v.img to {out}\n"
        assert sha(out) == sha(data) and out.stat().st_mode & 0o777 == 0o600
        part = work / "part.bin"
        assert host.pk("vol-download", str(vol), str(part), "--offset", str(MiB),
                       "--length", str(MiB)).stdout == \
            f"Downloaded 1048576 bytes of v.img to {part}\n"
        assert sha(part) == sha(data, MiB, MiB)

        patch = work / "patch.bin"
        patch.write_bytes(os.urandom(8192))
        assert host.pk("vol-upload", "--pool", p, "v.img", str(patch), "--offset",
                       str(2 * MiB), "--length", "4096").stdout == \
            "Uploaded 4096 bytes to v.img\n"
        assert sha(vol, 2 * MiB, 4096) == sha(patch, 0, 4096)
        assert sha(vol, 0, 2 * MiB) == sha(data, 0, 2 * MiB)
        assert sha(vol, 2 * MiB + 4096) == sha(data, 2 * MiB + 4096)

        # sparse streams: the source's holes stay holes in a fresh volume and in the file
        host.pk("vol-create-as", p, "s.img", "8M", "--allocation", "0")
        sparse = work / "sparse.bin"
        with open(sparse, "wb") as fh:
            fh.write(os.urandom(MiB))
            fh.seek(6 * MiB)
            fh.write(os.urandom(4096))
            fh.truncate(8 * MiB)
        assert host.pk("vol-upload", "--sparse", "--pool", p, "s.img", str(sparse)).stdout == \
            "Uploaded 8388608 bytes to s.img\n"
        assert sha(pool / "s.img") == sha(sparse)
        assert (pool / "s.img").stat().st_blocks * 512 < 2 * MiB
        back = work / "back.bin"
        assert host.pk("vol-download", "--sparse", "--pool", p, "s.img", str(back)).stdout == \
            f"Downloaded 8388608 bytes of s.img to {back}\n"
        assert sha(back) == sha(sparse) and back.stat().st_size == 8 * MiB
        assert back.stat().st_blocks * 512 < 2 * MiB

        # an existing file is replaced (as virsh); a symlink is never written through
        assert host.pk("vol-download", "--pool", p, "v.img", str(part)).returncode == 0
        assert sha(part) == sha(vol)
        link = work / "link"
        link.symlink_to(out)
        r = host.pk("vol-download", "--pool", p, "v.img", str(link), ok=False)
        assert r.returncode == 1 and "symbolic link" in r.stderr
        r = host.pk("vol-upload", "--pool", p, "v.img", str(work / "missing"), ok=False)
        assert r.stderr == f"error: cannot read '{work}/missing': No such file or directory\n"
        r = host.pk("vol-upload", "--pool", p, "v.img", str(work), ok=False)
        assert r.stderr == f"error: '{work}' is a directory; give the file to upload\n"
        r = host.pk("vol-download", "--pool", p, "v.img", str(work / "no" / "f"), ok=False)
        assert r.returncode == 1 and r.stderr.startswith("error: ")
        assert "No such file or directory" in r.stderr and r.stderr.count("\n") == 1
        assert sha(vol) == sha(part)  # none of it touched the volume
        for vol_name in ("v.img", "s.img"):
            host.pk("vol-delete", "--pool", p, vol_name)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _interrupt(host: Host, args: list[str], started: Path,
               sig: int = signal.SIGINT) -> subprocess.CompletedProcess[str]:
    """Run poolkeeper, send `sig` once `started` has bytes, and collect it."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", "-c", host.uri, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=REPO)
    deadline = time.monotonic() + 60
    while not (started.exists() and started.stat().st_blocks > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_ctrl_c_aborts_the_stream_and_leaves_no_file_of_ours(host: Host, pool: Path) -> None:
    p = pool.name
    work = pool.parent / f"{p}-files"
    work.mkdir()
    try:
        host.pk("vol-create-as", p, "big.img", "8G", "--allocation", "0")
        out = work / "out.bin"
        r = _interrupt(host, ["vol-download", "--pool", p, "big.img", str(out)], out)
        assert (r.returncode, r.stdout, r.stderr) == (1, "", "error: cancelled\n")
        assert not out.exists()  # the download's own file is removed
        # the daemon's end was aborted: the volume is not left busy
        src = work / "src.bin"
        with open(src, "wb") as fh:
            fh.truncate(8 << 30)  # zeros, sent in full (no --sparse)
        r = _interrupt(host, ["vol-upload", "--pool", p, "big.img", str(src)],
                       pool / "big.img", signal.SIGTERM)  # (SIGHUP too) as Ctrl-C
        assert (r.returncode, r.stdout, r.stderr) == (1, "", "error: cancelled\n")
        assert host.pk("vol-delete", "--pool", p, "big.img").stdout == "Vol big.img deleted\n"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _scrubbing(path: Path) -> bool:
    """Whether a scrub of `path` runs (libvirtd's wipe, on this host)."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"scrub") and str(path).encode() in argv:
            return True
    return False


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_during_a_wipe_says_libvirt_cannot_cancel_it(host: Host, pool: Path,
                                                             presses: int) -> None:
    p = pool.name
    host.pk("vol-create-as", p, "w.img", "64M")
    vol = pool / "w.img"
    proc = subprocess.Popen([sys.executable, "-m", "cli", "-c", host.uri, "vol-wipe",
                             "--pool", p, "w.img", "--algorithm", "gutmann"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=REPO)
    deadline = time.monotonic() + 60
    while not _scrubbing(vol):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    for _ in range(presses):
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    out, err = proc.communicate(timeout=300)
    assert err.startswith("libvirt cannot cancel a wipe once it has begun: waiting for it "
                          "to end (Ctrl-C again stops waiting")
    if presses == 1:  # waited for it: done
        assert (proc.returncode, out, err.count("\n")) == (0, "Vol w.img wiped\n", 1)
    else:  # stopped waiting at once, while the host goes on
        assert (proc.returncode, out) == (1, "")
        assert err.endswith("error: stopped waiting: a wipe goes on on the host (see vol-list "
                            "when it has ended)\n")
        assert time.monotonic() - began < 5 and _scrubbing(vol)
        while _scrubbing(vol):
            assert time.monotonic() < deadline + 300
            time.sleep(0.1)
    while host.pk("vol-delete", "--pool", p, "w.img", ok=False).returncode:
        assert time.monotonic() < deadline + 330  # libvirtd's job ends just after scrub
        time.sleep(0.1)


def test_a_terminal_gets_the_native_progress_bar(host: Host, pool: Path) -> None:
    p = pool.name
    host.pk("vol-create-as", p, "big.img", "1G", "--allocation", "0")
    out = pool.parent / f"{p}-out.bin"
    main_fd, tty = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "cli", "-c", host.uri, "vol-download",
                                 "--pool", p, "big.img", str(out)], stdout=subprocess.PIPE,
                                stderr=tty, text=True, env=ENV, cwd=REPO)
        os.close(tty)
        drawn = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        assert proc.wait(timeout=120) == 0
    finally:
        os.close(main_fd)
        out.unlink(missing_ok=True)
    assert proc.stdout is not None
    assert proc.stdout.read() == f"Downloaded 1073741824 bytes of big.img to {out}\n"
    text = drawn.decode()
    assert re.search(r"\rdownload big\.img: \[#*\s*\] +\d+\.\d%", text), text
    assert "/s" in text and text.endswith("\r" + " " * 100 + "\r")
    host.pk("vol-delete", "--pool", p, "big.img")
