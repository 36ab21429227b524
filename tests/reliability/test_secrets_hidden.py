"""A CHAP secret never shows, against a real tgtd target with CHAP.

While an iscsi-direct pool is started, listed, uploaded to, downloaded from and wiped (and
while the same verbs fail because the stored secret is wrong), a watcher thread reads the
command line of every process in /proc, which any user can: the secret is never in one
(libiscsi's tools get it in their environment, qemu-img from the 0600 file). It is never in
the command log (the argv as run, what the log panel shows, stdout, stderr), in an event, in
a job's error or warning, in an exception message, in the CLI's output, nor on the TUI's
screen: its dialog, its log panel, its notifications.

The kernel initiator (iscsi pools) cannot be covered here: iscsiadm takes a node's password
only as `--value` in its argv, and iscsid cannot run on this machine; there the runner masks
it in the log and errors (tests/drivers/test_iscsi.py checks that argv).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import runner
from backends.controller import StorageController
from backends.errors import PoolkeeperError
from tests.conftest import needs_root
from tests.iscsitarget import INITIATOR, IscsiTarget, MiB, running_tgtd

USER = "pkchap"
USAGE = "tgt-chap"
PASSWORD = "Sekr1t-pw,with!comma42"
WRONG = "Wr0ng-pw-but-also-secret77"
SECRETS = (PASSWORD, WRONG)

pytestmark = needs_root


# == watching every command line on the machine ========================================
class ProcWatch:
    """Reads /proc/*/cmdline over and over in a thread: every command line seen, and
    those that held a secret."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = [s.encode() for s in secrets]
        self.seen: set[bytes] = set()
        self.leaks: list[bytes] = []
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = str(os.getpid())
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or entry.name == me:
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                        cmdline = fh.read()
                except OSError:
                    continue
                if cmdline and cmdline not in self.seen:
                    self.seen.add(cmdline)
                    if any(s in cmdline for s in self.secrets):
                        self.leaks.append(cmdline)
            self.rounds += 1

    def saw(self, program: str) -> bool:
        return any(c.split(b"\0")[0].endswith(program.encode()) for c in self.seen)

    def __enter__(self) -> ProcWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def chap_target(tmp_path: Path) -> Iterator[IscsiTarget]:
    with running_tgtd(tmp_path / "tgt", chap=(USER, PASSWORD)) as target:
        yield target


@pytest.fixture
def command_log() -> Iterator[list[runner.Completed]]:
    seen: list[runner.Completed] = []
    remove = runner.COMMAND_LOG.add_listener(seen.append)
    try:
        yield seen
    finally:
        remove()


def pool_xml(t: IscsiTarget) -> str:
    return (f"<pool type='iscsi-direct'><name>lun</name><source>"
            f"<host name='{t.host}' port='{t.port}'/><device path='{t.iqn}'/>"
            f"<initiator><iqn name='{INITIATOR}'/></initiator>"
            f"<auth type='chap' username='{USER}'><secret usage='{USAGE}'/></auth>"
            "</source></pool>")


def assert_nowhere(texts: list[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, text[:500]


def log_texts(entries: list[runner.Completed]) -> list[str]:
    """Everything a command log entry holds, the argv as run included."""
    return ["\0".join([*e.argv, *e.shown, e.stdout, e.stderr]) for e in entries]


def test_the_watch_sees_a_secret_on_a_command_line() -> None:
    """The watch can fail: a process with the secret in its argv is seen."""
    with ProcWatch(SECRETS) as watch:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)",
                                 PASSWORD])
        proc.wait()
    assert watch.leaks and watch.rounds > 1


# == the controller and the CLI ========================================================
def test_chap_secret_never_shows(ctl: StorageController, chap_target: IscsiTarget, cli,
                                 command_log, tmp_path: Path) -> None:
    events: list[object] = []
    ctl.subscribe(events.append)
    messages: list[str] = []
    data = os.urandom(MiB + 1000)  # a partial last sector: the window read/patch/write too
    (tmp_path / "in.bin").write_bytes(data)
    with ProcWatch(SECRETS) as watch:
        ctl.set_secret(USAGE, PASSWORD)
        ctl.define_pool(pool_xml(chap_target))
        ctl.start_pool("lun")
        assert [v.name for v in ctl.list_volumes("lun")] == [
            "unit:0:0:1", "unit:0:0:2", "unit:0:0:3"]
        jobs = [ctl.upload_volume("lun", "unit:0:0:1", str(tmp_path / "in.bin"))]
        jobs[-1].wait(120)
        jobs.append(ctl.download_volume("lun", "unit:0:0:1", str(tmp_path / "out.bin"),
                                        length=len(data)))
        jobs[-1].wait(120)
        assert (tmp_path / "out.bin").read_bytes() == data
        jobs.append(ctl.wipe_volume("lun", "unit:0:0:3"))
        jobs[-1].wait(120)
        r = cli("vol-list", "lun", "--details")
        assert r.code == 0 and "unit:0:0:2" in r.out, r
        messages += [r.out, r.err]

        # the same verbs fail with a wrong secret stored: the errors say so, without it
        ctl.set_secret(USAGE, WRONG)
        for verb in (lambda: ctl.refresh_pool("lun"),
                     lambda: ctl.volume_info("lun", "unit:0:0:2"),
                     lambda: ctl.pool_info("lun").detail,
                     lambda: ctl.upload_volume("lun", "unit:0:0:2",
                                               str(tmp_path / "in.bin")).wait(120)):
            try:
                messages.append(str(verb()))
            except PoolkeeperError as exc:
                messages.append(str(exc))
        assert any("refused the CHAP login" in m for m in messages), messages
        for args in (("vol-list", "lun"), ("pool-refresh", "lun"),
                     ("vol-download", "unit:0:0:1", "--pool", "lun",
                      str(tmp_path / "again.bin"))):
            r = cli(*args)
            assert r.code == 1 and "CHAP" in r.err and "Traceback" not in r.err, r
            messages += [r.out, r.err]
        r = cli("pool-dumpxml", "lun")
        messages += [r.out, r.err]
    # the watch ran while the tools did, and saw them
    assert watch.saw("iscsi-ls") and watch.saw("qemu-img"), sorted(watch.seen)[:20]
    assert watch.leaks == []
    assert command_log and any(e.argv[0] == "qemu-img" for e in command_log)
    assert_nowhere(log_texts(command_log))
    assert_nowhere(messages)
    assert_nowhere([repr(e) for e in events])
    for job in jobs:
        assert_nowhere([str(job.error or ""), *job.warnings, job.description])
    # the value is on disk only in the store's own 0600 file
    assert not any(PASSWORD.encode() in p.read_bytes() for p in ctl.paths.config_dir.rglob("*")
                   if p.is_file() and p.parent.name != "secrets")


# == the TUI ===========================================================================
def screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip)
                     for strip in app.screen._compositor.render_strips())


def panel_text(app) -> str:
    from tui.screens.main import MainScreen
    from tui.widgets.log_panel import LogPanel

    main = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    panel = main.query_one("#log", LogPanel)
    return "\n".join("".join(seg.text for seg in strip) for strip in panel.lines)


async def test_chap_secret_never_on_the_tui_screen(state_root: Path,
                                                   chap_target: IscsiTarget) -> None:
    from textual.widgets import Input

    from tests.tui.test_app import settle
    from tui.app import PoolkeeperApp

    ctl = StorageController(state_root, create_default=False)
    shown: list[str] = []
    try:
        ctl.define_pool(pool_xml(chap_target))
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(160, 50)) as pilot:
            await settle(app, pilot)
            await pilot.press("S")  # the CHAP secret dialog of the selected pool
            await settle(app, pilot)
            dialog = app.screen
            for field in ("#value", "#again"):
                dialog.query_one(field, Input).focus()
                await pilot.press(*PASSWORD[:12])  # typed: what echo there is, is masks
                dialog.query_one(field, Input).value = PASSWORD
                await pilot.pause()
                shown.append(screen_text(app))
            await pilot.press("ctrl+s")
            await settle(app, pilot)
            assert ctl.has_secret(USAGE)
            await pilot.press("s")  # start: libiscsi and qemu-img log in with it
            for _ in range(100):
                await settle(app, pilot, 1)
                if ctl.pool_info("lun").state == "running":
                    break
            assert ctl.pool_info("lun").state == "running"
            await pilot.press("l")  # the log panel
            await settle(app, pilot)
            shown += [screen_text(app), panel_text(app)]
            assert "iscsi-ls" in panel_text(app)
            ctl.set_secret(USAGE, WRONG)
            await pilot.press("r")  # refresh fails: the notification names the problem
            for _ in range(100):
                await settle(app, pilot, 1)
                if "CHAP" in screen_text(app):
                    break
            shown += [screen_text(app), panel_text(app)]
            assert "CHAP" in shown[-2]
            await pilot.press("x")  # the pool's XML
            await settle(app, pilot)
            shown.append(screen_text(app))
    finally:
        ctl.close()
    assert_nowhere(shown)
    assert "\u2022" * len(PASSWORD) in shown[0]  # the echo is one mask per character


def test_the_screen_check_can_fail() -> None:
    with pytest.raises(AssertionError):
        assert_nowhere([f"ok 0.01s iscsi-ls -p {PASSWORD}"])
