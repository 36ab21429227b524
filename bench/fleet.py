"""Many hosts in one TUI, end to end as the user waits (issue 17, item 4): fresh
`poolkeeper --root R` processes in a real terminal (tmux through tests/termdriver.py,
160x50), every figure from a key or the process's spawn to text on screen.

Set-up: H private libvirtds (tests/libvirtd.py: session mode as user nobody, each with its
own base dir in the bench's temp dir, every one stopped by its PID at the end, failure and
Ctrl-C included), each with P running dir pools `p00`..; the P pool directories, of V files
each (refresh.py's make_pool: half sparse raw, half qcow2; named `pNN-...` so that a pool's
rows can be told from another's), are shared by the daemons. The H URIs are saved as
connections `h01`.. in the state root's connections.json; this host has no pool.

1. Fleet scale (default 10 x 20 x 1,000):
   - connections alone: a fresh Python process opening the H connections on H threads
     (`LibvirtHostController(uri, name).list_pools()` each): spawn to the last answer;
   - the TUI with no connection: spawn to its first screen ("no pools");
   - the TUI with the H connections: spawn to its first screen (the hosts' lines), to the
     first host's line saying "P pools", and to every host's line saying it (the tree
     painted with every host). At 160x50 the tree's 1 + H x (P + 2) lines do not fit once
     the hosts are in (each host is unfolded: its line, its type, its pools), so that last
     figure comes from a second run in a terminal tall enough for the whole tree (160 x
     ROWS; more to paint, so if anything slower); "first paint after the last connection
     answered" is that minus the connections' time (target <= 1 s);
   - the TUI's RSS (psutil, every 20 ms from the spawn: the peak; and once settled: the
     pool the TUI opens by itself has all its sizes, then 2 s) (target <= 300 MB);
   - then Down in the tree (from that pool to the next: V volumes of the same host) to its
     first rows, and to all its sizes filled (the header's "V volumes, ... provisioned").
2. Big pool over a connection (default 10,000 volumes): one more private libvirtd with the
   dir pools `a-small` (10 volumes) and `big`; the TUI opens `a-small@big` by itself; Down
   to `big@big`: key to its first rows (target <= 1 s), to the whole listing (the header
   says "N volumes, reading headers: M to go"), and to every size filled (the header says
   "N volumes, X provisioned": no row pending). Peer, in the same run, the sides taking
   turns: `virsh -c URI vol-list big --details`, a fresh process, spawn to exit (target:
   the TUI's whole listing no slower).

Key-to-text times include tmux: the screen is read every 10 ms (`capture-pane`), so each
figure is up to ~15 ms late; for the waits of seconds (sizes filled) every 50 ms (up to
~55 ms late), as each read costs ~2.5 ms of CPU that the TUI and the daemon would not get.
The CPU each side burns for the big listing is printed too: on a shared 2-core machine it
says more than the wall time. Needs root, libvirt-daemon, libvirt-python, virsh and tmux.
Nothing is left behind: no daemon, no temp dir (no loop device is used).

    .venv/bin/python bench/fleet.py [--quick] [--hosts H] [--pools P] [--volumes V]
                                    [--big N] [--runs R] [--dir PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import (  # noqa: E402
    PrivateLibvirt,
    compile_bytecode,
    libvirt_missing,
    load_note,
    machine,
    private_libvirtd,
    run_quiet,
    work_dir,
)
from firstrows import PeakRss  # noqa: E402
from refresh import make_pool  # noqa: E402
from start import poolkeeper_cmd  # noqa: E402

from backends.connection_store import ConnectionStore, SavedConnection  # noqa: E402
from backends.controller import StorageController  # noqa: E402
from tests.termdriver import Terminal  # noqa: E402

SIZE = (160, 50)
ENV = {"LC_ALL": "C.UTF-8"}
TIMEOUT = 180.0  # a cap to fail on, not a measure

# A fresh Python: the connections opened on threads, each listing its pools (as the fleet
# does in the TUI). Prints the monotonic times (the same clock as the bench's).
CONNECT_CHILD = """\
import json, sys, threading, time
began = time.monotonic()
from backends.libvirt_host import LibvirtHostController
imported = time.monotonic()
answers, errors, ctls = {}, {}, []
def one(name, uri):
    try:
        ctl = LibvirtHostController(uri, name)
        ctls.append(ctl)
        answers[name] = (time.monotonic(), len(ctl.list_pools()))
    except Exception as exc:
        errors[name] = repr(exc)
