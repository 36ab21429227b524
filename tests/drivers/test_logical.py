"""logical pools for real: LVM metadata on loop devices, in a private LVM_SYSTEM_DIR.

The machine has no device-mapper, so the test lvm.conf sets activation = 0 (tests/lvmenv.py):
pvcreate, vgcreate, lvcreate, lvresize, lvremove, vgremove and pvremove change real
metadata; what needs device-mapper (snapshots, thin pools and volumes, LV device nodes) is
checked by the exact lvcreate argv, by metadata written with vgcfgrestore, or through a
fake device-mapper tree of loop devices. Every number the driver reports is compared with
what `vgs`, `lvs` and `pvs` say when the test runs them itself in the same environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import string
import subprocess
import uuid
from pathlib import Path

import pytest
from lxml import etree

from backends import runner, xmlio
from backends.controller import StorageController
from backends.drivers import driver_class, lvm_report
from backends.drivers import logical as lvmdrv
from backends.drivers.logical import LogicalDriver
from backends.errors import (
    AlreadyExists,
    Cancelled,
    InsufficientSpace,
    InUse,
    InvalidName,
    PoolkeeperError,
    StateError,
    UnsafePath,
    Unsupported,
    ValidationError,
)
from backends.model import (
    BackingStore,
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    VolumeDef,
    VolumeInfo,
    VolumeTarget,
)
from backends.progress import JobContext
from tests.lvmenv import Lvm, can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')

pytestmark = pytest.mark.skipif(not can_use_lvm(), reason="needs root, loop devices and lvm2")

MiB = 1 << 20
GiB = 1 << 30
EXT = 4 * MiB  # vgcreate's default extent size
LVM_TOOLS = {"lvm", "pvcreate", "pvremove", "pvs", "vgcreate", "vgremove", "vgchange", "vgs",
             "lvs", "lvcreate", "lvremove", "lvresize"}


# == helpers ===========================================================================
def vg_name() -> str:
    return "pkt" + uuid.uuid4().hex[:8]


def pool_def(vg: str, *devices: str) -> PoolDef:
    return PoolDef(type="logical", name=vg,
                   source=PoolSource(name=vg, devices=[SourceDevice(d) for d in devices],
                                     format="lvm2"),
                   target=PoolTarget(path=f"/dev/{vg}"))


def define(ctl: StorageController, vg: str, *devices: str) -> None:
    ctl.define_pool_def(pool_def(vg, *devices))


def build_and_start(ctl: StorageController, vg: str, *devices: str) -> None:
    define(ctl, vg, *devices)
    ctl.build_pool(vg).wait()
    ctl.start_pool(vg)


def create(ctl: StorageController, vg: str, name: str, capacity: int,
           allocation: int | None = None) -> VolumeInfo:
    return ctl.create_volume_def(vg, VolumeDef(name=name, capacity=capacity,
                                               allocation=allocation)).wait()


def blkid(device: str) -> tuple[int, str]:
    done = subprocess.run(["blkid", "-p", "-o", "export", device], capture_output=True,
                          text=True)
    return done.returncode, done.stdout


def digest(device: str) -> str:
    with open(device, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def lvm_truth(lvm: Lvm, vg: str) -> dict:
    """What LVM itself reports (the test's own calls, same private environment)."""
    row = lvm.report("vgs", "-o", "vg_size,vg_free,vg_extent_size,vg_free_count,pv_count", vg,
                     kind="vg")[0]
    ext = int(row["vg_extent_size"])
    segs = [s for s in lvm.report("pvs", "--segments", "-o", "pv_name,vg_name,pe_start,"
                                  "dev_size,pvseg_start,pvseg_size,lv_name", kind="pvseg")
            if s["vg_name"] == vg]
    used: dict[str, dict[str, list[tuple[int, int]]]] = {}
    layout: dict[str, dict] = {}
    for s in segs:
        start = int(s["pe_start"]) + int(s["pvseg_start"]) * ext
        end = start + int(s["pvseg_size"]) * ext
        dev = layout.setdefault(s["pv_name"], {"size": int(s["dev_size"]), "used": [],
                                                "free": []})
        if s["lv_name"]:
            used.setdefault(s["lv_name"], {}).setdefault(s["pv_name"], []).append((start, end))
            if dev["used"] and dev["used"][-1][1:] == (start, s["lv_name"]):  # adjacent: one
                dev["used"][-1] = (dev["used"][-1][0], end, s["lv_name"])
            else:
                dev["used"].append((start, end, s["lv_name"]))
        else:
            dev["free"].append((start, end))
    lvs = {r["lv_name"]: r for r in lvm.report("lvs", "-o", "lv_name,lv_uuid,lv_size", vg,
                                               kind="lv")}
    return {
        "size": int(row["vg_size"]), "free": int(row["vg_free"]), "extent": ext,
        "free_count": int(row["vg_free_count"]), "pv_count": int(row["pv_count"]),
        "extents": {lv: {pv: merged(spans) for pv, spans in pvs.items()}
                    for lv, pvs in used.items()},
        "layout": layout, "lvs": lvs,
    }


def assert_matches_lvm(ctl: StorageController, lvm: Lvm, vg: str) -> dict:
    truth = lvm_truth(lvm, vg)
    info = ctl.pool_info(vg)
    assert info.state == "running"
    assert (info.capacity, info.allocation, info.available) == (
        truth["size"], truth["size"] - truth["free"], truth["free"])
    assert info.detail == (f"VG {vg}: {truth['pv_count']} PVs, extent size 4 MiB, "
                           f"{truth['free_count']} free extents")
    vols = {v.name: v for v in ctl.list_volumes(vg)}
    assert set(vols) == set(truth["lvs"])
    for name, vol in vols.items():
        lv = truth["lvs"][name]
        assert (vol.key, vol.path, vol.type) == (lv["lv_uuid"], f"/dev/{vg}/{name}", "block")
        assert vol.capacity == vol.allocation == int(lv["lv_size"])
        assert {dev: [(e.start, e.end) for e in exts] for dev, exts in vol.extents} == \
            truth["extents"][name]
        assert vol.error is None
    layout = {d.path: d for d in ctl.pool_layout(vg)}
    assert set(layout) == set(truth["layout"])
    for path, dev in layout.items():
        want = truth["layout"][path]
        assert dev.size == want["size"]
        assert dev.used == sorted(want["used"])
        assert [(f.start, f.end) for f in dev.free] == sorted(want["free"])
    assert sum(f.end - f.start for d in layout.values() for f in d.free) == truth["free"]
    return truth


def record_calls(monkeypatch: pytest.MonkeyPatch, fake: dict | None = None) -> list[dict]:
    """Record every runner.run call (argv and env). Calls whose argv starts with a key of
    `fake` (a tuple prefix) are not run: they "succeed" with that stdout."""
    calls: list[dict] = []
    real = runner.run

    def run(argv, **kwargs):  # type: ignore[no-untyped-def]
        args = [str(a) for a in argv]
        calls.append({"argv": args, "env": dict(kwargs.get("env") or {})})
        for prefix, stdout in (fake or {}).items():
            if tuple(args[:len(prefix)]) == prefix:
                return runner.Completed(args, args, 0, stdout, "", 0.0)
        return real(argv, **kwargs)

    monkeypatch.setattr(runner, "run", run)
    return calls


def lvm_uuid() -> str:
    chars = string.ascii_letters + string.digits
    return "-".join("".join(random.choices(chars, k=n)) for n in (6, 4, 4, 4, 4, 4, 6))


def linear(name: str, pv: str, pe: int, count: int, visible: bool = True) -> str:
    status = '"READ", "WRITE", "VISIBLE"' if visible else '"READ", "WRITE"'
    return f"""
{name} {{
    id = "{lvm_uuid()}"
    status = [{status}]
    flags = []
    segment_count = 1
    segment1 {{
        start_extent = 0
        extent_count = {count}
        type = "striped"
        stripe_count = 1
        stripes = [ "{pv}", {pe} ]
    }}
}}
"""


def snapshot_and_thin_metadata(lvm: Lvm, vg: str, origin: str, origin_extents: int) -> dict:
    """Add to `vg`, as real LVM metadata: a thick snapshot 'snap' of `origin` (5 extents of
    copy-on-write space), a thin pool 'tp' (10 data extents, 1 metadata extent) and a thin LV
    'th1' of 50 extents in it. Returns where they were put."""
    dev, first, count = lvm.free_extents(vg)[0]
    assert count >= 16

    def make(keys: dict[str, str]) -> str:
        pv = keys[dev]
        return (
            linear("snap", pv, first, 5)
            + f"""
snapshot0 {{
    id = "{lvm_uuid()}"
    status = ["READ", "WRITE", "VISIBLE"]
    flags = []
    segment_count = 1
    segment1 {{
        start_extent = 0
        extent_count = {origin_extents}
        type = "snapshot"
        chunk_size = 8
        origin = "{origin}"
        cow_store = "snap"
    }}
}}
tp {{
    id = "{lvm_uuid()}"
    status = ["READ", "WRITE", "VISIBLE"]
    flags = []
    segment_count = 1
    segment1 {{
        start_extent = 0
        extent_count = 10
        type = "thin-pool"
        metadata = "tp_tmeta"
        pool = "tp_tdata"
        transaction_id = 1
        chunk_size = 128
        discards = "passdown"
        zero_new_blocks = 1
    }}
}}
th1 {{
    id = "{lvm_uuid()}"
    status = ["READ", "WRITE", "VISIBLE"]
    flags = []
    segment_count = 1
    segment1 {{
        start_extent = 0
        extent_count = 50
        type = "thin"
        thin_pool = "tp"
        transaction_id = 0
        device_id = 1
    }}
}}
"""
            + linear("tp_tmeta", pv, first + 5, 1, visible=False)
            + linear("tp_tdata", pv, first + 6, 10, visible=False)
        )

    lvm.add_lv_metadata(vg, make)
    return {"device": dev, "first": first}


def raw_vg(lvm: Lvm, vg: str, *devices: str) -> LogicalDriver:
    """A VG made with LVM directly, and a driver for it (no controller)."""
    lvm.run("pvcreate", *devices)
    lvm.run("vgcreate", vg, *devices)
    pdef = pool_def(vg, *devices)
    xmlio.validate_pool(pdef)
    return LogicalDriver(pdef)


# == configuration =====================================================================
def test_every_lvm_call_goes_to_the_private_configuration(lvm, monkeypatch):
    conf = lvm.run("lvmconfig", "--validate")
    assert "valid" in conf.stdout
    assert lvm.run("lvmconfig", "global/activation").stdout.strip() == "activation=0"
    backup = lvm.run("lvmconfig", "backup/backup_dir").stdout.strip()
    assert backup == f'backup_dir="{lvm.base}/backup"'
    assert lvmdrv.lvm_env()["LVM_SYSTEM_DIR"] == str(lvm.system_dir)
    monkeypatch.setitem(lvmdrv.LVM_ENV, "LVM_SYSTEM_DIR", "/elsewhere")  # LVM_ENV wins
    assert lvmdrv.lvm_env()["LVM_SYSTEM_DIR"] == "/elsewhere"


def test_features_and_capabilities(ctl):
    cls = driver_class("logical")
    assert cls is LogicalDriver
    assert (cls.can_build, cls.can_create_volumes, cls.can_delete_volumes,
            cls.can_resize_volumes) == (True, True, True, True)
    assert cls.creatable_formats == () and cls.volume_formats == ()
    caps = etree.fromstring(ctl.capabilities().encode())
    pool = caps.find("pool[@type='logical']")
    assert pool.get("supported") == "yes"
    assert [v.text for v in pool.findall("poolOptions/enum/value")] == ["unknown", "lvm2"]
    assert pool.find("volOptions") is None


# == the whole life of a pool ==========================================================
def test_volumes_until_full_match_vgs_and_pvs(ctl, lvm, monkeypatch):
    vg = vg_name()
    d1, d2 = lvm.disk(512), lvm.disk(512)
    calls = record_calls(monkeypatch)
    build_and_start(ctl, vg, d1, d2)
    truth = assert_matches_lvm(ctl, lvm, vg)
    assert truth["extent"] == EXT and truth["size"] == 254 * EXT  # 2 x 127 extents

    # several sizes; each rounded up to whole extents (the argv carries the rounded bytes)
    wanted = {"a": 100 * MiB, "tiny": 1, "odd": 250 * MiB, "span": 300 * MiB}
    for name, size in wanted.items():
        info = create(ctl, vg, name, size)
        assert info.capacity == -(-size // EXT) * EXT
        assert_matches_lvm(ctl, lvm, vg)
    creates = [c["argv"] for c in calls if c["argv"][0] == "lvcreate"]
    assert creates[1] == ["lvcreate", "--yes", "--name", "tiny", "-L", f"{EXT}b", "--", vg]
    assert creates[2][5] == f"{252 * MiB}b"
    # fill the VG exactly, then one byte more is refused
    free = ctl.pool_info(vg).available
    create(ctl, vg, "rest", free)
    truth = assert_matches_lvm(ctl, lvm, vg)
    assert truth["free"] == 0 and any(len(p) == 2 for p in truth["extents"].values())
    with pytest.raises(InsufficientSpace):
        create(ctl, vg, "more", 1)
    driver = LogicalDriver(ctl.pool_def(vg))
    with pytest.raises(InsufficientSpace, match="insufficient free space"):  # LVM's own refusal
        driver.create_volume(VolumeDef(name="more", capacity=EXT), JobContext())

    # resize: grow, shrink only with shrink=True, then delete everything
    ctl.delete_volume(vg, "rest")
    grown = ctl.resize_volume(vg, "a", 130 * MiB).wait()
    assert grown.capacity == 132 * MiB
    with pytest.raises(ValidationError, match="--shrink"):
        ctl.resize_volume(vg, "a", 50 * MiB)
    with pytest.raises(ValidationError, match="--shrink"):  # the driver refuses too
        driver.resize_volume(ctl.volume_info(vg, "a"), 50 * MiB, allocate=False, shrink=False,
                             ctx=JobContext())
    assert ctl.resize_volume(vg, "a", 50 * MiB, shrink=True).wait().capacity == 52 * MiB
    resizes = [c["argv"] for c in calls if c["argv"][0] == "lvresize"]
    assert resizes == [["lvresize", "-L", f"{132 * MiB}b", "--", f"{vg}/a"],
                       ["lvresize", "--yes", "-f", "-L", f"{52 * MiB}b", "--", f"{vg}/a"]]
    assert_matches_lvm(ctl, lvm, vg)
    for name in ("a", "tiny", "odd", "span"):
        ctl.delete_volume(vg, name)
    truth = assert_matches_lvm(ctl, lvm, vg)
    assert truth["free"] == truth["size"] and not truth["lvs"]
    ctl.stop_pool(vg)
    ctl.delete_pool(vg)

    lvm_calls = [c for c in calls if c["argv"][0] in LVM_TOOLS]
    assert {c["argv"][0] for c in lvm_calls} >= {"pvcreate", "vgcreate", "vgchange", "vgs",
                                                 "lvs", "pvs", "lvcreate", "lvresize",
                                                 "lvremove", "vgremove", "pvremove"}
    assert all(c["env"].get("LVM_SYSTEM_DIR") == str(lvm.system_dir) for c in lvm_calls)
    assert ["vgchange", "-aly", "--", vg] in [c["argv"] for c in lvm_calls]
    assert ["vgchange", "-aln", "--", vg] in [c["argv"] for c in lvm_calls]
    assert ["vgremove", "-f", "--", vg] in [c["argv"] for c in lvm_calls]
    assert ["lvremove", "-f", "--", f"{vg}/span"] in [c["argv"] for c in lvm_calls]


def test_refresh_is_one_vgs_and_one_lvs(lvm, monkeypatch):
    vg = vg_name()
    driver = raw_vg(lvm, vg, lvm.disk(128))
    for i in range(5):
        lvm.run("lvcreate", "-n", f"lv{i}", "-L", "4m", vg)
    calls = record_calls(monkeypatch)
    sizes, vols = driver.refresh()
    assert len(vols) == 5
    assert [c["argv"][0] for c in calls] == ["vgs", "lvs"]
    assert calls[1]["argv"][:7] == ["lvs", "-a", "--reportformat", "json", "--units", "b",
                                    "--nosuffix"]
    # what a status line needs (check, sizes, describe) is one vgs
    calls.clear()
    assert driver.check() and driver.sizes() == sizes
    assert driver.describe() == f"VG {vg}: 1 PV, extent size 4 MiB, 26 free extents"
    assert [c["argv"][0] for c in calls] == ["vgs"]


# == snapshots and thin volumes ========================================================
def test_snapshot_and_thin_lvcreate_argv(lvm, monkeypatch):
    vg = vg_name()
    driver = raw_vg(lvm, vg, lvm.disk(256))
    lvm.run("lvcreate", "-n", "base", "-L", "100m", vg)
    ctx = JobContext()
    # without a thin pool, a sparse volume is refused (never a fully allocated surprise)
    with pytest.raises(Unsupported, match="no thin pool"):
        driver.create_volume(VolumeDef(name="sparse", capacity=MiB, allocation=0), ctx)
    snapshot_and_thin_metadata(lvm, vg, "base", 25)

    calls = record_calls(monkeypatch, fake={("lvcreate",): ""})
    driver.create_volume(VolumeDef(name="snap2", capacity=100 * MiB,
                                   backing=BackingStore(path=f"/dev/{vg}/base")), ctx)
    driver.create_volume(VolumeDef(name="snap3", capacity=100 * MiB, allocation=10 * MiB,
                                   backing=BackingStore(path=f"/dev/{vg}/base")), ctx)
    driver.create_volume(VolumeDef(name="thin2", capacity=GiB, allocation=0), ctx)
    driver.create_volume(VolumeDef(name="thin3", capacity=GiB + 1, allocation=GiB), ctx)
    driver.create_volume(VolumeDef(name="thick", capacity=8 * MiB), ctx)
    driver.create_volume(VolumeDef(name="tsnap", capacity=200 * MiB,
                                   backing=BackingStore(path=f"/dev/{vg}/th1")), ctx)
    made = [c["argv"] for c in calls if c["argv"][0] == "lvcreate"]
    assert made == [
        ["lvcreate", "--yes", "-s", "-L", f"{100 * MiB}b", "-n", "snap2", "--", f"{vg}/base"],
        ["lvcreate", "--yes", "-s", "-L", f"{12 * MiB}b", "-n", "snap3", "--", f"{vg}/base"],
        ["lvcreate", "--yes", "--name", "thin2", "--thin", "-V", f"{GiB}b", "--", f"{vg}/tp"],
        ["lvcreate", "--yes", "--name", "thin3", "--thin", "-V", f"{GiB + EXT}b", "--",
         f"{vg}/tp"],
        ["lvcreate", "--yes", "--name", "thick", "-L", f"{8 * MiB}b", "--", vg],
        ["lvcreate", "--yes", "-s", "-n", "tsnap", "--", f"{vg}/th1"],
    ]
    assert all(c["env"]["LVM_SYSTEM_DIR"] == str(lvm.system_dir) for c in calls
               if c["argv"][0] in LVM_TOOLS)
    for bad, error in ((f"/dev/{vg}/nosuch", ValidationError), ("/etc/passwd", ValidationError),
                       (f"/dev/{vg}/../{vg}/base/x", ValidationError),
                       (f"/dev/{vg}/snap", Unsupported)):
        with pytest.raises(error):
            driver.create_volume(VolumeDef(name="bad", capacity=MiB,
                                           backing=BackingStore(path=bad)), ctx)
    # and why only the argv: LVM itself refuses here
    done = lvm.run("lvcreate", "--yes", "-s", "-L", "8m", "-n", "s9", f"{vg}/base", check=False)
    assert done.returncode != 0 and "device-mapper" in done.stderr


def test_snapshot_thin_and_pool_lvs_from_real_metadata(ctl, lvm):
    vg = vg_name()
    d1 = lvm.disk(256)
    build_and_start(ctl, vg, d1)
    create(ctl, vg, "base", 100 * MiB)
    where = snapshot_and_thin_metadata(lvm, vg, "base", 25)
    vols = {v.name: v for v in ctl.list_volumes(vg)}
    assert set(vols) == {"base", "snap", "th1"}  # the thin pool and its parts are no volumes
    snap, base, th1 = vols["snap"], vols["base"], vols["th1"]
    assert snap.backing == BackingStore(path=f"/dev/{vg}/base", format=None)
    assert (snap.capacity, snap.allocation) == (100 * MiB, 5 * EXT)  # origin size, COW space
    assert snap.attributes.startswith("s")
    pe0 = int(lvm.report("pvs", "-o", "pe_start", d1, kind="pv")[0]["pe_start"])
    start = pe0 + where["first"] * EXT
    assert [(d, [(e.start, e.end) for e in x]) for d, x in snap.extents] == \
        [(d1, [(start, start + 5 * EXT)])]
    assert base.backing is None and base.attributes.startswith("o")
    assert th1.capacity == 50 * EXT and th1.allocation == 0  # inactive: no data percent
    assert th1.attributes.startswith("V") and th1.attributes.endswith("thin pool=tp")
    assert th1.extents == []
    xml = etree.fromstring(ctl.volume_xml(vg, "snap").encode())
    assert xml.findtext("backingStore/path") == f"/dev/{vg}/base"
    assert xml.findtext("key") == snap.key
    # the thin pool's data and metadata count as used by 'tp' in the layout
    used = {name for dev in ctl.pool_layout(vg) for _s, _e, name in dev.used}
    assert used == {"base", "snap", "tp"}
    tp = sorted((s, e) for dev in ctl.pool_layout(vg) for s, e, n in dev.used if n == "tp")
    assert tp == [(start + 5 * EXT, start + 16 * EXT)]
    # removing the origin would take the snapshot with it: refused
    driver = LogicalDriver(ctl.pool_def(vg))
    with pytest.raises(InUse, match="origin of snapshot"):
        driver.delete_volume(base)
    with pytest.raises(InUse):
        ctl.delete_volume(vg, "base")
    with pytest.raises(Unsupported, match="snapshot"):
        driver.wipe_volume(snap, "zero", JobContext())
    with pytest.raises(Unsupported, match="snapshot"):
        driver.resize_volume(snap, 200 * MiB, allocate=False, shrink=False, ctx=JobContext())
    with pytest.raises(Unsupported, match="thin"):
        driver.resize_volume(th1, 400 * MiB, allocate=True, shrink=False, ctx=JobContext())
    ctl.delete_volume(vg, "snap")
    assert "snap" not in {v.name for v in ctl.list_volumes(vg)}


def test_thin_allocation_comes_from_the_data_percent():
    """Recorded `lvs` output of an active thin LV (25% written), in both JSON dialects."""
    row = {"lv_name": "t", "lv_uuid": "U", "lv_path": "/dev/vg/t", "lv_attr": "Vwi-aotz--",
           "lv_size": "1073741824", "origin": "", "origin_size": "", "pool_lv": "tp",
           "segtype": "thin", "data_percent": "25.00", "lv_parent": "", "lv_role": "public",
           "seg_start_pe": "0", "seg_size_pe": "256", "seg_pe_ranges": "", "devices": ""}
    std = dict(row, lv_size=1073741824, data_percent=25.0, seg_start_pe=0, seg_size_pe=256)
    vg = lvm_report.VGState("vg", "V", "wz--n-", 0, 0, EXT, 0, 0, 1, 1, 0)
    for variant in (row, std):
        text = json.dumps({"report": [{"lv": [variant]}]})
        (vol,) = lvm_report.volumes_of(vg, lvm_report.parse_lvs(text))
        assert (vol.capacity, vol.allocation) == (GiB, GiB // 4)
        assert vol.attributes == "Vwi-aotz-- thin pool=tp"


# == build safety ======================================================================
def test_build_refused_over_ext4_leaves_every_byte(ctl, lvm):
    vg = vg_name()
    d1, d2 = lvm.disk(64), lvm.disk(64)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "keep", d1], check=True, capture_output=True)
    before = (digest(d1), digest(d2))
    define(ctl, vg, d2, d1)
    warning = ctl.build_warning(vg)
    assert f"{d1}: an ext4 filesystem (label 'keep')" in warning
    for overwrite in (None, False):
        with pytest.raises(StateError, match=f"{d1} holds an ext4 filesystem"):
            ctl.build_pool(vg, overwrite).wait()
    assert (digest(d1), digest(d2)) == before  # not even d2, listed first, was touched
    assert blkid(d2)[0] == 2
    assert not lvm.report("pvs", "-o", "pv_name", kind="pv")
    ctl.build_pool(vg, overwrite=True).wait()
    assert "LVM2_member" in blkid(d1)[1] and "ext4" not in blkid(d1)[1]
    assert {(r["pv_name"], r["vg_name"]) for r in lvm.report("pvs", "-o", "pv_name,vg_name",
                                                             kind="pv")} == {(d1, vg), (d2, vg)}


def test_build_refused_over_a_pv_of_another_vg(ctl, lvm):
    vg, other = vg_name(), vg_name()
    d1, d2 = lvm.disk(64), lvm.disk(64)
    lvm.run("pvcreate", d1)
    lvm.run("vgcreate", other, d1)
    define(ctl, vg, d1, d2)
    with pytest.raises(StateError, match=f"volume group '{other}'"):
        ctl.build_pool(vg).wait()
    assert [r["vg_name"] for r in lvm.report("vgs", "-o", "vg_name", kind="vg")] == [other]
    assert blkid(d2)[0] == 2
    # a VG of the same name that already exists is never rebuilt, not even with overwrite
    same = vg_name()
    lvm.run("pvcreate", d2)
    lvm.run("vgcreate", same, d2)
    define(ctl, same, lvm.disk(64))
    with pytest.raises(StateError, match="already exists"):
        ctl.build_pool(same, overwrite=True).wait()


def test_build_refused_on_a_device_in_use_even_with_overwrite(ctl, lvm):
    vg = vg_name()
    d1, d2 = lvm.disk(64), lvm.disk(64)
    with open(d1, "rb") as held:
        holder = subprocess.Popen(["sleep", "60"], stdin=held)
    try:
        define(ctl, vg, d1, d2)
        with pytest.raises(InUse, match=rf"{d1} is in use \(open by sleep \(pid {holder.pid}"):
            ctl.build_pool(vg, overwrite=True).wait()
    finally:
        holder.kill()
        holder.wait()
    assert blkid(d1)[0] == 2 and blkid(d2)[0] == 2


def test_a_failed_build_removes_the_pvs_it_made(ctl, lvm, monkeypatch):
    vg = vg_name()
    d1, d2 = lvm.disk(64), lvm.disk(64)
    define(ctl, vg, d1, d2)
    real = runner.run

    def failing_vgcreate(argv, **kwargs):  # type: ignore[no-untyped-def]
        if argv[0] == "vgcreate":
            return runner.Completed(list(argv), list(argv), 5, "", "  simulated failure\n", 0)
        return real(argv, **kwargs)

    monkeypatch.setattr(runner, "run", failing_vgcreate)
    with pytest.raises(PoolkeeperError, match="simulated failure"):
        ctl.build_pool(vg).wait()
    monkeypatch.setattr(runner, "run", real)
    assert blkid(d1)[0] == 2 and blkid(d2)[0] == 2
    assert not lvm.report("pvs", "-o", "pv_name", kind="pv")
    assert LogicalDriver(ctl.pool_def(vg)).existing_content() == []


def test_build_needs_block_devices(ctl, lvm, tmp_path):
    vg = vg_name()
    image = tmp_path / "plain.img"
    image.write_bytes(b"\0" * 4096)
    define(ctl, vg, str(image))
    with pytest.raises(StateError, match="not a block device"):
        ctl.build_pool(vg).wait()
    define(ctl, vg, "/dev/nonexistent-pk")
    with pytest.raises(StateError, match="cannot be used"):
        ctl.build_pool(vg).wait()
    ctl.define_pool_def(PoolDef(type="logical", name=vg, source=PoolSource(name=vg)))
    with pytest.raises(ValidationError, match="at least one device"):
        ctl.build_pool(vg).wait()


# == a missing PV ======================================================================
def test_a_missing_pv_is_a_clear_error_naming_it(ctl, lvm):
    vg = vg_name()
    d1, d2 = lvm.disk(128), lvm.disk(128)
    build_and_start(ctl, vg, d1, d2)
    create(ctl, vg, "small", 40 * MiB)
    create(ctl, vg, "span", 180 * MiB)  # more than one PV holds
    pv_uuid = lvm.report("pvs", "-o", "pv_uuid", d2, kind="pv")[0]["pv_uuid"]
    image = lvm.detach(d2)

    status = ctl.pool_info(vg)
    assert status.state == "inaccessible"
    driver = LogicalDriver(ctl.pool_def(vg))
    with pytest.raises(StateError) as err:
        driver.check()
    message = str(err.value)
    assert f"physical volume {d2} (PV UUID {pv_uuid}) is missing" in message
    assert f"volume group '{vg}'" in message and "vgreduce --removemissing" in message
    assert "1 PV missing" in driver.describe()
    _sizes, vols = driver.refresh()  # still listed, the damaged LV says why
    by_name = {v.name: v for v in vols}
    assert by_name["small"].error is None
    assert "missing physical volume" in by_name["span"].error
    assert [d for d, _ in by_name["span"].extents] == [d1]
    with pytest.raises(StateError, match="missing"):
        driver.create_volume(VolumeDef(name="x", capacity=MiB), JobContext())
    ctl.stop_pool(vg)
    with pytest.raises(StateError, match=f"{d2} \\(PV UUID {pv_uuid}\\) is missing"):
        ctl.start_pool(vg)
    with pytest.raises(StateError, match="incomplete"):
        ctl.delete_pool(vg)
    # the disk comes back (perhaps under another name): the pool works again
    lvm.reattach(image)
    ctl.start_pool(vg)
    assert ctl.pool_info(vg).state == "running"
    assert all(v.error is None for v in ctl.list_volumes(vg))


# == import, delete, discovery =========================================================
def test_import_an_existing_vg_via_find_sources(ctl, lvm):
    vg = vg_name()
    d1, d2 = lvm.disk(64), lvm.disk(64)
    lvm.run("pvcreate", d1, d2)
    lvm.run("vgcreate", vg, d1, d2)
    lvm.run("lvcreate", "-n", "data", "-L", "64m", vg)
    lvm.run("pvcreate", lvm.disk(64))  # an orphan PV is no source
    sources = etree.fromstring(ctl.find_pool_sources("logical").encode())
    (src,) = sources.findall("source")
    assert src.findtext("name") == vg
    assert [d.get("path") for d in src.findall("device")] == [d1, d2]
    assert src.find("format").get("type") == "lvm2"
    by_dev = etree.fromstring(ctl.find_pool_sources("logical", device=d2).encode())
    assert [s.findtext("name") for s in by_dev.findall("source")] == [vg]
    assert etree.fromstring(ctl.find_pool_sources("logical", device="/dev/null").encode()
                            ).findall("source") == []
    with pytest.raises(ValidationError, match="give no host"):
        ctl.find_pool_sources("logical", host="example.org")

    xml = "<pool type='logical'>" + etree.tostring(src, encoding="unicode") + "</pool>"
    status = ctl.define_pool(xml)  # the name comes from <source><name>
    assert (status.name, status.target) == (vg, f"/dev/{vg}")
    ctl.start_pool(vg)
    (vol,) = ctl.list_volumes(vg)
    assert (vol.name, vol.capacity) == ("data", 64 * MiB)
    assert_matches_lvm(ctl, lvm, vg)


def test_delete_removes_the_vg_and_every_pv_label(ctl, lvm):
    vg = vg_name()
    d1, d2 = lvm.disk(64), lvm.disk(64)
    build_and_start(ctl, vg, d1, d2)
    create(ctl, vg, "lv", 80 * MiB)
    with pytest.raises(StateError, match="active"):
        ctl.delete_pool(vg)
    ctl.stop_pool(vg)
    assert ctl.stored_volumes(vg) == ["lv"]
    with pytest.raises(StateError, match=r"still holds 1 volume \(lv\).*pool-delete "
                                         f"{vg} --force"):
        ctl.delete_pool(vg)
    assert [r["lv_name"] for r in lvm.report("lvs", "-o", "lv_name", vg, kind="lv")] == ["lv"]
    ctl.delete_pool(vg, force=True)
    assert not lvm.report("vgs", "-o", "vg_name", kind="vg")
    assert not lvm.report("pvs", "-o", "pv_name", kind="pv")
    for dev in (d1, d2):
        assert blkid(dev)[0] == 2
        wipefs = subprocess.run(["wipefs", "--no-act", "--json", dev], capture_output=True,
                                text=True)
        assert not wipefs.stdout.strip() or not json.loads(wipefs.stdout).get("signatures")
    with pytest.raises(StateError, match="does not exist"):
        ctl.start_pool(vg)
    ctl.delete_pool(vg)  # nothing left to delete: no error


# == names and definitions =============================================================
def test_names_and_definitions_are_checked_before_lvm_runs(ctl):
    for bad in ("-x", "snapshot1", "pvmove0", "a_tmeta", "x_rimage_0", "a b", "é", "a:b"):
        with pytest.raises(InvalidName):
            lvmdrv.check_lv_name(bad)
    assert lvmdrv.check_lv_name("lv-1_a.b+c") == "lv-1_a.b+c"
    for pdef, match in (
        (PoolDef(type="logical", name="v", source=PoolSource(name="-v")), "not valid"),
        (PoolDef(type="logical", name="v", source=PoolSource(name="v"),
                 target=PoolTarget(path="/dev/other")), "always /dev/v"),
        (PoolDef(type="logical", name="v", source=PoolSource(
            name="v", devices=[SourceDevice("/dev/a"), SourceDevice("/dev/a")])), "twice"),
        (PoolDef(type="logical", name="v", source=PoolSource(
            name="v", devices=[SourceDevice("/dev/a\nb")])), "control"),
    ):
        with pytest.raises(ValidationError, match=match):
            LogicalDriver.validate(pdef)
    with pytest.raises(ValidationError):
        ctl.define_pool_def(PoolDef(type="logical", name="v v"))


# == bytes through the LV device =======================================================
def test_wipe_without_the_lv_device_is_a_clear_error(ctl, lvm, tmp_path):
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(64))
    create(ctl, vg, "lv1", 8 * MiB)
    assert not os.path.lexists(f"/dev/{vg}")
    message = f"LV device /dev/{vg}/lv1 does not exist (not active?)"
    with pytest.raises(StateError, match=re.escape(message)):
        ctl.wipe_volume(vg, "lv1").wait()
    with pytest.raises(StateError, match="does not exist"):
        ctl.download_volume(vg, "lv1", str(tmp_path / "out")).wait()
    src = tmp_path / "in"
    src.write_bytes(b"x" * 100)
    with pytest.raises(StateError, match="does not exist"):
        ctl.upload_volume(vg, "lv1", str(src)).wait()
    assert not (tmp_path / "out").exists()


