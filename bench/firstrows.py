"""Big pools open fast, end to end: `s` on a stopped 100,000-volume dir pool in the TUI,
a fresh process in a real terminal (tmux, through tests/termdriver.py), timed from the
key to text on screen.

- first rows: a volume's row on screen (the listing streams: it goes on behind them);
- listed: the header says "100000 volumes" (the listing is done, the table sorted; the
  TUI lists from the directory and reads the headers after, the rows on screen first);
- headers read: the header says "provisioned" (every header read: formats, capacities);
- peak RSS of the app process (psutil, sampled every 20 ms from the key to the end);
- then, on the listed pool, what a user does next, each key to its text on screen: the
  first sort by another column (`o`: "Format ▲"), a filter typed and then widened (backspaced
  away: every volume again) and marking a row (space: its mark);
- peer: `virsh pool-start` + `virsh vol-list --details` of the same directory on the
  bench's own libvirtd (bench/start.py's), when libvirt is installed.

Key-to-text times include tmux: the screen is read every 10 ms (`capture-pane`), so each
figure is up to ~15 ms late. Between runs the pool is stopped (untimed).

    .venv/bin/python bench/firstrows.py [--quick] [--volumes N] [--runs R] [--dir PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import libvirt_missing, load_note, private_libvirtd, work_dir  # noqa: E402
from refresh import make_pool  # noqa: E402
from start import Libvirt, Poolkeeper, make_root  # noqa: E402

from tests.termdriver import Terminal  # noqa: E402

SIZE = (160, 50)
ROW_RE = re.compile(r"(raw|disk)-\d+\.(img|qcow2)\s+(raw|qcow2|\u2026)")  # a volume's row


class Timer:
    """Key to text: polls the terminal until `seen(screen)` holds."""

    def __init__(self, term: Terminal) -> None:
        self.term = term

    def until(self, seen: Callable[[str], bool], t0: float, limit: float = 60.0) -> float:
        while True:
            now = time.perf_counter()
            if seen(self.term.screen()):
                return now - t0
            if now - t0 > limit:
                raise RuntimeError(f"not seen within {limit} s:\n{self.term.screen()}")
            time.sleep(0.01)

    def key(self, *keys: str) -> float:
        t0 = time.perf_counter()
        self.term.keys(*keys)
        return t0


class PeakRss:
    """The app's highest RSS, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def shown_count(screen: str) -> int | None:
    """The number in the header's "N volumes" (None: not there)."""
    m = re.search(r"\b(\d+) volumes,", screen)
    return int(m.group(1)) if m else None


def one_run(work: Path, pk: Poolkeeper, volumes: int) -> dict[str, float]:
    pk.stop()
    env = {"PYTHONPATH": str(ROOT)}
    with Terminal(work / "term", size=SIZE) as term:
        term.start([sys.executable, "-m", "tui", "--root", str(pk.root)], env=env)
        if not term.wait_for("press s to start it", timeout=120):
            raise RuntimeError(f"the app did not show the stopped pool:\n{term.screen()}")
        pid = term.app_pid
        if pid is None:
            raise RuntimeError("no app pid")
        timer = Timer(term)
        rss = PeakRss(pid)
        t0 = timer.key("s")
        first = timer.until(lambda s: ROW_RE.search(s) is not None, t0)
        listed = timer.until(lambda s: shown_count(s) == volumes, t0)
        read = timer.until(lambda s: shown_count(s) == volumes and "provisioned" in s, t0)
        time.sleep(0.5)  # what runs after the listing (the header, who has what open)
        result = {"first rows": first, "listed and sorted": listed, "headers read": read}
        term.keys("Tab")  # from the pool tree to the table
        time.sleep(0.3)
        t0 = timer.key("o")  # first sort by another column
        result["first sort (o)"] = timer.until(lambda s: "Format ▲" in s, t0)
        term.type("/")
        term.wait_for("filter volumes by name", timeout=30)
        time.sleep(0.5)  # focus reaches the box a moment after it shows
        term.type("9.img")  # raw-00009.img, raw-00019.img, ...
        timer.until(lambda s: "raw-00019.img" in s and "raw-00010.img" not in s,
                    time.perf_counter())
        # backspaced away: every volume again (the cursor row stays where it was)
        t0 = timer.key(*["BSpace"] * 5)
        result["filter widened"] = timer.until(lambda s: "raw-00010.img" in s, t0)
        term.keys("Enter")  # the table has the keys again
        time.sleep(0.5)
        t0 = timer.key("Space")
        result["mark (space)"] = timer.until(lambda s: "\u25cf" in s, t0)  # the mark
        result["peak RSS MB"] = rss.stop() / 1e6
        with contextlib.suppress(psutil.Error):
            result["RSS after MB"] = psutil.Process(pid).memory_info().rss / 1e6
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 volumes, one run")
    parser.add_argument("--volumes", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--dir", help="where to build the pool (default: a temp dir)")
    args = parser.parse_args()
    volumes = args.volumes or (2_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 3)
    if shutil.which("tmux") is None:
        print("tmux is missing: nothing measured")
        return 0
    no_libvirt = libvirt_missing() or (None if shutil.which("virsh") else "virsh is missing")
    with work_dir(args.dir) as work:
        images = work / "images"
        print(f"building {volumes:,} volumes in {images} ...", flush=True)
        make_pool(images, volumes)
        make_root(work / "state", images)
        pk = Poolkeeper(work / "state", volumes, "")
        results = [one_run(work, pk, volumes) for _ in range(runs)]
        pk.stop()
        peer = None
        if no_libvirt is None:
            with private_libvirtd(work) as virt:
                lv = Libvirt(virt, images, volumes)
                best = float("inf")
                for _ in range(runs):
                    lv.stop()
                    t0 = time.perf_counter()
                    lv.virsh()
                    best = min(best, time.perf_counter() - t0)
                lv.stop()
                peer = best
    print(f"{volumes:,} volumes (dir pool, half sparse raw, half qcow2), TUI at "
          f"{SIZE[0]}x{SIZE[1]} in tmux, key to text; best of {runs}; {load_note()}; "
          f"{os.cpu_count()} CPUs")
    for label in results[0]:
        best = min(r[label] for r in results)
        unit = "" if label.endswith("MB") else " s"
        print(f"  {label:28}{best:10.3f}{unit}   (runs: "
              f"{', '.join(f'{r[label]:.3f}' for r in results)})")
    if peer is not None:
        print(f"  {'virsh pool-start + vol-list':28}{peer:10.3f} s")
        listed = min(r["listed and sorted"] for r in results)
        print(f"ratio poolkeeper TUI listed/virsh: {listed / peer:.2f}x")
    else:
        print(f"peer: not measured: {no_libvirt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
