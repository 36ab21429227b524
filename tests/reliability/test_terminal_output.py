"""Every string bound for a terminal goes through one escaping rule
(backends/textsafe.py), in the CLI and in the TUI, and names refuse what it escapes.

Before: the CLI escaped C0/C1 only and no backslash, so a file named `a\\x1b` (typed
literally) printed like one holding ESC; a name with the undecodable byte 0x9b reached
the terminal raw (8-bit CSI) or crashed `vol-list` with UnicodeEncodeError on a strict
stdout; RTL overrides (U+202E) passed, and were accepted in new names; `vol-dumpxml`
printed a C1 character from a planted backing name; the TUI showed control characters
as '?' in its table but raw in headers, notifications and the log, and read names in
notifications as markup.

The CLI runs as a real process under LC_ALL=C (Python's UTF-8 mode: surrogates written
as raw bytes), PYTHONIOENCODING=ascii:strict and utf-8:strict; its output bytes are
checked: valid UTF-8 (ASCII under ascii), no unsafe character, every name shown escaped
and told apart.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import unicodedata
from pathlib import Path

import pytest
from lxml import etree

from backends import runner, textsafe
from backends.controller import StorageController
from backends.errors import InvalidName, PoolkeeperError
from backends.model import BackingStore, VolumeDef, VolumeTarget
from backends.names import check_name
from tests.conftest import make_dir_pool
from tests.screentext import screen_text
from tests.settle import settle
from tui.app import PoolkeeperApp
from tui.dialogs.fields import TypedConfirm

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[2]

# file name bytes -> how every terminal shows it (UTF-8 terminal, ASCII terminal)
PLANTED: dict[bytes, tuple[str, str]] = {
    b"plain.img": ("plain.img", "plain.img"),
    b"lit\\x1b": ("lit\\\\x1b", "lit\\\\x1b"),  # a backslash typed literally
    b"esc\x1bname": ("esc\\x1bname", "esc\\x1bname"),  # a real ESC
    b"bad\x9bbyte": ("bad\\x9bbyte", "bad\\x9bbyte"),  # not UTF-8: the byte
    "c1\u009bname".encode(): ("c1\\u009bname", "c1\\u009bname"),  # the C1 character
    "rtl\u202egpj.exe".encode(): ("rtl\\u202egpj.exe", "rtl\\u202egpj.exe"),
    "zero\u200bwidth".encode(): ("zero\\u200bwidth", "zero\\u200bwidth"),
    "caf\u00e9.img".encode(): ("caf\u00e9.img", "caf\\u00e9.img"),
}
UNSAFE_NAMES = [b"esc\x1bname", b"bad\x9bbyte", "c1\u009bname".encode(),
                "rtl\u202egpj.exe".encode(), "zero\u200bwidth".encode()]
ENVS = {
    "LC_ALL=C": {"LC_ALL": "C"},
    "ascii-strict": {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "ascii:strict"},
    "utf-8-strict": {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"},
}
# a backing name from an image header: C1, bidi and an accent (valid UTF-8)
ODD_BACKING = "b\u009b\u202eesab-caf\u00e9.img"


# What must never reach a terminal as it is: controls (C0, DEL, C1), format characters
# (bidi controls, zero-width, ...), surrogates (undecodable bytes), line separators.
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def unsafe_in(text: str) -> list[str]:
    return [ch for ch in text if ch not in "\n\t" and unicodedata.category(ch) in UNSAFE_CATEGORIES]


def assert_safe(data: bytes, ascii_only: bool) -> str:
    """Terminal output bytes: valid UTF-8 (ASCII), no character that must be escaped."""
    text = data.decode("ascii" if ascii_only else "utf-8")  # strict: no raw 0x9b byte
    assert unsafe_in(text) == [], text
    return text


# == names ==========================================================================
@pytest.mark.parametrize("ch", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f",
                                "\u061c", "\u200b", "\u200d", "\ufeff", "\u2028", "\u00ad",
                                "\x9b", "\x1b", "\udc9b"])
def test_names_refuse_what_the_terminal_would_show_escaped(ch: str) -> None:
    name = f"x{ch}y.img"
    with pytest.raises(InvalidName) as exc:
        check_name(name, "volume name")
    message = str(exc.value)
    code = ord(ch)
    shown = (f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code < 0xDD00 else
             f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
    # The message holds the name as it was given, and names the character by code point
    # (never an escape, which would show doubled): it is escaped once, where printed.
    assert f"'{name}'" in message and "names must not hold it" in message
    point = f"0x{code - 0xDC00:02X}" if 0xDC80 <= code < 0xDD00 else f"U+{code:04X}"
    assert point in message and "\\" not in message
    assert f"x{shown}y.img" in textsafe.escape(message)


# == the CLI, as a real process ========================================================
@pytest.fixture
def planted(tmp_path: Path) -> tuple[Path, Path]:
    """(state root, pool directory) with the PLANTED files and an overlay 'ov.qcow2'."""
    state = tmp_path / "state"
    state.mkdir()
    images = tmp_path / "images"
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "p", images)
        ctl.create_volume_def("p", VolumeDef(name="base.img", capacity=MiB,
                                             target=VolumeTarget(format="raw"))).wait(60)
        ctl.create_volume_def("p", VolumeDef(
            name="ov.qcow2", capacity=MiB, target=VolumeTarget(format="qcow2"),
            backing=BackingStore(path=str(images / "base.img"), format="raw"))).wait(60)
        ctl.store.mark_initialized()
    for name in PLANTED:
        (images / os.fsdecode(name)).write_bytes(b"x")
    return state, images


def rebase(images: Path, backing: bytes) -> None:
    """Plant a backing name in the overlay's header, as a guest or an upload could."""
    subprocess.run([b"qemu-img", b"rebase", b"-u", b"-f", b"qcow2", b"-F", b"raw", b"-b",
                    os.fsencode(images) + b"/" + backing, os.fsencode(images / "ov.qcow2")],
                   check=True, capture_output=True)


