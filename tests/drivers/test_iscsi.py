"""iscsi and iscsi-direct pools, and the secret store their CHAP passwords live in.

iscsi-direct runs for real against tgtd on 127.0.0.1 (tests/iscsitarget.py) with sparse-file
LUNs: libiscsi's tools list them, qemu-img reads and writes them, CHAP included. The kernel
initiator (iscsi) does not exist on this kernel: its iscsiadm argv are checked exactly, with
runner.run faked, and its LUNs are read from a prepared directory of by-path links to
regular files. No secret may appear in the command log or in any error message.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import runner
from backends.drivers import iscsi as iscsidrv
from backends.drivers import iscsi_direct as directdrv
from backends.errors import (
    PoolkeeperError,
    ToolFailed,
    UnsafePath,
    Unsupported,
    ValidationError,
)
from backends.events import JobProgress, VolumesChanged
from backends.model import VolumeDef
from backends.progress import NULL_CONTEXT
from backends.secrets import SecretNotFound, SecretStore
from backends.xmlio import parse_pool
from tests.conftest import needs_root
from tests.iscsitarget import INITIATOR, IscsiTarget, MiB, free_port, running_tgtd

CHAP_USER = "pkuser"
USAGE = "tgt-chap"
PASSWORD = "s3cret,Pass-word!42"  # a comma: it must survive qemu's option syntax untouched
WRONG = "Not-the-right-one-77"


# == shared helpers ====================================================================
@pytest.fixture
def command_log() -> Iterator[list[runner.Completed]]:
    """Every tool call made during the test (as the TUI's log panel sees them)."""
    seen: list[runner.Completed] = []
    remove = runner.COMMAND_LOG.add_listener(seen.append)
    yield seen
    remove()


def assert_secret_free(entries: list[runner.Completed], messages: list[str],
                       *secrets: str) -> None:
    assert entries or messages
    for entry in entries:
        text = "\n".join([*entry.shown, entry.stderr, entry.stdout])
        for secret in secrets:
            assert secret not in text, entry.shown
    for message in messages:
        for secret in secrets:
            assert secret not in message, message


def direct_xml(t: IscsiTarget, name: str = "lun", *, initiator: str = INITIATOR,
               chap: bool = False, port: int | None = None) -> str:
    auth = (f"<auth type='chap' username='{CHAP_USER}'><secret usage='{USAGE}'/></auth>"
            if chap else "")
    return f"""<pool type='iscsi-direct'>
  <name>{name}</name>
  <source>
    <host name='{t.host}' port='{port or t.port}'/>
    <device path='{t.iqn}'/>
    <initiator><iqn name='{initiator}'/></initiator>
    {auth}
  </source>
</pool>"""


def lun_bytes(t: IscsiTarget, number: int) -> bytes:
    return t.targets[0].luns[number - 1].path.read_bytes()


# == iscsi-direct against a real tgtd ==================================================
@pytest.fixture
def tgt(tmp_path: Path) -> Iterator[IscsiTarget]:
    with running_tgtd(tmp_path / "tgt") as target:
        yield target


@pytest.fixture
def chap_tgt(tmp_path: Path) -> Iterator[IscsiTarget]:
    with running_tgtd(tmp_path / "tgt", chap=(CHAP_USER, PASSWORD)) as target:
        yield target


@needs_root
def test_start_lists_the_luns_with_their_sizes(ctl, tgt):
    ctl.define_pool(direct_xml(tgt))
    status = ctl.start_pool("lun")
    sizes = [lun.size for lun in tgt.luns]
    assert status.state == "running"
    assert (status.capacity, status.allocation, status.available) == (sum(sizes), sum(sizes), 0)
    assert status.target is None

    vols = ctl.list_volumes("lun")
    assert [v.name for v in vols] == ["unit:0:0:1", "unit:0:0:2", "unit:0:0:3"]
    assert [v.capacity for v in vols] == sizes
    assert [v.path for v in vols] == [f"iscsi://127.0.0.1:{tgt.port}/{tgt.iqn}/{n}"
                                      for n in (1, 2, 3)]
    assert all(v.type == "network" and v.allocation == v.capacity for v in vols)
    keys = [v.key for v in vols]  # tgtd's T10 vendor designators, "IET     000T000L"
    assert keys == [f"IET_0001000{n}" for n in (1, 2, 3)]

    xml = ctl.volume_xml("lun", "unit:0:0:2")
    assert "<volume type='network'>" in xml
    assert f"<path>iscsi://127.0.0.1:{tgt.port}/{tgt.iqn}/2</path>" in xml
    assert f"<capacity unit='bytes'>{16 * MiB}</capacity>" in xml
    pool_xml = ctl.pool_xml("lun")
    assert "<target>" not in pool_xml and f"<capacity unit='bytes'>{sum(sizes)}<" in pool_xml
    assert ctl.volume_info("lun", "unit:0:0:3").capacity == 5 * MiB
    with pytest.raises(PoolkeeperError, match="no volume named"):
        ctl.volume_info("lun", "unit:0:0:9")

    ctl.stop_pool("lun")
    assert ctl.pool_info("lun").state == "inactive"
    assert tgt.alive  # stopping an iscsi-direct pool logs nothing out, kills nothing


@needs_root
def test_live_monitor_sees_a_lun_added_on_the_target(ctl, tgt):
    ctl.define_pool(direct_xml(tgt))
    ctl.start_pool("lun")
    events: list = []
    ctl.subscribe(events.append)
    ctl.poll()  # the first round learns the pool
    ctl.poll()
    assert not [e for e in events if isinstance(e, VolumesChanged)]
    backing = tgt.base / "late.img"
    with open(backing, "wb") as fh:
        fh.truncate(2 * MiB)
    tgt.tgtadm("--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "4",
               "--backing-store", str(backing))
    ctl.poll()
    changed = [e for e in events if isinstance(e, VolumesChanged)]
    assert changed and changed[-1].added == ("unit:0:0:4",)
    assert ctl.pool_info("lun").capacity == sum(lun.size for lun in tgt.luns) + 2 * MiB


@needs_root
def test_luns_are_preallocated_only(ctl, tgt):
    features = ctl.pool_features("iscsi-direct")
    assert not (features.can_build or features.can_create_volumes
                or features.can_delete_volumes or features.can_resize_volumes)
    assert not ctl.pool_features("iscsi").can_create_volumes
    ctl.define_pool(direct_xml(tgt))
    with pytest.raises(Unsupported):
        ctl.build_pool("lun")
    ctl.start_pool("lun")
    with pytest.raises(Unsupported):
        ctl.create_volume_def("lun", VolumeDef(name="new", capacity=MiB))
    with pytest.raises(Unsupported):
        ctl.delete_volume("lun", "unit:0:0:1")
    with pytest.raises(Unsupported):
        ctl.resize_volume("lun", "unit:0:0:1", 32 * MiB)
    assert [v.name for v in ctl.list_volumes("lun")] == ["unit:0:0:1", "unit:0:0:2",
                                                         "unit:0:0:3"]


@needs_root
def test_upload_then_download_is_byte_identical(ctl, tgt, tmp_path):
    ctl.define_pool(direct_xml(tgt))
    ctl.start_pool("lun")
    data = os.urandom(3 * MiB + 123)  # not whole sectors: the tail is patched in place
    src = tmp_path / "image.bin"
    src.write_bytes(data)
    assert ctl.upload_volume("lun", "unit:0:0:2", str(src)).wait() == len(data)
    backing = lun_bytes(tgt, 2)
    assert backing[:len(data)] == data
    assert backing[len(data):] == bytes(16 * MiB - len(data))  # the rest untouched (zero)

    whole = tmp_path / "whole.bin"
    assert ctl.download_volume("lun", "unit:0:0:2", str(whole)).wait() == 16 * MiB
    assert whole.read_bytes() == backing
    assert stat.S_IMODE(whole.stat().st_mode) == 0o600

    # a window at an odd offset, both ways
    piece = os.urandom(777)
    (tmp_path / "piece.bin").write_bytes(piece)
    job = ctl.upload_volume("lun", "unit:0:0:2", str(tmp_path / "piece.bin"), offset=1001)
    assert job.wait() == 777
    assert lun_bytes(tgt, 2)[1001:1778] == piece
    assert lun_bytes(tgt, 2)[:1001] == data[:1001]
    assert lun_bytes(tgt, 2)[1778:len(data)] == data[1778:]
    part = tmp_path / "part.bin"
    job = ctl.download_volume("lun", "unit:0:0:2", str(part), offset=1001, length=777)
    assert job.wait() == 777
    assert part.read_bytes() == piece

    # the last bytes of the LUN (the window cannot extend past its end)
    end = os.urandom(100)
    (tmp_path / "end.bin").write_bytes(end)
    ctl.upload_volume("lun", "unit:0:0:3", str(tmp_path / "end.bin"), offset=5 * MiB - 100
                      ).wait()
    assert lun_bytes(tgt, 3)[-100:] == end and not lun_bytes(tgt, 3)[:-100].strip(b"\0")

    # sparse download of a mostly empty LUN keeps its holes and its bytes
    sparse = tmp_path / "sparse.bin"
    ctl.download_volume("lun", "unit:0:0:3", str(sparse), sparse=True).wait()
    assert sparse.read_bytes() == lun_bytes(tgt, 3)
    assert sparse.stat().st_blocks * 512 < MiB

    # too much for the LUN is refused before anything is written
    (tmp_path / "big.bin").write_bytes(b"x" * (5 * MiB + 1))
    with pytest.raises(ValidationError, match="do not fit"):
        ctl.upload_volume("lun", "unit:0:0:3", str(tmp_path / "big.bin")).wait()
    assert lun_bytes(tgt, 3)[-100:] == end


@needs_root
def test_upload_reports_progress_and_a_pipe_is_refused(ctl, tgt, tmp_path):
    ctl.define_pool(direct_xml(tgt))
    ctl.start_pool("lun")
    src = tmp_path / "image.bin"
    src.write_bytes(os.urandom(4 * MiB))
    done: list[tuple[int, int]] = []
    ctl.subscribe(lambda ev: done.append((ev.job.done, ev.job.total))
                  if isinstance(ev, JobProgress) else None)
    ctl.upload_volume("lun", "unit:0:0:1", str(src)).wait()
    assert done and done[-1] == (4 * MiB, 4 * MiB)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(Unsupported, match="regular file"):
        ctl.upload_volume("lun", "unit:0:0:1", str(fifo)).wait()


@needs_root
def test_wipe_zeroes_the_lun(ctl, tgt):
    ctl.define_pool(direct_xml(tgt))
    ctl.start_pool("lun")
    lun = tgt.luns[0]
    with open(lun.path, "r+b") as fh:
        fh.write(os.urandom(lun.size))
    assert lun_bytes(tgt, 1).count(0) < lun.size // 2
    ctl.wipe_volume("lun", "unit:0:0:1").wait()
    assert lun_bytes(tgt, 1) == bytes(lun.size)
    with pytest.raises(Unsupported, match="'zero' algorithm"):
        ctl.wipe_volume("lun", "unit:0:0:1", "random").wait()


@needs_root
def test_chap_with_the_right_secret(ctl, chap_tgt, tmp_path, command_log):
    store = SecretStore(ctl.paths.config_dir)
    store.set(USAGE, PASSWORD)
    secret_file = ctl.paths.config_dir / "secrets" / hashlib.sha256(USAGE.encode()).hexdigest()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    assert secret_file.read_text() == PASSWORD

    ctl.define_pool(direct_xml(chap_tgt, chap=True))
    assert PASSWORD not in ctl.pool_xml("lun")
    ctl.start_pool("lun")
    assert [v.capacity for v in ctl.list_volumes("lun")] == [lun.size for lun in chap_tgt.luns]
    data = os.urandom(MiB + 5)
    (tmp_path / "in.bin").write_bytes(data)
    ctl.upload_volume("lun", "unit:0:0:1", str(tmp_path / "in.bin")).wait()
    ctl.download_volume("lun", "unit:0:0:1", str(tmp_path / "out.bin"), length=len(data)
                        ).wait()
    assert (tmp_path / "out.bin").read_bytes() == data == lun_bytes(chap_tgt, 1)[:len(data)]
    ctl.wipe_volume("lun", "unit:0:0:1").wait()
    assert lun_bytes(chap_tgt, 1) == bytes(chap_tgt.luns[0].size)
    tools = {entry.shown[0] for entry in command_log}
    assert {"iscsi-ls", "iscsi-readcapacity16", "iscsi-inq", "qemu-img"} <= tools
    # CHAP went by environment (libiscsi) and by file (qemu): never on a command line
    assert_secret_free(command_log, [], PASSWORD)
    assert all(PASSWORD not in arg for entry in command_log for arg in entry.argv)


@needs_root
def test_chap_refused_with_a_wrong_or_missing_secret(ctl, chap_tgt, tmp_path, cli,
                                                     command_log):
    messages: list[str] = []

    def refused(call, *args, match: str, **kwargs) -> None:
        with pytest.raises(PoolkeeperError, match=match) as info:
            result = call(*args, **kwargs)
            if hasattr(result, "wait"):
                result.wait()
        messages.append(str(info.value))

    store = SecretStore(ctl.paths.config_dir)
    ctl.define_pool(direct_xml(chap_tgt, chap=True))
    refused(ctl.start_pool, "lun", match=f"no value is stored for the secret '{USAGE}'.*"
                                         "secret-set")
    store.set(USAGE, WRONG)
    refused(ctl.start_pool, "lun", match=f"refused the CHAP login of user '{CHAP_USER}'.*"
                                         f"secret '{USAGE}'")
    assert ctl.pool_info("lun").state == "inactive"

    store.set(USAGE, PASSWORD)
    ctl.start_pool("lun")
    info = ctl.volume_info("lun", "unit:0:0:1")
    store.set(USAGE, WRONG)  # the secret changes under a running pool
    refused(ctl.refresh_pool, "lun", match="refused the CHAP login")
    refused(ctl.volume_info, "lun", "unit:0:0:2", match="refused the CHAP login")
    assert ctl.pool_info("lun").state == "inaccessible"
    driver = ctl._driver(ctl.pool_def("lun"))
    (tmp_path / "in.bin").write_bytes(b"y" * 4096)
    refused(driver.upload_volume, info, str(tmp_path / "in.bin"), 0, None, NULL_CONTEXT,
            match="refused the CHAP login")  # qemu-img's login
    refused(driver.download_volume, info, str(tmp_path / "out.bin"), 0, None, False,
            NULL_CONTEXT, match="refused the CHAP login")
    assert not (tmp_path / "out.bin").exists()  # a failed download leaves no file
    refused(driver.wipe_volume, info, "zero", NULL_CONTEXT, match="refused the CHAP login")
    assert lun_bytes(chap_tgt, 1) == bytes(chap_tgt.luns[0].size)

    r = cli("vol-list", "lun", "--json")
    assert r.code == 1 and "refused the CHAP login" in r.err
    messages.append(r.err + r.out)
    assert_secret_free(command_log, messages, PASSWORD, WRONG)
    assert any(entry.returncode != 0 for entry in command_log)


@needs_root
def test_target_going_away_mid_refresh_is_a_clear_error(ctl, tgt, monkeypatch):
    ctl.define_pool(direct_xml(tgt))
    ctl.start_pool("lun")
    real_run = runner.run

    def run(argv, **kwargs):
        result = real_run(argv, **kwargs)
        if argv[0] == "iscsi-ls":  # the LUN list is in: now the target dies
            tgt.kill()
        return result

    monkeypatch.setattr(runner, "run", run)
    started = time.monotonic()
    with pytest.raises(iscsidrv.IscsiError, match="cannot reach the iSCSI target") as info:
        ctl.refresh_pool("lun")
    assert time.monotonic() - started < 20
    assert tgt.iqn in str(info.value) and "is the target up" in str(info.value)
    assert not tgt.alive
    monkeypatch.setattr(runner, "run", real_run)
    started = time.monotonic()
    assert ctl.pool_info("lun").state == "inaccessible"
    with pytest.raises(iscsidrv.IscsiError, match="cannot reach"):
        ctl.list_volumes("lun")
    assert time.monotonic() - started < 20


@needs_root
@pytest.mark.parametrize("how", ["killed during an upload", "hung during a download"])
def test_target_going_away_mid_transfer_ends_the_job(ctl, tmp_path, monkeypatch, how):
    """qemu's iSCSI driver would reconnect forever: the driver checks the target when the
    meter stands still, and stops the transfer with a clear error."""
    monkeypatch.setattr(directdrv, "STALL_CHECK", 0.5)
    monkeypatch.setattr(directdrv, "STALL_PROBE_TIMEOUT", 2.0)
    with running_tgtd(tmp_path / "big", sizes=(128 * MiB,)) as t:
        ctl.define_pool(direct_xml(t))
        ctl.start_pool("lun")
        src, dst = tmp_path / "in.bin", tmp_path / "out.bin"
        with open(t.luns[0].path, "r+b") as fh:  # data, so that the download moves bytes
            fh.write(b"\x5a" * (128 * MiB))
        src.write_bytes(b"\xa5" * (128 * MiB))
        stop = t.kill if how.startswith("killed") else t.freeze
        stopped: list[int] = []

        def on_event(ev) -> None:
            if isinstance(ev, JobProgress) and 0 < ev.job.done < ev.job.total and not stopped:
                stopped.append(ev.job.done)
                stop()

        ctl.subscribe(on_event)
        started = time.monotonic()
        if how.startswith("killed"):
            job = ctl.upload_volume("lun", "unit:0:0:1", str(src))
        else:
            job = ctl.download_volume("lun", "unit:0:0:1", str(dst))
        with pytest.raises(iscsidrv.IscsiError, match="stopped answering while") as info:
            job.wait(60)
        assert stopped, "the transfer finished before the target could be stopped"
        assert time.monotonic() - started < 30
        assert t.iqn in str(info.value)
        assert job.state == "failed" and not dst.exists()


@needs_root
def test_unreachable_portal_and_unknown_initiator(ctl, tgt, tmp_path):
    closed = free_port()  # nobody listens there
    ctl.define_pool(direct_xml(tgt, "gone", port=closed))
    with pytest.raises(iscsidrv.IscsiError, match=f"cannot reach .* at 127.0.0.1:{closed}"):
        ctl.start_pool("gone")
    ctl.undefine_pool("gone")  # (the controller sees the same host and IQN as one source)
    ctl.define_pool(direct_xml(tgt, "stranger",
                               initiator="iqn.2024-01.org.poolkeeper.test:stranger"))
    with pytest.raises(iscsidrv.IscsiError, match="does not offer the target"):
        ctl.start_pool("stranger")  # tgtd's ACL hides the target from this initiator


@needs_root
def test_another_targets_chap_does_not_hide_ours(ctl, tgt, command_log):
    """iscsi-ls -s stops at the first target that refuses the login; tgtd lists the newest
    target first, so a locked second target makes the driver probe the LUNs itself."""
    tgt.add_target("iqn.2024-01.org.poolkeeper.test:locked", [4 * MiB],
                   chap=("someone", "their-own-secret-1"))
    ctl.define_pool(direct_xml(tgt))
    ctl.start_pool("lun")
    vols = ctl.list_volumes("lun")
    assert [(v.name, v.capacity) for v in vols] == [
        (f"unit:0:0:{lun.number}", lun.size) for lun in tgt.luns]
    assert any(e.shown[0] == "iscsi-ls" and "-s" in e.shown and e.returncode != 0
               for e in command_log)
    assert any(e.shown[:2] == ["iscsi-readcapacity16", "-s"] for e in command_log)


@needs_root
def test_find_sources_lists_the_target(ctl, tgt, cli):
    xml = ctl.find_pool_sources("iscsi-direct", host=f"127.0.0.1:{tgt.port}", device=INITIATOR)
    assert f"<host name=\"127.0.0.1\" port=\"{tgt.port}\"/>" in xml
    assert f"<device path=\"{tgt.iqn}\"/>" in xml
    assert f"<iqn name=\"{INITIATOR}\"/>" in xml
    sources = directdrv.IscsiDirectDriver.find_sources(host=f"127.0.0.1:{tgt.port}",
                                                       device=INITIATOR)
    assert [s.devices[0].path for s in sources] == [tgt.iqn]
    # another initiator is not in the target's ACL: tgtd does not even name it
    assert directdrv.IscsiDirectDriver.find_sources(host=f"127.0.0.1:{tgt.port}") == []
    r = cli("find-storage-pool-sources", "iscsi-direct", "--host", f"127.0.0.1:{tgt.port}",
            "--device", INITIATOR)
    assert r.code == 0 and tgt.iqn in r.out, r


@needs_root
def test_vol_list_json_from_the_cli(cli, tgt, tmp_path):
    xml_file = tmp_path / "pool.xml"
    xml_file.write_text(direct_xml(tgt))
    assert cli("pool-define", str(xml_file)).code == 0
    r = cli("pool-start", "lun")
    assert r.code == 0, r
    r = cli("vol-list", "lun", "--json")
    assert r.code == 0, r
    listed = json.loads(r.out)
    assert [(v["name"], v["capacity"], v["type"]) for v in listed] == [
        (f"unit:0:0:{lun.number}", lun.size, "network") for lun in tgt.luns]
    assert listed[0]["path"] == f"iscsi://127.0.0.1:{tgt.port}/{tgt.iqn}/1"
    assert listed[0]["key"] == "IET_00010001"


def test_hostile_definitions_are_refused_at_define(ctl):
    base = ("<pool type='iscsi-direct'><name>x</name><source>{host}<device path='{iqn}'/>"
            "<initiator><iqn name='{init}'/></initiator></source></pool>")
    good = {"host": "<host name='127.0.0.1' port='3260'/>", "iqn": "iqn.2024-01.a:b",
            "init": "iqn.2024-01.a:c"}
    for field, value in (("iqn", "iqn.2024-01.a:b,file.driver=file"),
                         ("iqn", "iqn.2024-01.a:b?x"), ("init", "iqn.2024-01.a:c%40evil"),
                         ("host", "<host name='-oProxyCommand=x'/>"),
                         ("host", "<host name='a@b'/>")):
        with pytest.raises(ValidationError):
            ctl.define_pool(base.format(**{**good, field: value}))
    assert ctl.pool_names() == []
    ctl.define_pool(base.format(**good))


def test_designators_and_volume_names():
    out = ("Page Code:(0x83) DEVICE_IDENTIFICATION\nDEVICE DESIGNATOR #0\nCode Set:(1) BINARY"
           "\nPIV:0\nAssociation:(0) LOGICAL_UNIT\nDesignator Type:(3) NAA\nDesignator:[`]\n"
           "DEVICE DESIGNATOR #1\nCode Set:(2) ASCII\nPIV:0\nAssociation:(0) LOGICAL_UNIT\n"
           "Designator Type:(1) T10_VENDORT_ID\nDesignator:[IET     00010001]\n"
           "DEVICE DESIGNATOR #2\nCode Set:(3) UTF-8\nPIV:0\nAssociation:(2) TARGET_DEVICE\n"
           "Designator Type:(8) SCSI_NAME_STRING\nDesignator:[iqn.x:target]\n")
    assert directdrv.pick_designator(out) == "IET_00010001"  # the LU's, not the target's
    lun_name = out.replace("Association:(2) TARGET_DEVICE", "Association:(0) LOGICAL_UNIT")
    assert directdrv.pick_designator(lun_name) == "iqn.x:target"
    assert directdrv.pick_designator("nothing") is None
    assert iscsidrv.lun_of("unit:0:0:12") == 12
    for bad in ("unit:0:0:", "unit:0:0:-1", "unit:0:0:1/../2", "lun1", "unit:0:0:1 "):
        with pytest.raises(PoolkeeperError):
            iscsidrv.lun_of(bad)
    assert iscsidrv.portal_of("::1", 3260) == "[::1]:3260"
    assert iscsidrv.parse_host_arg("[::1]:3261") == ("::1", 3261)
    assert iscsidrv.parse_host_arg("host.example") == ("host.example", None)
    for bad in ("host:99999", ":²", "host:٣٢٦٠", "[::1]:٣٢٦٠", "host:", "host:0"):
        with pytest.raises(ValidationError, match="port|host name"):  # not a ValueError
            iscsidrv.parse_host_arg(bad)


# == iscsi (kernel initiator): iscsiadm argv, by-path links ============================
PORTAL = "192.0.2.10:3260"
IQN = "iqn.2024-01.org.example:store"
KINIT = "iqn.2024-01.org.example:host1"
IFACE = "poolkeeper-" + hashlib.sha256(KINIT.encode()).hexdigest()[:8]
NODE = ["iscsiadm", "--mode", "node", "--portal", PORTAL, "--targetname", IQN]


class FakeIscsiadm:
    """Stands in for runner.run in the driver: records argv and the secrets passed, answers
    like iscsiadm, and logs each call masked as the real runner does."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []
        self.ifaces = "default tcp,<empty>,<empty>,<empty>,<empty>\n"
        self.discovery = f"{PORTAL},1 {IQN}\n{PORTAL},1 {IQN}.other\n"
        self.sessions = ""
        self.login = (0, "")
        self.on_login = None

    @property
    def argvs(self) -> list[list[str]]:
        return [argv for argv, _ in self.calls]

    def __call__(self, argv, **kwargs) -> runner.Completed:
        argv = [str(a) for a in argv]
        secrets = [s for s in kwargs.get("secrets", ()) if s]
        self.calls.append((argv, secrets))
        assert argv[0] == "iscsiadm", argv
        rc, out, err = self.answer(argv[1:])
        result = runner.Completed(argv, [runner.mask(a, secrets) for a in argv], rc, out,
                                  runner.mask(err, secrets), 0.0)
        runner.COMMAND_LOG.record(result)
        if kwargs.get("check", True) and rc != 0:
            raise ToolFailed(result.shown, rc, result.stderr)
        return result

    def answer(self, args: list[str]) -> tuple[int, str, str]:
        if args == ["--mode", "iface"]:
            return 0, self.ifaces, ""
        if args[:2] == ["--mode", "discovery"]:
            return 0, self.discovery, ""
        if args == ["--mode", "session"]:
            return (0, self.sessions, "") if self.sessions else (
                21, "", "iscsiadm: No active sessions.")
        if "--login" in args:
            if self.on_login:
                self.on_login()
            return self.login[0], "", self.login[1]
        return 0, "", ""


@pytest.fixture
def fake(monkeypatch) -> FakeIscsiadm:
    fake = FakeIscsiadm()
    monkeypatch.setattr(iscsidrv.runner, "run", fake)
    return fake


@pytest.fixture
def by_path(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "by-path"
    d.mkdir()
    monkeypatch.setattr(iscsidrv, "BY_PATH_DIR", str(d))
    return d


def add_lun(by_path: Path, lun: int, size: int, *, portal: str = PORTAL, iqn: str = IQN,
            suffix: str = "") -> Path:
    """A by-path link to a regular file standing in for the LUN's /dev/sdX."""
    device = by_path.parent / "devices" / f"{portal}-{iqn}-{lun}{suffix}".replace(":", "_")
    device.parent.mkdir(exist_ok=True)
    with open(device, "wb") as fh:
        fh.truncate(size)
    link = by_path / f"ip-{portal}-iscsi-{iqn}-lun-{lun}{suffix}"
    link.symlink_to(device)
    return device


def kernel_xml(name: str = "k", *, initiator: bool = False, chap: bool = False) -> str:
    init = f"<initiator><iqn name='{KINIT}'/></initiator>" if initiator else ""
    auth = (f"<auth type='chap' username='{CHAP_USER}'><secret usage='{USAGE}'/></auth>"
            if chap else "")
    return (f"<pool type='iscsi'><name>{name}</name><source><host name='192.0.2.10'/>"
            f"<device path='{IQN}'/>{init}{auth}</source>"
            "<target><path>/dev/disk/by-path</path></target></pool>")


def test_start_and_stop_with_iface_and_chap(ctl, fake, by_path, command_log):
    add_lun(by_path, 1, 4 * MiB)
    SecretStore(ctl.paths.config_dir).set(USAGE, PASSWORD)
    ctl.define_pool(kernel_xml(initiator=True, chap=True))
    status = ctl.start_pool("k")
    node = [*NODE, "--interface", IFACE]
    assert fake.argvs == [
        ["iscsiadm", "--mode", "iface"],
        ["iscsiadm", "--mode", "iface", "--interface", IFACE, "--op", "new"],
        ["iscsiadm", "--mode", "iface", "--interface", IFACE, "--op", "update",
         "--name", "iface.initiatorname", "--value", KINIT],
        ["iscsiadm", "--mode", "discovery", "--type", "sendtargets", "--portal", PORTAL,
         "--interface", IFACE, "--op", "nonpersistent"],
        ["iscsiadm", "--mode", "session"],
        [*node, "--op", "new"],
        [*node, "--op", "update", "--name", "node.session.auth.authmethod", "--value", "CHAP"],
        [*node, "--op", "update", "--name", "node.session.auth.username", "--value",
         CHAP_USER],
        [*node, "--op", "update", "--name", "node.session.auth.password", "--value",
         PASSWORD],
        [*node, "--login"],
    ]
    # iscsiadm can only take the password in argv: there, and only there, it is masked
    for argv, secrets in fake.calls:
        if PASSWORD in argv:
            assert secrets == [PASSWORD]
    assert_secret_free(command_log, [], PASSWORD)
    assert any(runner.MASK in e.shown for e in command_log)
    assert status.state == "running" and status.capacity == 4 * MiB
    assert ctl.store.read_extras("k")["iface"] == IFACE

    fake.calls.clear()
    ctl.stop_pool("k")
    assert fake.argvs == [[*node, "--logout"]]


def test_start_without_initiator_or_chap(ctl, fake, by_path):
    add_lun(by_path, 0, MiB)
    ctl.define_pool(kernel_xml())
    ctl.start_pool("k")
    assert fake.argvs == [
        ["iscsiadm", "--mode", "discovery", "--type", "sendtargets", "--portal", PORTAL,
         "--op", "nonpersistent"],
        ["iscsiadm", "--mode", "session"],
        [*NODE, "--op", "new"],
        [*NODE, "--login"],
    ]
    fake.calls.clear()
    ctl.stop_pool("k")
    assert fake.argvs == [[*NODE, "--logout"]]


def test_existing_session_and_iface_are_reused(ctl, fake, by_path):
    add_lun(by_path, 1, MiB)
    fake.ifaces += f"{IFACE} tcp,<empty>,<empty>,<empty>,{KINIT}\n"
    fake.sessions = f"tcp: [3] {PORTAL},1 {IQN} (non-flash)\n"
    ctl.define_pool(kernel_xml(initiator=True))
    ctl.start_pool("k")
    assert fake.argvs == [
        ["iscsiadm", "--mode", "iface"],
        ["iscsiadm", "--mode", "discovery", "--type", "sendtargets", "--portal", PORTAL,
         "--interface", IFACE, "--op", "nonpersistent"],
        ["iscsiadm", "--mode", "session"],
    ]


def test_target_not_offered_is_refused_before_login(ctl, fake, by_path):
    fake.discovery = f"{PORTAL},1 iqn.2024-01.org.example:else\n"
    ctl.define_pool(kernel_xml())
    with pytest.raises(iscsidrv.IscsiError, match="does not offer the target .*else"):
        ctl.start_pool("k")
    assert not any("--login" in argv for argv in fake.argvs)
    assert ctl.pool_info("k").state == "inactive"


def test_login_refused_never_shows_the_secret(ctl, fake, by_path, command_log):
    SecretStore(ctl.paths.config_dir).set(USAGE, PASSWORD)
    # a tool that echoes what it was given must not leak it either
    fake.login = (24, f"iscsiadm: Login failed: CHAP secret {PASSWORD} rejected\n")
    ctl.define_pool(kernel_xml(chap=True))
    with pytest.raises(iscsidrv.IscsiAuthError, match="refused the CHAP login") as info:
        ctl.start_pool("k")
    assert_secret_free(command_log, [str(info.value), repr(info.value)], PASSWORD)


def test_missing_secret_fails_before_any_iscsiadm(ctl, fake, by_path):
    ctl.define_pool(kernel_xml(chap=True))
    with pytest.raises(SecretNotFound, match="secret-set"):
        ctl.start_pool("k")
    assert fake.calls == []


def test_luns_that_never_appear_time_out_and_log_out(ctl, fake, by_path, monkeypatch):
    monkeypatch.setattr(iscsidrv, "LUN_WAIT_TIMEOUT", 0.3)
    ctl.define_pool(kernel_xml())
    started = time.monotonic()
    with pytest.raises(iscsidrv.IscsiError, match="no LUN appeared under .*by-path within"):
        ctl.start_pool("k")
    assert time.monotonic() - started < 5
    assert fake.argvs[-1] == [*NODE, "--logout"]
    assert ctl.pool_info("k").state == "inactive"


def test_luns_are_read_from_the_by_path_links(by_path):
    add_lun(by_path, 0, 1 * MiB)
    add_lun(by_path, 2, 3 * MiB)
    add_lun(by_path, 10, 2 * MiB)
    add_lun(by_path, 2, 512, suffix="-part1")  # a partition on LUN 2, not a LUN
    add_lun(by_path, 1, MiB, iqn=IQN + "x")  # another target whose IQN starts like ours
    add_lun(by_path, 4, MiB, portal="192.0.2.11:3260")  # the same IQN at another portal
    add_lun(by_path, 5, MiB, portal="192.0.2.10:3261")
    (by_path / "pci-0000:00:1f.2-ata-1").symlink_to("/dev/null")
    (by_path / f"ip-{PORTAL}-iscsi-{IQN}-lun-7").symlink_to(by_path / "gone")
    pdef = parse_pool(kernel_xml())
    driver = iscsidrv.IscsiDriver(pdef)
    sizes, vols = driver.refresh()
    assert [(v.name, v.capacity) for v in vols] == [
        ("unit:0:0:0", MiB), ("unit:0:0:2", 3 * MiB), ("unit:0:0:7", 0),
        ("unit:0:0:10", 2 * MiB)]
    assert vols[2].error and "cannot read" in vols[2].error  # listed, not dropped
    for v in vols:
        lun = v.name.rsplit(":", 1)[1]
        assert v.path == str(by_path / f"ip-{PORTAL}-iscsi-{IQN}-lun-{lun}")
        assert v.key == v.path and v.type == "block"
    assert (sizes.capacity, sizes.allocation, sizes.available) == (6 * MiB, 6 * MiB, 0)
    assert driver.volume_path("unit:0:0:2") == vols[1].path
    assert driver.check()
    assert driver.refresh_volume("unit:0:0:3") is None
    assert driver.refresh_volume("unit:0:0:10").capacity == 2 * MiB


def test_kernel_luns_take_data_like_block_devices(ctl, fake, by_path, tmp_path):
    device = add_lun(by_path, 1, 2 * MiB)
    ctl.define_pool(kernel_xml())
    ctl.start_pool("k")
    data = os.urandom(MiB + 3)
    (tmp_path / "in.bin").write_bytes(data)
    assert ctl.upload_volume("k", "unit:0:0:1", str(tmp_path / "in.bin"), offset=7).wait() \
        == len(data)
    assert device.read_bytes()[7:7 + len(data)] == data
    ctl.download_volume("k", "unit:0:0:1", str(tmp_path / "out.bin")).wait()
    assert (tmp_path / "out.bin").read_bytes() == device.read_bytes()
    (tmp_path / "big.bin").write_bytes(b"z" * (2 * MiB))
    with pytest.raises(ValidationError, match="do not fit"):
        ctl.upload_volume("k", "unit:0:0:1", str(tmp_path / "big.bin"), offset=1).wait()
    ctl.wipe_volume("k", "unit:0:0:1").wait()
    assert device.read_bytes() == bytes(2 * MiB)
    assert device.stat().st_size == 2 * MiB


def test_kernel_find_sources_argv_and_parsing(ctl, fake):
    fake.discovery = (f"{PORTAL},1 {IQN}\n[2001:db8::1]:3260,1 {IQN}\n"
                      f"{PORTAL},1 iqn.2024-01.org.example:two\nnot a target line at all\n")
    xml = ctl.find_pool_sources("iscsi", host="192.0.2.10")
    assert fake.argvs == [["iscsiadm", "--mode", "discovery", "--type", "sendtargets",
                           "--portal", PORTAL, "--op", "nonpersistent"]]
    assert xml.count("<source>") == 2
    assert f'<device path="{IQN}"/>' in xml and "iqn.2024-01.org.example:two" in xml
    assert '<host name="192.0.2.10"/>' in xml
    fake.calls.clear()
    sources = iscsidrv.IscsiDriver.find_sources(host="[2001:db8::1]:3261")
    assert fake.argvs[0][6] == "[2001:db8::1]:3261"
    assert sources[0].hosts[0].port == 3261
    for host in (None, "", "-x", "a b", "h:0"):
        with pytest.raises(ValidationError):
            iscsidrv.IscsiDriver.find_sources(host=host)


# == the secret store ==================================================================
def test_secret_store_files_are_private_and_atomic(tmp_path):
    store = SecretStore(tmp_path)
    store.set("one", PASSWORD)
    path = tmp_path / "secrets" / hashlib.sha256(b"one").hexdigest()
    assert store.get("one") == PASSWORD
    assert store.path("one") == path and store.has("one") and not store.has("two")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    ino = path.stat().st_ino
    store.set("one", WRONG)
    assert store.get("one") == WRONG and path.stat().st_ino != ino  # replaced, not rewritten
    # no temp files left; the usage name beside the value, for secret-list
    assert sorted(os.listdir(path.parent)) == [path.name, f"{path.name}.usage"]
    assert store.delete("one") and not store.delete("one")
    assert os.listdir(path.parent) == []
    with pytest.raises(SecretNotFound, match="secret-set 'one'"):
        store.get("one")


def test_secret_store_refuses_files_that_are_not_its_own(tmp_path):
    store = SecretStore(tmp_path)
    store.set("s", PASSWORD)
    path = store.path("s")
    messages = []

    def refused(match: str) -> None:
        with pytest.raises(UnsafePath, match=match) as info:
            store.get("s")
        messages.append(str(info.value))

    os.chmod(path, 0o644)
    refused("readable or writable by other users")
    os.chmod(path, 0o600)
    os.link(path, tmp_path / "extra-link")
    refused("other hard links")
    os.unlink(tmp_path / "extra-link")
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
        refused("belongs to uid 65534")
        os.chown(path, 0, 0)
    assert store.get("s") == PASSWORD
    os.unlink(path)
    (tmp_path / "elsewhere").write_text(PASSWORD)
    os.chmod(tmp_path / "elsewhere", 0o600)
    path.symlink_to(tmp_path / "elsewhere")
    refused("symbolic link")
    os.unlink(path)
    os.chmod(path.parent, 0o755)
    with pytest.raises(UnsafePath, match="open to other users"):
        store.get("s")
    with pytest.raises(UnsafePath, match="open to other users"):
        store.set("s", PASSWORD)
    assert all(PASSWORD not in m for m in messages)


def test_secret_values_are_checked_without_being_echoed(tmp_path):
    store = SecretStore(tmp_path)
    for value in ("", "two\nlines", "tab\there", "x" * 2000):
        with pytest.raises(ValidationError) as info:
            store.set("s", value)
        assert value not in str(info.value) or not value
    for usage in ("", " ", "a\nb"):
        with pytest.raises(ValidationError):
            store.set(usage, PASSWORD)
    assert not store.has("s") and not (tmp_path / "secrets").exists()
    (tmp_path / "real-dir").mkdir(mode=0o700)
    (tmp_path / "secrets").symlink_to(tmp_path / "real-dir")
    with pytest.raises(UnsafePath, match="not a directory"):
        store.set("s", PASSWORD)
    assert os.listdir(tmp_path / "real-dir") == []
