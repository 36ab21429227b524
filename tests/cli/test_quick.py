"""cli.quick answers `pool-list` without the engine, and prints what cli.main prints; in
every case it does not vouch for, it leaves the answer to cli.main.

Each comparison runs both on the same real state root (dir pools started, stopped, with
autostart, another pool type stopped), in-process; the import check runs the command as
a user does.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli import quick
from cli.main import main

REPO = Path(__file__).resolve().parents[2]
FORMS = [(), ("--all",), ("--details",), ("--all", "--details"), ("--inactive",),
         ("--inactive", "--details"), ("--type", "dir", "--all"), ("--type=netfs", "--all"),
         ("--type", "dir,netfs", "--all", "--details"), ("--all", "--type", "fs")]


def full(root: Path, *args: str) -> str:
    out = io.StringIO()
    assert main(["--root", str(root), *args], out) == 0
    return out.getvalue()


def fast(root: Path, *args: str) -> str | None:
    out = io.StringIO()
    code = quick.pool_list(["--root", str(root), *args], out)
    return None if code is None else out.getvalue()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A root the full CLI has opened (default pool, autostart round), with pools: `a`
    running with autostart, `b` stopped, `n` a stopped netfs pool."""
    state = tmp_path / "state"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        full(state, "pool-define-as", name, "dir", "--target", str(tmp_path / name))
    full(state, "pool-define-as", "n", "netfs", "--source-host", "127.0.0.1",
         "--source-path", "/export", "--target", str(tmp_path / "n"))
    full(state, "pool-start", "a")
    full(state, "pool-autostart", "a")
    return state


@pytest.mark.parametrize("args", FORMS, ids=" ".join)
def test_the_same_as_the_full_cli(root: Path, args: tuple[str, ...]) -> None:
    ours = fast(root, "pool-list", *args)
    assert ours is not None
    assert ours == full(root, "pool-list", *args)


def test_the_listing_is_of_the_pools(root: Path) -> None:
    """What the comparisons compare: every pool, its state, sizes while running."""
    text = fast(root, "pool-list", "--all", "--details")
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:] if line}
    assert set(rows) == {"a", "b", "default", "n"}
    assert rows["a"][1:4] == ["running", "yes", "yes"] and rows["a"][5] in ("KiB", "MiB",
                                                                            "GiB", "TiB")
    assert rows["b"][1:] == ["inactive", "no", "yes", "-", "-", "-"]


@pytest.mark.parametrize("argv", [
    ("pool-list", "--json"), ("pool-list", "--name"), ("pool-list", "--det"),
    ("pool-info", "a"), ("vol-list", "a"), ("--version",), (), ("pool-list", "--type"),
    ("--help",), ("pool-list", "-h"), ("pool-list", "--all", "--inactive"),
    ("pool-list", "--all", "--all"), ("pool-list", "--type="),
    ("pool-list", "--type", "dir", "--type", "fs"),
], ids=" ".join)
def test_what_it_does_not_know_goes_to_the_full_cli(root: Path, argv: tuple[str, ...]) -> None:
    assert fast(root, *argv) is None


def test_a_transient_pool_goes_to_the_full_cli(root: Path, tmp_path: Path) -> None:
    """pool-create's pools live under the runtime dir, where this module does not read."""
    (tmp_path / "t").mkdir()
    full(root, "pool-create-as", "t", "dir", "--target", str(tmp_path / "t"))
    assert fast(root, "pool-list") is None
    assert " t " in full(root, "pool-list")
    full(root, "pool-destroy", "t")
    assert fast(root, "pool-list") == full(root, "pool-list")


