"""poolkeeper and virsh on the same pools print the same bytes.

A private libvirtd (tests/libvirtd.py, reached with `virsh -c URI` only) and a poolkeeper
state root both define, from one XML file each (same names and UUIDs), a started dir pool
with autostart on and a stopped one, on a filesystem of their own (a loop-mounted ext4
nobody else writes to, so the pool sizes are the same by construction). pool-list,
pool-info, vol-list and vol-info in every form the issue names must then match byte for
byte, except poolkeeper's lines after virsh's in vol-info (Format:), which are checked to
be only that. Needs root, loop devices, libvirt-daemon and qemu-img (CI has them all: the
Makefile installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.libvirtd import libvirtd_missing, private_libvirtd
from tests.loopfs import can_use_loop_devices, loop_filesystem

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
VOLUMES = ["tiny.img", "web.qcow2", "Sparse.img", "\u30c7\u30fc\u30bf.img"]
EXTRA_KEYS = ("Format:", "Backing:", "Header says:", "Error:")  # poolkeeper's own

pytestmark = pytest.mark.skipif(
    bool(libvirtd_missing()) or not can_use_loop_devices(),
    reason=libvirtd_missing() or "needs loop devices (root)")


def pool_xml(name: str, uuid: str, path: Path) -> str:
    return (f"<pool type='dir'><name>{name}</name><uuid>{uuid}</uuid>"
            f"<target><path>{path}</path></target></pool>\n")


class Both:
    def __init__(self, uri: str, root: Path) -> None:
        self.uri, self.root = uri, root

    def virsh(self, *args: str) -> str:
        r = subprocess.run(["virsh", "-c", self.uri, *args], capture_output=True, text=True,
                           env=ENV, timeout=60, check=False)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout

    def poolkeeper(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "cli", "--root", str(self.root), *args],
                           capture_output=True, text=True, env=ENV, cwd=REPO, timeout=120,
                           check=False)
        assert r.returncode == 0, (args, r.stderr)
        return r.stdout

    def both(self, *args: str) -> None:
        self.virsh(*args)
        self.poolkeeper(*args)


@pytest.fixture(scope="module")
def pools() -> Iterator[Both]:
    # not under pytest's tmp dir, which is 0700: libvirtd runs as nobody and must get in
    base = Path(tempfile.mkdtemp(prefix="pk-virsh-"))
    try:
        base.chmod(0o755)
        with loop_filesystem(base, "ext4", 64) as fs, private_libvirtd(base) as daemon:
            (fs.mount / "p").mkdir(mode=0o755)
            (fs.mount / "Stopped").mkdir(mode=0o755)
            images = fs.mount / "p"
            (images / "tiny.img").write_bytes(b"x" * 349)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "web.qcow2"),
                            "20G"], check=True)
            for name in VOLUMES[2:]:
                with open(images / name, "wb") as fh:
                    fh.truncate(1536 << 20)
                    fh.seek(1 << 20)
                    fh.write(b"data" * 1024)
            both = Both(daemon.uri, base / "state")
            both.poolkeeper("pool-destroy", "default")  # the one made on first use
            both.poolkeeper("pool-undefine", "default")
            for name, uuid in (("p", "0f6c3a4e-8d1b-4a7e-9c55-2d7f1b6e9a01"),
                               ("Stopped", "0f6c3a4e-8d1b-4a7e-9c55-2d7f1b6e9a02")):
                xml = base / f"{name}.xml"
                xml.write_text(pool_xml(name, uuid, fs.mount / name))
                both.both("pool-define", str(xml))
            both.both("pool-start", "p")
            both.both("pool-autostart", "p")
            yield both
    finally:
        shutil.rmtree(base, ignore_errors=True)


def without_extras(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.startswith(EXTRA_KEYS))


@pytest.mark.parametrize("args", [
    ("pool-list",), ("pool-list", "--all"), ("pool-list", "--details"),
    ("pool-list", "--details", "--all"), ("pool-list", "--inactive"),
    ("pool-list", "--inactive", "--details"),
    ("pool-info", "p"), ("pool-info", "--bytes", "p"), ("pool-info", "Stopped"),
    ("pool-info", "--bytes", "Stopped"),
    ("vol-list", "p"), ("vol-list", "p", "--details"),
], ids=" ".join)
def test_same_bytes_as_virsh(pools: Both, args: tuple[str, ...]) -> None:
    assert pools.poolkeeper(*args) == pools.virsh(*args)


@pytest.mark.parametrize("flags", [(), ("--bytes",), ("--physical",), ("--bytes", "--physical")],
                         ids=" ".join)
@pytest.mark.parametrize("vol", VOLUMES)
def test_vol_info_is_virsh_then_poolkeeper_lines(pools: Both, vol: str,
                                                 flags: tuple[str, ...]) -> None:
    ours = pools.poolkeeper("vol-info", *flags, "--pool", "p", vol)
    theirs = pools.virsh("vol-info", *flags, "--pool", "p", vol)
    assert without_extras(ours) == theirs
    lines = ours.splitlines()
    assert lines[:len(theirs.splitlines()) - 1] == theirs.splitlines()[:-1]  # virsh's first
    assert lines[len(theirs.splitlines()) - 1].startswith("Format:")


def test_the_pools_are_what_the_comparison_needs(pools: Both) -> None:
    """The pool is started with its sizes shown, the other stopped, and every volume
    listed: the comparisons above compare something."""
    listing = pools.virsh("vol-list", "p", "--details")
    assert " 349.00 B " in listing and " 20.00 GiB " in listing and " 1.50 GiB " in listing
    assert all(vol in listing for vol in VOLUMES)
    assert "Stopped   inactive" in pools.virsh("pool-list", "--all")
    assert "Autostart:      yes" in pools.virsh("pool-info", "p")
