"""Probe image headers: poolkeeper's probe against `qemu-img info --output=json`, per file,
for every format both recognise and qemu-img can create, checking that they agree.

For each format, a handful of templates is made with `qemu-img create` (several sizes,
some odd, and the format's variants: qcow2 v2/v3, a 2 MiB cluster, a backing name; vmdk
streamOptimized; vdi static; vpc fixed and force_size; ...), then copied (data segments
only) into 1,000 files per format. Timed per file:

- poolkeeper: open + fstat + probe_fd + close, in this process (best of R runs);
- qemu-img: one `qemu-img info --output=json FILE` process per file (one pass).

Then, for every file, the two must agree on the format and the virtual capacity
(poolkeeper's capacity, or the file size where the header has none, as the dir pool
lists it). Names differ for two formats: poolkeeper (like libvirt) says "ploop" for
qemu's "parallels", and "raw" with encryption "luks" for qemu's "luks". vhdx is made
too, though the probe does not recognise it (nor does libvirt 9.0's): those files are
listed as raw, and the bench shows it apart rather than as disagreements.
Target: poolkeeper at least 100x faster per file. The last line is that speed-up.

    .venv/bin/python bench/probe.py [--quick] [--files N] [--runs R] [--dir PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import load_note, run_quiet, sparse_copy, work_dir  # noqa: E402

from backends.imageprobe import probe_fd  # noqa: E402

TARGET = 100.0  # poolkeeper at least 100x faster per file
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY  # as the dir driver opens volumes
SIZES = ["64M", "1234567K", "10G", "100G", "1T"]  # 1234567K: not a multiple of any geometry
SMALL = ["64M", "1234567K"]  # for variants that allocate or write the whole size
LUKS_SECRET = ["--object", "secret,id=sec0,data=bench-only", "-o", "key-secret=sec0"]
# poolkeeper's name -> qemu-img's, where they differ
QEMU_NAME = {"ploop": "parallels"}


class Variant(NamedTuple):
    options: list[str]
    sizes: list[str]


FORMATS: dict[str, list[Variant]] = {
    "raw": [Variant([], SIZES)],
    "qcow2": [Variant([], SIZES), Variant(["-o", "compat=0.10"], SIZES),
              Variant(["-o", "cluster_size=2M"], SIZES),
              Variant(["-u", "-b", "base.img", "-F", "raw"], SIZES)],
    "qcow": [Variant([], SIZES)],
    "qed": [Variant([], SIZES)],
    "vmdk": [Variant([], SIZES), Variant(["-o", "subformat=streamOptimized"], SIZES)],
    "vdi": [Variant([], SIZES), Variant(["-o", "static=on"], SMALL)],
    "vpc": [Variant([], SIZES[:-1]), Variant(["-o", "force_size=on"], SIZES[:-1]),
            Variant(["-o", "subformat=fixed"], SMALL)],  # vpc's limit is 2040 GiB
    "parallels": [Variant([], SIZES)],
    "luks": [Variant(LUKS_SECRET, SMALL + ["10G"])],
    "vhdx": [Variant([], SIZES)],
}
UNRECOGNISED = {"vhdx"}  # made to show it, not counted as disagreement


def make_templates(root: Path, fmt: str) -> list[Path]:
    out = []
    for v, variant in enumerate(FORMATS[fmt]):
        for size in variant.sizes:
            path = root / f"{fmt}-{v}-{size}.tmpl"
            argv = ["qemu-img", "create", "-q", "-f", fmt, *variant.options, str(path), size]
            for attempt in range(5):
                try:
                    run_quiet(argv, cwd=root)
                    break
                except RuntimeError as exc:
                    # luks times its key derivation and now and then reports "Unable to
                    # get accurate CPU usage" on a busy machine: try again.
                    if "accurate CPU usage" not in str(exc) or attempt == 4:
                        raise
            out.append(path)
    return out


def make_files(root: Path, fmt: str, count: int) -> list[str]:
    templates = make_templates(root, fmt)
    files = root / fmt
    files.mkdir()
    paths = []
    for i in range(count):
        path = files / f"{fmt}-{i:05d}"
        sparse_copy(templates[i % len(templates)], path)
        paths.append(str(path))
    return paths


def ours(paths: list[str]) -> list[tuple[str, int]]:
    """(format, capacity) per file, as the dir pool lists them."""
    out = []
    for path in paths:
        fd = os.open(path, OPEN_FLAGS)
        try:
            size = os.fstat(fd).st_size
            res = probe_fd(fd, size)
        finally:
            os.close(fd)
        name = "luks" if res.encryption == "luks" and res.format == "raw" else res.format
        out.append((QEMU_NAME.get(name, name), size if res.capacity is None else res.capacity))
    return out


def qemu_img(paths: list[str]) -> list[tuple[str, int]]:
    out = []
    for path in paths:
        info = json.loads(run_quiet(["qemu-img", "info", "--output=json", path]).stdout)
        out.append((info["format"], info["virtual-size"]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 files per format, 2 runs")
    parser.add_argument("--files", type=int, help="files per format (default 1,000)")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--dir", help="where to make the images (default: a temp dir)")
    args = parser.parse_args()
    if shutil.which("qemu-img") is None:
        sys.exit("qemu-img is missing: apt-get install qemu-utils")
    count = args.files or (20 if args.quick else 1000)
    runs = args.runs or (2 if args.quick else 7)

    rows = []
    disagreements: list[str] = []
    with work_dir(args.dir, prefix="pk-probe-") as root:
        for fmt in FORMATS:
            paths = make_files(root, fmt, count)
            ours(paths)  # warm the page cache for both
            t_ours = float("inf")
            for _ in range(runs):
                t0 = time.perf_counter()
                mine = ours(paths)
                t_ours = min(t_ours, time.perf_counter() - t0)
            t0 = time.perf_counter()
            theirs = qemu_img(paths)
            t_qemu = time.perf_counter() - t0
            bad = [(p, a, b) for p, a, b in zip(paths, mine, theirs, strict=True) if a != b]
            if fmt not in UNRECOGNISED:
                disagreements += [f"{Path(p).name}: poolkeeper {a}, qemu-img {b}"
                                  for p, a, b in bad]
            rows.append((fmt, len(FORMATS[fmt]), t_ours / count, t_qemu / count, len(bad),
                         {b[0] for _p, _a, b in bad} | {a[0] for _p, a, _b in bad}))
            print(f"  {fmt}: done", flush=True)

    templates = sum(len(v.sizes) for vs in FORMATS.values() for v in vs)
    print(f"{count} files per format (copies of {templates} templates); poolkeeper best of "
          f"{runs} runs, warm cache; {load_note()}")
    print(f"{'format':10}{'variants':>9}{'poolkeeper us/file':>20}{'qemu-img ms/file':>18}"
          f"{'speed-up':>10}{'disagree':>10}")
    for fmt, variants, us, ms, bad, _names in rows:
        print(f"{fmt:10}{variants:9}{us * 1e6:20.1f}{ms * 1e3:18.2f}{ms / us:9.0f}x{bad:10}")
    for fmt, _v, _us, _ms, bad, names in rows:
        if fmt in UNRECOGNISED:
            print(f"note: {fmt}: the probe does not recognise it; {bad} of {count} files "
                  f"differ (names seen: {', '.join(sorted(names))})")
    for line in disagreements[:20]:
        print(f"DISAGREE {line}")
    if len(disagreements) > 20:
        print(f"... and {len(disagreements) - 20} more")
    counted = [r for r in rows if r[0] not in UNRECOGNISED]
    print(f"agreement on format and capacity: {sum(count - r[4] for r in counted)} of "
          f"{count * len(counted)} files ({', '.join(r[0] for r in counted)})")
    us = sum(r[2] for r in counted) / len(counted)
    ms = sum(r[3] for r in counted) / len(counted)
    print(f"ratio qemu-img info/poolkeeper time per file: {ms / us:.0f}x  "
          f"(target >= {TARGET:.0f}x: {'ok' if ms / us >= TARGET else 'MISSED'})")
    return 1 if disagreements else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as exc:
        sys.exit(f"error: {exc}")