def cli(state: Path, env_name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO"))}
    env.update(ENVS[env_name], PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "tui", "--root", str(state), *args],
                          capture_output=True, env=env, timeout=120)


@pytest.mark.parametrize("env_name", list(ENVS))
def test_vol_list_shows_every_name_escaped_and_apart(planted, env_name: str) -> None:
    state, _images = planted
    ascii_only = env_name == "ascii-strict"
    for args in (("vol-list", "p"), ("vol-list", "p", "--details")):
        r = cli(state, env_name, *args)
        assert r.returncode == 0, r.stderr
        out = assert_safe(r.stdout, ascii_only)
        err = assert_safe(r.stderr, ascii_only)
        for utf8, ascii in PLANTED.values():
            assert (ascii if ascii_only else utf8) in out, (utf8, out)
        # the literal backslash and the real ESC are told apart
        assert "lit\\\\x1b" in out and "esc\\x1bname" in out and "lit\\x1b " not in out
        for name in UNSAFE_NAMES:  # listed, with why they cannot be managed
            shown = PLANTED[name][1 if ascii_only else 0]
            assert re.search(rf"warning: {re.escape(shown)}: .*rename it to manage it", err)


@pytest.mark.parametrize("env_name", list(ENVS))
def test_vol_info_and_errors_are_escaped(planted, env_name: str) -> None:
    state, images = planted
    ascii_only = env_name == "ascii-strict"
    rebase(images, ODD_BACKING.encode())
    r = cli(state, env_name, "vol-info", "--pool", "p", "ov.qcow2")
    assert r.returncode == 0, r.stderr
    out = assert_safe(r.stdout, ascii_only)
    accent = "\\u00e9" if ascii_only else "\u00e9"
    assert f"b\\u009b\\u202eesab-caf{accent}.img" in out
    for name in UNSAFE_NAMES:  # refused by name, with the name escaped in the error
        r = cli(state, env_name, "vol-info", "--pool", "p", os.fsdecode(name))
        assert r.returncode == 1 and r.stdout == b""
        err = assert_safe(r.stderr, ascii_only)
        assert PLANTED[name][1 if ascii_only else 0] in err, err
    r = cli(state, env_name, "vol-create-as", "p", "new\u202egpj.exe", "1M")
    assert r.returncode == 1
    assert "names must not hold it" in assert_safe(r.stderr, ascii_only)
    assert not any("new" in n for n in os.listdir(images))


