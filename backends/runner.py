"""The one way poolkeeper runs external programs.

argv lists only (never a shell), LC_ALL=C, a timeout, a cap on the output kept,
a ToolMissing error that names the Debian package, secrets masked, and every call
recorded in the command log (the TUI's log panel, the CommandRun event).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .errors import ToolFailed, ToolMissing

# Which Debian package provides each tool we drive.
TOOL_PACKAGES: dict[str, str] = {
    "qemu-img": "qemu-utils",
    "qemu-io": "qemu-utils",
    "scrub": "scrub",
    "parted": "parted",
    "partx": "util-linux",
    "losetup": "mount",
    "mount": "mount",
    "umount": "mount",
    "blkid": "util-linux",
    "wipefs": "util-linux",
    "lsblk": "util-linux",
    "mkfs": "util-linux",
    "mkfs.ext2": "e2fsprogs",
    "mkfs.ext3": "e2fsprogs",
    "mkfs.ext4": "e2fsprogs",
    "mkfs.xfs": "xfsprogs",
    "mkfs.btrfs": "btrfs-progs",
    "mkfs.vfat": "dosfstools",
    "mkfs.udf": "udftools",
    "mkfs.hfsplus": "hfsprogs",
    "mkfs.gfs2": "gfs2-utils",
    "lvm": "lvm2",
    "pvcreate": "lvm2",
    "pvremove": "lvm2",
    "pvs": "lvm2",
    "vgcreate": "lvm2",
    "vgremove": "lvm2",
    "vgchange": "lvm2",
    "vgs": "lvm2",
    "lvs": "lvm2",
    "lvcreate": "lvm2",
    "lvremove": "lvm2",
    "lvresize": "lvm2",
    "iscsiadm": "open-iscsi",
    "iscsi-ls": "libiscsi-bin",
    "iscsi-inq": "libiscsi-bin",
    "iscsi-readcapacity16": "libiscsi-bin",
    "showmount": "nfs-common",
    "tgtd": "tgt",
    "tgtadm": "tgt",
}

DEFAULT_TIMEOUT = 120.0
MAX_OUTPUT = 16 * 1024 * 1024  # bytes of stdout/stderr kept per call
MASK = "********"


@dataclass(frozen=True)
class Completed:
    argv: list[str]  # as run (secrets included); never log this, log `shown`
    shown: list[str]  # with secrets masked
    returncode: int | None
    stdout: str
    stderr: str
    duration: float


Listener = Callable[[Completed], None]


class CommandLog:
    """Recent tool calls (masked), and listeners told of each one."""

    def __init__(self, keep: int = 500) -> None:
        self.entries: deque[Completed] = deque(maxlen=keep)
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        with self._lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return remove

    def record(self, entry: Completed) -> None:
        with self._lock:
            self.entries.append(entry)
            listeners = list(self._listeners)
        for fn in listeners:
            fn(entry)


COMMAND_LOG = CommandLog()


def tool_path(tool: str) -> str:
    """Absolute path of `tool`, searching sbin dirs too; ToolMissing if absent."""
    search = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    found = shutil.which(tool, path=search)
    if not found:
        raise ToolMissing(tool, TOOL_PACKAGES.get(tool))
    return found


def have_tool(tool: str) -> bool:
    try:
        tool_path(tool)
    except ToolMissing:
        return False
    return True


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def _decode(data: bytes) -> str:
    return data[:MAX_OUTPUT].decode("utf-8", errors="replace")


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    input: bytes | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    pass_fds: Sequence[int] = (),
    log: CommandLog | None = None,
) -> Completed:
    """Run argv[0] with the arguments as given. Raises ToolMissing, or ToolFailed if
    `check` and the exit status is non-zero or the timeout passed."""
    if not argv:
        raise ValueError("empty argv")
    args = [str(a) for a in argv]
    secrets = [s for s in secrets if s]
    exe = tool_path(args[0])
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["LC_ALL"] = "C"
    full_env.pop("LANGUAGE", None)
    shown = [mask(a, secrets) for a in args]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [exe, *args[1:]],
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=full_env,
            pass_fds=tuple(pass_fds),
            close_fds=True,
            check=False,
        )
        rc: int | None = proc.returncode
        out, err = _decode(proc.stdout), _decode(proc.stderr)
    except subprocess.TimeoutExpired as exc:
        rc = None
        out = _decode(exc.stdout or b"")
        err = _decode(exc.stderr or b"") + f"\n(timed out after {timeout} s)"
    result = Completed(
        argv=args,
        shown=shown,
        returncode=rc,
        stdout=out,
        stderr=mask(err, secrets),
        duration=time.monotonic() - started,
    )
    (log or COMMAND_LOG).record(result)
    if check and rc != 0:
        raise ToolFailed(shown, rc, result.stderr)
    return result


def run_with_progress(
    argv: Sequence[str],
    on_output: Callable[[str], None],
    should_stop: Callable[[], bool],
    *,
    secrets: Iterable[str] = (),
    log: CommandLog | None = None,
) -> Completed:
    """Run a long tool, passing each line of its stdout (split on \\r and \\n, as progress
    meters write) to `on_output`, and killing it when `should_stop()` turns true.

    Raises ToolFailed on a non-zero exit; after a stop, the caller raises Cancelled.
    """
    args = [str(a) for a in argv]
    secrets = [s for s in secrets if s]
    exe = tool_path(args[0])
    env = dict(os.environ, LC_ALL="C")
    started = time.monotonic()
    proc = subprocess.Popen(
        [exe, *args[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, close_fds=True,
    )
    err_chunks: list[bytes] = []
    drain = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read(MAX_OUTPUT)),
                             daemon=True)
    drain.start()
    stopper_done = threading.Event()

    def stopper() -> None:
        while not stopper_done.wait(0.1):
            if should_stop():
                proc.terminate()
                return

    watch = threading.Thread(target=stopper, daemon=True)
    watch.start()
    pending = b""
    assert proc.stdout is not None
    while True:
        chunk = proc.stdout.read1(4096)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
        for line in lines:
            if line.strip():
                on_output(line.decode("utf-8", "replace"))
    rc = proc.wait()
    stopper_done.set()
    drain.join()
    err = mask(_decode(b"".join(err_chunks)), secrets)
    result = Completed(args, [mask(a, secrets) for a in args], rc, "", err,
                       time.monotonic() - started)
    (log or COMMAND_LOG).record(result)
    if rc != 0 and not should_stop():
        raise ToolFailed(result.shown, rc, err)
    return result
