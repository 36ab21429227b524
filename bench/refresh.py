"""Refresh + list a dir pool of 10,000 volumes, against the floor of doing the I/O only.

The pool holds 5,000 sparse raw files and 5,000 qcow2 images. "ours" is a full
controller refresh plus reading every volume's name, format, capacity and
allocation; the floor is a bare loop that only scandirs, stats and reads 512 bytes
of every file. Budget: ours < 0.3 s and at most 2x the floor. The last line printed
is the ratio.

    .venv/bin/python bench/refresh.py [--volumes N] [--runs R] [--dir PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.controller import StorageController  # noqa: E402
from backends.model import PoolDef, PoolTarget  # noqa: E402


def make_pool(images: Path, count: int) -> None:
    images.mkdir(parents=True)
    template = images.parent / "template.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(template), "10G"], check=True)
    data = template.read_bytes()
    # The template's non-zero 4 KiB blocks: writing only those keeps every copy valid and sparse.
    blocks = [(off, data[off:off + 4096]) for off in range(0, len(data), 4096)
              if data[off:off + 4096].strip(b"\0")]
    for i in range(count // 2):
        with open(images / f"raw-{i:05d}.img", "wb") as fh:
            fh.truncate((i % 64 + 1) << 30)
    for i in range(count - count // 2):
        with open(images / f"disk-{i:05d}.qcow2", "wb") as fh:
            for off, block in blocks:
                fh.seek(off)
                fh.write(block)
            fh.truncate(len(data))
    template.unlink()


def floor(images: Path) -> int:
    """scandir + stat + read 512 bytes per file: the I/O any listing must do."""
    total = 0
    with os.scandir(images) as it:
        for entry in it:
            st = entry.stat()
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                total += len(os.read(fd, 512)) + st.st_size
            finally:
                os.close(fd)
    return total


def ours(ctl: StorageController) -> int:
    rows = [(v.name, v.format, v.capacity, v.allocation) for v in ctl.list_volumes("bench")]
    return len(rows)


def best_of(runs: int, fn, *args) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", help="where to build the pool (default: a temp dir)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="pk-bench-", dir=args.dir))
    try:
        images = work / "images"
        print(f"building {args.volumes} volumes in {images} ...", flush=True)
        make_pool(images, args.volumes)
        with StorageController(work / "state", create_default=False) as ctl:
            ctl.define_pool_def(PoolDef(type="dir", name="bench",
                                        target=PoolTarget(path=str(images))))
            ctl.start_pool("bench")
            listed = ours(ctl)
            assert listed == args.volumes, listed
            formats = {v.format for v in ctl.list_volumes("bench")}
            assert formats == {"raw", "qcow2"}, formats
            floor(images)  # warm the cache for both
            t_floor = best_of(args.runs, floor, images)
            t_ours = best_of(args.runs, ours, ctl)
        print(f"floor (scandir+stat+read 512 B): {t_floor:.3f} s")
        print(f"poolkeeper refresh + list:        {t_ours:.3f} s  (budget 0.300 s)")
        print(f"ratio poolkeeper/floor: {t_ours / t_floor:.2f}x  (budget 2.00x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