@pytest.mark.parametrize("env_name", list(ENVS))
def test_dumpxml_writes_character_references_that_read_back(planted, env_name: str) -> None:
    state, images = planted
    ascii_only = env_name == "ascii-strict"
    rebase(images, ODD_BACKING.encode())
    r = cli(state, env_name, "vol-dumpxml", "--pool", "p", "ov.qcow2")
    assert r.returncode == 0, r.stderr
    xml = assert_safe(r.stdout, ascii_only)
    assert "&#x9b;&#x202e;" in xml
    path = etree.fromstring(xml.encode()).findtext("backingStore/path")
    assert path == f"{images}/{ODD_BACKING}"  # the same name, read back by any XML reader
    # a pool whose target holds a bidi control
    target = f"{images.parent}/t\u202edir"
    r = cli(state, env_name, "pool-define-as", "q", "dir", "--target", target)
    assert r.returncode == 0, r.stderr
    r = cli(state, env_name, "pool-dumpxml", "q")
    xml = assert_safe(r.stdout, ascii_only)
    assert etree.fromstring(xml.encode()).findtext("target/path") == target


@pytest.mark.parametrize("env_name", list(ENVS))
def test_an_undecodable_byte_in_a_backing_name_is_refused_in_xml(planted, env_name: str
                                                                 ) -> None:
    """XML cannot carry it (nor a character reference to it): vol-dumpxml refuses with a
    clear error; vol-info shows the byte."""
    state, images = planted
    ascii_only = env_name == "ascii-strict"
    rebase(images, b"base\x9b.img")
    r = cli(state, env_name, "vol-dumpxml", "--pool", "p", "ov.qcow2")
    assert r.returncode == 1 and r.stdout == b""
    assert "XML cannot carry" in assert_safe(r.stderr, ascii_only)
    r = cli(state, env_name, "vol-info", "--pool", "p", "ov.qcow2")
    assert "base\\x9b.img" in assert_safe(r.stdout, ascii_only)


def test_json_is_ascii_and_gives_back_the_exact_bytes(planted) -> None:
    state, images = planted
    r = cli(state, "ascii-strict", "vol-list", "p", "--json")
    assert r.returncode == 0, r.stderr
    volumes = json.loads(r.stdout.decode("ascii"))
    names = {os.fsencode(v["name"]) for v in volumes}  # surrogates: the original bytes
    assert set(PLANTED) <= names
    for v in volumes:
        assert os.path.exists(os.fsencode(v["path"]))


# == the TUI ===========================================================================


@pytest.mark.parametrize("ascii", [False, True], ids=["unicode", "ascii"])
async def test_tui_draws_names_paths_and_messages_escaped(planted, ascii: bool) -> None:
    state, images = planted
    rebase(images, ODD_BACKING.encode())
    (images / "[b]bold.img").write_bytes(b"x")  # markup, if read as markup
    (images / "back\\slash.img").write_bytes(b"x")
    with StorageController(state) as ctl:
        app = PoolkeeperApp(ctl, ascii=ascii, monitor_interval=None)
        async with app.run_test(size=(200, 60), notifications=True) as pilot:
            await settle(app, pilot)
            text = screen_text(app)
            for utf8, ascii_form in PLANTED.values():
                shown = ascii_form if ascii else utf8
                assert shown in text or shown[:13] + ("~" if ascii else "\u2026") in text, text
            assert "back\\\\slash.img" in text
            assert unsafe_in(text) == []
            if ascii:
                assert text.isascii()
            # a notification naming a volume: plain text, escaped
            table = app.main_screen.table
            table.focus()
            table.select("[b]bold.img")
            await pilot.press("y")
            await settle(app, pilot)
            note = list(app._notifications)[-1]
            assert note.message == f"copied {images}/[b]bold.img" and not note.markup
            # the overlay's XML: character references
            table.select("ov.qcow2")
            await pilot.press("x")
            await settle(app, pilot)
            assert "&#x9b;&#x202e;" in screen_text(app)
            await pilot.press("escape")
            # a typed confirmation accepts the name as the prompt shows it
            table.select("back\\slash.img")
            await pilot.press("w")
            await settle(app, pilot)
            confirm = app.screen.query_one(TypedConfirm)
            assert "back\\\\slash.img" in screen_text(app)
            confirm.input.value = "back\\\\slash.img"
            assert confirm.confirmed
            await pilot.press("escape")
            await settle(app, pilot)
            assert app.screen is app.main_screen


