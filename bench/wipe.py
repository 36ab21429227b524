"""Zero-wipe a volume: poolkeeper's controller wipe in a dir pool against dd and fallocate.

On a loop-mounted ext4 made for the bench (a sparse image under the temp dir):

- fully allocated: a 1 GiB raw file written with data, wiped with zeros by poolkeeper
  (O_DIRECT 1 MiB writes) against `dd if=/dev/zero of=FILE oflag=direct bs=1M count=1024
  conv=notrunc`. Both overwrite the same allocated blocks in place; each run ends with an
  fsync of the file (inside the time: poolkeeper fdatasyncs, so dd's output is fsynced too).
  Target: poolkeeper's throughput at least 0.9x dd's.
- sparse: a 1 GiB file with 100 MiB of scattered data; poolkeeper's zero wipe punches a
  hole over every extent of data (the size never changes, so a kill leaves the capacity as
  it was) against `fallocate --punch-hole --offset 0 --length 1G FILE` + fsync.
  Before every run the data is written back and synced (untimed).

After each wipe the file is checked to read as zeros (untimed). The last line is the
throughput ratio poolkeeper/dd.

    .venv/bin/python bench/wipe.py [--quick] [--runs R] [--dir PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import (  # noqa: E402
    GiB,
    MiB,
    can_use_loop_devices,
    fsync_path,
    load_note,
    loop_filesystem,
    run_quiet,
    timed,
    work_dir,
)

from backends.controller import StorageController  # noqa: E402
from backends.model import PoolDef, PoolTarget  # noqa: E402

TARGET = 0.9  # poolkeeper's throughput at least 0.9x dd's
PIECE = 64 * 1024


def fill(path: Path, size: int) -> None:
    """Write every byte (non-zero data), so the file is fully allocated and written."""
    block = random.Random(1).randbytes(MiB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for off in range(0, size, MiB):
            os.pwrite(fd, block[:min(MiB, size - off)], off)
        os.fsync(fd)
    finally:
        os.close(fd)


def scatter(path: Path, size: int, data: int) -> None:
    """A sparse file of `size` with `data` bytes in 64 KiB pieces at random places."""
    rng = random.Random(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for slot in rng.sample(range(size // PIECE), data // PIECE):
            os.pwrite(fd, rng.randbytes(PIECE), slot * PIECE)
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.sync()


def zero_hash(size: int) -> str:
    h = hashlib.sha256()
    zeros = bytes(MiB)
    for off in range(0, size, MiB):
        h.update(zeros[:min(MiB, size - off)])
    return h.hexdigest()


def check_zero(path: Path, size: int, expect: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MiB):
            h.update(chunk)
    if path.stat().st_size != size or h.hexdigest() != expect:
        raise RuntimeError(f"{path} does not read as {size} zero bytes after the wipe")


def best(runs: int, prepare: Callable[[], None], fn: Callable[[], object],
         check: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        prepare()
        times.append(timed(fn)[0])
        check()
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB files, one run")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--dir", help="where the loop image goes (default: a temp dir)")
    args = parser.parse_args()
    if not can_use_loop_devices():
        sys.exit("wipe.py needs root and loop devices (it makes its own filesystem)")
    runs = args.runs or (1 if args.quick else 5)
    size = 64 * MiB if args.quick else GiB
    sparse_data = size // 10 // PIECE * PIECE
    count = size // MiB

    with work_dir(args.dir) as work, contextlib.ExitStack() as stack:
        fs = stack.enter_context(loop_filesystem(work, "ext4", 4 * size // MiB))
        images = fs.mount / "images"
        images.mkdir()
        ctl = stack.enter_context(StorageController(work / "state", create_default=False))
        ctl.define_pool_def(PoolDef(type="dir", name="bench",
                                    target=PoolTarget(path=str(images))))
        ctl.start_pool("bench")
        full, sparse = images / "full.img", images / "sparse.img"
        fill(full, size)
        scatter(sparse, size, sparse_data)
        ctl.refresh_pool("bench")
        zeros = zero_hash(size)
        dd = ["dd", "if=/dev/zero", f"of={full}", "oflag=direct", "bs=1M", f"count={count}",
              "conv=notrunc", "status=none"]

        def wipe(name: str) -> None:
            ctl.wipe_volume("bench", name, "zero").wait()

        def run_dd() -> None:
            run_quiet(dd)
            fsync_path(full)

        def run_punch() -> None:
            run_quiet(["fallocate", "--punch-hole", "--offset", "0", "--length", str(size),
                       str(sparse)])
            fsync_path(sparse)

        def refill() -> None:
            fill(full, size)
            os.sync()

        def rescatter() -> None:
            scatter(sparse, size, sparse_data)
            ctl.refresh_pool("bench")  # poolkeeper sees the volume as it is now

        def full_zero() -> None:
            check_zero(full, size, zeros)

        def sparse_zero() -> None:
            check_zero(sparse, size, zeros)
            if sparse.stat().st_blocks:
                raise RuntimeError("the sparse wipe left blocks allocated")

        t_pk = best(runs, refill, lambda: wipe("full.img"), full_zero)
        t_dd = best(runs, refill, run_dd, full_zero)
        t_pk_sparse = best(runs, rescatter, lambda: wipe("sparse.img"), sparse_zero)
        t_punch = best(runs, rescatter, run_punch, sparse_zero)

    mib = size / MiB
    print(f"ext4 on a loop device; best of {runs} runs; {load_note()}")
    print(f"fully allocated {mib:.0f} MiB, zero wipe:")
    print(f"  poolkeeper wipe (zero)            {t_pk:7.3f} s  {mib / t_pk:8.0f} MiB/s")
    print(f"  dd oflag=direct bs=1M + fsync     {t_dd:7.3f} s  {mib / t_dd:8.0f} MiB/s")
    print(f"sparse {mib:.0f} MiB with {sparse_data / MiB:.0f} MiB of data, zero wipe:")
    print(f"  poolkeeper wipe (zero)            {t_pk_sparse * 1000:7.1f} ms")
    print(f"  fallocate --punch-hole            {t_punch * 1000:7.1f} ms")
    print(f"ratio poolkeeper/fallocate time (sparse): {t_pk_sparse / t_punch:.2f}x")
    ratio = t_dd / t_pk
    print(f"ratio poolkeeper/dd throughput: {ratio:.2f}x  "
          f"(target >= {TARGET:.2f}x: {'ok' if ratio >= TARGET else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
