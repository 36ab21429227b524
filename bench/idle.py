"""An idle TUI on a big running dir pool while another process writes on its filesystem.

A fresh `poolkeeper` TUI process runs in a real terminal (its own tmux server:
tests/termdriver.py) on a state root with one running dir pool of N volumes (sparse
empty files). Another process appends 4 KiB to a file on the same filesystem, outside the
pool, every 100 ms (and fsyncs it, so the free block count really changes). Nobody
touches the pool itself: whatever the TUI does meanwhile is the live monitor's work.

After the pool's rows are on screen and a warm-up (the monitor's first full read of the
pool, once per process), the TUI's process is sampled with psutil for M minutes: CPU
time over wall time (% of one core) and RSS at the start and the end (and each minute).
Targets: <= 2 % of a core, RSS flat.

The peer (--peer REF, opt-in) is the same bench on poolkeeper as it was at git ref REF
(e.g. the commit before the change-driven monitor), exported to a temp dir and run the
same way.

    .venv/bin/python bench/idle.py [--quick] [--minutes M] [--volumes N] [--warmup S]
                                   [--peer REF] [--dir PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import ROOT, load_note, work_dir  # noqa: E402

from backends.controller import StorageController  # noqa: E402
from backends.model import PoolDef, PoolTarget  # noqa: E402
from tests.termdriver import Terminal, have_tmux  # noqa: E402

MiB = 1 << 20
TUI_SIZE = (160, 50)
WRITER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
block = b"w" * 4096
while True:
    os.write(fd, block)
    os.fsync(fd)
    if os.fstat(fd).st_size > (64 << 20):
        os.ftruncate(fd, 0)
    time.sleep(0.1)
"""


def make_root(state: Path, images: Path, volumes: int) -> None:
    """A state root with one running dir pool 'bench' of `volumes` empty files."""
    images.mkdir()
    for i in range(volumes):
        os.close(os.open(images / f"vol{i:06}.img", os.O_CREAT | os.O_WRONLY, 0o600))
    with StorageController(state, create_default=False) as ctl:
        ctl.define_pool_def(PoolDef(type="dir", name="bench",
                                    target=PoolTarget(path=str(images))))
        ctl.start_pool("bench")
        ctl.store.mark_initialized()  # no default pool: "bench" is the one shown


@contextlib.contextmanager
def writer(path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The other process: appends to `path` every 100 ms; stopped by its pid on exit."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def exported(ref: str, base: Path) -> Iterator[Path]:
    """The repository as it was at git ref `ref`, in a temp dir (the peer's code)."""
    dest = base / f"peer-{ref.replace('/', '_')}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    yield dest


def measure(code: Path, work: Path, state: Path, first: str, minutes: float,
            warmup: float) -> dict[str, float]:
    import psutil

    with Terminal(work, size=TUI_SIZE) as term:
        term.start([sys.executable, "-m", "tui", "--root", str(state)],
                   env={"PYTHONPATH": str(code)}, cwd=code)
        if not term.wait_for(first, timeout=600):
            raise RuntimeError(f"the TUI never showed {first}:\n{term.screen()}")
        proc = psutil.Process(term.app_pid)
        time.sleep(warmup)
        rss_start = proc.memory_info().rss
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        end = t0 + minutes * 60
        cpu_prev, t_prev = cpu0, t0
        while (now := time.monotonic()) < end:
            time.sleep(min(60.0, end - now))
            cpu, t = sum(proc.cpu_times()[:2]), time.monotonic()
            share = 100 * (cpu - cpu_prev) / (t - t_prev)
            print(f"    at {(t - t0) / 60:.1f} min: CPU {share:.2f} % of a core, "
                  f"RSS {proc.memory_info().rss / MiB:.0f} MiB", flush=True)
            cpu_prev, t_prev = cpu, t
        cpu1, t1 = sum(proc.cpu_times()[:2]), time.monotonic()
        rss_end = proc.memory_info().rss
        if not term.alive():
            raise RuntimeError("the TUI ended during the run")
        term.keys("q")
        quit_at = time.monotonic()
        status = term.wait_exit(60)
        return {"cpu": 100 * (cpu1 - cpu0) / (t1 - t0), "rss_start": rss_start / MiB,
                "rss_end": rss_end / MiB, "quit": time.monotonic() - quit_at,
                "status": -1 if status is None else status}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 minute after a 10 s warm-up, 20,000 volumes")
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--volumes", type=int)
    parser.add_argument("--warmup", type=float,
                        help="seconds after the rows show before sampling (30; --quick 10)")
    parser.add_argument("--peer", metavar="REF",
                        help="also run poolkeeper as of this git ref (the monitor as it was)")
    parser.add_argument("--dir", help="where to build the pool (default: a temp dir)")
    args = parser.parse_args()
    if not have_tmux():
        print("idle: not measured: tmux is missing (make test installs it)")
        return 0
    minutes = args.minutes or (1.0 if args.quick else 10.0)
    warmup = args.warmup if args.warmup is not None else (10.0 if args.quick else 30.0)
    volumes = args.volumes or (20_000 if args.quick else 100_000)
    with work_dir(args.dir) as work:
        state, images = work / "state", work / "images"
        print(f"building {volumes:,} volumes in {images} ...", flush=True)
        make_root(state, images, volumes)
        first = "vol000000.img"
        runs: list[tuple[str, Path]] = [("poolkeeper", ROOT)]
        with contextlib.ExitStack() as stack:
            if args.peer:
                runs.append((f"poolkeeper at {args.peer}", stack.enter_context(
                    exported(args.peer, work))))
            stack.enter_context(writer(work / "elsewhere.log"))
            results = {}
            for label, code in runs:
                print(f"  {label}: {minutes:g} min after a {warmup:g} s warm-up ...",
                      flush=True)
                results[label] = measure(code, work, state, first, minutes, warmup)
    print(f"idle TUI ({TUI_SIZE[0]}x{TUI_SIZE[1]}, tmux) on a running {volumes:,}-volume dir "
          f"pool, another process appending 4 KiB + fsync every 100 ms on the same "
          f"filesystem; {minutes:g} min sampled; {load_note()}")
    print(f"{'':34}{'CPU % of a core':>16}{'RSS start':>11}{'RSS end':>9}{'q to exit':>11}")
    for label, r in results.items():
        print(f"{label:34}{r['cpu']:16.2f}{r['rss_start']:9.0f} M{r['rss_end']:7.0f} M"
              f"{r['quit']:9.2f} s" + ("" if r["status"] == 0 else f" (status {r['status']:g})"))
    ours = results["poolkeeper"]
    print(f"target <= 2 % of a core: {'yes' if ours['cpu'] <= 2 else 'no'}; RSS grew "
          f"{ours['rss_end'] - ours['rss_start']:+.0f} MiB")
    if args.peer:
        peer = results[f"poolkeeper at {args.peer}"]
        print(f"ratio CPU poolkeeper/peer: {ours['cpu'] / max(peer['cpu'], 1e-9):.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
