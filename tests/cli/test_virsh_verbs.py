"""The storage verbs virsh has that poolkeeper lacked: transient pools, pool-edit,
pool-name/-uuid, pool-event, vol-create-from, the lookups, pool-list's filters and
--xpath; run through the real CLI on dir pools in temp directories."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def names(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]


# == transient pools ===================================================================
def test_pool_create_as_makes_a_transient_pool_gone_after_destroy(cli, state_root, tmp_path):
    target = tmp_path / "t"
    r = cli("pool-create-as", "t", "dir", "--target", str(target), "--build")
    assert r.code == 0 and r.out == "Pool t created\n", r
    assert target.is_dir()
    assert "t" in names(cli("pool-list", "--transient").out)
    assert "t" not in names(cli("pool-list", "--persistent").out)
    assert "default" in names(cli("pool-list", "--persistent").out)
    info = cli("pool-info", "t").out
    assert "Persistent:     no" in info and "State:          running" in info
    assert not (state_root / "storage" / "t.xml").exists()  # nothing persistent
    r = cli("pool-autostart", "t")
    assert r.code == 1 and "transient" in r.err, r
    assert cli("vol-create-as", "t", "v", "1M").code == 0

    assert cli("pool-destroy", "t").code == 0
    assert "t" not in names(cli("pool-list", "--all").out)
    r = cli("pool-info", "t")
    assert r.code == 1 and "no pool named 't'" in r.err, r
    assert (target / "v").exists()  # data is kept
    assert not list((state_root / "transient").iterdir())


def test_pool_create_from_file_and_define_makes_it_persistent(cli, state_root, tmp_path):
    xml = tmp_path / "p.xml"
    xml.write_text(f"<pool type='dir'><name>fromfile</name><target><path>{tmp_path / 'ff'}"
                   "</path></target></pool>")
    r = cli("pool-create", "--file", str(xml), "--build")
    assert r.code == 0 and r.out == f"Pool fromfile created from {xml}\n", r
    # pool-define of a running transient pool makes it persistent, still running
    dumped = tmp_path / "dumped.xml"
    dumped.write_text(cli("pool-dumpxml", "fromfile", "--inactive").out)
    assert cli("pool-define", str(dumped)).code == 0
    assert "Persistent:     yes" in cli("pool-info", "fromfile").out
    assert cli("pool-destroy", "fromfile").code == 0
    assert "inactive" in cli("pool-list", "--all").out  # kept: persistent now


def test_a_failed_pool_create_leaves_nothing(cli, state_root, tmp_path):
    r = cli("pool-create-as", "nope", "dir", "--target", str(tmp_path / "missing"))
    assert r.code == 1 and "does not exist" in r.err, r
    assert "nope" not in cli("pool-list", "--all").out
    assert not list((state_root / "transient").iterdir())
    r = cli("pool-create-as", "default", "dir", "--target", str(tmp_path / "x"))
    assert r.code == 1 and "already exists" in r.err, r


def test_pool_create_as_print_xml_and_options(cli, tmp_path):
    r = cli("pool-create-as", "n", "netfs", "--source-host", "nfs.example", "--source-path",
            "/export", "--target", str(tmp_path / "n"), "--print-xml")
    assert r.code == 0 and "<host name=\"nfs.example\"/>" in r.out.replace("'", '"'), r
    assert "n" not in names(cli("pool-list", "--all").out)
    r = cli("pool-define-as", "i", "iscsi", "--source-host", "h",
            "--source-dev", "iqn.2013-06.com.example:t0",
            "--target", "/dev/disk/by-path", "--auth-type", "chap", "--auth-username", "u",
            "--secret-uuid", "0c9ae0d2-4c5d-4c0f-9d8e-7c47a8a0e6c1", "--print-xml")
    assert r.code == 0 and "0c9ae0d2-4c5d-4c0f-9d8e-7c47a8a0e6c1" in r.out, r
    r = cli("pool-define-as", "s", "scsi", "--adapter-name", "host0", "--target", "/dev")
    assert r.code == 1 and "--adapter-name" in r.err, r


# == pool-list's filters ===============================================================
def test_pool_list_filters_and_uuid_name_forms(cli, tmp_path):
    for name in ("a", "b"):
        assert cli("pool-define-as", name, "dir", "--target", str(tmp_path / name)).code == 0
    assert cli("pool-start", "a", "--build").code == 0
    assert cli("pool-autostart", "a").code == 0
    assert names(cli("pool-list", "--all", "--autostart").out) == ["a", "default"]
    assert names(cli("pool-list", "--all", "--no-autostart").out) == ["b"]
    assert names(cli("pool-list", "--inactive").out) == ["b"]
    assert names(cli("pool-list", "--all", "--type", "dir", "--persistent").out) == [
        "a", "b", "default"]
    assert names(cli("pool-list", "--transient").out) == []
    uuid_a = cli("pool-uuid", "a").out.strip()
    uuid_default = cli("pool-uuid", "default").out.strip()
    # as virsh: the name padded to 20, UUID first, active pools unless --all; a blank line
    assert cli("pool-list", "--name").out == f"{'a':<20}\n{'default':<20}\n\n"
    assert cli("pool-list", "--uuid").out == f"{uuid_a}\n{uuid_default}\n\n"
    assert cli("pool-list", "--uuid", "--name", "--inactive").out == (
        f"{cli('pool-uuid', 'b').out.strip()} {'b':<20}\n\n")


# == lookups and XML ===================================================================
@pytest.fixture
def vms(cli, tmp_path):
    target = tmp_path / "vms"
    assert cli("pool-define-as", "vms", "dir", "--target", str(target)).code == 0
    assert cli("pool-start", "vms", "--build").code == 0
    return target


def _virsh(*commands: str) -> str:
    return subprocess.run(["virsh", "-q", "-c", "test:///default", "; ".join(commands)],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("expr,wrap", [
    ("/pool/name", False), ("/pool/name", True), ("//path/text()", False),
    ("//path/text()", True), ("//@type", False), ("//@type", True), ("/pool/target/path",
                                                                     True),
    ("//nothing", False), ("//nothing", True), ("/pool/name|/pool/@type", False),
])
def test_dumpxml_xpath_prints_what_virsh_prints(cli, vms, tmp_path, expr, wrap):
    xml = tmp_path / "same.xml"  # the same pool in virsh's test driver
    xml.write_text(f"<pool type='dir'><name>vms</name><target><path>{vms}</path></target>"
                   "</pool>")
    extra = ["--wrap"] if wrap else []
    theirs = _virsh(f"pool-create {xml}",
                    f"pool-dumpxml vms --xpath '{expr}' {' '.join(extra)}")
    ours = cli("pool-dumpxml", "vms", "--xpath", expr, *extra)
    assert ours.code == 0 and ours.out == theirs, (ours, theirs)


def test_xpath_errors_and_volume_xpath(cli, vms):
    assert cli("vol-create-as", "vms", "x.qcow2", "1M", "--format", "qcow2").code == 0
    r = cli("vol-dumpxml", "x.qcow2", "vms", "--xpath", "/volume/target/format/@type")
    assert r.out == ' type="qcow2"\n', r
    r = cli("pool-dumpxml", "vms", "--xpath", "count(//path)")
    assert r.code == 1 and "not nodes" in r.err, r
    r = cli("pool-dumpxml", "vms", "--xpath", "bad[")
    assert r.code == 1 and "not valid" in r.err, r
    r = cli("pool-dumpxml", "vms", "--wrap")
    assert r.code == 1 and "--xpath" in r.err, r


# == vol-create-from ===================================================================
def test_vol_create_from_copies_the_input_volumes_bytes(cli, vms, tmp_path):
    assert cli("vol-create-as", "vms", "src.img", "2M", "--allocation", "0").code == 0
    data = os.urandom(4096)
    with open(vms / "src.img", "r+b") as fh:
        fh.seek(MiB)
        fh.write(data)
    xml = tmp_path / "new.xml"
    # virsh: the new capacity is the larger of the XML's and the input volume's
    xml.write_text("<volume><name>new.qcow2</name><capacity unit='M'>1</capacity>"
                   "<target><format type='qcow2'/></target></volume>")
    r = cli("vol-create-from", "vms", str(xml), "src.img")  # a name needs --inputpool
    assert r.code == 1 and "--inputpool" in r.err, r
    r = cli("vol-create-from", "vms", str(xml), "src.img", "--inputpool", "vms")
    assert r.code == 0 and r.out == "Vol new.qcow2 created from input vol src.img\n", r
    assert (vms / "new.qcow2").read_bytes()[:4] == b"QFI\xfb"  # the XML's format
    assert f"Capacity:       {2 * MiB} bytes" in cli("vol-info", "new.qcow2", "vms",
                                                        "--bytes").out
    raw = tmp_path / "back.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(vms / "new.qcow2"), str(raw)],
                   check=True)
    assert raw.read_bytes() == (vms / "src.img").read_bytes()
    # by path, options named and in any order
    xml.write_text("<volume><name>copy.img</name><capacity unit='M'>2</capacity></volume>")
    r = cli("vol-create-from", "--vol", str(vms / "src.img"), "--file", str(xml), "vms")
    assert r.code == 0 and (vms / "copy.img").read_bytes() == (vms / "src.img").read_bytes()


# == pool-edit =========================================================================
def test_pool_edit_in_the_editor(cli, vms, tmp_path, monkeypatch):
    monkeypatch.setenv("VISUAL", "true")  # leaves the file as it is
    r = cli("pool-edit", "vms")
    assert r.code == 0 and r.out == "Pool vms XML configuration not changed.\n", r
    script = tmp_path / "ed.sh"
    script.write_text("#!/bin/sh\nsed -i 's|</target>|<permissions><mode>0750</mode>"
                      "</permissions></target>|' \"$1\"\n")
    script.chmod(0o755)
    monkeypatch.setenv("VISUAL", str(script))
    r = cli("pool-edit", "--pool", "vms")
    assert r.code == 0 and r.out.startswith("Pool vms XML configuration edited.\n"), r
    assert "<mode>0750</mode>" in cli("pool-dumpxml", "vms", "--inactive").out
    # a running pool's target changes only while it is stopped: refused, nothing saved
    script.write_text(f"#!/bin/sh\nsed -i 's|{vms}|{tmp_path}/elsewhere|' \"$1\"\n")
    before = cli("pool-dumpxml", "vms", "--inactive").out
    r = cli("pool-edit", "vms")
    assert r.code == 1 and "only while it is stopped" in r.err, r
    assert cli("pool-dumpxml", "vms", "--inactive").out == before


# == pool-event ========================================================================
def test_pool_event_lists_and_refuses_unknown_types(cli):
    # virsh 9.0's words and statuses (`virsh -c test:///default pool-event ...`)
    assert cli("pool-event", "--list").out == "lifecycle\nrefresh\n\n"  # (virsh's end)
    r = cli("pool-event", "--list", "--event", "nope", "--timeout", "0")  # --list wins
    assert (r.code, r.out, r.err) == (0, "lifecycle\nrefresh\n\n", ""), r
    r = cli("pool-event", "--event", "nope", "--timeout", "1")
    assert r.code == 1 and r.err.startswith("error: unknown event type nope"), r
    r = cli("pool-event", "--event", "lifecycle", "--timeout", "1")
    # as virsh: no event received is a failure (exit status 1), said on stdout
    assert r.code == 1 and r.out == "event loop timed out\nevents received: 0\n\n", r


@pytest.mark.parametrize("args", [(), ("--loop",), ("--timeout", "1"), ("--timeout", "0"),
                                  ("--pool", "default", "--loop", "--timestamp")],
                         ids=lambda a: " ".join(a) or "none")
def test_pool_event_needs_list_or_event_as_virsh(cli, args):
    r = cli("pool-event", *args)
    assert (r.code, r.out) == (1, ""), r
    assert r.err == "error: either --list or --event <type> is required\n", r


@pytest.mark.parametrize("args", [
    (), ("--loop",), ("--timeout", "1"), ("--pool", "default-pool"), ("--list",),
    ("--list", "--event", "bogus", "--loop"), ("--event", "bogus"),
    ("--event", "lifecycle", "--timeout", "1"), ("--event", "refresh", "--loop", "--timeout", "1"),
], ids=lambda a: " ".join(a) or "none")
def test_pool_event_says_what_virsh_says(cli, args):
    """Status, stdout and error as virsh's test driver's (which has no other process to
    hear from: nothing happens in the second it waits, as in ours)."""
    theirs = subprocess.run(["virsh", "-q", "-c", "test:///default", "pool-event", *args],
                            capture_output=True, text=True, timeout=60, check=False)
    ours = cli("pool-event", *args)
    # virsh -q leaves out the empty line that ends its output (ours has it, as every
    # verb's, virsh_text.end); an error has no output either way
    expected = theirs.stdout + "\n" if theirs.stdout else ""
    assert (ours.code, ours.out) == (theirs.returncode, expected), (ours, theirs)
    if "bogus" in args and "--list" not in args:  # virsh's words, then the two there are
        assert theirs.stderr == "error: unknown event type bogus\n", theirs
        assert ours.err == "error: unknown event type bogus (choose lifecycle or refresh)\n"
    else:
        assert ours.err == theirs.stderr, (ours, theirs)


def _inotify_instances(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return sum(os.readlink(fd) == "anon_inode:inotify" for fd in fds.iterdir())
    except OSError:
        return 0


def _watching(pid: int) -> bool:
    """Has the process its two inotify instances open: pool-event's on the run directory
    (made once it follows the journal) and its monitor's (made by its first round, which
    watches the default pool, so that first look at the state root is behind it)?"""
    return _inotify_instances(pid) >= 2


def test_pool_event_prints_other_processes_changes_as_they_happen(cli, state_root, tmp_path):
    assert cli("pool-list").code == 0  # the state root made, the default pool started
    watchers = [subprocess.Popen(
        [sys.executable, "-m", "cli", "--root", str(state_root), "pool-event", "--event",
         kind, "--loop", "--timeout", "20"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=REPO) for kind in ("lifecycle", "refresh")]
    try:
        deadline = time.monotonic() + 30
        for watcher in watchers:
            while not _watching(watcher.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _watching(watcher.pid), watcher.communicate(timeout=30)
        target = tmp_path / "ev"
        assert cli("pool-define-as", "ev", "dir", "--target", str(target)).code == 0
        assert cli("pool-start", "ev", "--build").code == 0
        time.sleep(1)
        assert cli("vol-create-as", "ev", "a", "1M").code == 0  # seen by its monitor
        time.sleep(2.5)
        assert cli("pool-destroy", "ev").code == 0
        assert cli("pool-undefine", "ev").code == 0
        results = [w.communicate(timeout=30) for w in watchers]
    finally:
        for watcher in watchers:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
    out, err = results[0]
    assert out.splitlines() == ["event 'lifecycle' for storage pool ev: Defined",
                                "event 'lifecycle' for storage pool ev: Started",
                                "event 'lifecycle' for storage pool ev: Stopped",
                                "event 'lifecycle' for storage pool ev: Undefined",
                                "event loop timed out", "events received: 4", ""], (out, err)
    out, err = results[1]
    assert out.splitlines() == ["event 'refresh' for storage pool ev",
                                "event loop timed out", "events received: 1", ""], (out, err)


# == find-storage-pool-sources-as ======================================================
def test_find_storage_pool_sources_as(cli):
    r = cli("find-storage-pool-sources-as", "dir")
    assert r.code == 1 and "dir" in r.err, r
    r = cli("find-storage-pool-sources-as", "netfs", "--port", "2049")
    assert r.code == 1 and "--port" in r.err, r


def test_pool_edit_never_saves_over_a_change_made_meanwhile(cli, vms, state_root, tmp_path,
                                                            monkeypatch):
    """Another process defines the pool while the editor is open: the edit is refused
    (no terminal to offer it again) and the other change stays."""
    theirs = tmp_path / "theirs.xml"
    theirs.write_text(cli("pool-dumpxml", "vms", "--inactive").out.replace(
        "</target>", "<permissions><mode>0700</mode></permissions></target>"))
    script = tmp_path / "ed.sh"
    script.write_text(
        f"#!/bin/sh\ncd {REPO} && {sys.executable} -m cli --root {state_root} pool-define "
        f"{theirs} >/dev/null || exit 1\n"
        "sed -i 's|</target>|<permissions><mode>0755</mode></permissions></target>|' \"$1\"\n")
    script.chmod(0o755)
    monkeypatch.setenv("VISUAL", str(script))
    r = cli("pool-edit", "vms")
    assert r.code == 1 and "changed by someone else" in r.err, r
    stored = cli("pool-dumpxml", "vms", "--inactive").out
    assert "<mode>0700</mode>" in stored and "0755" not in stored
