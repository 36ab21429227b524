"""Clone a sparse raw volume: poolkeeper's controller clone in a dir pool against
`cp --sparse=always` and `qemu-img convert -f raw -O raw`, on loop-mounted ext4, xfs, btrfs.

The source is a 2 GiB raw file holding 200 MiB of random data in 64 KiB pieces at random
places (a guest disk's scattered writes). Each filesystem is made for the bench on a loop
device (sparse image under the temp dir) and mounted, so the page cache and the filesystem
are the bench's own; the pool's directory is on it. Every run starts cold (`sync; echo 3 >
/proc/sys/vm/drop_caches` as root) with no earlier copy on disk; each tool's output is
fsynced inside its time (poolkeeper fsyncs what it writes, so the peers must too). Each
copy is checked after its run: same size, every data piece equal, and its allocation
shown (all three keep the holes).

- ext4 (no reflink): target poolkeeper <= 1.1x the time of `cp --sparse=always`.
- xfs and btrfs: the clone must be a reflink, so its time does not depend on the size:
  shown for the 2 GiB file, a 20 GiB one with the same 200 MiB of data and a 20 GiB one
  with 2000 MiB (10x the extents, which a reflink does have to share one by one). The
  method poolkeeper reports is checked to be "reflink"; the bench exits 1 if it is not.
  Whether the peers shared extents too is read from `filefrag -v` ("shared").

The last line is the ratio poolkeeper/cp on ext4 at 2 GiB.

    .venv/bin/python bench/clone.py [--quick] [--runs R] [--dir PATH] [--fs ext4,xfs,btrfs]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import (  # noqa: E402
    GiB,
    MiB,
    can_drop_caches,
    can_use_loop_devices,
    drop_caches,
    fsync_path,
    load_note,
    loop_filesystem,
    run_quiet,
    timed,
    work_dir,
)

from backends.controller import StorageController  # noqa: E402
from backends.model import PoolDef, PoolTarget  # noqa: E402

PIECE = 64 * 1024
TARGET_EXT4 = 1.1  # poolkeeper's time at most 1.1x cp's


class Case(NamedTuple):
    size: int  # bytes
    data: int  # bytes of data in it

    @property
    def label(self) -> str:
        return f"{_iec(self.size)}/{_iec(self.data)}"


def _iec(n: int) -> str:
    return f"{n // GiB}G" if n >= GiB and n % GiB == 0 else f"{n // MiB}M"


def make_source(path: Path, case: Case, seed: int) -> dict[int, bytes]:
    """A sparse file with random pieces at random places; returns {offset: piece}."""
    rng = random.Random(seed)
    slots = sorted(rng.sample(range(case.size // PIECE), case.data // PIECE))
    size = case.size
    pieces: dict[int, bytes] = {}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        for slot in slots:
            data = rng.randbytes(PIECE)
            os.pwrite(fd, data, slot * PIECE)
            pieces[slot * PIECE] = data
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return pieces


def verify(path: Path, size: int, pieces: dict[int, bytes]) -> int:
    """Raise unless `path` is a faithful copy; return its allocation in bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if st.st_size != size:
            raise RuntimeError(f"{path}: size {st.st_size}, expected {size}")
        for offset, data in pieces.items():
            if os.pread(fd, PIECE, offset) != data:
                raise RuntimeError(f"{path}: differs from the source at offset {offset}")
        return st.st_blocks * 512
    finally:
        os.close(fd)


def shares_extents(path: Path) -> bool:
    """filefrag -v flags a reflinked extent "shared"."""
    out = run_quiet(["filefrag", "-v", str(path)]).stdout
    return any("shared" in line for line in out.splitlines()[3:])


class Tools:
    """The three contenders, each making `dst` (a name in the pool) from `src`."""

    def __init__(self, ctl: StorageController, images: Path) -> None:
        self.ctl, self.images = ctl, images
        self.method = ""

    def poolkeeper(self, src: str, dst: str) -> None:
        self.method = self.ctl.clone_volume("bench", src, dst).wait()

    def cp(self, src: str, dst: str) -> None:
        run_quiet(["cp", "--sparse=always", str(self.images / src), str(self.images / dst)])
        fsync_path(self.images / dst)

    def qemu_img(self, src: str, dst: str) -> None:
        run_quiet(["qemu-img", "convert", "-f", "raw", "-O", "raw",
                   str(self.images / src), str(self.images / dst)])
        fsync_path(self.images / dst)


def measure(tools: Tools, fn: Callable[[str, str], None], src: str, size: int,
            pieces: dict[int, bytes], runs: int) -> tuple[float, int, bool, str]:
    """Best time of `runs` cold runs; allocation, shared extents and method of the copy."""
    best = float("inf")
    alloc, shared, method = 0, False, ""
    for _ in range(runs):
        dst = tools.images / "copy.img"
        with contextlib.suppress(FileNotFoundError):
            dst.unlink()
        if can_drop_caches():
            drop_caches()
        tools.method = ""
        best = min(best, timed(fn, src, dst.name)[0])
        alloc = verify(dst, size, pieces)
        shared = shares_extents(dst)
        method = tools.method
        dst.unlink()
    return best, alloc, shared, method


