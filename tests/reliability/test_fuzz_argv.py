"""Fuzzing of the code that turns definitions into tool argv.

The builders, found by reading the drivers:
  fs/netfs   check_mount_option, mount_options, FsDriver._mount_argv, NetfsDriver.mount_argv
  logical    checks.require_vg_name / check_lv_name, LogicalDriver.validate / .vg /
             .devices (pvcreate, vgcreate), LogicalDriver.create_argv (lvcreate)
  disk       DiskDriver._plan (parted mkpart's start/end/number/type: the argv is built from
             it inline in _create, which needs a real disk), partition_name/number,
             parse_parted (reads parted -m output, where a GPT partition name is guest data)
  iscsi      IscsiDriver.start/stop with iscsiadm recorded (the kernel initiator cannot run
             here: the exact argv is what is checked), parse_host_arg, the iscsi-direct URL,
             iscsi-ls argv and qemu's option strings
  dir        DirDriver._qemu_img_create_argv, volume_path

Definitions are generated (valid ones, and valid ones with hostile values put into random
fields) and go through what the product does first (xmlio.validate_*, the driver's
validate). The result must be one of our errors, or an argv of str where no user value can
be read as an option (it sits after `--`, is the argument of an option, or does not begin
with '-'), nothing holds a NUL, and every mount -o list ends with nodev,nosuid,noexec.
The checks themselves live in fuzz/checks.py, shared with the atheris harnesses.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from backends.drivers import disk as diskdrv
from backends.drivers import lvm_report, parted_table
from backends.model import (
    CREATABLE_FILE_FORMATS,
    DISK_VOLUME_FORMATS,
    BackingStore,
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    SourceHost,
    VolumeDef,
    VolumeTarget,
)
from fuzz import checks

from .test_fuzz_xml import (
    POOL_FIELDS,
    VOLUME_FIELDS,
    corrupted,
    hostile_int,
    hostile_str,
    pool_defs,
    volume_defs,
)

pytestmark = pytest.mark.fuzz
FUZZ = settings.get_profile("poolkeeper-fuzz")  # registered by conftest.py
MiB = 1 << 20


def pools(ptype: str) -> st.SearchStrategy[PoolDef]:
    """Valid pools of a type, and the same with hostile values in random fields."""
    return st.one_of(pool_defs(ptype), corrupted(pool_defs(ptype), POOL_FIELDS))


# == fs / netfs: mount ====================================================================
MOUNT_WORDS = st.sampled_from([
    "exec", "suid", "dev", "defaults", "user", "rw", "ro", "noexec", "nodev", "nosuid",
    "nfsvers=3", "vers=4.1", "remount", "bind", "loop", "password=x", "uid=0", "context=x",
    "rsize=1048576", "sec=krb5", "noatime", "-oexec", "exec,suid", "", " ", "x=y",
    "subvol=/a", "compress=zstd:3", "nofail"])
mount_words = MOUNT_WORDS | hostile_str


@FUZZ
@given(st.lists(st.sampled_from(["nfsvers=4", "guest", "port=2049", "direct-io-mode=1"]),
                max_size=3), st.lists(mount_words, max_size=6))
@example([], ["rw", "suid", "dev", "exec"])
@example(["nfsvers=3"], ["nfsvers=3", "exec"])
def test_mount_option_lists_end_with_the_safe_defaults(per_type: list[str],
                                                       user: list[str]) -> None:
    event(checks.check_mount_options(per_type, user))


@FUZZ
@given(mount_words)
def test_allowed_mount_options_are_single_harmless_words(opt: str) -> None:
    event(checks.check_mount_option(opt))


@FUZZ
@given(pools("fs"), st.booleans())
def test_fs_mount_argv(pool: PoolDef, through_xmlio: bool) -> None:
    event(checks.check_fs_mount(pool, through_xmlio))


@FUZZ
@given(pools("netfs"), st.booleans())
@example(PoolDef(type="netfs", name="n", source=PoolSource(hosts=[SourceHost("-oexec")],
                                                           dir="/e"),
                 target=PoolTarget(path="/m")), False)
@example(PoolDef(type="netfs", name="n", source=PoolSource(hosts=[SourceHost("h")], dir="/e"),
                 target=PoolTarget(path="/m"), mount_opts=["nfsvers=3", "exec"]), True)
def test_netfs_mount_argv(pool: PoolDef, through_xmlio: bool) -> None:
    event(checks.check_netfs_mount(pool, through_xmlio))


# == logical: pvcreate, vgcreate, lvcreate ================================================
@FUZZ
@given(st.one_of(pools("logical"), corrupted(pool_defs(), POOL_FIELDS)), st.booleans())
def test_logical_build_argv_values(pool: PoolDef, through_xmlio: bool) -> None:
    pool.type = "logical"
    event(checks.check_logical_build(pool, through_xmlio))


@st.composite
def vg_states(draw: st.DrawFn) -> tuple[lvm_report.VGState, list[lvm_report.LVState]]:
    name = draw(st.from_regex(r"[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,20}", fullmatch=True))
    extent = 512 << draw(st.integers(0, 20))
    state = lvm_report.VGState(name=name, uuid="u", attr="wz--n-", size=0, free=0,
                           extent_size=extent, extent_count=0, free_count=0, seqno=1,
                           lv_count=0, missing_count=0)
    kinds = {"thick": ("-wi-a-----", "linear"), "thin-pool": ("twi-aotz--", "thin-pool"),
             "thin": ("Vwi-a-tz--", "thin"), "snapshot": ("swi-a-s---", "linear")}
    lvs = []
    for lv_name, kind in draw(st.dictionaries(
            st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True).filter(
                lambda n: not n.startswith(("snapshot", "pvmove"))),
            st.sampled_from(sorted(kinds)), max_size=4)).items():
        attr, segtype = kinds[kind]
        lvs.append(lvm_report.LVState(
            name=lv_name, uuid=f"uuid-{lv_name}", path=f"/dev/{name}/{lv_name}", attr=attr,
            size=draw(st.integers(1, 2**40)), origin="", origin_size=0, pool_lv="",
            segtype=segtype, data_percent=None, parent="", roles=("public",), hidden=False))
    return state, lvs


@st.composite
def lv_requests(draw: st.DrawFn, state: lvm_report.VGState, lvs: list[lvm_report.LVState]
                ) -> VolumeDef:
    vol = VolumeDef(name=draw(st.from_regex(r"[A-Za-z0-9+_.-]{1,20}", fullmatch=True)
                              | hostile_str),
                    capacity=draw(st.none() | hostile_int | st.integers(1, 2**50)),
                    allocation=draw(st.none() | hostile_int | st.integers(0, 2**50)))
    if draw(st.booleans()):
        origins = [f"/dev/{state.name}/{lv.name}" for lv in lvs]
        path = draw(st.sampled_from(origins) | hostile_str if origins else hostile_str)
        vol.backing = BackingStore(path=path)
    return vol


LVCase = tuple[lvm_report.VGState, list[lvm_report.LVState], VolumeDef, bool]


@st.composite
def lvcreate_cases(draw: st.DrawFn) -> LVCase:
    state, lvs = draw(vg_states())
    return state, lvs, draw(lv_requests(state, lvs)), draw(st.booleans())


def _snapshot_case(capacity: int, allocation: int) -> LVCase:
    state = lvm_report.VGState("vg", "u", "wz--n-", 0, 0, 4 << 20, 0, 0, 1, 0, 0)
    base = lvm_report.LVState("base", "u-base", "/dev/vg/base", "-wi-a-----", 1 << 30, "", 0, "",
                          "linear", None, "", ("public",), False)
    vol = VolumeDef(name="s", capacity=capacity, allocation=allocation,
                    backing=BackingStore(path="/dev/vg/base"))
    return state, [base], vol, False


@FUZZ
@given(lvcreate_cases())
@example(_snapshot_case(-1, -1))  # found by atheris: lvcreate -s -L 0b
@example(_snapshot_case(1 << 20, -(8 << 20)))
def test_lvcreate_argv(case: LVCase) -> None:
    state, lvs, vol, validate_first = case
    event(checks.check_lvcreate(vol, state, lvs, validate_first))


# == disk: parted mkpart ==================================================================
@st.composite
def disk_tables(draw: st.DrawFn) -> diskdrv.DiskTable:
    """A table of primary partitions at random sector boundaries, with its free extents."""
    sector = draw(st.sampled_from([512, 4096]))
    size = draw(st.integers(1, 1 << 22)) * sector
    label = draw(st.sampled_from(["msdos", "gpt", "sun", "mac"]))
    sectors = size // sector
    cuts = sorted(set(draw(st.lists(st.integers(1, sectors - 1), max_size=12))
                      if sectors > 2 else []))
    spans = [(cuts[i] * sector, cuts[i + 1] * sector) for i in range(0, len(cuts) - 1, 2)]
    if label == "msdos":
        spans = spans[:4]  # logical partitions need an extended one
    parts = [diskdrv.Partition(n, start, end, "primary", "", "", (), None)
             for n, (start, end) in enumerate(spans, start=1)]
    table = diskdrv.DiskTable(device="/dev/loop9", size=size, sector=sector,
                              parted_label=label, partitions=parts)
    first = sector if label == "msdos" else 34 * sector
    table.gaps = parted_table._gaps(first, size, spans)
    return table


@FUZZ
@given(disk_tables(), st.sampled_from(DISK_VOLUME_FORMATS),
       st.integers(1, 1 << 44) | st.integers(1, 64 * MiB),
       st.none() | hostile_int | st.integers(0, 1 << 30).map(lambda n: n * MiB))
def test_parted_mkpart_plan(table: diskdrv.DiskTable, fmt: str, capacity: int,
                            start: int | None) -> None:
    event(checks.check_mkpart_plan(table, fmt, capacity, start))


@FUZZ
@given(st.sampled_from(["/dev/sda", "/dev/loop0", "/dev/nvme0n1", "/dev/mmcblk0", "/dev/vdb"]),
       st.integers(1, 9999), st.none() | st.booleans(), hostile_str)
def test_partition_names_and_numbers_agree(disk: str, number: int, sep: bool | None,
                                           other: str) -> None:
    name = diskdrv.partition_name(disk, number, sep)
    assert diskdrv.partition_number(disk, name, sep) == number
    found = diskdrv.partition_number(disk, other, sep)
    assert found is None or diskdrv.partition_name(disk, found, sep) == other


PARTED_SAMPLE = (
    "BYT;\n/dev/loop9:104857600B:loopback:512:512:gpt:Loopback device:;\n"
    "1:17408B:1048575B:1031168B:free;\n1:1048576B:11534335B:10485760B:ext4:data:;\n"
    "2:11534336B:22020095B:10485760B::swap:swap;\n3:22020096B:104840191B:82820096B::"
    "n\\:a\\\\me:lvm;\n1:104840192B:104857599B:17408B:free;\n")


@FUZZ
@given(st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(PARTED_SAMPLE.splitlines(keepends=True)) | st.text(max_size=60),
             max_size=8).map("".join),
    st.tuples(st.integers(0, len(PARTED_SAMPLE)), st.text(max_size=20)).map(
        lambda t: PARTED_SAMPLE[:t[0]] + t[1] + PARTED_SAMPLE[t[0]:]),
))
@example(PARTED_SAMPLE)
@example(PARTED_SAMPLE.replace("104857600B", "9" * 5000 + "B"))
def test_parse_parted_reads_any_output_or_says_it_cannot(text: str) -> None:
    event(checks.check_parse_parted(text))


# == iscsi ================================================================================
@FUZZ
@given(pools("iscsi"), st.booleans())
@example(PoolDef(type="iscsi", name="i", source=PoolSource(
    hosts=[SourceHost("127.0.0.1;reboot")],
    devices=[SourceDevice("iqn.2013-06.com.example:../t")]), target=PoolTarget("/dev/x")),
    False)
@example(PoolDef(type="iscsi", name="i", source=PoolSource(
    hosts=[SourceHost("h")], devices=[SourceDevice("iqn.2013-06.x:" + "a" * 300)]),
    target=PoolTarget("/dev/x")), False)
@example(PoolDef(type="iscsi", name="i", source=PoolSource(  # found by atheris:
    hosts=[SourceHost("h")], devices=[SourceDevice("\ud800")]),  # UnicodeEncodeError
    target=PoolTarget("/dev/x")), True)
def test_iscsiadm_argv(pool: PoolDef, through_xmlio: bool) -> None:
    event(checks.check_iscsiadm(pool, through_xmlio))


@FUZZ
@given(hostile_str | st.from_regex(r"\[?[0-9a-f:.]{1,20}\]?(:[0-9]{1,6})?", fullmatch=True))
@example("-oexec")
@example("[::1]:3260")
@example("host:99999")
@example("a:b:c")
def test_find_sources_host_argument(text: str) -> None:
    event(checks.check_host_arg(text))


@FUZZ
@given(pools("iscsi-direct"), st.booleans(), st.integers(0, 16383), st.integers(0, 2**62),
       st.integers(1, 2**62), hostile_str)
def test_iscsi_direct_urls_argv_and_qemu_options(pool: PoolDef, through_xmlio: bool,
                                                 lun: int, offset: int, size: int,
                                                 file_path: str) -> None:
    event(checks.check_iscsi_direct(pool, through_xmlio, lun, offset, size, file_path))


# == dir: qemu-img create =================================================================
@st.composite
def dir_volumes(draw: st.DrawFn) -> VolumeDef:
    vol = copy.deepcopy(draw(st.one_of(volume_defs(), corrupted(volume_defs(),
                                                                VOLUME_FIELDS)))[0])
    vol.target.format = draw(st.sampled_from(CREATABLE_FILE_FORMATS) | st.none())
    if vol.backing is not None and draw(st.booleans()):
        vol.backing.path = draw(st.sampled_from(["json:{\"file.filename\":\"/etc/shadow\"}",
                                                 "nbd://127.0.0.1/x", "/pool/../etc/shadow",
                                                 "-b", "/pool/base.qcow2"]))
    return vol


@FUZZ
@given(dir_volumes(), st.booleans())
@example(VolumeDef(name="-v", capacity=1, target=VolumeTarget(format="qcow2")), False)
@example(VolumeDef(name="v", capacity=1, target=VolumeTarget(
    format="qcow2", compat="1.1,backing_file=/etc/shadow")), False)
@example(VolumeDef(name="v", capacity=1, target=VolumeTarget(format="qcow2"),
                   backing=BackingStore(path="json:{\"file.filename\":\"/etc/shadow\"}",
                                        format="raw")), False)
@example(VolumeDef(name="v", capacity=-(1 << 20), target=VolumeTarget(format="qcow2")), False)
@example(VolumeDef(name="v", capacity=2**62 + 1, target=VolumeTarget(format="qcow2")), True)
@example(VolumeDef(name="v", capacity=1, target=VolumeTarget(format="qed"),  # -u: not opened
                   backing=BackingStore(path="/pool/base.qcow2", format="qcow2")), True)
def test_qemu_img_create_argv(vol: VolumeDef, validate_first: bool) -> None:
    event(checks.check_qemu_img_create(vol, validate_first))


@FUZZ
@given(hostile_str)
@example("../../etc/passwd")
@example("-rf")
def test_volume_paths_stay_in_the_pool(name: str) -> None:
    event(checks.check_volume_path(name))