# == one rule: messages are escaped once, like names ===================================
# Engine messages hold names as they are; the CLI and the TUI escape every message once,
# backslashes included. Before, messages were printed keeping their backslashes (on the
# assumption that names in them were escaped already), so a name typed with a backslash
# (`lit\x1b`, valid) printed exactly like one holding a real ESC.
LIT = "lit\\x1b"  # typed with a backslash: a valid name
LIT_SHOWN = "lit\\\\x1b"  # how a terminal must show it
LIT_AS_ESC = "lit\\x1b"  # ... and how a real ESC shows: never for LIT


def lit_apart(text: str, count: int | None = None) -> None:
    """LIT is shown with its backslash escaped wherever it appears, never like an ESC."""
    assert LIT_SHOWN in text, text
    assert LIT_AS_ESC not in text.replace(LIT_SHOWN, ""), text
    if count is not None:
        assert text.count(LIT_SHOWN) >= count, text


@pytest.fixture
def backslashed(tmp_path: Path) -> tuple[Path, Path]:
    """(state root, pool dir): volumes named with a literal backslash (a qcow2 and a raw
    one), and two dangling links, to `lit\x1b` (backslash) and to `esc<ESC>`."""
    state = tmp_path / "state"
    state.mkdir()
    images = tmp_path / "images"
    with StorageController(state, create_default=False) as ctl:
        make_dir_pool(ctl, "p", images)
        for name, fmt in ((f"{LIT}.qcow2", "qcow2"), (f"{LIT}.img", "raw")):
            ctl.create_volume_def("p", VolumeDef(name=name, capacity=MiB,
                                                 target=VolumeTarget(format=fmt))).wait(60)
        ctl.store.mark_initialized()
    os.symlink(LIT, images / "dl1.img")
    os.symlink("esc\x1bname", images / "dl2.img")
    return state, images


@pytest.mark.parametrize("env_name", list(ENVS))
def test_cli_errors_and_warnings_show_a_backslash_name_unlike_a_control_character(
        backslashed, env_name: str) -> None:
    state, _images = backslashed
    ascii_only = env_name == "ascii-strict"
    # errors: a name typed with a backslash, and one holding a real ESC
    r = cli(state, env_name, "vol-info", "--pool", "p", "nonexist\\x1b")
    typed = assert_safe(r.stderr, ascii_only)
    assert r.returncode == 1 and "'nonexist\\\\x1b'" in typed, typed
    r = cli(state, env_name, "vol-info", "--pool", "p", "nonexist\x1b")
    real = assert_safe(r.stderr, ascii_only)
    assert r.returncode == 1 and "'nonexist\\x1b'" in real and "U+001B" in real, real
    assert "'nonexist\\x1b'" not in typed
    # warnings: a listed volume's error, and a job's warning
    r = cli(state, env_name, "vol-list", "p")
    err = assert_safe(r.stderr, ascii_only)
    assert f"warning: dl1.img: dangling symlink to '{LIT_SHOWN}'" in err, err
    assert "warning: dl2.img: dangling symlink to 'esc\\x1bname'" in err, err
    r = cli(state, env_name, "vol-wipe", "--pool", "p", f"{LIT}.qcow2")
    assert r.returncode == 0, r.stderr
    err = assert_safe(r.stderr, ascii_only)
    assert f"warning: '{LIT_SHOWN}.qcow2' was qcow2; after the wipe it is raw" in err, err
    lit_apart(assert_safe(r.stdout, ascii_only))