Results = dict[Case, dict[str, tuple[float, int, bool, str]]]


def run_fs(work: Path, fstype: str, cases: list[Case], fs_mib: int, runs: int) -> Results:
    results: Results = {}
    with contextlib.ExitStack() as stack:
        fs = stack.enter_context(loop_filesystem(work, fstype, fs_mib))
        images = fs.mount / "images"
        images.mkdir()
        ctl = stack.enter_context(
            StorageController(work / f"state-{fstype}", create_default=False))
        ctl.define_pool_def(PoolDef(type="dir", name="bench",
                                    target=PoolTarget(path=str(images))))
        ctl.start_pool("bench")
        tools = Tools(ctl, images)
        for n, case in enumerate(cases):
            src = f"src-{n}.img"
            print(f"  {fstype}: {case.label} ...", flush=True)
            pieces = make_source(images / src, case, seed=n)
            ctl.refresh_pool("bench")
            results[case] = {
                name: measure(tools, fn, src, case.size, pieces, runs)
                for name, fn in (("poolkeeper", tools.poolkeeper), ("cp", tools.cp),
                                 ("qemu-img", tools.qemu_img))
            }
            (images / src).unlink()
            ctl.refresh_pool("bench")
    return results


LABELS = {"poolkeeper": "poolkeeper clone", "cp": "cp --sparse=always",
          "qemu-img": "qemu-img convert -f raw -O raw"}


def report(fstype: str, results: Results) -> None:
    cases = list(results)
    print(f"{fstype} (seconds; file size/data):")
    print(f"  {'':32}" + "".join(f"{c.label:>12}" for c in cases)
          + "   shared extents / method")
    for name, label in LABELS.items():
        times = "".join(f"{results[c][name][0]:12.3f}" for c in cases)
        how = []
        for c in cases:
            _t, _alloc, shared, method = results[c][name]
            how.append(method if name == "poolkeeper" else ("shared" if shared else "copied"))
        print(f"  {label:32}{times}   {'/'.join(dict.fromkeys(how))}")
    print(f"  {'allocated MiB (all three)':32}" + "".join(
        f"{'/'.join(dict.fromkeys(str(results[c][n][1] // MiB) for n in LABELS)):>12}"
        for c in cases))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="64 MiB and 640 MiB files, one run (smoke test)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--dir", help="where the loop images go (default: a temp dir)")
    parser.add_argument("--fs", default="ext4,xfs,btrfs")
    args = parser.parse_args()
    if not can_use_loop_devices():
        sys.exit("clone.py needs root and loop devices (it makes its own filesystems)")
    runs = args.runs or (1 if args.quick else 3)
    unit = 32 * MiB if args.quick else GiB
    small = Case(2 * unit, 200 * unit // 1024)
    cases = [small, Case(20 * unit, 2000 * unit // 1024), Case(20 * unit, small.data)]
    fs_mib = 48 * unit // MiB  # a sparse image: holds the biggest source and one copy

    all_results = {}
    with work_dir(args.dir) as work:
        for fstype in args.fs.split(","):
            all_results[fstype] = run_fs(work, fstype, cases[:1] if fstype == "ext4" else cases,
                                         fs_mib, runs)

    cold = "cold cache" if can_drop_caches() else "page cache NOT dropped (needs root)"
    print(f"random data in {PIECE // 1024} KiB pieces at random places; best of {runs} runs, "
          f"{cold}, output fsynced; {load_note()}")
    failed = []
    for fstype, results in all_results.items():
        report(fstype, results)
        if fstype == "ext4":
            continue
        for case, row in results.items():
            method = row["poolkeeper"][3]
            if method != "reflink":
                failed.append(f"{fstype} {case.label}")
        print(f"  check: every poolkeeper clone on {fstype} was a reflink: "
              f"{'FAILED' if any(f.startswith(fstype) for f in failed) else 'ok'}")
        t = {c: row["poolkeeper"][0] for c, row in results.items()}
        print(f"  poolkeeper time at 10x the size: {t[cases[2]] / t[small]:.2f}x with the same "
              f"data, {t[cases[1]] / t[small]:.2f}x with 10x the data (and extents)")
    if failed:
        print(f"FAILED: not a reflink on {', '.join(failed)}")
    if "ext4" in all_results:
        row = all_results["ext4"][small]
        ratio = row["poolkeeper"][0] / row["cp"][0]
        print(f"ratio poolkeeper/qemu-img convert (ext4, {small.label}): "
              f"{row['poolkeeper'][0] / row['qemu-img'][0]:.2f}x")
        print(f"ratio poolkeeper/cp --sparse=always (ext4, {small.label}): {ratio:.2f}x  "
              f"(target <= {TARGET_EXT4:.2f}x: {'ok' if ratio <= TARGET_EXT4 else 'MISSED'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
