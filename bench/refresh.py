"""Refresh + list a dir pool of 10,000 volumes: poolkeeper against the floor of doing the I/O
only and against libvirt itself, with a warm and a cold page cache.

The pool holds 5,000 sparse raw files and 5,000 qcow2 images. "ours" is a full
controller refresh plus reading every volume's name, format, capacity and
allocation; the floor is a bare loop that only scandirs, stats and reads 512 bytes
of every file. Budget: ours < 0.3 s and at most 2x the floor (warm cache).

libvirt (when libvirtd and its Python binding are installed; `make bench` installs them):
a private libvirtd started by the bench (session mode, as user nobody, every file of it in
the bench's temp dir, stopped by PID after) has the same directory as a dir pool; it is
timed doing virStoragePoolRefresh + listAllVolumes + virStorageVolGetInfo on each volume
(name, type, capacity, allocation: its info call has no format, so it does a little less
than ours), through the API on one open connection.

Cold: `sync; echo 3 > /proc/sys/vm/drop_caches` (as root) before every run of each.
The last line printed is the ratio poolkeeper/libvirt (warm), or poolkeeper/floor
when libvirt cannot run here.

    .venv/bin/python bench/refresh.py [--quick] [--volumes N] [--runs R] [--cold-runs R]
                                      [--dir PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchlib import (  # noqa: E402
    best_of,
    can_drop_caches,
    drop_caches,
    libvirt_missing,
    load_note,
    machine,
    private_libvirtd,
    work_dir,
)

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


def libvirt_list(pool: Any) -> int:
    """What `virsh pool-refresh; virsh vol-list --details` asks the daemon for."""
    pool.refresh(0)
    rows = [(v.name(), *v.info()) for v in pool.listAllVolumes(0)]
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 volumes, 2 runs (smoke test)")
    parser.add_argument("--volumes", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--cold-runs", type=int)
    parser.add_argument("--dir", help="where to build the pool (default: a temp dir)")
    args = parser.parse_args()
    volumes = args.volumes or (1_000 if args.quick else 10_000)
    runs = args.runs or (2 if args.quick else 7)
    cold_runs = args.cold_runs or (1 if args.quick else 3)
    no_libvirt = libvirt_missing()

    with work_dir(args.dir) as work, contextlib.ExitStack() as stack:
        images = work / "images"
        print(f"building {volumes} volumes in {images} ...", flush=True)
        make_pool(images, volumes)
        ctl = stack.enter_context(StorageController(work / "state", create_default=False))
        ctl.define_pool_def(PoolDef(type="dir", name="bench",
                                    target=PoolTarget(path=str(images))))
        ctl.start_pool("bench")
        listed = ours(ctl)
        assert listed == volumes, listed
        formats = {v.format for v in ctl.list_volumes("bench")}
        assert formats == {"raw", "qcow2"}, formats
        peers: list[tuple[str, Any, Any]] = [("floor", floor, images), ("ours", ours, ctl)]
        if no_libvirt is None:
            virt = stack.enter_context(private_libvirtd(work))
            lv_pool = virt.define_dir_pool("bench", images)
            lv_pool.create(0)
            assert libvirt_list(lv_pool) == volumes
            peers.append(("libvirt", libvirt_list, lv_pool))
        floor(images)  # warm the cache for all
        warm = {name: best_of(runs, fn, arg) for name, fn, arg in peers}
        cold: dict[str, float] = {}
        if can_drop_caches():
            cold = {name: best_of(cold_runs, fn, arg, before=drop_caches)
                    for name, fn, arg in peers}

    print(f"machine: {machine()}")
    print(f"{volumes:,} volumes; best of {runs} warm runs, {cold_runs} cold "
          f"(drop_caches before each); {load_note()}")
    labels = {"floor": "floor (scandir+stat+read 512 B)",
              "ours": "poolkeeper refresh + list",
              "libvirt": "libvirt refresh+listAllVolumes+info"}
    print(f"{'':38}{'warm (s)':>10}{'cold (s)':>10}")
    for name, _fn, _arg in peers:
        cold_cell = f"{cold[name]:10.3f}" if name in cold else f"{'-':>10}"
        print(f"{labels[name]:38}{warm[name]:10.3f}{cold_cell}")
    if not cold:
        print("cold cache: not measured (dropping the page cache needs root)")
    if no_libvirt:
        print(f"libvirt: not measured: {no_libvirt}")
    if volumes == 10_000:
        print(f"budget: poolkeeper warm <= 0.300 s: {'ok' if warm['ours'] <= 0.3 else 'MISSED'};"
              f" <= 2.00x the floor: {'ok' if warm['ours'] <= 2 * warm['floor'] else 'MISSED'}")
    else:
        print("budget: set for 10,000 volumes; not checked at this size")
    if cold:
        print(f"ratio poolkeeper/floor (cold): {cold['ours'] / cold['floor']:.2f}x")
        if "libvirt" in cold:
            print(f"ratio poolkeeper/libvirt (cold): {cold['ours'] / cold['libvirt']:.2f}x")
    print(f"ratio poolkeeper/floor: {warm['ours'] / warm['floor']:.2f}x  (budget 2.00x)")
    if "libvirt" in warm:
        print(f"ratio poolkeeper/libvirt (warm): {warm['ours'] / warm['libvirt']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
