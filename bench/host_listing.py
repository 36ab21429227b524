"""The TUI's listing of a libvirt host's pool (backends.libvirt_host) against virsh.

A private libvirtd (tests/libvirtd.py: session mode as user nobody, its files in the
bench's temp dir, stopped by PID after) has a running dir pool `bench` of N volumes
(refresh.py's: half sparse raw, half qcow2). LibvirtHostController lists it as the TUI
does (list_volumes: every row at once, pending; sizes and formats filled in behind, in
batches), timed in this process on one open connection:

- first rows: list_volumes returning N pending rows. Target (issue 17): <= 1 s.
- full listing: until every row is filled in (VolumesChanged events), against a fresh
  `virsh -c URI vol-list bench --details` on the same URI. Target: no slower (<= 1x).
- a pool_info asked every 50 ms during the fill: the longest it waited (the fill holds
  the connection for one batch at a time). No target.

The rounds take turns with virsh, so that both see the same load; best and median of R.
`--ssh` runs it through `qemu+ssh://` to an sshd of the bench's own on 127.0.0.1.
Needs root, libvirt-daemon and libvirt-python (and openssh-server for --ssh).

    .venv/bin/python bench/host_listing.py [--quick] [--volumes N] [--runs R] [--ssh]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import fresh_run, libvirt_missing, load_note, machine, run_quiet, work_dir  # noqa: E402
from connect import ENV, endpoint  # noqa: E402
from refresh import make_pool  # noqa: E402

from backends.events import Event, VolumesChanged  # noqa: E402
from backends.libvirt_host import LibvirtHostController  # noqa: E402
from tests.sshd import sshd_missing  # noqa: E402

POOL = "bench@b"


def one_listing(ctl: LibvirtHostController, volumes: int) -> tuple[float, float, float]:
    """(first rows, all filled, the longest pool_info during the fill), in seconds."""
    filled: set[str] = set()
    done = threading.Event()

    def count(event: Event) -> None:
        if isinstance(event, VolumesChanged) and event.pool == POOL:
            filled.update(event.changed)
            if len(filled) >= volumes:
                done.set()
    unsubscribe = ctl.subscribe(count)
    ctl.listing.forget(POOL)  # a first listing each round, as on first sight
    try:
        began = time.perf_counter()
        rows = ctl.list_volumes(POOL)
        first = time.perf_counter() - began
        assert len(rows) == volumes, len(rows)
        waited = 0.0
        while not done.wait(0.05):
            asked = time.perf_counter()
            ctl.pool_info(POOL)
            waited = max(waited, time.perf_counter() - asked)
        full = time.perf_counter() - began
    finally:
        unsubscribe()
    assert not any(v.pending for v in ctl.cached_volumes(POOL))
    return first, full, waited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 volumes, 3 runs")
    parser.add_argument("--volumes", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--ssh", action="store_true",
                        help="through qemu+ssh:// (a private sshd on 127.0.0.1)")
    parser.add_argument("--dir", help="where to build the pool (default: a temp dir)")
    args = parser.parse_args()
    missing = libvirt_missing() or (sshd_missing() if args.ssh else None)
    if missing is not None:
        print(f"bench/host_listing.py: cannot run here: {missing}", file=sys.stderr)
        return 1
    volumes = args.volumes or (1_000 if args.quick else 10_000)
    runs = args.runs or (3 if args.quick else 5)
    loads = [os.getloadavg()[0]]
    ours: list[tuple[float, float, float]] = []
    theirs: list[float] = []
    with work_dir(args.dir) as work:
        images = work / "images"
        print(f"building {volumes} volumes in {images} ...", flush=True)
        make_pool(images, volumes)
        with endpoint(work, args.ssh) as uri:
            virsh = ["virsh", "-c", uri]
            run_quiet([*virsh, "pool-define-as", "bench", "dir", "--target", str(images)],
                      env=ENV)
            run_quiet([*virsh, "pool-start", "bench"], env=ENV)
            ctl = LibvirtHostController(uri, "b")
            try:
                for _ in range(runs):
                    ours.append(one_listing(ctl, volumes))
                    theirs.append(fresh_run([*virsh, "vol-list", "bench", "--details"], ENV))
            finally:
                ctl.close()
            loads.append(os.getloadavg()[0])

    def figures(values: list[float]) -> str:
        return f"best {min(values):.3f} s, median {statistics.median(values):.3f} s"

    first = [o[0] for o in ours]
    full = [o[1] for o in ours]
    link = "qemu+ssh:// (private sshd, 127.0.0.1) to " if args.ssh else ""
    print(f"machine: {machine()}")
    print(f"peer: virsh {run_quiet(['virsh', '--version']).stdout.strip()} on the same "
          f"URI: {link}a private libvirtd's socket; {runs} rounds taking turns; "
          f"{load_note()} (1-min load at start/end: "
          f"{', '.join(f'{x:.2f}' for x in loads)})")
    print(f"first rows, {volumes:,} volumes: {figures(first)}; target <= 1 s: "
          f"{'ok' if statistics.median(first) <= 1.0 else 'MISSED'}")
    print(f"full listing: {figures(full)}; virsh vol-list --details (fresh process): "
          f"{figures(theirs)}")
    print(f"longest pool_info during a fill: {max(o[2] for o in ours) * 1000:.0f} ms")
    ratio = statistics.median(full) / statistics.median(theirs)
    print(f"ratio full listing/virsh --details (medians): {ratio:.2f}x  (target <= 1.00x: "
          f"{'ok' if ratio <= 1.0 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
