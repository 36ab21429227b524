"""Closing a host's controller mid-download (the TUI's q, SIGHUP: Fleet.close) and then
ending the process leaves no half-written file: the cancelled download gets a grace to
stop and remove the file it made (its job runs on a daemon thread, which the process does
not wait for). A private libvirtd (tests/libvirtd.py) as the other host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.test_connect_libvirtd import ENV, REPO, Host

CHILD = """
import os, sys, time
from backends.libvirt_host import LibvirtHostController
ctl = LibvirtHostController({uri!r}, "t")
job = ctl.download_volume("rp@t", "big.img", {out!r})
while not os.path.exists({out!r}) or os.path.getsize({out!r}) < (64 << 20):
    time.sleep(0.01)
ctl.close()
print("closed:", job.state, flush=True)
"""


def test_a_download_cut_by_close_leaves_no_partial_file(host: Host, tmp_path: Path) -> None:
    target = host.pools / "closepool"
    for args in (["pool-define-as", "closepool", "dir", "--target", str(target)],
                 ["pool-build", "closepool"], ["pool-start", "closepool"],
                 ["vol-create-as", "closepool", "big.img", "2G"]):
        host.virsh(*args)
    try:
        out = tmp_path / "partial.img"
        child = CHILD.format(uri=host.uri, out=str(out)).replace("rp@t", "closepool@t")
        began = time.monotonic()
        r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                           env=ENV, cwd=REPO, timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "closed: cancelled\n"
        assert time.monotonic() - began < 20
        assert not out.exists()  # removed by the cancelled job before the process ended
        assert not any(name.startswith(".poolkeeper") for name in os.listdir(tmp_path))
    finally:
        for verb in ("pool-destroy", "pool-delete", "pool-undefine"):
            subprocess.run(["virsh", "-c", host.uri, verb, "closepool"], capture_output=True,
                           check=False, timeout=60, env=ENV)
