"""The one way poolkeeper runs external programs.

argv lists only (never a shell), LC_ALL=C, a timeout, a cap on the output kept,
a ToolMissing error that names the Debian package, secrets masked, and every call
recorded in the command log (the TUI's log panel, the CommandRun event).

Cancel: a tool runs in its own process group. While it runs, the job context (passed as
`cancel`, else the job running in this thread, see progress.current) is polled every
CANCEL_POLL seconds; when it is cancelled the whole group is SIGKILLed and Cancelled is
raised. A tool started after its (implicit) job was cancelled is the job cleaning up what
it made (lvremove, losetup -d, ...): that one runs to its end (or its timeout). A long
tool that is the job's work itself (scrub) is passed `cancel` explicitly, so a cancel that
came just before it starts still stops it.

Which tools a cancel may kill is decided here, once: NOT_KILLED_ON_CANCEL (see
killed_on_cancel) names the tools that change metadata in one short step (a partition
table, LVM metadata, a loop device, a mount, the header of an existing image). Killed
half-way they would leave a torn table or VG, a loop device nobody recorded, a corrupt
image; so a cancel never kills them. They are bounded by their own timeouts, and when one
finishes after its job was cancelled, run() raises Cancelled then: the job stops right
after the change and its cleanup removes what it made. (A driver for which the change and
what must follow it are one step, such as a resize and the kernel's view of it, runs them
under progress.shielded(): the step is finished and the job ends done.) In the main
thread, SIGINT, SIGTERM and SIGHUP (the CLI's Ctrl-C and hang-up, which raise
KeyboardInterrupt) are held while such a tool runs and handled as soon as it has
finished. Every other tool is killed on cancel: the long ones that move data (scrub,
qemu-img convert and create into a partial file, mkfs.*, copies, network transfers) and
read-only queries (nothing is lost by killing them).
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from .errors import Cancelled, ToolFailed, ToolMissing, ValidationError
from .listeners import Listeners
from .progress import NULL_CONTEXT, JobContext, current
from .records import record
from .records import set_field as _set

if TYPE_CHECKING:  # subprocess, shutil, selectors, shlex: loaded when a tool runs (~4 ms)
    import subprocess

P = ParamSpec("P")
R = TypeVar("R")

# Which Debian package provides each tool we drive: the tools every pool type shares are
# listed here; each driver declares its own (PoolDriver.tools), added when it is loaded.
TOOL_PACKAGES: dict[str, str] = {
    "qemu-img": "qemu-utils",
    "qemu-io": "qemu-utils",
    "scrub": "scrub",
    "partx": "util-linux",
    "losetup": "mount",
    "mount": "mount",
    "umount": "mount",
    "blkid": "util-linux",
    "wipefs": "util-linux",
    "lsblk": "util-linux",
    "tgtd": "tgt",  # the iSCSI target the tests start
    "tgtadm": "tgt",
}

# Tools a cancel never kills (see the module docstring): tool -> None (every use of it) or
# the subcommands that change an existing image or the system (qemu-img, lvm). The words
# are the first argument that is not an option.
_LVM_CHANGES = frozenset({
    "pvcreate", "pvremove", "pvchange", "pvresize", "vgcreate", "vgremove", "vgchange",
    "vgextend", "vgreduce", "vgrename", "lvcreate", "lvremove", "lvresize", "lvextend",
    "lvreduce", "lvchange", "lvrename", "lvconvert",
})
NOT_KILLED_ON_CANCEL: dict[str, frozenset[str] | None] = {
    "parted": None,  # mklabel, mkpart, rm, name, set, resizepart (and print)
    "sfdisk": None,
    "partx": None,  # the kernel's partition nodes
    "losetup": None,  # attach, detach: a killed attach leaves a device nobody recorded
    "mount": None,
    "umount": None,
    "wipefs": None,  # erases a few signature bytes; half-erased is neither old nor new
    **{tool: None for tool in _LVM_CHANGES},
    "lvm": _LVM_CHANGES,  # `lvm lvcreate ...`
    # an existing image's header and tables; `create` and `convert` write a new file
    # that is removed when the job is cancelled, so those stay cancellable
    "qemu-img": frozenset({"resize", "rebase", "amend", "snapshot", "bitmap"}),
}


def _network_mount(argv: Sequence[str]) -> bool:
    """`mount ... host:/dir TARGET` or `//host/share`: the mount(2) call is one step whatever
    happens to the helper, and a dead server would hold Ctrl-C for the whole timeout."""
    return any(":/" in str(a) or str(a).startswith("//") for a in argv[1:])


def killed_on_cancel(argv: Sequence[str]) -> bool:
    """May a cancel of its job kill this tool? (No for NOT_KILLED_ON_CANCEL, but a mount of
    a network filesystem, which can wait on a server that is gone.)"""
    tool = os.path.basename(str(argv[0])) if argv else ""
    if tool not in NOT_KILLED_ON_CANCEL or (tool == "mount" and _network_mount(argv)):
        return True
    words = NOT_KILLED_ON_CANCEL[tool]
    if words is None:
        return False
    word = next((str(a) for a in argv[1:] if not str(a).startswith("-")), None)
    return word not in words


DEFAULT_TIMEOUT = 120.0
MAX_OUTPUT = 16 * 1024 * 1024  # bytes of stdout/stderr kept per call
MAX_LINE = 64 * 1024  # bytes of one progress line kept (run_with_progress)
MASK = "********"
CANCEL_POLL = 0.1  # seconds between looks at the job's cancel flag while a tool runs
STOP_GRACE = 5.0  # seconds a stopped progress tool has after SIGTERM before SIGKILL


@record(frozen=True)
class Completed:
    """A tool run to its end: argv as run and as shown, status, output, duration."""
    argv: list[str]  # as run (secrets included); never log this, log `shown`
    shown: list[str]  # with secrets masked
    returncode: int | None
    stdout: str
    stderr: str
    duration: float
    routine: bool = False  # a read no one asked for (the monitor, a view's refresh)

    def __init__(
            self, argv: list[str], shown: list[str], returncode: int | None, stdout: str,
            stderr: str, duration: float, routine: bool = False) -> None:
        _set(self, "argv", argv)
        _set(self, "shown", shown)
        _set(self, "returncode", returncode)
        _set(self, "stdout", stdout)
        _set(self, "stderr", stderr)
        _set(self, "duration", duration)
        _set(self, "routine", routine)


Listener = Callable[[Completed], None]
_ROUTINE = threading.local()


@contextlib.contextmanager
def routine() -> Iterator[None]:
    """The tools this thread runs meanwhile are routine reads (the live monitor, a view
    refreshing itself), which the log shows apart from what the user's actions ran."""
    before = getattr(_ROUTINE, "on", False)
    _ROUTINE.on = True
    try:
        yield
    finally:
        _ROUTINE.on = before


