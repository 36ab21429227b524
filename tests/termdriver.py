"""A real terminal for tests: poolkeeper (or any command) in a private tmux server.

    with Terminal(tmp_path, size=(80, 24)) as term:
        term.start(["python", "-m", "tui", "--root", str(state)], env={...})
        term.wait_for("images")
        term.keys("C-p", "Enter")          # tmux key names, sent together
        term.type("some text")             # literal text
        print(term.screen())
        term.hang_up()                      # kill the session: the terminal goes away
        status = term.wait_exit(60)         # the command's exit status (None: still running)

Each Terminal has its own tmux server (its socket in the test's directory, no config
file), so it never meets anyone's own tmux sessions. The command runs under a small shell
that records the command's pid, and its exit status once it ends (128+N after signal N);
the shell survives the hang-up to write that status, and passes the SIGHUP on to the
command as a login shell does. `setsid=True` starts the command in a new session, without
the terminal as its controlling terminal, as `su -c` or `setsid` do: then a hang-up sends
it no SIGHUP at all.

On exit the tmux server is killed and so is every process this Terminal started that is
still there (by the pids it recorded), the command included.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

# The shell outlives the hang-up to record the command's exit status. Like a login shell,
# it passes a SIGHUP on to the command (the kernel signals only the session leader), unless
# the command runs in a session of its own (setsid). The command runs in the background so
# that the trap runs at once; its stdin is the terminal (fd 3), not the /dev/null a
# non-interactive shell gives background commands.
WRAPPER = """\
{trap}
echo $$ > "$TERM_DIR/shell.pid"
exec 3<&0
{setsid}sh -c 'echo $$ > "$TERM_DIR/app.pid"; exec "$@"' app "$@" 0<&3 3<&- &
child=$!
while :; do
    wait "$child"; status=$?
    kill -0 "$child" 2>/dev/null || break
done
echo $status > "$TERM_DIR/status.tmp" && mv "$TERM_DIR/status.tmp" "$TERM_DIR/status"
sleep 600
"""
PASS_HUP = 'trap \'echo hangup >> "$TERM_DIR/shell.log"; kill -HUP "$child" 2>/dev/null\' HUP'
KEEP_HUP = 'trap \'echo hangup >> "$TERM_DIR/shell.log"\' HUP'


def have_tmux() -> bool:
    return subprocess.run(["sh", "-c", "command -v tmux"], capture_output=True).returncode == 0


class Terminal:
    def __init__(self, base: Path, size: tuple[int, int] = (80, 24)) -> None:
        self.dir = base / f"term-{os.getpid()}-{time.monotonic_ns()}"
        self.dir.mkdir(parents=True)
        self.socket = self.dir / "tmux.sock"
        self.size = size
        self.session = "pk"

    # -- tmux --------------------------------------------------------------------------
    def tmux(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=30)
        if check and proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              cwd: Path | None = None, setsid: bool = False) -> None:
        script = self.dir / "run.sh"
        script.write_text(WRAPPER.format(setsid="setsid -w " if setsid else "",
                                         trap=KEEP_HUP if setsid else PASS_HUP))
        full_env = {"TERM_DIR": str(self.dir), "TERM": "xterm-256color", **(env or {})}
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in full_env.items())
        line = f"env {assignments} sh {shlex.quote(str(script))} {shlex.join(argv)}"
        cols, rows = self.size
        self.tmux("new-session", "-d", "-s", self.session, "-x", str(cols), "-y", str(rows),
                  "-c", str(cwd or self.dir), line)

    def keys(self, *keys: str) -> None:
        """tmux key names (Enter, Escape, C-p, PageDown, ...), sent in one go."""
        self.tmux("send-keys", "-t", self.session, *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def screen(self, history: bool = False) -> str:
        args = ["capture-pane", "-p", "-J", "-t", self.session] + (["-S", "-"] if history else [])
        return self.tmux(*args, check=False)

    def wait_for(self, text: str, timeout: float = 60.0) -> bool:
        """Poll the screen until `text` is on it (a generous cap, not a speed test)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.screen():
                return True
            if self.status() is not None:
                return text in self.screen(history=True)
            time.sleep(0.1)
        return False

    def hang_up(self) -> None:
        """The terminal goes away, as when an SSH link drops: the pane's pty is closed."""
        self.tmux("kill-server", check=False)

    # -- the command -------------------------------------------------------------------
    def _pid(self, name: str) -> int | None:
        try:
            return int((self.dir / name).read_text())
        except (OSError, ValueError):
            return None

    @property
    def app_pid(self) -> int | None:
        return self._pid("app.pid")

    def status(self) -> int | None:
        try:
            return int((self.dir / "status").read_text())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.app_pid
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def wait_exit(self, timeout: float) -> int | None:
        """The command's exit status once it ended; None if it still runs after `timeout`
        seconds (a cap for a test to fail on, never a measure of speed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None:
                return status
            time.sleep(0.1)
        return None

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the command has used so far."""
        pid = self.app_pid
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- clean-up ----------------------------------------------------------------------
    def close(self) -> None:
        """Kill the tmux server, then whatever this Terminal started that is still running:
        the shell (checked by its command line, so a reused pid is never hit), its children
        (its `sleep`, the command) and the command if it never ended."""
        self.tmux("kill-server", check=False)
        doomed: list[int] = []
        shell = self._pid("shell.pid")
        if shell is not None and str(self.dir / "run.sh") in _cmdline(shell):
            doomed += _children(shell) + [shell]
        if self.status() is None and self.alive() and self.app_pid not in doomed:
            doomed.append(self.app_pid)  # type: ignore[arg-type]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found
