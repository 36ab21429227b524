"""Over `-c`, poolkeeper refuses what it refuses natively before data is destroyed (libvirt
itself would go ahead): deleting a running guest's disk, an overlay's base, or a pool
whose libvirt delete erases what it holds; an empty URI is never libvirt's guess; Ctrl-C
in a call does not leave the command waiting for the call's deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from backends.errors import PoolkeeperError

REPO = Path(__file__).resolve().parents[2]

try:
    import libvirt  # noqa: F401

    MISSING = None
except ImportError:
    MISSING = "libvirt-python is not installed (pip install -e '.[libvirt]')"
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

NODE = """<node>
  <domain type='test'>
    <name>guest1</name>
    <memory>1048576</memory>
    <os><type>hvm</type></os>
    <devices>
      <disk type='volume' device='disk'><source pool='p1' volume='a.qcow2'/>
        <target dev='vda'/></disk>
      <disk type='file' device='disk'><source file='/nonexistent/p1/by-path.raw'/>
        <target dev='vdb'/></disk>
      <disk type='file' device='disk'><source file='/elsewhere/overlay.qcow2'/>
        <backingStore type='file'><format type='raw'/>
          <source file='/nonexistent/p1/chain-base.raw'/></backingStore>
        <target dev='vdc'/></disk>
      <disk type='file' device='disk'><source file='/nonexistent/p1//spelt.raw'/>
        <target dev='vdd'/></disk>
    </devices>
  </domain>
  <pool type='dir'>
    <name>p1</name>
    <uuid>11111111-2222-3333-4444-555555555555</uuid>
    <capacity>107374182400</capacity>
    <allocation>1073741824</allocation>
    <available>106300440576</available>
    <target><path>/nonexistent/p1</path></target>
    <volume type='file'><name>a.qcow2</name><capacity>1048576</capacity>
      <target><path>/nonexistent/p1/a.qcow2</path><format type='qcow2'/></target></volume>
    <volume type='file'><name>by-path.raw</name><capacity>1048576</capacity>
      <target><path>/nonexistent/p1/by-path.raw</path></target></volume>
    <volume type='file'><name>base.raw</name><capacity>1048576</capacity>
      <target><path>/nonexistent/p1/base.raw</path></target></volume>
    <volume type='file'><name>top.qcow2</name><capacity>1048576</capacity>
      <backingStore><path>/nonexistent/p1/base.raw</path><format type='raw'/></backingStore>
      <target><path>/nonexistent/p1/top.qcow2</path><format type='qcow2'/></target></volume>
    <volume type='file'><name>chain-base.raw</name><capacity>1048576</capacity>
      <target><path>/nonexistent/p1/chain-base.raw</path></target></volume>
    <volume type='file'><name>spelt.raw</name><capacity>1048576</capacity>
      <target><path>/nonexistent/p1/spelt.raw</path></target></volume>
    <volume type='file'><name>free.raw</name><capacity>1048576</capacity>
      <target><path>/nonexistent/p1/free.raw</path></target></volume>
  </pool>
  <pool type='logical'>
    <name>vg0</name>
    <source><name>vg0</name><device path='/dev/sdz1'/></source>
    <target><path>/dev/vg0</path></target>
  </pool>
</node>
"""


@pytest.fixture
def uri(tmp_path: Path) -> str:
    node = tmp_path / "node.xml"
    node.write_text(NODE)
    return f"test://{node}"


def pk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False,
                          env={**os.environ, "LC_ALL": "C.UTF-8"})


@pytest.mark.parametrize("vol", ["a.qcow2", "by-path.raw", "/nonexistent/p1/a.qcow2",
                                 "chain-base.raw", "spelt.raw"])
def test_a_running_guests_disk_is_not_deleted(uri, vol):
    r = pk("-c", uri, "vol-delete", vol, *(["p1"] if not vol.startswith("/") else []))
    assert r.returncode == 1 and "disk of the running guest 'guest1'" in r.stderr, r


@pytest.mark.parametrize(("verb", "extra", "said"), [
    ("vol-wipe", [], "before you wipe it"),
    ("vol-resize", ["2M"], "before you resize it (or resize it live: virsh blockresize)"),
    ("vol-upload", ["/dev/null"], "before you upload into it")])
def test_a_running_guests_disk_is_not_wiped_resized_or_written(uri, verb, extra, said):
    argv = [verb, "a.qcow2", *extra, "p1"] if verb != "vol-upload" else \
        [verb, "a.qcow2", extra[0], "--pool", "p1"]
    r = pk("-c", uri, *argv)
    assert r.returncode == 1 and "disk of the running guest 'guest1'" in r.stderr, r
    assert said in r.stderr


def test_an_overlays_base_is_not_deleted_but_a_free_volume_is(uri):
    r = pk("-c", uri, "vol-delete", "base.raw", "p1")
    assert r.returncode == 1, r
    assert "backing store of 'top.qcow2' in pool 'p1'; delete that overlay first" in r.stderr
    r = pk("-c", uri, "vol-delete", "free.raw", "p1")
    assert (r.returncode, r.stdout) == (0, "Vol free.raw deleted\n"), r


def test_a_pool_whose_delete_erases_it_needs_force(uri):
    r = pk("-c", uri, "pool-delete", "vg0")
    assert r.returncode == 1, r
    assert "erases everything in it" in r.stderr and "--force" in r.stderr
    forced = pk("-c", uri, "pool-delete", "vg0", "--force")  # handed to libvirt now
    assert "erases everything in it" not in forced.stderr, forced


def test_an_empty_uri_is_refused(uri):
    for args in (["-c", ""], ["--connect="]):
        r = pk(*args, "pool-list")
        assert r.returncode == 1 and "-c needs a URI" in r.stderr, r


def test_ctrl_c_in_a_call_does_not_wait_for_its_deadline():
    from backends.libvirt_conn import Connection

    conn = Connection("test:///default", timeout=30)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        conn.call(lambda: time.sleep(3), "sleeping")
    started = time.monotonic()
    conn.close()  # the worker is still in the sleep: not waited for
    assert time.monotonic() - started < 1.0
    with pytest.raises(PoolkeeperError, match="interrupted"):
        conn.call(lambda: None, "after")


def test_on_this_host_a_guests_disk_is_known_by_identity_not_spelling(tmp_path):
    """The guest names the file through a symlink; the volume by its real path: on a
    connection to this host they are compared as files."""
    real = tmp_path / "real.raw"
    real.write_bytes(b"\0" * 4096)
    (tmp_path / "link.raw").symlink_to(real)
    node = tmp_path / "node.xml"
    node.write_text(f"""<node>
  <domain type='test'><name>g</name><memory>1048576</memory><os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><source file='{tmp_path}/link.raw'/>
      <target dev='vda'/></disk></devices></domain>
  <pool type='dir'><name>p</name><target><path>{tmp_path}</path></target>
    <volume type='file'><name>real.raw</name><capacity>4096</capacity>
      <target><path>{real}</path></target></volume></pool>
</node>
""")
    r = pk("-c", f"test://{node}", "vol-delete", "real.raw", "p")
    assert r.returncode == 1 and "disk of the running guest 'g'" in r.stderr, r