threads = [threading.Thread(target=one, args=a.split("=", 1)) for a in sys.argv[1:]]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"began": began, "imported": imported, "answers": answers,
                  "errors": errors}), flush=True)
for ctl in ctls:
    ctl.close()
"""


# ------------------------------------------------------------------ set-up


def named_pool(path: Path, count: int, prefix: str) -> None:
    """make_pool's files, each renamed `prefix-NAME`."""
    make_pool(path, count)
    for entry in os.listdir(path):
        os.rename(path / entry, path / f"{prefix}-{entry}")


def empty_root(root: Path) -> Path:
    """A state root with no pool (the default one undefined); its config dir."""
    with StorageController(root) as ctl:
        if "default" in ctl.pool_names():
            with contextlib.suppress(Exception):
                ctl.stop_pool("default")
            ctl.undefine_pool("default")
        return ctl.paths.config_dir


def save_connections(root: Path, hosts: dict[str, str]) -> None:
    config = empty_root(root)
    store = ConnectionStore(config)
    store.save([SavedConnection(name, uri) for name, uri in hosts.items()])
    data = json.loads(store.path.read_text())
    data["offered_system"] = True  # no first-start offer over the screen
    store.path.write_text(json.dumps(data))


def start_pools(virt: PrivateLibvirt, pools: dict[str, Path]) -> None:
    """Define and start each dir pool (libvirt reads every volume as it starts it)."""
    for name, path in pools.items():
        virt.define_dir_pool(name, path).create(0)


@contextlib.contextmanager
def daemons(work: Path, count: int) -> Iterator[list[PrivateLibvirt]]:
    """`count` private libvirtds, each in its own base dir; all stopped by PID on exit."""
    with contextlib.ExitStack() as stack:
        made = []
        for i in range(count):
            base = work / f"daemon-{i:02d}"
            base.mkdir(mode=0o755)
            base.chmod(0o755)  # libvirtd runs as nobody and must get in
            made.append(stack.enter_context(private_libvirtd(base)))
        yield made


# ------------------------------------------------------------------ the terminal


def until(term: Terminal, seen: Callable[[str], bool], t0: float,
          what: str, every: float = 0.01, limit: float = TIMEOUT) -> float:
    """Seconds from t0 (time.monotonic) until `seen(screen)` holds, the screen read every
    `every` s (each read, a `tmux capture-pane`, costs ~2.5 ms of CPU: polled every 10 ms
    it would take ~20 % of a core from what is measured; waits of seconds poll slower)."""
    while True:
        now = time.monotonic()
        if seen(term.screen()):
            return now - t0
        if now - t0 > limit:
            raise RuntimeError(f"{what}: not seen within {limit:.0f} s:\n{term.screen()}")
        if term.status() is not None:
            raise RuntimeError(f"{what}: the TUI exited ({term.status()}):\n"
                               f"{term.screen(history=True)}")
        time.sleep(every)


@contextlib.contextmanager
def tui(work: Path, root: Path, size: tuple[int, int]) -> Iterator[tuple[Terminal, float,
                                                                         PeakRss]]:
    """A fresh `poolkeeper --root ROOT` in tmux: the terminal, its spawn time, its RSS."""
    with Terminal(work / "term", size=size) as term:
        t0 = time.monotonic()
        term.start([*poolkeeper_cmd(), "--root", str(root)], env=ENV)
        while term.app_pid is None:
            if time.monotonic() - t0 > 30:
                raise RuntimeError("the TUI did not start")
            time.sleep(0.002)
        rss = PeakRss(term.app_pid)
        try:
            yield term, t0, rss
        finally:
            rss.stop()
            term.keys("q")  # quit cleanly (the connections closed); the Terminal kills it
            term.wait_exit(10)


def rss_now(pid: int | None) -> float:
    with contextlib.suppress(psutil.Error, TypeError):
        return psutil.Process(pid).memory_info().rss / 1e6  # type: ignore[arg-type]
    return float("nan")