def test_refusals_are_the_full_clis(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """virsh refuses these; so does cli.main (and cli.quick does not answer them)."""
    for args in (("--all", "--inactive"), ("--all", "--all"), ("--type=",)):
        assert main(["--root", str(root), "pool-list", *args], io.StringIO()) == 1
        assert "error:" in capsys.readouterr().err


def test_a_new_root_is_opened_by_the_full_cli(tmp_path: Path) -> None:
    """Nothing made yet (the default pool, the autostart round): the full CLI does it."""
    state = tmp_path / "new"
    assert fast(state, "pool-list") is None
    full(state, "pool-list")
    assert fast(state, "pool-list") == full(state, "pool-list")


def test_another_boot_goes_to_the_full_cli(root: Path) -> None:
    (root / "run" / ".autostarted").write_text("another-boot")
    assert fast(root, "pool-list") is None
    full(root, "pool-list")  # starts the autostart pools of this boot
    assert fast(root, "pool-list") is not None


def test_a_killed_writers_temp_file_goes_to_the_full_cli(root: Path) -> None:
    (root / "storage" / ".poolkeeper-partial-0123abcd").write_bytes(b"half")
    assert fast(root, "pool-list") is None
    full(root, "pool-list")  # sweeps it
    assert not (root / "storage" / ".poolkeeper-partial-0123abcd").exists()
    assert fast(root, "pool-list") is not None


def test_a_state_dir_others_can_write_goes_to_the_full_cli(root: Path) -> None:
    (root / "storage").chmod(0o775)
    assert fast(root, "pool-list") is None
    (root / "storage").chmod(0o755)
    (root / "secrets").mkdir(mode=0o755)
    assert fast(root, "pool-list") is None  # secrets must be private
    (root / "secrets").chmod(0o700)
    assert fast(root, "pool-list") is not None


def test_a_swapped_target_goes_to_the_full_cli(root: Path, tmp_path: Path) -> None:
    """The pool's directory replaced by another: the full CLI says inaccessible."""
    os.rename(tmp_path / "a", tmp_path / "a-old")
    (tmp_path / "a").mkdir()
    assert fast(root, "pool-list") is None
    assert "inaccessible" in full(root, "pool-list", "--details")
    shutil.rmtree(tmp_path / "a")
    os.rename(tmp_path / "a-old", tmp_path / "a")
    assert fast(root, "pool-list") is not None


def test_a_definition_not_as_poolkeeper_writes_it_goes_to_the_full_cli(root: Path) -> None:
    path = root / "storage" / "b.xml"
    path.write_text(path.read_text().replace("<pool type='dir'>",
                                             "<pool  type='dir'>"))
    assert fast(root, "pool-list", "--all") is None
    path.write_text("<!DOCTYPE pool>" + path.read_text())
    assert fast(root, "pool-list", "--all") is None


def test_the_command_loads_no_engine(root: Path) -> None:
    """`poolkeeper pool-list` as a shell loop runs it: no lxml, controller, drivers,
    psutil or Textual (and so no RelaxNG)."""
    probe = ("import sys; sys.argv = ['poolkeeper', '--root', sys.argv[1], 'pool-list'];"
             "from cli.entry import main; code = main();"
             "heavy = ('lxml', 'backends.controller', 'backends.drivers', 'backends.model',"
             " 'psutil', 'textual', 'humanize', 'dataclasses');"
             "print(sorted({m for m in sys.modules if m.startswith(heavy)}), code,"
             " file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", probe, str(root)], capture_output=True,
                       text=True, cwd=REPO, timeout=60, check=False)
    assert r.stderr.strip() == "[] 0", r.stderr
    assert r.stdout == full(root, "pool-list")


@pytest.mark.parametrize("args", [("vol-list", "a", "--details", "--json"),
                                  ("vol-list", "a", "--details"), ("pool-info", "a"),
                                  ("vol-info", "--pool", "a", "v.img"),
                                  ("pool-list", "--json", "--all")], ids=" ".join)
def test_the_other_listings_load_no_psutil_textual_or_schema(
        root: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    """Through the whole CLI a listing still imports no psutil or Textual and compiles no
    RelaxNG schema (stored definitions were checked against it when defined); nor what
    only other verbs use (the other verb modules, uuid, logging, tempfile, datetime, the
    job threads' concurrent.futures): each is milliseconds of every command's start."""
    (tmp_path / "a" / "v.img").write_bytes(b"\0" * 4096)
    probe = ("import io, sys; from cli.main import main;"
             "code = main(sys.argv[1:], io.StringIO());"
             "from backends.xmlio import relaxng;"
             "print(code, sorted({m.split('.')[0] for m in sys.modules}"
             " & {'psutil', 'textual', 'tui', 'uuid', 'logging', 'tempfile', 'datetime',"
             " 'concurrent'} | set(sys.modules) & {'cli.pool_verbs', 'cli.secret_verbs',"
             " 'cli.volume_verbs'}), relaxng._compiled.cache_info().currsize)")
    r = subprocess.run([sys.executable, "-c", probe, "--root", str(root), *args],
                       capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert r.stdout.strip() == "0 [] 0", (r.stdout, r.stderr)


def test_the_command_ends_without_teardown_and_loses_no_output(root: Path,
                                                              tmp_path: Path) -> None:
    """`python -m cli` (what the poolkeeper script runs) skips the interpreter's teardown:
    every byte of a long listing still comes out, through a pipe, with the exit status;
    an error still says so with status 1; a reader that stops early ends it as before."""
    for i in range(3000):
        (tmp_path / "a" / f"v{i:04d}.img").write_bytes(b"")
    cmd = [sys.executable, "-m", "cli", "--root", str(root)]
    for args in (("vol-list", "a", "--details", "--json"), ("pool-list", "--all")):
        r = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=REPO,
                           timeout=60, check=False)
        assert (r.returncode, r.stderr, r.stdout) == (0, "", full(root, *args)), args
    r = subprocess.run([*cmd, "vol-list", "nosuch"], capture_output=True, text=True,
                       cwd=REPO, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (1, "") and r.stderr.startswith("error: "), r
    head = subprocess.run(f"{' '.join(cmd)} vol-list a --details | head -3", shell=True,
                          capture_output=True, text=True, cwd=REPO, timeout=60, check=False)
    assert head.stdout.splitlines()[2].startswith(" v0000.img "), head