def test_upload_download_clone_wipe_through_the_lv_device(ctl, lvm, monkeypatch, tmp_path):
    fake = lvm.fake_dm(monkeypatch)
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(128))
    create(ctl, vg, "src", 8 * MiB)
    data = os.urandom(8 * MiB)
    (tmp_path / "data").write_bytes(data)
    assert ctl.upload_volume(vg, "src", str(tmp_path / "data")).wait() == 8 * MiB
    assert fake.node(vg, "src").read_bytes() == data
    assert ctl.download_volume(vg, "src", str(tmp_path / "back")).wait() == 8 * MiB
    assert (tmp_path / "back").read_bytes() == data

    job = ctl.clone_volume(vg, "src", "copy")
    assert job.wait() == "copy" and job.total == 8 * MiB
    assert fake.node(vg, "copy").read_bytes() == data
    bigger = "<volume><name>big</name><capacity unit='MiB'>12</capacity></volume>"
    ctl.clone_volume(vg, "src", "big", xml=bigger).wait()
    content = fake.node(vg, "big").read_bytes()
    assert content[:8 * MiB] == data and content[8 * MiB:] == bytes(4 * MiB)  # stale data gone
    assert ctl.volume_info(vg, "big").capacity == 12 * MiB

    ctl.wipe_volume(vg, "copy", "zero").wait()
    assert fake.node(vg, "copy").read_bytes() == bytes(8 * MiB)
    assert fake.node(vg, "src").read_bytes() == data

    # a cancelled clone removes the LV it made
    class CancelOnProgress(JobContext):
        def update(self, done: int, total: int | None = None) -> None:
            self.cancel()
            super().update(done, total)

    driver = LogicalDriver(ctl.pool_def(vg))
    src = ctl.volume_info(vg, "src")
    with pytest.raises(Cancelled):
        driver.clone_volume(src, driver, VolumeDef(name="gone"), CancelOnProgress())
    assert "gone" not in {r["lv_name"] for r in lvm.report("lvs", "-o", "lv_name", vg,
                                                              kind="lv")}
    assert (vg, "gone") not in fake.active

    # the node must be the LV that was listed: a wrong dm uuid or a link out of /dev refused
    st = os.stat(fake.node(vg, "src"))
    uuid_file = fake.sys / f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" / "dm" / "uuid"
    uuid_file.write_text("LVM-" + "x" * 64)
    with pytest.raises(UnsafePath, match="is not the device of logical volume"):
        driver.open_volume_read(src)
    os.symlink("/etc/passwd", fake.dev / vg / "evil")
    with pytest.raises(UnsafePath, match="not to a device node"):
        driver.open_volume_read(VolumeInfo(name="evil", key=src.key, path=""))
    with pytest.raises(PoolkeeperError, match="replaced"):
        driver.delete_volume(VolumeInfo(name="src", key="someone-else", path=""))
    for name in ("src", "copy", "big"):
        ctl.delete_volume(vg, name)
    assert not fake.active