def sized(volumes: int, pool: str | None = None) -> Callable[[str], bool]:
    """The header says every size is in: 'N volumes, X provisioned' (of `pool`)."""
    done = re.compile(rf"\b{volumes} volumes?, [^\n]*provisioned")
    return lambda s: done.search(s) is not None and (pool is None or f"{pool} (dir)" in s)


def rows_of(prefix: str) -> Callable[[str], bool]:
    row = re.compile(rf"{re.escape(prefix)}-(raw|disk)-\d+\.(img|qcow2)")
    return lambda s: row.search(s) is not None


def host_done(name: str, pools: int) -> re.Pattern[str]:
    return re.compile(rf"\b{name}  {pools} pools\b")


# ------------------------------------------------------------------ 1. fleet scale


def connections_alone(hosts: dict[str, str]) -> dict[str, float]:
    """A fresh Python opening every connection on its own thread and listing its pools."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", CONNECT_CHILD,
                           *(f"{n}={u}" for n, u in hosts.items())],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=TIMEOUT,
                          check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"the connections' process failed: {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    if out["errors"] or len(out["answers"]) != len(hosts):
        raise RuntimeError(f"connections failed: {out['errors']}")
    times = [t for t, _ in out["answers"].values()]
    return {"first answer": min(times) - t0, "last answer": max(times) - t0,
            "imports done": out["imported"] - t0}


def tui_alone(work: Path, root: Path) -> float:
    """The TUI with no connection: spawn to its first screen."""
    with tui(work, root, SIZE) as (term, t0, _):
        return until(term, lambda s: "no pools: press n to define one" in s, t0, "first screen")


def fleet_screen(work: Path, root: Path, names: list[str], pools: int, volumes: int,
                 all_fit: bool) -> dict[str, float]:
    """The TUI with the connections at 160x50 (see the module docstring)."""
    done = [host_done(n, pools) for n in names]
    res: dict[str, float] = {}
    with tui(work, root, SIZE) as (term, t0, rss):
        res["first screen (hosts' lines)"] = until(
            term, lambda s: "this host" in s and names[0] in s, t0, "first screen")
        res["first host's line with its pools"] = until(
            term, lambda s: any(d.search(s) for d in done), t0, "a host's pools")
        if all_fit:
            res["every host's line with its pools"] = until(
                term, lambda s: all(d.search(s) for d in done), t0, "every host")
        # the pool the TUI opened by itself: all its sizes, then settled
        until(term, sized(volumes), t0, "the first pool's sizes", every=0.1)
        time.sleep(2.0)
        res["RSS settled MB"] = rss_now(term.app_pid)
        screen = term.screen()
        m = re.search(r"\b(p\d+)@(h\d+) \(dir\)", screen)
        if m is None or m.group(1) == f"p{pools - 1:02d}":
            raise RuntimeError(f"not on a first pool:\n{screen}")
        nxt = f"p{int(m.group(1)[1:]) + 1:02d}"
        pool = f"{nxt}@{m.group(2)}"
        t1 = time.monotonic()
        term.keys("Down")
        res["Down: next pool's first rows"] = until(
            term, lambda s: f"{pool} (dir)" in s and rows_of(nxt)(s), t1, "next pool's rows")
        res["Down: next pool's sizes all in"] = until(term, sized(volumes, pool), t1,
                                                        "next pool's sizes", every=0.05)
        time.sleep(0.5)
        res["peak RSS MB"] = rss.stop() / 1e6
        res["RSS after MB"] = rss_now(term.app_pid)
    return res


def fleet_tall(work: Path, root: Path, names: list[str], pools: int, rows: int
               ) -> dict[str, float]:
    """The same in a terminal where the whole tree fits: to every host's line."""
    done = [host_done(n, pools) for n in names]
    with tui(work, root, (SIZE[0], rows)) as (term, t0, rss):
        every = until(term, lambda s: all(d.search(s) for d in done), t0, "every host")
        time.sleep(1.0)
        return {"every host's line with its pools": every, "peak RSS MB": rss.stop() / 1e6}


# ------------------------------------------------------------------ 2. big pool


