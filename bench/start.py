"""Start-up to a listed 10,000-volume dir pool: poolkeeper (CLI and TUI, fresh processes)
against libvirt's pool-start of the same pool on a private libvirtd.

The pool is the one bench/refresh.py builds (5,000 sparse raw files, 5,000 qcow2).

- poolkeeper CLI: `poolkeeper --root R pool-start bench` then `poolkeeper --root R vol-list
  bench --details`, two fresh processes, as a shell script would run them.
- poolkeeper TUI: a fresh process opens the app (headless, 160x50) with the pool active;
  timed from just before the spawn to the end of the screen refresh that shows the first
  volume's row (bench/paint.py; the clock is CLOCK_MONOTONIC, shared by the processes).
- virsh: `virsh pool-start bench` then `virsh vol-list bench --details`, fresh processes
  against the bench's own libvirtd (session mode as user nobody, all its files in the
  temp dir, stopped by PID after).
- libvirt API: virStoragePoolCreate (start + refresh) + listAllVolumes + GetInfo on each
  volume, on one open connection (no process start at all: the best libvirt can do).

Between runs the pool is stopped again (untimed). Warm: best of R runs; cold: `sync; echo 3
> /proc/sys/vm/drop_caches` (as root) before each run, which also makes Python, Textual,
virsh and libvirt's own files cold. The last line is the ratio poolkeeper CLI/virsh (warm).

    .venv/bin/python bench/start.py [--quick] [--volumes N] [--runs R] [--cold-runs R]
                                    [--dir PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import (  # noqa: E402
    can_drop_caches,
    drop_caches,
    libvirt_missing,
    load_note,
    private_libvirtd,
    run_quiet,
    work_dir,
)
from refresh import make_pool  # noqa: E402

from backends.controller import StorageController  # noqa: E402
from backends.model import PoolDef, PoolTarget  # noqa: E402

TUI_SIZE = (160, 50)


def poolkeeper_cmd() -> list[str]:
    """The console script `make` installs next to this Python, else the module."""
    script = Path(sys.executable).parent / "poolkeeper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def make_root(root: Path, images: Path) -> None:
    """A state root with one inactive dir pool 'bench' (and no default pool)."""
    with StorageController(root) as ctl:
        if "default" in ctl.pool_names():
            with contextlib.suppress(Exception):
                ctl.stop_pool("default")
            ctl.undefine_pool("default")
        ctl.define_pool_def(PoolDef(type="dir", name="bench",
                                    target=PoolTarget(path=str(images))))


class Poolkeeper:
    def __init__(self, root: Path, volumes: int, first: str) -> None:
        self.pk = [*poolkeeper_cmd(), "--root", str(root)]
        self.root, self.volumes, self.first = root, volumes, first

    def stop(self) -> None:
        proc = subprocess.run([*self.pk, "pool-destroy", "bench"], capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0 and "is not active" not in proc.stderr:
            raise RuntimeError(f"pool-destroy failed: {proc.stderr.strip()}")

    def start(self) -> None:
        run_quiet([*self.pk, "pool-start", "bench"])

    def cli(self) -> None:
        self.start()
        out = run_quiet([*self.pk, "vol-list", "bench", "--details"]).stdout
        if out.count("\n") < self.volumes:
            raise RuntimeError(f"vol-list printed {out.count(chr(10))} lines")

    def tui(self) -> float:
        """Seconds from spawn to the first paint with rows (the pool is active)."""
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--tui-worker", str(self.root), "--t0", repr(t0),
             "--expect", self.first],
            capture_output=True, text=True, check=False, timeout=300,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"TUI worker failed: {proc.stderr[-3000:]}")
        return float(proc.stdout.strip().splitlines()[-1])


class Libvirt:
    def __init__(self, virt: Any, images: Path, volumes: int) -> None:
        self.virt, self.volumes = virt, volumes
        self.pool = virt.define_dir_pool("bench", images)

    def stop(self) -> None:
        if self.pool.isActive():
            self.pool.destroy()

    def api(self) -> None:
        self.pool.create(0)
        rows = [(v.name(), *v.info()) for v in self.pool.listAllVolumes(0)]
        if len(rows) != self.volumes:
            raise RuntimeError(f"libvirt listed {len(rows)} volumes")

    def virsh(self) -> None:
        self.virt.virsh("pool-start", "bench")
        out = self.virt.virsh("vol-list", "bench", "--details").stdout
        if out.count("\n") < self.volumes:
            raise RuntimeError(f"virsh vol-list printed {out.count(chr(10))} lines")


def measure(runs: int, fn: Callable[[], Any], stop: Callable[[], None], cold: bool,
            returns_time: bool = False) -> float:
    """Best of `runs`; the pool is stopped before each (untimed), caches dropped if cold."""
    best = float("inf")
    for _ in range(runs):
        stop()
        if cold:
            drop_caches()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, result if returns_time else time.perf_counter() - t0)
    return best


def measure_tui(runs: int, pk: Poolkeeper, cold: bool) -> float:
    def before() -> None:
        pk.stop()
        pk.start()

    return measure(runs, pk.tui, before, cold, returns_time=True)


async def tui_worker(root: str, t0: float, expect: str) -> float:
    """In the fresh process: open the app and return the monotonic time of the paint."""
    import paint

    from tui.app import PoolkeeperApp

    ctl = StorageController(root)
    try:
        app = PoolkeeperApp(ctl)
        async with app.run_test(size=TUI_SIZE) as pilot:
            return t0 + await paint.settle(pilot, t0, lambda: expect, limit=240.0)
    finally:
        ctl.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 volumes, one run each")
    parser.add_argument("--volumes", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--cold-runs", type=int)
    parser.add_argument("--dir", help="where to build the pool (default: a temp dir)")
    parser.add_argument("--tui-worker", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--expect", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tui_worker:
        painted = asyncio.run(tui_worker(args.tui_worker, args.t0, args.expect))
        print(painted - args.t0)
        return 0
    volumes = args.volumes or (1_000 if args.quick else 10_000)
    runs = args.runs or (1 if args.quick else 5)
    cold_runs = args.cold_runs or (1 if args.quick else 3)
    no_libvirt = libvirt_missing() or (None if shutil.which("virsh") else "virsh is missing")
    cold_ok = can_drop_caches()

    results: dict[str, tuple[float, float | None]] = {}
    with work_dir(args.dir) as work, contextlib.ExitStack() as stack:
        images = work / "images"
        print(f"building {volumes} volumes in {images} ...", flush=True)
        make_pool(images, volumes)
        make_root(work / "state", images)
        first = min(p.name for p in images.iterdir())
        pk = Poolkeeper(work / "state", volumes, first)
        contenders: list[tuple[str, Callable[[bool], float]]] = [
            ("poolkeeper CLI pool-start + vol-list",
             lambda cold: measure(cold_runs if cold else runs, pk.cli, pk.stop, cold)),
            ("poolkeeper TUI to first paint",
             lambda cold: measure_tui(cold_runs if cold else runs, pk, cold)),
        ]
        if no_libvirt is None:
            lv = Libvirt(stack.enter_context(private_libvirtd(work)), images, volumes)
            contenders += [
                ("virsh pool-start + vol-list",
                 lambda cold: measure(cold_runs if cold else runs, lv.virsh, lv.stop, cold)),
                ("libvirt API create+listAll+info",
                 lambda cold: measure(cold_runs if cold else runs, lv.api, lv.stop, cold)),
            ]
            lv.api()  # one untimed pass each: checks, and warms what a first run pays for
            lv.stop()
        pk.cli()
        pk.stop()
        for label, fn in contenders:
            print(f"  {label} ...", flush=True)
            results[label] = (fn(False), fn(True) if cold_ok else None)
        pk.stop()
        if no_libvirt is None:
            lv.stop()

    print(f"{volumes:,} volumes (dir pool); best of {runs} warm runs, {cold_runs} cold "
          f"(drop_caches before each); {load_note()}")
    print(f"{'':40}{'warm (s)':>10}{'cold (s)':>10}")
    for label, (warm, cold) in results.items():
        cold_cell = f"{cold:10.3f}" if cold is not None else f"{'-':>10}"
        print(f"{label:40}{warm:10.3f}{cold_cell}")
    if not cold_ok:
        print("cold cache: not measured (dropping the page cache needs root)")
    if no_libvirt:
        print(f"libvirt: not measured: {no_libvirt}")
        return 0
    ours = results["poolkeeper CLI pool-start + vol-list"]
    virsh = results["virsh pool-start + vol-list"]
    api = results["libvirt API create+listAll+info"]
    tui = results["poolkeeper TUI to first paint"]
    print(f"ratio poolkeeper TUI first paint/libvirt API (warm): {tui[0] / api[0]:.2f}x")
    print(f"ratio poolkeeper CLI/libvirt API (warm): {ours[0] / api[0]:.2f}x")
    if ours[1] is not None and virsh[1] is not None:
        print(f"ratio poolkeeper CLI/virsh (cold): {ours[1] / virsh[1]:.2f}x")
    print(f"ratio poolkeeper CLI/virsh (warm): {ours[0] / virsh[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