def test_clone_a_raw_file_of_a_dir_pool_into_an_lv(ctl, pool, lvm, monkeypatch, tmp_path):
    fake = lvm.fake_dm(monkeypatch)
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(64))
    create(ctl, "p", "disk.raw", 6 * MiB)
    data = os.urandom(6 * MiB)
    (tmp_path / "data").write_bytes(data)
    ctl.upload_volume("p", "disk.raw", str(tmp_path / "data")).wait()
    assert ctl.clone_volume("p", "disk.raw", "fromfile", target_pool=vg).wait() == "copy"
    content = fake.node(vg, "fromfile").read_bytes()
    assert content == data + bytes(2 * MiB)  # 6 MiB rounded up to two 4 MiB extents
    ctl.create_volume_def("p", VolumeDef(name="img.qcow2", capacity=MiB,
                                         target=VolumeTarget(format="qcow2"))).wait()
    with pytest.raises(Unsupported, match="only raw volumes"):
        ctl.clone_volume("p", "img.qcow2", "q", target_pool=vg).wait()
    assert {v.name for v in ctl.list_volumes(vg)} == {"fromfile"}


def test_clone_an_lv_into_a_dir_pool_as_raw_and_qcow2(ctl, pool, lvm, monkeypatch, tmp_path):
    fake = lvm.fake_dm(monkeypatch)
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(64))
    create(ctl, vg, "lv", 8 * MiB)
    data = os.urandom(2 * MiB) + bytes(4 * MiB) + os.urandom(2 * MiB)
    fake.node(vg, "lv").write_bytes(data)
    assert ctl.clone_volume(vg, "lv", "lv.img", target_pool="p").wait() == "copy"
    assert (pool / "lv.img").read_bytes() == data
    assert os.stat(pool / "lv.img").st_blocks * 512 <= 4 * MiB + 64 * 1024  # zeros stay holes
    qcow2 = "<volume><name>x</name><target><format type='qcow2'/></target></volume>"
    assert ctl.clone_volume(vg, "lv", "lv.qcow2", target_pool="p",
                            xml=qcow2).wait() == "qemu-img convert"
    subprocess.run(["qemu-img", "compare", "-q", "-f", "raw", "-F", "qcow2",
                    str(pool / "lv.img"), str(pool / "lv.qcow2")], check=True)
    infos = {v.name: v for v in ctl.list_volumes("p")}
    assert (infos["lv.img"].format, infos["lv.qcow2"].format) == ("raw", "qcow2")
    assert infos["lv.qcow2"].capacity == 8 * MiB
    assert not [f for f in os.listdir(pool) if f.startswith(".")]  # no partial left


