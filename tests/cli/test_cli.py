"""The virsh-shaped CLI: the README's walk-through, --json, errors and exit codes."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def test_readme_walkthrough(cli, tmp_path):
    images = tmp_path / "vm-images"
    r = cli("pool-define-as", "vms", "dir", "--target", str(images))
    assert r.code == 0 and "Pool vms defined" in r.out, r
    assert cli("pool-build", "vms").code == 0 and images.is_dir()
    assert cli("pool-start", "vms").code == 0
    assert cli("pool-autostart", "vms").code == 0

    pools = json.loads(cli("pool-list", "--all", "--json").out)
    vms = next(p for p in pools if p["name"] == "vms")
    assert vms["type"] == "dir" and vms["state"] == "running" and vms["autostart"] is True
    assert vms["persistent"] is True
    assert all(isinstance(vms[k], int) for k in ("capacity", "allocation", "available"))

    r = cli("vol-create-as", "vms", "disk.qcow2", "1G", "--format", "qcow2")
    assert r.code == 0 and "Vol disk.qcow2 created" in r.out, r
    assert cli("vol-create-as", "vms", "raw.img", "64MiB", "--allocation", "0").code == 0
    vols = {v["name"]: v for v in json.loads(cli("vol-list", "vms", "--json").out)}
    assert vols["disk.qcow2"]["format"] == "qcow2"
    assert vols["disk.qcow2"]["capacity"] == 1 << 30
    assert vols["raw.img"] == vols["raw.img"] | {
        "path": str(images / "raw.img"), "type": "file", "format": "raw",
        "capacity": 64 * MiB, "backing": None,
    }
    assert isinstance(vols["raw.img"]["allocation"], int)

    r = cli("vol-clone", "raw.img", "copy.img", "--pool", "vms")
    assert r.code == 0 and "cloned from raw.img" in r.out, r
    r = cli("vol-resize", "copy.img", "128M", "--pool", "vms")
    assert r.code == 0 and os.stat(images / "copy.img").st_size == 128 * MiB, r
    assert cli("vol-wipe", "copy.img", "--pool", "vms").code == 0
    out = tmp_path / "backup.img"
    assert cli("vol-download", str(images / "copy.img"), str(out), "--sparse").code == 0
    assert out.stat().st_size == 128 * MiB
    assert cli("vol-path", "copy.img", "--pool", "vms").out.strip() == str(images / "copy.img")
    info = cli("vol-info", "copy.img", "--pool", "vms", "--bytes")
    assert f"Capacity:       {128 * MiB} bytes" in info.out
    xml = cli("vol-dumpxml", "disk.qcow2", "--pool", "vms").out
    assert "<name>disk.qcow2</name>" in xml and "qcow2" in xml
    assert cli("vol-delete", "copy.img", "--pool", "vms").code == 0
    assert not (images / "copy.img").exists()

    for verb in ("vol-delete",):
        for name in ("disk.qcow2", "raw.img"):
            assert cli(verb, name, "--pool", "vms").code == 0
    assert cli("pool-destroy", "vms").code == 0
    assert cli("pool-delete", "vms").code == 0 and not images.exists()
    assert cli("pool-undefine", "vms").code == 0
    assert "vms" not in cli("pool-list", "--all").out


def test_pool_define_from_file_and_dumpxml_round_trip(cli, tmp_path):
    xml = tmp_path / "p.xml"
    xml.write_text(f"<pool type='dir'><name>fromfile</name><target><path>{tmp_path / 'ff'}"
                   "</path><permissions><mode>0755</mode></permissions></target></pool>")
    assert cli("pool-define", str(xml)).code == 0
    dumped = cli("pool-dumpxml", "fromfile").out
    again = tmp_path / "again.xml"
    again.write_text(dumped.replace("fromfile", "fromfile2").replace(str(tmp_path / "ff"),
                                                                      str(tmp_path / "ff2")))
    # the UUID would clash: a dumped definition carries it
    r = cli("pool-define", str(again))
    assert r.code == 1 and "UUID" in r.err


def test_errors_go_to_stderr_with_exit_1(cli, tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<pool type='dir'><name>x</name>")
    r = cli("pool-define", str(bad))
    assert r.code == 1 and r.err.startswith("error: ") and r.out == ""
    assert "Traceback" not in r.err

    bad.write_text("<pool type='zfs'><name>x</name><target><path>/x</path></target></pool>")
    r = cli("pool-define", str(bad))
    assert r.code == 1 and "zfs" in r.err

    r = cli("pool-info", "missing")
    assert r.code == 1 and "no pool named 'missing'" in r.err

    r = cli("vol-list")
    assert r.code == 1 and r.err.startswith("error: ")

    r = cli("pool-define", str(tmp_path / "does-not-exist.xml"))
    assert r.code == 1 and "cannot read" in r.err


def test_bad_sizes_and_names(cli, tmp_path):
    assert cli("pool-define-as", "s", "dir", "--target", str(tmp_path / "s")).code == 0
    assert cli("pool-build", "s").code == 0 and cli("pool-start", "s").code == 0
    for size in ("-1", "12x", "ten", "99999999999999999999EiB", ""):
        r = cli("vol-create-as", "s", "v", size)
        assert r.code == 1 and r.err.startswith("error: "), (size, r)
    for name in ("a/b", "..", ".", "x\ny"):
        r = cli("vol-create-as", "s", name, "1M")
        assert r.code == 1 and "name" in r.err, (name, r)
    assert os.listdir(tmp_path / "s") == []
    r = cli("vol-create-as", "s", "v", "1M", "--allocation", "0")
    assert r.code == 0
    r = cli("vol-resize", "v", "512K", "--pool", "s")
    assert r.code == 1 and "--shrink" in r.err
    r = cli("vol-resize", "v", "-512K", "--pool", "s", "--shrink")
    assert r.code == 0 and os.stat(tmp_path / "s" / "v").st_size == 512 * 1024


def test_overwrite_flags_are_exclusive(cli, tmp_path):
    cli("pool-define-as", "o", "dir", "--target", str(tmp_path / "o"))
    r = cli("pool-build", "o", "--overwrite", "--no-overwrite")
    assert r.code == 1 and "mutually exclusive" in r.err


def test_version_and_capabilities(cli):
    from importlib import metadata

    r = subprocess.run([sys.executable, "-m", "tui", "--version"], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 0 and r.stdout.strip() == f"poolkeeper {metadata.version('poolkeeper')}"
    caps = cli("pool-capabilities").out
    assert "<pool type=\"dir\" supported=\"yes\">" in caps.replace("'", '"')
    assert "qcow2" in caps


def test_pool_list_details_shows_sizes(cli, tmp_path):
    cli("pool-define-as", "d", "dir", "--target", str(tmp_path / "d"))
    cli("pool-build", "d")
    r = cli("pool-list", "--all", "--details")
    line = next(line for line in r.out.splitlines() if line.split()[:1] == ["d"])
    assert "inactive" in line
    cli("pool-start", "d")
    line = next(line for line in cli("pool-list", "--details").out.splitlines()
                if line.split()[:1] == ["d"])
    assert "running" in line and "iB" in line


def test_default_pool_on_first_use(cli, state_root):
    pools = json.loads(cli("pool-list", "--json").out)
    default = next(p for p in pools if p["name"] == "default")
    assert default["state"] == "running" and default["autostart"]
    assert default["target"] == str(state_root / "images")


def test_backends_never_import_textual():
    for path in (REPO / "backends").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(("textual", "tui")), f"{path} imports {name}"


def test_the_cli_loads_no_textual():
    """The CLI (cli/) imports the TUI only when it is given no verb, to open it."""
    probe = ("import sys, cli.main, cli.output, cli.verbs; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'tui'}))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                       check=True)
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("verb", ["pool-list", "vol-list", "pool-info", "vol-info"])
def test_every_listing_takes_json(verb, cli):
    assert "--json" in cli(verb, "--help").out


def test_secret_set_reads_stdin_and_never_echoes(state_root, monkeypatch, capsys):
    import io
    import stat as stat_mod

    from cli.main import main

    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"s3cr3t-Value\n")))
    out = io.StringIO()
    assert main(["--root", str(state_root), "secret-set", "pool-chap"], out=out) == 0
    captured = capsys.readouterr()
    assert "s3cr3t" not in out.getvalue() + captured.out + captured.err
    files = sorted((state_root / "secrets").iterdir())  # the value, then its usage name
    assert len(files) == 2 and files[0].read_text() == "s3cr3t-Value"
    assert files[1].name == files[0].name + ".usage" and files[1].read_text() == "pool-chap"
    assert {stat_mod.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert stat_mod.S_IMODE((state_root / "secrets").stat().st_mode) == 0o700


def test_a_failed_start_exits_1_and_says_error_never_started(cli, tmp_path):
    """A dir pool whose directory was removed: no success text, an error, status 1."""
    target = tmp_path / "vms"
    assert cli("pool-define-as", "vms", "dir", "--target", str(target)).code == 0
    r = cli("pool-start", "vms")
    assert r.code == 1 and "started" not in r.out, r
    assert r.err.startswith("error: the directory ") and "does not exist" in r.err, r


def test_start_with_build_that_builds_but_does_not_start_says_both(cli, tmp_path,
                                                                    monkeypatch):
    """pool-start --build is two verbs: when the build is done and the start refused, the
    error says the pool was built (it is: the directory exists), and the status is 1."""
    from backends.controller import StorageController
    from backends.errors import StateError

    def refuse(self: StorageController, name: str, **_: object) -> None:  # the start alone
        raise StateError(f"pool '{name}' is already active")

    target = tmp_path / "vms"
    assert cli("pool-define-as", "vms", "dir", "--target", str(target)).code == 0
    monkeypatch.setattr(StorageController, "start_pool", refuse)
    r = cli("pool-start", "vms", "--build")
    assert r.code == 1 and "started" not in r.out and target.is_dir(), r
    assert r.err == ("error: pool 'vms' was built, but could not be started: pool 'vms' is "
                     "already active\n"), r


def test_a_cli_start_reads_no_header_and_the_next_listing_does(cli, tmp_path):
    """pool-start's process ends once the pool runs: it reads the directory but opens no
    volume (the headers would be thrown away); vol-list then reads each header, and a
    planted qcow2 header in a raw disk poolkeeper made is still not believed."""
    from tests.reliability.test_format_trust import InotifyWatch

    images = tmp_path / "vms"
    for argv in (("pool-define-as", "vms", "dir", "--target", str(images)),
                 ("pool-build", "vms"), ("pool-start", "vms"),
                 ("vol-create-as", "vms", "made.img", "1M"), ("pool-destroy", "vms")):
        assert cli(*argv).code == 0, argv
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images / "q.qcow2"), "1G"],
                   check=True)
    with open(images / "made.img", "r+b") as fh:  # what a guest may write
        fh.write((images / "q.qcow2").read_bytes()[:512])
    watches = [InotifyWatch(images / n) for n in ("made.img", "q.qcow2")]
    try:
        r = cli("pool-start", "vms")
        assert r.code == 0 and r.out == "Pool vms started\n", r
        assert [w.events() for w in watches] == [[], []], "pool-start opened a volume"
        vols = {v["name"]: v for v in json.loads(cli("vol-list", "vms", "--json").out)}
        assert all(w.events() for w in watches), "vol-list read no header"
    finally:
        for w in watches:
            w.close()
    assert (vols["q.qcow2"]["format"], vols["q.qcow2"]["capacity"]) == ("qcow2", 1 << 30)
    assert (vols["made.img"]["format"], vols["made.img"]["probed_format"]) == ("raw", "qcow2")
    assert vols["made.img"]["capacity"] == MiB


def test_vol_list_json_lines_are_what_json_makes_of_volume_json():
    """vol-list --json writes each volume's line without building its dict: the text must
    be json's own for every kind of field (non-ASCII and control characters, quotes, a
    backing store, None and big numbers)."""
    from backends.model import BackingStore, VolumeInfo
    from cli.output import dump_json, dump_json_lines
    from cli.verbs import volume_json, volume_json_line

    vols = [
        VolumeInfo(name="a.img", key="/p/a.img", path="/p/a.img"),
        VolumeInfo(name='q"\\\u00e9\u202e\x1b\udc9b.qcow2', key="/p/q", path="/p/q",
                   format="qcow2", probed_format="qcow2", capacity=1 << 62, allocation=0,
                   physical=196_768, encryption="luks",
                   backing=BackingStore(path="/p/base \u2603", format=None)),
        VolumeInfo(name="l", key="/p/l", path="/p/l", type="dir", format="", capacity=-1,
                   symlink="../\x7fx", error="dangling symlink to '../\x7fx'",
                   backing=BackingStore(path="/p/b", format="raw")),
    ]
    for v in vols:
        assert volume_json_line(v) == json.dumps(volume_json(v)), v
    for items in (vols, []):
        lines, dicts = io.StringIO(), io.StringIO()
        dump_json_lines(lines, map(volume_json_line, items))
        dump_json(dicts, [volume_json(v) for v in items])
        assert lines.getvalue() == dicts.getvalue()
        assert json.loads(lines.getvalue()) == [volume_json(v) for v in items]


@pytest.mark.parametrize("count", [1, 255, 256, 257, 600])
def test_json_lines_across_the_chunks_they_are_written_in(count):
    """dump_json_lines writes a few hundred lines at a time: the text is the one list."""
    from cli.output import dump_json_lines

    items = [json.dumps({"n": n, "name": f"v{n}"}) for n in range(count)]
    out = io.StringIO()
    dump_json_lines(out, iter(items))
    assert out.getvalue() == "[\n" + ",\n".join(items) + "\n]\n"
    assert json.loads(out.getvalue()) == [json.loads(i) for i in items]


@pytest.mark.parametrize("port", ["٣٢٦٠", "²", "0", "65536", "x"])
def test_a_source_port_is_ascii_digits_in_range(cli, port):
    """int() reads Arabic-Indic digits and isdigit() passes "²": only 1-65535 in ASCII."""
    r = cli("pool-define-as", "n", "netfs", "--source-host", "127.0.0.1",
            "--source-path", "/x", "--source-port", port, "--target", "/tmp/never",
            "--print-xml")
    assert r.code == 1 and "--source-port takes a port number (1-65535)" in r.err, r
    assert "Traceback" not in r.err


@pytest.mark.parametrize("length", ["١٠", "1_0", " 10", "10 ", "٣"])
def test_a_number_option_is_ascii_digits(cli, length):
    """virsh reads --length/--offset/--timeout with strtol: int() alone would take
    Arabic-Indic digits, underscores and spaces around."""
    r = cli("vol-download", "--pool", "nosuch", "v", "/tmp/never", "--length", length)
    assert r.code == 1 and f"option --length takes a number, not '{length}'" in r.err, r
