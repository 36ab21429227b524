"""The CLI over a libvirt connection against virsh on the same connection: fresh processes.

A private libvirtd (tests/libvirtd.py: session mode as user nobody, its files in the
bench's temp dir, stopped by PID after) has a running dir pool `bench` of N volumes
(refresh.py's: half sparse raw, half qcow2) and an empty dir pool `empty`. Every figure is
a fresh process against the same URI, timed from the spawn to its exit with the output
read, best of R, the two sides taking turns so that both see the same load:

- `poolkeeper -c URI vol-list bench --details` vs `virsh -c URI vol-list bench --details`.
  Target (issue 17): no slower (<= 1x).
- `vol-list bench` (names and paths) both sides. No target.
- Both on the empty pool: the fixed cost (start-up, imports, connecting) each side pays.

Both outputs are compared first (they must be the same bytes). Then where the time goes,
in this process on one open connection through the binding (best of R each): the list
call, one XMLDesc per volume (what poolkeeper does for either listing), the same calls
from 4 threads at once (a possible plan: libvirt's client pipelines them), info + path per
volume (what virsh does with --details), path per volume (virsh without it), and
poolkeeper's parsing of the XML it got. `--ssh` runs the same through `qemu+ssh://` to an
sshd of the bench's own on 127.0.0.1 (tests/sshd.py). Needs root, libvirt-daemon and
libvirt-python (and openssh-server for --ssh). The last line is the --details ratio.

    .venv/bin/python bench/connect.py [--quick] [--volumes N] [--runs R] [--ssh] [--dir PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import (  # noqa: E402
    best_of,
    compile_bytecode,
    fresh_run,
    libvirt_missing,
    load_note,
    machine,
    run_quiet,
    work_dir,
)
from refresh import make_pool  # noqa: E402
from start import poolkeeper_cmd  # noqa: E402

from tests.libvirtd import private_libvirtd  # noqa: E402
from tests.sshd import private_sshd, sshd_missing  # noqa: E402

ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
THREADS = 4  # for the parallel-calls figure: libvirtd's default min_workers is 5


def interleaved(runs: int, commands: dict[str, list[str]]) -> dict[str, float]:
    """Best of `runs` fresh processes for each command, run in turn round by round."""
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(runs):
        for key, argv in commands.items():
            best[key] = min(best[key], fresh_run(argv, ENV))
    return best


@contextlib.contextmanager
def endpoint(work: Path, ssh: bool) -> Iterator[str]:
    """The URI of a private libvirtd: its socket, or through a private sshd with `ssh`."""
    with private_libvirtd(work) as daemon:
        if not ssh:
            yield daemon.uri
            return
        socket = daemon.uri.partition("?socket=")[2]
        with private_sshd(work / "ssh") as sshd:
            yield sshd.uri("/session", socket=socket)


def parallel_xml(vols: list[Any]) -> list[str]:
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(lambda v: v.XMLDesc(0), vols))


def where_the_time_goes(uri: str, pool_name: str, runs: int) -> list[tuple[str, float]]:
    """The RPCs each side makes, timed in this process on one connection."""
    import libvirt

    from backends.libvirt_controller import volume_from_xml

    libvirt.registerErrorHandler(lambda *_: None, None)
    conn = libvirt.open(uri)
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        vols: list[Any] = pool.listAllVolumes(0)
        xmls = [v.XMLDesc(0) for v in vols]
        steps: list[tuple[str, Callable[[], object]]] = [
            ("connect + close", lambda: libvirt.open(uri).close()),
            ("listAllVolumes (one RPC)", lambda: pool.listAllVolumes(0)),
            ("XMLDesc per volume (poolkeeper, either listing)",
             lambda: [v.XMLDesc(0) for v in vols]),
            (f"the same from {THREADS} threads on the connection (libvirt answers calls "
             "in parallel; not what poolkeeper does yet)",
             lambda: parallel_xml(vols)),
            ("info + path per volume (virsh --details)",
             lambda: [(v.info(), v.path()) for v in vols]),
            ("path per volume (virsh without --details)", lambda: [v.path() for v in vols]),
            ("poolkeeper's parse of every XML (lxml, volume_from_xml)",
             lambda: [volume_from_xml(x) for x in xmls]),
        ]
        return [(what, best_of(runs, fn)) for what, fn in steps]
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 volumes, 3 runs")
    parser.add_argument("--volumes", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--ssh", action="store_true",
                        help="through qemu+ssh:// (a private sshd on 127.0.0.1)")
    parser.add_argument("--dir", help="where to build the pools (default: a temp dir)")
    args = parser.parse_args()
    missing = libvirt_missing() or (sshd_missing() if args.ssh else None)
    if missing is not None:
        print(f"bench/connect.py: cannot run here: {missing}", file=sys.stderr)
        return 1
    volumes = args.volumes or (1_000 if args.quick else 10_000)
    runs = args.runs or (3 if args.quick else 5)
    compile_bytecode()
    loads = [os.getloadavg()[0]]

    with work_dir(args.dir) as work:
        images = work / "images"
        print(f"building {volumes} volumes in {images} ...", flush=True)
        make_pool(images, volumes)
        (work / "empty").mkdir()
        with endpoint(work, args.ssh) as uri:
            virsh = ["virsh", "-c", uri]
            pk = [*poolkeeper_cmd(), "-c", uri]
            for name, path in (("bench", images), ("empty", work / "empty")):
                run_quiet([*virsh, "pool-define-as", name, "dir", "--target", str(path)],
                          env=ENV)
                started = time.perf_counter()
                run_quiet([*virsh, "pool-start", name], env=ENV)
                if name == "bench":
                    print(f"libvirt's pool-start (its refresh): "
                          f"{time.perf_counter() - started:.2f} s", flush=True)
            same = {}
            for extra in (["--details"], []):
                ours = run_quiet([*pk, "vol-list", "bench", *extra], env=ENV).stdout
                theirs = run_quiet([*virsh, "vol-list", "bench", *extra], env=ENV).stdout
                same[" ".join(extra)] = ours == theirs
                assert len(theirs.splitlines()) == volumes + 3, theirs[-300:]
            times = interleaved(runs, {
                "pk details": [*pk, "vol-list", "bench", "--details"],
                "virsh details": [*virsh, "vol-list", "bench", "--details"],
                "pk names": [*pk, "vol-list", "bench"],
                "virsh names": [*virsh, "vol-list", "bench"],
                "pk empty": [*pk, "vol-list", "empty", "--details"],
                "virsh empty": [*virsh, "vol-list", "empty", "--details"],
            })
            loads.append(os.getloadavg()[0])
            inside = where_the_time_goes(uri, "bench", runs)
            loads.append(os.getloadavg()[0])

    link = "qemu+ssh:// (private sshd, 127.0.0.1) to " if args.ssh else ""
    print(f"machine: {machine()}")
    print(f"peer: virsh {run_quiet(['virsh', '--version']).stdout.strip()} on the same "
          f"URI: {link}a private libvirtd's socket")
    print(f"best of {runs} fresh processes each, taking turns; {load_note()} "
          f"(1-min load at start/after the CLI runs/end: "
          f"{', '.join(f'{x:.2f}' for x in loads)})")
    rows = [
        (f"vol-list --details, {volumes:,} volumes", "pk details", "virsh details", 1.0),
        (f"vol-list (names and paths), {volumes:,} volumes", "pk names", "virsh names", None),
        ("vol-list --details, empty pool (the fixed cost)", "pk empty", "virsh empty", None),
    ]
    for what, ours, theirs, target in rows:
        ratio = times[ours] / times[theirs]
        verdict = "" if target is None else \
            f"; target <= {target:.1f}x: {'ok' if ratio <= target else 'MISSED'}"
        print(f"{what}: poolkeeper {times[ours] * 1000:.1f} ms; virsh "
              f"{times[theirs] * 1000:.1f} ms; ratio {ratio:.2f}x{verdict}")
    for key, ok in same.items():
        print(f"vol-list {key or '(no flags)'}: output the same as virsh's: "
              f"{'yes' if ok else 'NO'}")
    for side in ("pk", "virsh"):
        per = (times[f"{side} details"] - times[f"{side} empty"]) / volumes * 1e6
        print(f"{side} --details per volume, beyond the empty pool's cost: {per:.1f} us")
    print(f"where the time goes (this process, one connection, {volumes:,} volumes, "
          f"best of {runs}):")
    for what, took in inside:
        print(f"  {what}: {took * 1000:.1f} ms")
    print(f"ratio poolkeeper/virsh vol-list --details: "
          f"{times['pk details'] / times['virsh details']:.2f}x  (target 1.00x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
