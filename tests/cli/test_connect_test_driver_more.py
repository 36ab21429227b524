"""`poolkeeper -c test:///default` for the verbs of issue 17's second slice: their API
shapes on libvirt's test driver (in this process, no daemon): clones, vol-pool, transient
pools, source discovery (compared with virsh on its own test:///default), and libvirt's
"not supported" passed on as one line. Which verbs work over -c is one table, checked
against the CLI's verbs and the README. Bytes on disk: test_connect_volume_bytes.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cli.commands import all_verbs
from tests.cli.test_connect_test_driver import (
    MISSING,
    URI,
    UUID,
    inproc,
    run,
    virsh,
)

needs_binding = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
README = Path(__file__).resolve().parents[2] / "README.md"


@needs_binding
def test_every_verb_works_over_c_and_the_readme_says_so() -> None:
    from cli.connect_verbs import CONNECT_VERBS

    assert set(all_verbs()) == set(CONNECT_VERBS)
    section = README.read_text().split("### Connecting to libvirt\n", 1)[1].split("\n## ")[0]
    works = section.split("What works over a connection", 1)[1].split("Definitions go", 1)[0]
    listed = set(re.findall(r"`((?:pool|vol|secret|find-storage)[\w-]*)", works))
    assert listed == set(CONNECT_VERBS)


@needs_binding
def test_clone_create_from_and_vol_pool(held: None, tmp_path: Path) -> None:
    assert inproc("vol-create-as", "default-pool", "a.img", "10M")[0] == 0
    code, xml = inproc("vol-clone", "--pool", "default-pool", "a.img", "b.img", "--print-xml")
    assert code == 0 and "<name>b.img</name>" in xml and "a.img</key>" in xml
    assert inproc("vol-clone", "--pool", "default-pool", "a.img", "b.img") == (
        0, "Vol b.img cloned from a.img\n")
    spec = tmp_path / "d.xml"  # (the test driver finds the input in the same pool only)
    spec.write_text("<volume><name>d.img</name><capacity>0</capacity></volume>\n")
    assert inproc("vol-create-from", "default-pool", str(spec), "/default-pool/b.img") == (
        0, "Vol d.img created from input vol b.img\n")
    vols = json.loads(inproc("vol-list", "default-pool", "--json")[1])
    assert [(v["name"], v["format"]) for v in vols] == [
        ("a.img", "raw"), ("b.img", "raw"), ("d.img", "raw")]
    assert inproc("vol-pool", "/default-pool/d.img") == (0, "default-pool\n")
    assert inproc("vol-pool", "--uuid", "/default-pool/d.img") == (0, UUID + "\n")
    r = inproc("vol-pool", "d.img")  # a name is not a key or a path
    assert r == (1, "")
    for vol in ("a.img", "b.img", "d.img"):
        assert inproc("vol-delete", f"/default-pool/{vol}")[0] == 0


@needs_binding
@pytest.mark.parametrize(("args", "api"), [
    (("vol-resize", "--pool", "default-pool", "a.img", "20M"), "virStorageVolResize"),
    (("vol-wipe", "--pool", "default-pool", "a.img"), "virStorageVolWipePattern"),
    (("vol-upload", "--pool", "default-pool", "a.img", "/dev/null"), "virStorageVolUpload"),
    (("pool-capabilities",), "virConnectGetStoragePoolCapabilities"),
    (("secret-list",), "virConnectListAllSecrets"),
])
def test_what_the_driver_lacks_is_libvirts_one_line_error(
        held: None, args: tuple[str, ...], api: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert inproc("vol-create-as", "default-pool", "a.img", "1M")[0] == 0
    capsys.readouterr()
    assert inproc(*args) == (1, "")
    err = capsys.readouterr().err
    assert err.startswith("error: cannot ") and err.count("\n") == 1
    assert f"not supported by the connection driver: {api}" in err
    assert inproc("vol-delete", "/default-pool/a.img")[0] == 0


@needs_binding
def test_a_failed_download_leaves_no_file(held: None, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert inproc("vol-create-as", "default-pool", "a.img", "1M")[0] == 0
    out = tmp_path / "out.bin"
    assert inproc("vol-download", "--pool", "default-pool", "a.img", str(out)) == (1, "")
    assert "virStorageVolDownload" in capsys.readouterr().err
    assert not out.exists()
    assert inproc("vol-delete", "/default-pool/a.img")[0] == 0


@needs_binding
def test_transient_pools(held: None, tmp_path: Path) -> None:
    assert inproc("pool-create-as", "tp", "dir", "--target", "/tp") == (0, "Pool tp created\n")
    spec = tmp_path / "tq.xml"
    spec.write_text("<pool type='dir'><name>tq</name><target><path>/tq</path></target>"
                    "</pool>\n")
    assert inproc("pool-create", str(spec)) == (0, f"Pool tq created from {spec}\n")
    assert inproc("pool-list", "--transient", "--name") == (
        0, "tp                  \ntq                  \n\n")
    code, xml = inproc("pool-create-as", "tr", "dir", "--target", "/tr", "--print-xml")
    assert code == 0 and "<path>/tr</path>" in xml
    for name in ("tp", "tq"):
        assert inproc("pool-destroy", name)[0] == 0
    assert inproc("pool-list", "--all", "--name") == (0, "default-pool        \n\n")


@needs_binding
@pytest.mark.parametrize("args", [
    ("find-storage-pool-sources-as", "logical"),
    ("find-storage-pool-sources-as", "netfs", "nfs.example"),
    ("find-storage-pool-sources-as", "netfs", "--host", "nfs.example", "--port", "2049"),
], ids=" ".join)
def test_source_discovery_prints_what_virsh_prints(args: tuple[str, ...]) -> None:
    r = run("-c", URI, *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout + "\n" == virsh(*args)


@needs_binding
def test_source_discovery_from_a_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "spec.xml"
    spec.write_text("<source><host name='nfs.example'/></source>\n")
    r = run("-c", URI, "find-storage-pool-sources", "netfs", str(spec))
    assert r.returncode == 0, r.stderr
    assert r.stdout + "\n" == virsh("find-storage-pool-sources", "netfs", str(spec))
    assert "<host name='nfs.example'/>" in r.stdout
    r = run("-c", URI, "find-storage-pool-sources-as", "iscsi")  # no host: libvirt says so
    assert r.returncode == 1 and r.stderr.startswith("error: cannot find iscsi pool sources")
