"""A logical pool on a host whose kernel has no device-mapper (issue 15 item 17).

LVM is configured as on a real host (activation on, tests/lvmenv.py `set_activation`): the
volume group's metadata can be read and changed, but lvcreate fails ("striped: Required
device-mapper target(s) not detected in your kernel"), lvresize changes the metadata and
then fails, and `vgchange -aly` fails as soon as the group holds a volume. The pool starts
(metadata only), lists and deletes its volumes, and refuses every verb that needs
device-mapper before LVM runs, naming the missing kernel support.

The kernel probe is pointed at paths that do not exist, so these tests mean the same on a
host that has device-mapper; `test_the_kernel_probe_reads_this_host` checks the real one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backends import blockprobe, runner
from backends.drivers.lvm_report import DM_MISSING
from backends.errors import Unsupported
from tests.lvmenv import can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')

from .test_logical import build_and_start, create, vg_name

pytestmark = pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")

MiB = 1 << 20
DM_WORDS = "device-mapper is not available in this kernel (modprobe dm_mod)"


@pytest.fixture(name="no_dm")
def no_dm_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(blockprobe, "DM_MISC", str(tmp_path / "no-such-misc"))
    monkeypatch.setattr(blockprobe, "DM_CONTROL", str(tmp_path / "no-such-control"))


def lvm_argvs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every tool argv run from now on (to prove what never ran)."""
    seen: list[list[str]] = []
    real = runner.run

    def run(argv, **kwargs):  # type: ignore[no-untyped-def]
        seen.append([str(a) for a in argv])
        return real(argv, **kwargs)

    monkeypatch.setattr(runner, "run", run)
    return seen


def test_the_kernel_probe_reads_this_host():
    with open("/proc/misc", encoding="ascii") as fh:
        listed = any(line.split()[1:] == ["device-mapper"] for line in fh if line.strip())
    assert blockprobe.device_mapper_available() == (
        listed or os.path.exists(blockprobe.DM_MISC) or _control_opens())


def _control_opens() -> bool:
    try:
        os.close(os.open(blockprobe.DM_CONTROL, os.O_RDWR))
    except OSError:
        return False
    return True


def test_without_device_mapper_the_pool_starts_lists_and_refuses_up_front(
        ctl, lvm, no_dm, monkeypatch, tmp_path):
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(64))
    # metadata-only LVM (the test lvm.conf) needs no device-mapper: nothing is limited
    assert ctl.pool_info(vg).volume_limit is None
    create(ctl, vg, "lv1", 8 * MiB)
    ctl.stop_pool(vg)

    lvm.env.set_activation(True)  # from here on LVM behaves as on a real host
    try:
        ctl.start_pool(vg)  # vgchange -aly would fail (an LV it cannot activate)
        info = ctl.pool_info(vg)
        assert info.state == "running" and info.volume_limit == DM_MISSING
        assert DM_WORDS in info.volume_limit
        assert [v.name for v in ctl.list_volumes(vg)] == ["lv1"]

        argvs = lvm_argvs(monkeypatch)
        with pytest.raises(Unsupported, match=r"device-mapper is not available in this "
                                              r"kernel \(modprobe dm_mod\)"):
            create(ctl, vg, "lv2", 8 * MiB)
        with pytest.raises(Unsupported, match="device-mapper is not available"):
            ctl.resize_volume(vg, "lv1", 16 * MiB).wait()
        with pytest.raises(Unsupported, match="device-mapper is not available"):
            ctl.wipe_volume(vg, "lv1").wait()
        with pytest.raises(Unsupported, match="device-mapper is not available"):
            ctl.download_volume(vg, "lv1", str(tmp_path / "out")).wait()
        src = tmp_path / "in"
        src.write_bytes(b"x" * 100)
        with pytest.raises(Unsupported, match="device-mapper is not available"):
            ctl.upload_volume(vg, "lv1", str(src)).wait()
        ran = {a[0] for a in argvs}
        assert not ran & {"lvcreate", "lvresize", "lvchange", "vgchange"}, argvs
        assert not (tmp_path / "out").exists()
        # the metadata is as it was: no half-made lv2, lv1 still 8 MiB
        rows = lvm.report("lvs", "-o", "lv_name,lv_size", vg, kind="lv")
        assert [(r["lv_name"], int(r["lv_size"])) for r in rows] == [("lv1", 8 * MiB)]

        ctl.delete_volume(vg, "lv1")  # an inactive LV is removed without device-mapper
        assert ctl.list_volumes(vg) == []
        ctl.stop_pool(vg)
        ctl.start_pool(vg)
    finally:
        lvm.env.set_activation(False)


def test_cli_pool_info_says_what_does_not_work(cli, lvm, no_dm):
    dev = lvm.disk(64)
    for args in (("pool-define-as", "vgx", "logical", "--source-dev", dev, "--source-name",
                  "vgx", "--target", "/dev/vgx"), ("pool-build", "vgx")):
        assert cli(*args).code == 0
    lvm.env.set_activation(True)
    try:
        assert cli("pool-start", "vgx").code == 0
        text = cli("pool-info", "vgx")
        assert text.code == 0
        lines = text.out.splitlines()  # after virsh's lines, before its closing empty line
        assert lines[-1] == "" and lines[-2].startswith("Limit:") and DM_WORDS in lines[-2]
        assert json.loads(cli("pool-info", "vgx", "--json").out)["volume_limit"] == DM_MISSING
        made = cli("vol-create-as", "vgx", "lv1", "8M")
        assert made.code == 1 and DM_WORDS in made.err and "lvcreate" not in made.err
        assert cli("pool-destroy", "vgx").code == 0
    finally:
        lvm.env.set_activation(False)
