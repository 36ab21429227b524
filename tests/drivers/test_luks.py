"""LUKS-encrypted volumes in dir pools, with real qemu-img/qemu-io images: made from a
defined secret's value (never on a command line), found again by their headers, cloned
(a byte copy: the same passphrase opens it), resized with the key; a missing or wrong
secret is refused clearly and leaves nothing behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import runner
from backends.errors import PoolkeeperError, Unsupported, ValidationError
from tests.reliability.test_secrets_hidden import ProcWatch

MiB = 1 << 20
PASSPHRASE = "c0rrect,horse=battery staple"  # a comma and '=': qemu option syntax
WRONG = "n0t-the-passphrase-at-all"
UUID = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"


def secret_xml(volume_path: str | None, uuid: str = UUID, private: str = "yes") -> str:
    usage = (f"<usage type='volume'><volume>{volume_path}</volume></usage>"
             if volume_path else "")
    return (f"<secret ephemeral='no' private='{private}'><uuid>{uuid}</uuid>"
            f"<description>test</description>{usage}</secret>")


def volume_xml(name: str, fmt: str, mib: int = 8, secret: str = UUID) -> str:
    return (f"<volume><name>{name}</name><capacity unit='MiB'>{mib}</capacity><target>"
            f"<format type='{fmt}'/><encryption format='luks'>"
            f"<secret type='passphrase' uuid='{secret}'/></encryption></target></volume>")


@pytest.fixture
def command_log() -> Iterator[list[runner.Completed]]:
    seen: list[runner.Completed] = []
    remove = runner.COMMAND_LOG.add_listener(seen.append)
    try:
        yield seen
    finally:
        remove()


def image_opts(path: Path, raw: bool) -> str:
    if raw:
        return f"driver=luks,key-secret=k,file.filename={path}"
    return f"driver=qcow2,encrypt.key-secret=k,file.filename={path}"


def qemu_io(path: Path, raw: bool, keyfile: Path, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["qemu-io", "--object", f"secret,id=k,file={keyfile}",
                           "--image-opts", image_opts(path, raw), "-c", command],
                          capture_output=True, text=True, timeout=60)


def make_luks(path: Path, keyfile: Path, size: str) -> None:
    """A LUKS image made outside poolkeeper (again if qemu's PBKDF timing failed: see
    volume_encryption.run_create)."""
    for _ in range(4):
        made = subprocess.run(["qemu-img", "create", "-f", "luks", "--object",
                               f"secret,id=k,file={keyfile}", "-o", "key-secret=k,iter-time=10",
                               str(path), size], capture_output=True, text=True)
        if made.returncode == 0:
            return
        assert "Unable to get accurate CPU usage" in made.stderr, made.stderr
    raise AssertionError("qemu-img create -f luks failed 4 times")


def virtual_size(path: Path) -> int:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    assert info["encrypted"] is True
    return info["virtual-size"]


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_encrypted_volume_is_made_listed_cloned_and_resized(ctl, pool, store, keyfile, fmt,
                                                            command_log):
    raw = fmt == "raw"
    store.define(secret_xml(str(pool / "v")))
    store.set_value(UUID, PASSPHRASE)
    with ProcWatch((PASSPHRASE,)) as watch:
        ctl.create_volume("p", volume_xml("v", fmt)).wait(120)
        info = ctl.volume_info("p", "v")
        assert (info.format, info.encryption, info.capacity) == (fmt, "luks", 8 * MiB)
        assert virtual_size(pool / "v") == 8 * MiB
        # the passphrase opens it; the bytes on disk are not the plain text
        assert qemu_io(pool / "v", raw, keyfile, "write -P 0x5a 0 1M").returncode == 0
        assert b"\x5a" * 4096 not in (pool / "v").read_bytes()
        xml = ctl.volume_xml("p", "v")
        assert (f"<encryption format='luks'>\n      <secret type='passphrase' uuid='{UUID}'/>"
                "\n    </encryption>") in xml
        # a clone is the same ciphertext: the same secret opens it, and dumpxml names it
        assert ctl.clone_volume("p", "v", "c").wait(120) in ("sparse-copy", "reflink", "copy")
        assert ctl.volume_info("p", "c").encryption == "luks"
        assert f"uuid='{UUID}'" in ctl.volume_xml("p", "c")
        check = qemu_io(pool / "c", raw, keyfile, "read -P 0x5a 0 1M")
        assert check.returncode == 0 and "Pattern verification failed" not in check.stdout
        # resize opens it with the key: the virtual size grows, the data stays
        ctl.resize_volume("p", "c", 16 * MiB).wait(120)
        assert virtual_size(pool / "c") == 16 * MiB
        assert ctl.volume_info("p", "c").capacity == 16 * MiB
        assert "Pattern verification failed" not in qemu_io(
            pool / "c", raw, keyfile, "read -P 0x5a 0 1M").stdout
    assert watch.rounds > 1 and not watch.leaks
    assert watch.saw("qemu-img")
    runs = [e for e in command_log if e.argv[0].endswith("qemu-img")]
    assert {e.argv[1] for e in runs} >= {"create", "resize"}
    secret_file = store.path(UUID)
    for entry in runs:
        assert not any(PASSPHRASE in a for a in entry.argv)
        if entry.argv[1] in ("create", "resize"):
            assert f"secret,id=sec0,file={secret_file}" in entry.argv
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    for name in os.listdir(secret_file.parent):
        assert stat.S_IMODE((secret_file.parent / name).stat().st_mode) == 0o600, name


def test_an_image_made_elsewhere_is_found_encrypted(ctl, pool, store, keyfile):
    """No record, no secret: the header says LUKS; a secret whose usage names the path is
    shown as libvirt shows it."""
    make_luks(pool / "outside", keyfile, "4M")
    ctl.refresh_pool("p")
    info = ctl.volume_info("p", "outside")
    assert (info.format, info.encryption, info.capacity) == ("raw", "luks", 4 * MiB)
    assert "<encryption format='luks'/>" in ctl.volume_xml("p", "outside")
    # resizing needs the key, and there is none yet: refused, the file untouched
    before = (pool / "outside").read_bytes()
    with pytest.raises(ValidationError, match="no secret is known for it"):
        ctl.resize_volume("p", "outside", 8 * MiB).wait(60)
    store.define(secret_xml(str(pool / "outside")))
    assert f"uuid='{UUID}'" in ctl.volume_xml("p", "outside")
    with pytest.raises(ValidationError, match="has no value"):
        ctl.resize_volume("p", "outside", 8 * MiB).wait(60)
    # a wrong passphrase: qemu's own refusal, the image as it was
    store.set_value(UUID, WRONG)
    with pytest.raises(PoolkeeperError, match="Invalid password") as exc:
        ctl.resize_volume("p", "outside", 8 * MiB).wait(60)
    assert WRONG not in str(exc.value)
    assert (pool / "outside").read_bytes() == before
    store.set_value(UUID, PASSPHRASE)
    ctl.resize_volume("p", "outside", 8 * MiB).wait(60)
    assert virtual_size(pool / "outside") == 8 * MiB


def test_a_missing_secret_is_refused_before_anything_is_made(ctl, pool, store):
    with pytest.raises(ValidationError, match=f"no secret '{UUID}' is defined"):
        ctl.create_volume("p", volume_xml("v", "qcow2"))
    store.define(secret_xml(None))
    with pytest.raises(ValidationError, match="has no value yet.*secret-set-value"):
        ctl.create_volume("p", volume_xml("v", "raw"))
    for bad, message in (
            ("<encryption format='luks2'><secret type='passphrase' uuid='" + UUID + "'/>"
             "</encryption>", "format='luks' only"),
            ("<encryption format='luks'/>", "needs its passphrase"),
            ("<encryption format='luks'><cipher name='aes' size='256'/></encryption>",
             "custom encryption parameters are not supported")):
        with pytest.raises(PoolkeeperError, match=message):
            ctl.create_volume("p", "<volume><name>v</name><capacity>1048576</capacity>"
                              f"<target><format type='qcow2'/>{bad}</target></volume>")
    with pytest.raises(ValidationError, match="raw or qcow2, not vmdk"):
        ctl.create_volume("p", volume_xml("v", "vmdk"))
    assert os.listdir(pool) == []


def test_an_encrypted_clone_keeps_format_and_size(ctl, pool, store):
    store.define(secret_xml(str(pool / "v")))
    store.set_value(UUID, PASSPHRASE)
    ctl.create_volume("p", volume_xml("v", "raw", mib=2)).wait(120)
    with pytest.raises(Unsupported, match="stays raw, not qcow2"):
        ctl.clone_volume("p", "v", "c", xml="<volume><name>c</name><target>"
                         "<format type='qcow2'/></target></volume>")
    with pytest.raises(Unsupported, match="resize the clone afterwards"):
        ctl.clone_volume("p", "v", "c", xml="<volume><name>c</name>"
                         "<capacity unit='MiB'>4</capacity></volume>")
    with pytest.raises(Unsupported, match="only supported for unencrypted raw"):
        ctl.resize_volume("p", "v", 4 * MiB, allocate=True)
    assert sorted(os.listdir(pool)) == ["v"]


def test_a_guests_luks_header_in_a_plain_raw_volume_is_not_believed(ctl, pool, keyfile):
    """A plain raw volume made here whose guest formatted it with LUKS stays a plain raw
    volume of its full size (its format record says so); resize works without any key."""
    ctl.create_volume("p", "<volume><name>g</name><capacity unit='MiB'>8</capacity>"
                      "<allocation>0</allocation><target><format type='raw'/></target>"
                      "</volume>").wait(60)
    elsewhere = pool.parent / "hdr"
    make_luks(elsewhere, keyfile, "1M")
    header = elsewhere.read_bytes()[:4096]
    with open(pool / "g", "r+b") as fh:  # what the guest wrote
        fh.write(header)
    ctl.refresh_pool("p")
    info = ctl.volume_info("p", "g")
    assert (info.format, info.encryption, info.capacity) == ("raw", None, 8 * MiB)
    assert "<encryption" not in ctl.volume_xml("p", "g")
    ctl.resize_volume("p", "g", 9 * MiB).wait(60)
    assert (pool / "g").stat().st_size == 9 * MiB


def test_wiping_an_encrypted_volume_leaves_plain_zeros(ctl, pool, store):
    store.define(secret_xml(str(pool / "v")))
    store.set_value(UUID, PASSPHRASE)
    ctl.create_volume("p", volume_xml("v", "raw", mib=2)).wait(120)
    job = ctl.wipe_volume("p", "v")
    job.wait(60)
    assert "'v' was raw, luks-encrypted; after the wipe it is raw" in job.warnings
    assert (pool / "v").read_bytes().count(0) == (pool / "v").stat().st_size
    info = ctl.volume_info("p", "v")
    assert (info.encryption, info.capacity) == (None, (pool / "v").stat().st_size)


def test_transfers_move_the_encrypted_bytes_and_a_deleted_clone_is_forgotten(
        ctl, pool, store, tmp_path):
    store.define(secret_xml(str(pool / "v")))
    store.set_value(UUID, PASSPHRASE)
    ctl.create_volume("p", volume_xml("v", "qcow2", mib=2)).wait(120)
    ctl.download_volume("p", "v", str(tmp_path / "out")).wait(60)
    assert (tmp_path / "out").read_bytes() == (pool / "v").read_bytes()  # the ciphertext
    ctl.clone_volume("p", "v", "c").wait(120)
    keys = json.loads((tmp_path / "state" / "secrets" / "volume-keys.json").read_text())
    assert keys == {str(pool / "c"): UUID}  # v's own secret names its path: no record
    ctl.delete_volume("p", "c")
    assert json.loads((tmp_path / "state" / "secrets" / "volume-keys.json").read_text()) == {}
    # an upload replaces the image as it is: its own (here: the same) LUKS header
    ctl.upload_volume("p", "v", str(tmp_path / "out")).wait(60)
    assert ctl.volume_info("p", "v").encryption == "luks"


def test_a_record_that_cannot_be_written_is_a_warning_not_a_failed_clone(
        ctl, pool, store, tmp_path):
    store.define(secret_xml(str(pool / "v")))
    store.set_value(UUID, PASSPHRASE)
    ctl.create_volume("p", volume_xml("v", "raw", mib=2)).wait(120)
    keys = tmp_path / "state" / "secrets" / "volume-keys.json"
    keys.write_text("not json")
    keys.chmod(0o600)
    job = ctl.clone_volume("p", "v", "c")
    job.wait(120)
    assert any(w.startswith(f"could not record the secret of {pool / 'c'}: ")
               and "volume-keys.json is not poolkeeper's record" in w for w in job.warnings)
    assert ctl.volume_info("p", "c").encryption == "luks"
    assert "<encryption format='luks'/>" in ctl.volume_xml("p", "c")  # secret unknown


def test_qemus_pbkdf_clock_failure_is_run_again_and_nothing_else(ctl, pool, store, tmp_path,
                                                                 monkeypatch):
    """qemu 7.2 sometimes fails a LUKS create with "Unable to get accurate CPU usage" (its
    PBKDF timing saw 0 ms): a qemu-img on PATH that fails so twice, then runs the real
    one, still makes the volume; any other failure is not retried."""
    real = subprocess.run(["sh", "-c", "command -v qemu-img"], capture_output=True,
                          text=True, check=True).stdout.strip()
    bin_dir, count = tmp_path / "bin", tmp_path / "count"
    bin_dir.mkdir()
    fake = bin_dir / "qemu-img"
    fake.write_text(f"""#!/bin/sh
n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}
if [ "$1" = create ] && [ $n -le 2 ]; then
  echo "qemu-img: /dev/fd/9: $FAKE_ERROR" >&2; exit 1
fi
exec {real} "$@"
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ERROR", "Unable to get accurate CPU usage")
    store.define(secret_xml(str(pool / "v")))
    store.set_value(UUID, PASSPHRASE)
    ctl.create_volume("p", volume_xml("v", "raw", mib=2)).wait(120)
    assert int(count.read_text()) >= 3  # the real qemu-img may hit it too
    assert ctl.volume_info("p", "v").encryption == "luks"
    count.unlink()
    monkeypatch.setenv("FAKE_ERROR", "Invalid argument")
    with pytest.raises(PoolkeeperError, match="Invalid argument"):
        ctl.create_volume("p", volume_xml("w", "raw", mib=2)).wait(120)
    assert count.read_text().strip() == "1"
    assert sorted(os.listdir(pool)) == ["v"]  # nothing half-made left