def test_a_clone_killed_mid_copy_leaves_no_volume_and_is_swept(ctl, state_root, lvm,
                                                                monkeypatch):
    """kill -9 while the LV is being filled: the LV carries PARTIAL_TAG, is not listed, and the
    next process removes it; while a live clone holds its volume lock it is left alone."""
    import signal

    from backends import fileops

    fake = lvm.fake_dm(monkeypatch)
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(64))
    create(ctl, vg, "src", 8 * MiB)
    fake.node(vg, "src").write_bytes(os.urandom(8 * MiB))

    def die_mid_copy(src_fd: int, dst_fd: int, length: int, **kw) -> str:
        os.pwrite(dst_fd, b"half" * 1024, 0)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    pid = os.fork()
    if pid == 0:  # the child: a controller of its own, killed inside the copy
        try:
            monkeypatch.setattr(fileops, "clone_fd", die_mid_copy)
            StorageController(state_root, create_default=False).clone_volume(
                vg, "src", "copy").wait(60)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    fake.adopt(vg, "copy")  # the child's fake device node and loop device, for cleanup

    lvs = {r["lv_name"]: r["lv_tags"] for r in lvm.report("lvs", "-o", "lv_name,lv_tags", vg,
                                                          kind="lv")}
    assert lvs.get("copy") == lvm_report.PARTIAL_TAG  # made, tagged, never finished
    assert {v.name for v in ctl.list_volumes(vg)} == {"src"}  # not a volume
    with pytest.raises(PoolkeeperError):
        ctl.volume_info(vg, "copy")

    # a live clone's LV (its lock held) is not swept
    with ctl.locks.volume(vg, "copy", exclusive=True, what="being created"):
        StorageController(state_root, create_default=False).list_volumes(vg)
        assert "copy" in {r["lv_name"] for r in lvm.report("lvs", "-o", "lv_name", vg,
                                                           kind="lv")}
    # a new process sweeps it on first use, and the name is free again
    fresh = StorageController(state_root, create_default=False)
    try:
        assert {v.name for v in fresh.list_volumes(vg)} == {"src"}
        assert "copy" not in {r["lv_name"] for r in lvm.report("lvs", "-o", "lv_name", vg,
                                                               kind="lv")}
        assert fresh.clone_volume(vg, "src", "copy").wait(60) == "copy"
        lv_tags = {r["lv_name"]: r["lv_tags"] for r in lvm.report(
            "lvs", "-o", "lv_name,lv_tags", vg, kind="lv")}
        assert lv_tags["copy"] == ""  # finished: the tag is gone
        assert fake.node(vg, "copy").read_bytes() == fake.node(vg, "src").read_bytes()
    finally:
        fresh.close()