def routine_read(method: Callable[P, R]) -> Callable[P, R]:
    """A read a view repeats on its own (listing, sizes, layout, who has what open): the
    tools it runs are routine reads in the command log (routine()), shown apart from what
    the user's actions ran."""

    @functools.wraps(method)
    def read(*args: P.args, **kwargs: P.kwargs) -> R:
        with routine():
            return method(*args, **kwargs)

    return read


def is_routine() -> bool:
    return getattr(_ROUTINE, "on", False)


class CommandLog:
    """Recent tool calls (masked), and listeners told of each one."""

    def __init__(self, keep: int = 500) -> None:
        self.entries: deque[Completed] = deque(maxlen=keep)  # appends are thread-safe
        self._listeners: Listeners[Completed] = Listeners()

    def add_listener(self, fn: Listener) -> Callable[[], None]:
        """Returns the function that removes `fn`."""
        return self._listeners.add(fn)

    def record(self, entry: Completed) -> None:
        self.entries.append(entry)
        for fn in self._listeners.now():
            fn(entry)


COMMAND_LOG = CommandLog()


def declare_tool_packages(packages: Mapping[str, str]) -> None:
    """Add a driver's tools (tool -> Debian package) to those a ToolMissing can name."""
    TOOL_PACKAGES.update(packages)