def test_cli_progress_line_shows_the_job_description_escaped_once() -> None:
    """wait_job draws the job's description on a terminal (the progress line)."""
    from backends.events import EventBus
    from backends.jobs import JobManager
    from cli.output import wait_job

    class Tty(io.StringIO):
        encoding = "utf-8"
        drawn = threading.Event()

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            if "[" in text:
                self.drawn.set()
            return super().write(text)

    err = Tty()
    jobs = JobManager(EventBus())
    job = jobs.create("upload", f"upload {LIT} to {LIT}.img")

    def work(job) -> None:
        job.update(1, 2)
        assert err.drawn.wait(30)  # finish once the line was drawn

    wait_job(jobs.start(job, work), err)
    lit_apart(err.getvalue(), count=2)


async def test_tui_messages_show_a_backslash_name_unlike_a_control_character(
        backslashed) -> None:
    """Notifications (a verb's error, a job's end, its warning), the volume table's error
    cells, the jobs panel (description and error) and the log panel (argv and the
    tool's last stderr line)."""
    state, images = backslashed
    with StorageController(state) as ctl:
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=(200, 60), notifications=True) as pilot:
            await settle(app, pilot)
            text = screen_text(app)  # the table's error cells
            assert f"dangling symlink to '{LIT_SHOWN}'" in text, text
            assert "dangling symlink to 'esc\\x1bname'" in text, text
            screen = app.main_screen
            screen.run_verb(f"delete gone{LIT}", "deleted", ctl.delete_volume, "p",
                            f"gone{LIT}")
            ctl.wipe_volume("p", f"{LIT}.qcow2").wait(60)  # done, with a warning
            failed = ctl.upload_volume("p", f"{LIT}.img", str(images.parent / f"gone{LIT}"))
            with pytest.raises(PoolkeeperError):
                failed.wait(60)
            runner.run(["sh", "-c", 'echo "cannot use $1" >&2; exit 3', "sh", LIT],
                       check=False)
            await settle(app, pilot)
            notes = [n.message for n in app._notifications]
            error = next(n for n in notes if n.startswith("could not delete"))
            assert error.count(LIT_SHOWN) == 2, error  # the action and the engine's message
            lit_apart(error)
            done = next(n for n in notes if n.startswith("done: wipe"))
            lit_apart(done)
            warning = next(n for n in notes if "after the wipe it is raw" in n)
            lit_apart(warning)
            upload = next(n for n in notes if "upload" in n and "failed" in n
                          or "cannot upload" in n)
            lit_apart(upload, count=3)  # description, and the path in the error
            await pilot.press("j", "l")
            await settle(app, pilot)
            text = screen_text(app)
            assert f"wipe {LIT_SHOWN}.qcow2" in text, text  # jobs panel: descriptions
            assert f"upload gone{LIT_SHOWN} to {LIT_SHOWN}.img" in text, text
            assert f"gone{LIT_SHOWN}': No such file" in text, text  # ... and the error
            assert f"cannot use {LIT_SHOWN}" in text, text  # the log panel
            lit_apart(text)


@pytest.mark.parametrize("env_name", list(ENVS))
def test_cli_pool_verbs_print_the_pool_name_escaped(tmp_path: Path, env_name: str) -> None:
    """Every line the pool verbs print names the pool escaped: pool-delete printed it as
    it was (an accent crashed an ASCII stdout with UnicodeEncodeError, exit 1 after the
    pool was deleted)."""
    state = tmp_path / "state"
    state.mkdir()
    ascii_only = env_name == "ascii-strict"
    name = f"caf\u00e9-{LIT}"
    shown = ("caf\\u00e9-" if ascii_only else "caf\u00e9-") + LIT_SHOWN
    target = tmp_path / "pool"
    said = []
    for verb in (["pool-define-as", name, "dir", "--target", str(target)],
                 ["pool-build", name], ["pool-start", name], ["pool-autostart", name],
                 ["pool-destroy", name], ["pool-delete", name], ["pool-undefine", name]):
        r = cli(state, env_name, *verb)
        assert r.returncode == 0, (verb, r.stderr)
        out = assert_safe(r.stdout, ascii_only)
        assert f"Pool {shown} " in out, (verb, out)
        said.append(out)
    assert not target.exists()
    assert "deleted" in said[5], said