def test_a_stale_partial_lv_under_the_name_gives_way_to_a_new_clone(ctl, lvm, monkeypatch):
    """A half-made LV whose clean-up failed (still tagged) does not block the name: the next
    clone, holding the name's lock, removes it first; a plain create names it clearly."""
    fake = lvm.fake_dm(monkeypatch)
    vg = vg_name()
    build_and_start(ctl, vg, lvm.disk(64))
    create(ctl, vg, "src", 4 * MiB)
    fake.node(vg, "src").write_bytes(b"s" * (4 * MiB))
    ctl.list_volumes(vg)  # first use: the sweep is behind us
    lvm.run("lvcreate", "--yes", "-n", "copy", "-L", "4m", "--addtag", lvm_report.PARTIAL_TAG, vg)
    with pytest.raises(AlreadyExists, match="half-made"):
        create(ctl, vg, "copy", 4 * MiB)
    assert ctl.clone_volume(vg, "src", "copy").wait(60) == "copy"
    assert fake.node(vg, "copy").read_bytes() == b"s" * (4 * MiB)
    assert {v.name for v in ctl.list_volumes(vg)} == {"src", "copy"}


# == the CLI ===========================================================================
def test_cli_flow(cli, lvm):
    d1, d2 = lvm.disk(256), lvm.disk(256)

    def ok(*args: str) -> str:
        result = cli(*args)
        assert result.code == 0, result
        return result.out

    ok("pool-define-as", "vg0", "logical", "--source-dev", d1, "--source-dev", d2,
       "--source-name", "vg0", "--target", "/dev/vg0")
    ok("pool-build", "vg0")
    ok("pool-start", "vg0")
    ok("vol-create-as", "vg0", "lv1", "100M")
    (vol,) = json.loads(ok("vol-list", "vg0", "--json"))
    lv = lvm.report("lvs", "-o", "lv_name,lv_uuid,lv_size", "vg0", kind="lv")[0]
    assert (vol["name"], vol["path"], vol["key"], vol["type"]) == (
        "lv1", "/dev/vg0/lv1", lv["lv_uuid"], "block")
    assert vol["capacity"] == vol["allocation"] == int(lv["lv_size"]) == 100 * MiB
    assert "successfully changed to 200.00 MiB" in ok("vol-resize", "lv1", "200M",
                                                      "--pool", "vg0")
    assert int(lvm.report("lvs", "-o", "lv_size", "vg0/lv1", kind="lv")[0]["lv_size"]) == \
        200 * MiB
    shrink = cli("vol-resize", "lv1", "100M", "--pool", "vg0")
    assert shrink.code == 1 and "--shrink" in shrink.err
    info = json.loads(ok("pool-info", "vg0", "--json"))
    assert info["allocation"] == 200 * MiB
    ok("vol-delete", "lv1", "--pool", "vg0")
    assert json.loads(ok("vol-list", "vg0", "--json")) == []
    ok("pool-destroy", "vg0")
    ok("pool-delete", "vg0")
    assert blkid(d1)[0] == 2 and blkid(d2)[0] == 2
    assert not lvm.report("vgs", "-o", "vg_name", kind="vg")


def test_nothing_is_written_to_the_system_lvm_directories(lvm):
    # (runs after the others in this module; the private dir took the backups)
    for path in ("/etc/lvm/backup", "/etc/lvm/archive"):
        if os.path.isdir(path):
            assert not any(name.startswith("pkt") for name in os.listdir(path))
    assert Path(lvm.base, "backup").is_dir()