def big_pool(work: Path, root: Path, volumes: int) -> dict[str, float]:
    res: dict[str, float] = {}
    with tui(work, root, SIZE) as (term, _, rss):
        until(term, sized(10, "a-small@big"), time.monotonic(), "a-small listed", every=0.1)
        time.sleep(1.0)
        cpu0 = cpu_seconds(term.app_pid)
        t1 = time.monotonic()
        term.keys("Down")
        res["first rows"] = until(term, lambda s: "big@big (dir)" in s and rows_of("big")(s),
                                  t1, "big's rows")
        listed = re.compile(rf"\b{volumes} volumes, ")
        res["listed (every row, sizes to come)"] = until(
            term, lambda s: "big@big (dir)" in s and listed.search(s) is not None, t1,
            "big listed")
        res["every size filled"] = until(term, sized(volumes, "big@big"), t1, "big's sizes",
                                         every=0.05)
        res["its CPU, key to every size"] = cpu_seconds(term.app_pid) - cpu0
        res["peak RSS MB"] = rss.stop() / 1e6
    return res


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process so far (on a shared 2-core machine the CPU each
    side burns says more than its wall time)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def virsh_details(uri: str, volumes: int) -> tuple[float, float]:
    """virsh's --details listing, a fresh process: wall time and its CPU."""
    cpu0 = children_cpu()
    t0 = time.monotonic()
    out = run_quiet(["virsh", "-c", uri, "vol-list", "big", "--details"],
                    env={**os.environ, **ENV}).stdout
    took = time.monotonic() - t0
    if len(out.splitlines()) != volumes + 3:
        raise RuntimeError(f"virsh listed {len(out.splitlines()) - 3} volumes")
    return took, children_cpu() - cpu0


# ------------------------------------------------------------------ report


