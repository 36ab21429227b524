"""What the benchmarks share: timing, cold caches, loop-mounted filesystems, a private libvirtd.

Everything here that makes something (a filesystem, a daemon, a temp dir) is a context
manager that undoes it on the way out, failure or not, and touches only what it made.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = [
    "can_use_loop_devices", "loop_filesystem", "ROOT", "GiB", "MiB",
    "drop_caches", "can_drop_caches", "best_of", "timed", "fsync_path", "work_dir",
    "run_quiet", "private_libvirtd", "PrivateLibvirt", "libvirt_missing", "load_note",
    "sparse_copy", "machine", "fresh_run", "compile_bytecode",
]

MiB = 1 << 20
GiB = 1 << 30


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


# SIGTERM unwinds like ^C, so every context manager below undoes what it made.
signal.signal(signal.SIGTERM, _terminate)


# ------------------------------------------------------------------ loop filesystems
# tests/loopfs.py does it (and imports pytest): imported when used, so that a bench's
# child process that times its own start-up (start.py's TUI worker) does not pay for it.


def can_use_loop_devices() -> bool:
    from tests.loopfs import can_use_loop_devices as can

    return can()


def loop_filesystem(base: Path, fstype: str, size_mib: int) -> contextlib.AbstractContextManager:
    """A fresh `fstype` on a loop device, mounted under `base`; undone on exit."""
    from tests.loopfs import loop_filesystem as make

    return make(base, fstype, size_mib)


# ------------------------------------------------------------------ timing


def can_drop_caches() -> bool:
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def drop_caches() -> None:
    """sync, then drop the page cache, dentries and inodes (root only: check first)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - started, result


def best_of(runs: int, fn: Callable[..., Any], *args: Any,
            before: Callable[[], None] | None = None) -> float:
    """Fastest of `runs` calls; `before` runs untimed ahead of each (e.g. drop_caches)."""
    best = float("inf")
    for _ in range(runs):
        if before is not None:
            before()
        best = min(best, timed(fn, *args)[0])
    return best


def fresh_run(argv: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one fresh process, its output read (as a shell loop would)."""
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, check=False, env=env)
    took = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.decode()[-500:]}")
    return took


def compile_bytecode() -> None:
    """Compile poolkeeper's bytecode first (as an installed package's is): no timed run
    pays for it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    run_quiet([sys.executable, "-m", "compileall", "-q", "backends", "cli"], cwd=ROOT, env=env)


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Make a peer's output as durable as ours (poolkeeper fsyncs what it writes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_quiet(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a peer tool; its failure is the bench's failure (with the tool's stderr)."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


@contextlib.contextmanager
def work_dir(parent: str | os.PathLike[str] | None = None, prefix: str = "pk-bench-"
             ) -> Iterator[Path]:
    """A temp dir, removed on exit. World-readable so the private libvirtd (nobody) can
    list the pools built in it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sparse_copy(src: Path, dst: Path) -> None:
    """Copy only src's data segments: thousands of copies of a sparse image stay cheap."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            os.copy_file_range(fin.fileno(), fout.fileno(), end - start, start, start)
            pos = end
        fout.truncate(size)


# ------------------------------------------------------------------ libvirt


def libvirt_missing() -> str | None:
    """Why libvirt cannot be the peer here, or None when it can."""
    if shutil.which("libvirtd") is None:
        return "libvirtd is not installed (apt-get install libvirt-daemon)"
    if os.geteuid() != 0:
        return "the private libvirtd is started as user nobody, which needs root"
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return "the libvirt Python binding is missing (make bench installs it: pip '.[bench]')"
    return None


class PrivateLibvirt:
    """A connection to the bench's own libvirtd; `uri` also works for virsh -c."""

    def __init__(self, uri: str, conn: Any, pid: int) -> None:
        self.uri, self.conn, self.pid = uri, conn, pid

    def virsh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_quiet(["virsh", "-q", "-c", self.uri, *args])

    def define_dir_pool(self, name: str, path: Path) -> Any:
        xml = (f"<pool type='dir'><name>{name}</name>"
               f"<target><path>{path}</path></target></pool>")
        return self.conn.storagePoolDefineXML(xml, 0)


@contextlib.contextmanager
def private_libvirtd(base: Path) -> Iterator[PrivateLibvirt]:
    """libvirtd in session mode as user nobody, with HOME and the XDG dirs under `base`
    (tests/libvirtd.py starts it): its config, pools, sockets and logs live there and
    nowhere else, so the host's libvirt (if any) is never touched. The dir pool code it
    runs is the same as the system daemon's. Stopped by its PID on exit."""
    import libvirt

    from tests.libvirtd import private_libvirtd as start

    with start(base) as daemon:
        libvirt.registerErrorHandler(lambda *_: None, None)  # errors come as exceptions
        conn = libvirt.open(daemon.uri)
        try:
            yield PrivateLibvirt(daemon.uri, conn, daemon.pid)
        finally:
            with contextlib.suppress(Exception):
                conn.close()


# ------------------------------------------------------------------ the machine


def machine() -> str:
    """One line naming the machine, for RESULTS.md."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")),
                   cpu)
    with open("/proc/meminfo") as fh:
        mem_kib = int(next(ln for ln in fh if ln.startswith("MemTotal")).split()[1])
    debian = "?"
    with contextlib.suppress(OSError):
        debian = Path("/etc/debian_version").read_text().strip()
    return (f"{cpu}, {os.cpu_count()} cores, {mem_kib / (1 << 20):.0f} GiB RAM, "
            f"Linux {platform.release()}, Debian {debian}, Python {platform.python_version()}")


if __name__ == "__main__":
    print(machine())
    print(load_note())
