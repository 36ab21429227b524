"""Header probe speed: probe_fd per file against the floor of the I/O alone.

Creates N images in a temporary directory (half sparse raw files, half copies of one qcow2
made by qemu-img) and times, per file, open + fstat + probe_fd + close ("probe") against
open + fstat + pread(512) + close ("floor"). Prints files/second for both, per kind and in
total; the last line is the ratio probe/floor time (1.0 = the probe costs nothing extra).

    .venv/bin/python bench/probe_speed.py [--files N] [--runs R] [--dir PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.imageprobe import probe_fd  # noqa: E402

OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY  # as the dir driver opens volumes


def make_images(root: Path, count: int) -> tuple[list[str], list[str]]:
    template = root / "template.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(template), "10G"], check=True)
    raws, qcows = [], []
    for i in range(count // 2):
        path = root / f"raw-{i:05d}.img"
        with open(path, "wb") as fh:
            fh.truncate((i % 64 + 1) << 30)  # sparse, 1..64 GiB: iso and dmg checks read holes
        raws.append(str(path))
    for i in range(count - count // 2):
        path = root / f"disk-{i:05d}.qcow2"
        shutil.copyfile(template, path)
        qcows.append(str(path))
    template.unlink()
    return raws, qcows


def probe_loop(paths: list[str]) -> int:
    n = 0
    for path in paths:
        fd = os.open(path, OPEN_FLAGS)
        try:
            n += probe_fd(fd, os.fstat(fd).st_size).format == "qcow2"
        finally:
            os.close(fd)
    return n


def floor_loop(paths: list[str]) -> int:
    n = 0
    for path in paths:
        fd = os.open(path, OPEN_FLAGS)
        try:
            os.fstat(fd)
            n += len(os.pread(fd, 512, 0))
        finally:
            os.close(fd)
    return n


def best(fn: Callable[[list[str]], int], paths: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(paths)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--dir", type=Path, help="where to make the images (default: a temp dir)")
    args = ap.parse_args()
    if shutil.which("qemu-img") is None:
        sys.exit("qemu-img is missing: apt-get install qemu-utils")
    parent = args.dir
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="probe-speed-", dir=parent))
    try:
        raws, qcows = make_images(root, args.files)
        both = raws + qcows
        assert probe_loop(qcows) == len(qcows) and probe_loop(raws) == 0  # and warms the cache
        floor_loop(both)
        print(f"{len(both)} files ({len(raws)} sparse raw, {len(qcows)} qcow2), best of "
              f"{args.runs} runs")
        ratio = 0.0
        for label, paths in (("raw", raws), ("qcow2", qcows), ("all", both)):
            t_probe = best(probe_loop, paths, args.runs)
            t_floor = best(floor_loop, paths, args.runs)
            ratio = t_probe / t_floor
            print(f"{label:>6}: probe {len(paths) / t_probe:10,.0f} files/s "
                  f"({t_probe / len(paths) * 1e6:5.1f} us/file)   floor "
                  f"{len(paths) / t_floor:10,.0f} files/s "
                  f"({t_floor / len(paths) * 1e6:5.1f} us/file)   ratio {ratio:.2f}")
        per_file = best(probe_loop, both, args.runs) / len(both)
        print(f"projected for 10,000 files: {per_file * 10_000:.3f} s (open+fstat+probe+close)")
        print(f"ratio probe/floor: {ratio:.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
