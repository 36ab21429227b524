"""vol-delete --delete-snapshots: an LV with thick snapshots is refused without it (LVM
would take them along unasked) and deleted with them when it is given; elsewhere the flag
is refused. Real LVM metadata on loop devices (the snapshot is written as metadata, so no
device-mapper is needed: tests/drivers/test_logical.py)."""

from __future__ import annotations

import pytest

from tests.drivers.test_logical import (
    build_and_start,
    create,
    snapshot_and_thin_metadata,
    vg_name,
)
from tests.lvmenv import Lvm, can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')

MiB = 1 << 20


@pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")
def test_delete_snapshots_deletes_an_origin_with_its_snapshots(ctl, cli, lvm):
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(256))
    create(ctl, vg, "base", 100 * MiB)
    snapshot_and_thin_metadata(lvm, vg, "base", 25)
    ctl.refresh_pool(vg)
    r = cli("vol-delete", "base", vg)
    assert r.code == 1 and "--delete-snapshots" in r.err, r
    assert {"base", "snap"} <= {v.name for v in ctl.list_volumes(vg)}
    r = cli("vol-delete", "base", vg, "--delete-snapshots")
    assert r.code == 0 and r.out == "Vol base deleted\n", r
    left = {lv["lv_name"] for lv in lvm.report("lvs", "-o", "lv_name", vg, kind="lv")}
    assert "base" not in left and "snap" not in left and "th1" in left


def test_delete_snapshots_is_refused_where_there_are_none(cli, tmp_path):
    assert cli("pool-create-as", "d", "dir", "--target", str(tmp_path / "d"),
               "--build").code == 0
    assert cli("vol-create-as", "d", "v", "1M").code == 0
    r = cli("vol-delete", "v", "d", "--delete-snapshots")
    assert r.code == 1 and "--delete-snapshots" in r.err, r
    assert (tmp_path / "d" / "v").exists()