def show(label: str, values: list[float], unit: str = "s") -> float:
    best = min(values)
    runs = ", ".join(f"{v:.3f}" for v in values)
    print(f"  {label:44}{best:9.3f} {unit}   (runs: {runs})")
    return best


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 hosts x 4 pools x 200 volumes, a 2,000-volume big pool, 1 run")
    parser.add_argument("--hosts", type=int)
    parser.add_argument("--pools", type=int)
    parser.add_argument("--volumes", type=int)
    parser.add_argument("--big", type=int, help="volumes of the big pool")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--dir", help="where to build it all (default: a temp dir)")
    args = parser.parse_args()
    q = args.quick
    hosts = args.hosts or (3 if q else 10)
    pools = args.pools or (4 if q else 20)
    volumes = args.volumes or (200 if q else 1_000)
    big = args.big or (2_000 if q else 10_000)
    runs = args.runs or (1 if q else 3)
    missing = libvirt_missing() or next(
        (f"{tool} is missing" for tool in ("virsh", "tmux") if shutil.which(tool) is None), None)
    if missing is not None:
        print(f"bench/fleet.py: cannot run here: {missing}", file=sys.stderr)
        return 1
    compile_bytecode()
    run_quiet([sys.executable, "-m", "compileall", "-q", "tui", "bench"], cwd=ROOT,
              env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    tree_lines = 1 + hosts * (pools + 2)
    all_fit = tree_lines + 8 <= SIZE[1]  # (header, footer, borders)
    tall = tree_lines + 10
    loads = [os.getloadavg()[0]]
    started = time.monotonic()
    names = [f"h{i + 1:02d}" for i in range(hosts)]

    with work_dir(args.dir, prefix="pk-fleet-") as work:
        print(f"building {pools} x {volumes:,} and {big:,} + 10 volumes in {work} ...",
              flush=True)
        dirs = {f"p{j:02d}": work / "pools" / f"p{j:02d}" for j in range(pools)}
        for name, path in dirs.items():
            named_pool(path, volumes, name)
        named_pool(work / "big", big, "big")
        named_pool(work / "small", 10, "s")
        with daemons(work, hosts + 1) as virts:
            print(f"{hosts + 1} private libvirtds; starting {hosts} x {pools} pools ...",
                  flush=True)
            fleet, other = virts[:hosts], virts[hosts]
            with ThreadPoolExecutor(2) as ex:
                list(ex.map(lambda v: start_pools(v, dirs), fleet))
            start_pools(other, {"a-small": work / "small", "big": work / "big"})
            for virt in virts:
                virt.conn.close()  # the bench's own connections: not held while measuring
            uris = dict(zip(names, (v.uri for v in fleet), strict=True))
            lone, with_fleet, with_big = work / "lone", work / "fleet", work / "bigroot"
            empty_root(lone)
            save_connections(with_fleet, uris)
            save_connections(with_big, {"big": other.uri})
            print(f"set up in {time.monotonic() - started:.0f} s; measuring ...", flush=True)
            tui_alone(work, lone)  # untimed: the files the TUI reads into the page cache
            loads.append(os.getloadavg()[0])

            alone, conns, screens, talls = [], [], [], []
            for _ in range(runs):
                conns.append(connections_alone(uris))
                alone.append(tui_alone(work, lone))
                screens.append(fleet_screen(work, with_fleet, names, pools, volumes, all_fit))
                if not all_fit:
                    talls.append(fleet_tall(work, with_fleet, names, pools, tall))
            loads.append(os.getloadavg()[0])
            bigs, peers = [], []
            for _ in range(runs):
                bigs.append(big_pool(work, with_big, big))
                peers.append(virsh_details(other.uri, big))
            loads.append(os.getloadavg()[0])

    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {load_note()}; "
          f"1-min load at start / set up / fleet done / end: "
          f"{', '.join(f'{x:.2f}' for x in loads)}")
    print(f"peer: virsh {run_quiet(['virsh', '--version']).stdout.strip()}; private "
          f"libvirtds (session mode, user nobody); TUI at {SIZE[0]}x{SIZE[1]} in tmux; "
          f"best of {runs}")
    print(f"1. fleet: {hosts} connections x {pools} dir pools x {volumes:,} volumes")
    show("connections alone: imports done", [c["imports done"] for c in conns])
    show("connections alone: first answer", [c["first answer"] for c in conns])
    last = show("connections alone: last answer", [c["last answer"] for c in conns])
    show("TUI, no connection: first screen", alone)
    for label in screens[0]:
        unit = "MB" if label.endswith("MB") else "s"
        show(f"TUI {SIZE[0]}x{SIZE[1]}: {label.removesuffix(' MB')}",
             [r[label] for r in screens], unit)
    every_runs = [r["every host's line with its pools"] for r in (talls or screens)]
    for label in (talls[0] if talls else {}):
        unit = "MB" if label.endswith("MB") else "s"
        show(f"TUI {SIZE[0]}x{tall}: {label.removesuffix(' MB')}",
             [r[label] for r in talls], unit)
    every = min(every_runs)
    print(f"  every host's line after the TUI's own first screen (no connection): "
          f"{every - min(alone):.3f} s (best minus best)")
    after = [e - c["last answer"] for e, c in zip(every_runs, conns, strict=True)]
    peak = max(r["peak RSS MB"] for r in screens + talls)
    print(f"first paint after the last connection answered: {every - last:.3f} s (best "
          f"minus best; per run: {', '.join(f'{a:.3f}' for a in after)}); target <= 1 s: "
          f"{verdict(every - last <= 1.0)}")
    print(f"TUI peak RSS: {peak:.1f} MB (highest of the runs); target <= 300 MB: "
          f"{verdict(peak <= 300)}")
    print(f"2. big pool over a connection: {big:,} volumes, Down from a-small@big")
    for label in bigs[0]:
        unit = "MB" if label.endswith("MB") else "s"  # (the CPU rows: s of CPU)
        show(f"TUI: {label.removesuffix(' MB')}", [r[label] for r in bigs], unit)
    virsh = show("virsh vol-list --details (fresh process)", [p[0] for p in peers])
    show("virsh vol-list --details: its CPU", [p[1] for p in peers])
    first = min(r["first rows"] for r in bigs)
    full = min(r["every size filled"] for r in bigs)
    print(f"first rows: {first:.3f} s; target <= 1 s: {verdict(first <= 1.0)}")
    print(f"ratio TUI every size filled / virsh vol-list --details: {full / virsh:.2f}x; "
          f"target <= 1x: {verdict(full <= virsh)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
