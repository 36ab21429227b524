"""`poolkeeper -c test:///default`: libvirt's test driver (in this process, no daemon)
answers the connected verbs, which print what virsh prints on the same connection and
the native engine's --json shapes; without libvirt-python, -c says what to install (the
verbs still refused over a connection: test_connect_test_driver_more.py).

virsh and poolkeeper each open their own test:///default, which starts from the same
state (one running dir pool, `default-pool`, no volumes): the read-only verbs are
compared byte for byte. Changes are made in-process while one connection stays open
(the test driver's state lives as long as a connection to it does).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends import model
from cli.main import main
from cli.verbs import pool_json, volume_json

REPO = Path(__file__).resolve().parents[2]
URI = "test:///default"
ENV = {**os.environ, "LC_ALL": "C.UTF-8"}
UUID = "dfe224cb-28fb-8dd0-c4b2-64eb3f0f4566"  # default-pool's, in libvirt's test driver

try:
    import libvirt  # noqa: F401

    MISSING = None
except ImportError:
    MISSING = "libvirt-python is not installed (pip install -e '.[libvirt]')"
needs_binding = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))


def run(*args: str, root: Path | None = None, env: dict[str, str] | None = None,
        code: str | None = None) -> subprocess.CompletedProcess[str]:
    """poolkeeper as a user runs it (`code`: run instead of `python -m cli`)."""
    argv = ["--root", str(root), *args] if root else list(args)
    cmd = [sys.executable, "-c", code, *argv] if code else [sys.executable, "-m", "cli", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, cwd=REPO,
                          timeout=60, check=False)


def virsh(*args: str) -> str:
    r = subprocess.run(["virsh", "-c", URI, *args], capture_output=True, text=True, env=ENV,
                       timeout=60, check=False)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def inproc(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["-c", URI, *args], out)
    return code, out.getvalue()


@needs_binding
@pytest.mark.parametrize("args", [
    ("pool-list",), ("pool-list", "--all"), ("pool-list", "--details"),
    ("pool-list", "--all", "--details"), ("pool-list", "--inactive"),
    ("pool-list", "--uuid"), ("pool-list", "--name"), ("pool-list", "--type", "dir"),
    ("pool-list", "--type", "logical"), ("pool-list", "--autostart"),
    ("pool-list", "--no-autostart", "--persistent"),
    ("pool-info", "default-pool"), ("pool-info", "--bytes", "default-pool"),
    ("pool-info", UUID), ("pool-uuid", "default-pool"), ("pool-name", UUID),
    ("vol-list", "default-pool"), ("vol-list", "default-pool", "--details"),
], ids=" ".join)
def test_read_verbs_print_what_virsh_prints(args: tuple[str, ...]) -> None:
    r = run("-c", URI, *args)
    assert r.returncode == 0, r.stderr
    theirs = virsh(*args)
    if args[0] in ("pool-uuid", "pool-name"):  # poolkeeper's one-line answers: no blank line
        theirs = theirs.removesuffix("\n")
    assert r.stdout == theirs


@needs_binding
def test_dumpxml_is_libvirts_document() -> None:
    r = run("--connect", URI, "pool-dumpxml", "default-pool")
    assert r.returncode == 0, r.stderr
    assert r.stdout + "\n" == virsh("pool-dumpxml", "default-pool")  # virsh adds a blank line
    r = run(f"--connect={URI}", "pool-dumpxml", "--xpath", "/pool/target/path/text()",
            "default-pool")
    assert r.stdout == "/default-pool\n"


@needs_binding
def test_json_shapes_are_the_native_ones() -> None:
    r = run("-c", URI, "pool-list", "--all", "--json")
    assert r.returncode == 0, r.stderr
    pools = json.loads(r.stdout)
    native = pool_json(model.PoolStatus("x", "dir", "u", "running", False, True))
    assert [list(p) for p in pools] == [list(native)]
    assert pools[0] | {"source": None} == {
        **native, "name": "default-pool", "uuid": UUID, "capacity": 100 << 30,
        "allocation": 0, "available": 100 << 30, "target": "/default-pool", "source": None}
    info = json.loads(run("-c", URI, "pool-info", "--json", "default-pool").stdout)
    assert info == pools[0]


@needs_binding
def test_define_start_create_list_delete_in_process(held: None) -> None:
    assert inproc("pool-define-as", "t", "dir", "--target", "/t") == (0, "Pool t defined\n")
    assert inproc("pool-list", "--inactive", "--name") == (0, "t                   \n\n")
    assert inproc("pool-start", "t") == (0, "Pool t started\n")
    assert inproc("pool-autostart", "t") == (0, "Pool t marked as autostarted\n")
    assert inproc("vol-create-as", "t", "a.img", "10M") == (0, "Vol a.img created\n")
    assert inproc("vol-create-as", "t", "b.qcow2", "1G", "--format", "qcow2") == (
        0, "Vol b.qcow2 created\n")
    code, text = inproc("vol-list", "t", "--json")
    vols = json.loads(text)
    assert code == 0 and [(v["name"], v["format"], v["capacity"]) for v in vols] == [
        ("a.img", "raw", 10 << 20), ("b.qcow2", "qcow2", 1 << 30)]
    assert list(vols[0]) == list(volume_json(model.VolumeInfo("n", "k", "p")))
    assert inproc("vol-path", "--pool", "t", "b.qcow2") == (0, "/t/b.qcow2\n")
    assert inproc("vol-key", "/t/b.qcow2") == (0, "/t/b.qcow2\n")
    assert inproc("vol-name", "/t/b.qcow2") == (0, "b.qcow2\n")
    code, text = inproc("vol-info", "--bytes", "/t/a.img")
    assert text == ("Name:           a.img\nType:           file\n"
                    "Capacity:       10485760 bytes\nAllocation:     10485760 bytes\n"
                    "Format:         raw\n\n")
    assert inproc("vol-delete", "--pool", "t", "a.img") == (0, "Vol a.img deleted\n")
    assert inproc("vol-delete", "/t/b.qcow2") == (0, "Vol b.qcow2 deleted\n")
    assert inproc("vol-list", "t") == (0, " Name   Path\n" + "-" * 14 + "\n\n")
    assert inproc("pool-destroy", "t") == (0, "Pool t destroyed\n")
    assert inproc("pool-undefine", "t") == (0, "Pool t has been undefined\n")
    assert inproc("pool-list", "--all", "--name") == (0, "default-pool        \n\n")


@needs_binding
def test_pool_list_filters_transient_and_types(held: None) -> None:
    from backends.libvirt_controller import LibvirtController

    lc = LibvirtController(URI)
    try:  # a transient pool: only libvirt's API makes one over a connection so far
        lc.connection.conn.storagePoolCreateXML(
            "<pool type='dir'><name>tr</name><target><path>/tr</path></target></pool>", 0)
        assert inproc("pool-list", "--transient", "--name") == (0, "tr                  \n\n")
        assert inproc("pool-list", "--persistent", "--name") == (0, "default-pool        \n\n")
        code, text = inproc("pool-list", "--details", "--transient")
        assert text.splitlines()[2].split() == ["tr", "running", "no", "no", "100.00",
                                                "GiB", "0.00", "B", "100.00", "GiB"]
        # a type poolkeeper does not manage goes to libvirt as given
        assert inproc("pool-define-as", "z", "zfs", "--source-name", "tank") == (
            0, "Pool z defined\n")
        assert inproc("pool-list", "--all", "--type", "zfs", "--name") == (
            0, "z                   \n\n")
        assert "<pool type='zfs'>" in inproc("pool-dumpxml", "z")[1]
        assert inproc("pool-undefine", "z")[0] == 0
        assert inproc("pool-destroy", "tr") == (0, "Pool tr destroyed\n")  # and gone
        assert inproc("pool-list", "--all", "--name") == (0, "default-pool        \n\n")
    finally:
        lc.close()


@needs_binding
def test_libvirt_errors_are_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert inproc("pool-info", "nope")[0] == 1
    assert capsys.readouterr().err == \
        f"error: no pool named (or with UUID) 'nope' on '{URI}'\n"
    assert inproc("vol-info", "--pool", "default-pool", "x.img")[0] == 1
    assert capsys.readouterr().err == ("error: no volume named 'x.img' in pool "
                                       "'default-pool', and no volume with that key or path\n")
    assert inproc("pool-undefine", "default-pool")[0] == 1  # running: libvirt refuses
    err = capsys.readouterr().err
    assert err.startswith("error: cannot undefine pool 'default-pool': ") and "active" in err
    assert err.count("\n") == 1


@needs_binding
def test_connected_verbs_never_open_the_native_engine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert run("-c", URI, "pool-list", root=root).returncode == 0
    assert not root.exists()


@needs_binding
def test_c_default_is_libvirt_default_uri() -> None:
    r = run("-c", "default", "pool-uuid", "default-pool",
            env={**ENV, "LIBVIRT_DEFAULT_URI": URI})
    assert (r.returncode, r.stdout) == (0, UUID + "\n")
    env = {k: v for k, v in ENV.items() if k != "LIBVIRT_DEFAULT_URI"}
    r = run("-c", "default", "pool-list", env=env)
    assert r.returncode == 1
    assert r.stderr.startswith("error: -c default means $LIBVIRT_DEFAULT_URI, which is not set")


def test_no_tui_over_a_connection() -> None:
    r = run("-c", URI)
    assert r.returncode == 1
    assert r.stderr.startswith("error: the TUI does not open libvirt connections yet")


HIDDEN = ("import sys; sys.modules['libvirt'] = None; sys.argv[0] = 'poolkeeper'; "
          "from cli.main import main; sys.exit(main(sys.argv[1:]))")


def test_without_the_binding_c_says_what_to_install(tmp_path: Path) -> None:
    r = run("-c", URI, "pool-list", root=tmp_path / "root", code=HIDDEN)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("error: libvirt connections need libvirt's Python binding "
                               "(libvirt-python), which is not installed: run `pip install "
                               "-e '.[libvirt]'`")
    assert "`make`" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "root").exists()
    # and without -c, nothing changes: the native engine answers
    r = run("pool-list", "--all", "--name", root=tmp_path / "root", code=HIDDEN)
    assert (r.returncode, r.stdout) == (0, "default             \n\n"), r.stderr


@pytest.mark.parametrize("argv", [["-c", URI, "pool-list"], [f"--connect={URI}", "pool-list"],
                                  [f"-c{URI}", "pool-list", "--all"]])
def test_the_quick_pool_list_leaves_connections_to_main(argv: list[str]) -> None:
    from cli import quick

    assert quick.pool_list(argv, io.StringIO()) is None


def test_help_needs_no_connection() -> None:
    r = run("-c", "qemu+unix:///session?socket=/nonexistent/sock", "vol-list", "--help")
    assert r.returncode == 0 and r.stdout.startswith("  NAME\n    vol-list")
    r = run("--help")
    assert "-c URI, --connect URI" in r.stdout