def tool_path(tool: str) -> str:
    """Absolute path of `tool`, searching sbin dirs too; ToolMissing if absent."""
    import shutil

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


def _decode(data: bytes | bytearray) -> str:
    if len(data) > MAX_OUTPUT:
        data = data[:MAX_OUTPUT]
    return data.decode("utf-8", errors="replace")


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the tool and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _close_pipes(proc: subprocess.Popen) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _communicate(proc: subprocess.Popen, input: bytes | None, deadline: float | None,
                 stop: Callable[[], bool] | None) -> tuple[bytearray, bytearray, str]:
    """Feed `input`, read stdout and stderr to their end keeping MAX_OUTPUT bytes of each
    (the rest is read and dropped: a chatty tool neither blocks nor fills our memory).
    Returns (stdout, stderr, outcome): outcome is "done", "timeout" or "cancelled" (`stop`
    turned true; looked at every CANCEL_POLL seconds)."""
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    kept = {out_fd: bytearray(), err_fd: bytearray()}
    pending = memoryview(input or b"")

    def result(outcome: str) -> tuple[bytearray, bytearray, str]:
        return kept[out_fd], kept[err_fd], outcome

    import selectors

    with selectors.DefaultSelector() as sel:
        for fd in kept:
            sel.register(fd, selectors.EVENT_READ)
        if proc.stdin is not None:
            sel.register(proc.stdin.fileno(), selectors.EVENT_WRITE)
        while sel.get_map():
            if stop is not None and stop():
                return result("cancelled")
            wait = _wait_time(deadline, stop)
            if wait is not None and wait <= 0:
                return result("timeout")
            for key, _ in sel.select(wait):
                if key.fd in kept:
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fd)
                    buf = kept[key.fd]
                    buf += chunk[: MAX_OUTPUT - len(buf)]
                    continue
                try:  # select said writable: PIPE_BUF bytes go without blocking
                    pending = pending[os.write(key.fd, pending[: select.PIPE_BUF]):]
                except BrokenPipeError:
                    pending = pending[:0]
                if not pending:
                    sel.unregister(key.fd)
                    proc.stdin.close()  # type: ignore[union-attr]
    return result(_wait_exit(proc, deadline, stop))


def _wait_time(deadline: float | None, stop: Callable[[], bool] | None) -> float | None:
    """Seconds to block before looking at the deadline and the cancel flag again."""
    left = None if deadline is None else deadline - time.monotonic()
    if stop is None:
        return left
    return CANCEL_POLL if left is None else min(left, CANCEL_POLL)


def _wait_exit(proc: subprocess.Popen, deadline: float | None,
               stop: Callable[[], bool] | None) -> str:
    """Wait for the tool to exit (it closed its output but may still run)."""
    import subprocess

    while True:
        if stop is not None and stop():
            return "cancelled"
        wait = _wait_time(deadline, stop)
        if wait is not None and wait <= 0:
            return "timeout"
        try:
            proc.wait(wait)
            return "done"
        except subprocess.TimeoutExpired:
            continue


def _cancel_watch(cancel: JobContext | None) -> Callable[[], bool] | None:
    """What says "stop this tool": the job's cancel flag. A context passed explicitly names
    the job whose work the tool is: already cancelled, the tool is not started (Cancelled).
    The thread's job (implicit) already cancelled means the tool is that job cleaning up
    after the cancel: it is not watched and runs to its end (or its timeout)."""
    if cancel is not None and cancel is not NULL_CONTEXT:
        cancel.check()
        ctx: JobContext | None = cancel
    else:
        ctx = current()
        if ctx is None or ctx.cancelled:
            return None
    return lambda: ctx.cancelled


_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """In the main thread, SIGINT, SIGTERM and SIGHUP that arrive within the block are
    handled as they would have been, but when it ends (after the tool that must not be
    interrupted has finished). Elsewhere (job threads), nothing to do: signals only
    interrupt the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous: dict[int, object] = {}

    def hold(signum: int, frame: object) -> None:
        arrived.append(signum)

    try:
        for sig in _HELD_SIGNALS:
            if signal.getsignal(sig) is not None:  # None: set outside Python; leave it
                previous[sig] = signal.signal(sig, hold)
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        for signum in dict.fromkeys(arrived):
            _deliver(signum, previous[signum])


def _deliver(signum: int, handler: object) -> None:
    """Handle a held signal as its handler would have."""
    if callable(handler):
        handler(signum, None)  # Ctrl-C: KeyboardInterrupt, from here
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # its default action (terminate), now
    # SIG_IGN: ignored, as it would have been


def _argv(argv: Sequence[object]) -> list[str]:
    """argv as strings; a NUL cannot be passed to exec, so it is our error, not ValueError."""
    args = [str(a) for a in argv]
    if any("\0" in a for a in args):
        raise ValidationError(f"a value for '{args[0]}' holds a NUL character; "
                              "that cannot be passed to a program")
    return args


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
    cancel: JobContext | None = None,
) -> Completed:
    """Run argv[0] with the arguments as given. Raises ToolMissing, or ToolFailed if
    `check` and the exit status is non-zero or the timeout passed (the tool and whatever
    it started are then killed), or Cancelled when `cancel` (default: the job running in
    this thread) is cancelled while the tool runs: killed the same way, or, for a tool
    a cancel never kills (killed_on_cancel), once it has finished."""
    if not argv:
        raise ValueError("empty argv")
    args = _argv(argv)
    secrets = [s for s in secrets if s]
    exe = tool_path(args[0])
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["LC_ALL"] = "C"
    full_env.pop("LANGUAGE", None)
    shown = [mask(a, secrets) for a in args]
    watch = _cancel_watch(cancel)  # before the tool starts: a cancel from now on reaches it
    killable = killed_on_cancel(args)
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    with contextlib.nullcontext() if killable else _signals_held():
        # not killable: the cancel is not watched while it runs, only looked at after it
        outcome, rc, out, err = _run_tool([exe, *args[1:]], input, full_env, pass_fds,
                                          deadline, watch if killable else None)
        if outcome == "done" and not killable and watch is not None and watch():
            outcome = "cancelled after"  # it ran to its end; the job stops now
        import shlex

        if outcome == "timeout":
            err += f"\nkilled after {timeout:g} s: {shlex.join(shown)}"
        elif outcome == "cancelled":
            err += f"\nkilled on cancel: {shlex.join(shown)}"
        elif outcome == "cancelled after":
            err += (f"\ncancelled while it ran; not killed (a cancel never stops {args[0]} "
                    "half-way), the job stops now")
        result = Completed(
            argv=args,
            shown=shown,
            returncode=rc,
            stdout=out,
            stderr=mask(err, secrets),
            duration=time.monotonic() - started,
            routine=is_routine(),
        )
        (log or COMMAND_LOG).record(result)
    if outcome == "cancelled":
        raise Cancelled(f"cancelled ({args[0]} was stopped)")
    if outcome == "cancelled after":
        raise Cancelled(f"cancelled (after {args[0]} finished)")
    if check and rc != 0:
        raise ToolFailed(shown, rc, result.stderr)
    return result


def _run_tool(argv: list[str], input: bytes | None, env: dict[str, str],
              pass_fds: Sequence[int], deadline: float | None,
              stop: Callable[[], bool] | None) -> tuple[str, int | None, str, str]:
    """Start the tool in its own process group, feed it, collect its output; kill the
    group on the deadline, when `stop()` turns true, or when we are interrupted.
    (outcome, exit status or None, stdout, stderr)."""
    import subprocess

    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        pass_fds=tuple(pass_fds),
        close_fds=True,
        start_new_session=True,  # its own group, to kill all of it; no terminal to prompt on
    )
    try:
        raw_out, raw_err, outcome = _communicate(proc, input, deadline, stop)
        if outcome != "done":
            _kill_group(proc)
    except BaseException:  # interrupted: leave nothing running behind us
        _kill_group(proc)
        raise
    finally:
        _close_pipes(proc)
    rc = proc.returncode if outcome == "done" else None
    return outcome, rc, _decode(raw_out), _decode(raw_err)  # 2 x MAX_OUTPUT at most


def run_with_progress(
    argv: Sequence[str],
    on_output: Callable[[str], None],
    should_stop: Callable[[], bool],
    *,
    secrets: Iterable[str] = (),
    log: CommandLog | None = None,
    pass_fds: Sequence[int] = (),
) -> Completed:
    """Run a long tool, passing each line of its stdout (split on \\r and \\n, as progress
    meters write) to `on_output`, and stopping its process group when `should_stop()` or
    the running job's cancel flag (see run) turns true: SIGTERM, then SIGKILL after
    STOP_GRACE seconds.

    Raises ToolFailed on a non-zero exit, Cancelled after the job was cancelled; after
    another stop, the caller says why.
    """
    args = _argv(argv)
    secrets = [s for s in secrets if s]
    exe = tool_path(args[0])
    env = dict(os.environ, LC_ALL="C")
    cancelled = _cancel_watch(None)  # before the tool starts (see run)
    started = time.monotonic()
    import subprocess

    proc = subprocess.Popen(
        [exe, *args[1:]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env, close_fds=True, pass_fds=tuple(pass_fds),
        start_new_session=True,
    )
    err = bytearray()

    def drain() -> None:  # to the end, or a tool writing more than the cap would block
        assert proc.stderr is not None
        while chunk := proc.stderr.read1(65536):
            err.extend(chunk[: MAX_OUTPUT - len(err)])

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    stopper_done = threading.Event()

    killable = killed_on_cancel(args)

    def stopped() -> bool:
        return should_stop() or (killable and cancelled is not None and cancelled())

    def stopper() -> None:
        while not stopper_done.wait(CANCEL_POLL):
            if stopped():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
                if not stopper_done.wait(STOP_GRACE):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                return

    watch = threading.Thread(target=stopper, daemon=True)
    watch.start()
    try:
        _feed_lines(proc, on_output)
        rc = proc.wait()
        drainer.join()
    except BaseException:  # interrupted, or on_output failed: leave nothing running
        _kill_group(proc)
        raise
    finally:
        stopper_done.set()
        _close_pipes(proc)
    text = mask(_decode(err), secrets)
    result = Completed(args, [mask(a, secrets) for a in args], rc, "", text,
                       time.monotonic() - started, routine=is_routine())
    (log or COMMAND_LOG).record(result)
    if cancelled is not None and cancelled():
        raise Cancelled(f"cancelled ({args[0]} was stopped)")
    if rc != 0 and not should_stop():
        raise ToolFailed(result.shown, rc, text)
    return result


def _feed_lines(proc: subprocess.Popen, on_output: Callable[[str], None]) -> None:
    """Each non-blank line of stdout (split on \\r and \\n) to on_output; a line is cut to
    its last MAX_LINE bytes, so output without line ends cannot fill memory."""
    assert proc.stdout is not None
    pending = b""
    while chunk := proc.stdout.read1(65536):
        *lines, pending = (pending + chunk).replace(b"\r", b"\n").split(b"\n")
        pending = pending[-MAX_LINE:]
        for line in lines:
            if line.strip():
                on_output(line[-MAX_LINE:].decode("utf-8", "replace"))
