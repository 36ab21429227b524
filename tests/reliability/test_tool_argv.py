"""Names that begin with '-', mount options, hosts and iSCSI names never reach a tool as
options.

A volume name that begins with '-' (`-rf`, `--help`, `-o`) is a legal file name, so in a dir
pool it must work, and in every pool it must reach no tool as an option. The argv of every
tool call is taken from the runner's command log, for real tools (qemu-img, scrub, LVM in a
private LVM_SYSTEM_DIR, parted on a loop device):
  * dir: the whole life of such a volume runs the very argv it runs for a plain name, with
    only the name changed (so the name never moved into an option's place), and the name
    itself never stands alone where a tool would read it as an option;
  * logical and disk: LVM and the kernel have no such names, so each verb is refused
    cleanly, and the tool calls made before the refusal are exactly those made for any
    other impossible name: the name reached no tool at all.
Mount argv: whatever the allowed options, `-o` ends with nodev,nosuid,noexec (a property
test of the argv builders of fs and netfs, and a real loop-mounted fs pool start read back
from the command log and /proc/self/mountinfo). Hosts that look like options, mount
options that would undo the safe ones, and iSCSI names with path or shell characters are
refused when the pool is defined, through the controller and the CLI.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import runner
from backends.controller import StorageController
from backends.drivers import fs as fsdrv
from backends.drivers import logical as lvdrv
from backends.drivers.disk import partition_name
from backends.errors import PoolkeeperError, ValidationError, XMLError
from backends.model import (
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    SourceHost,
    VolumeDef,
    VolumeTarget,
)
from backends.names import PARTIAL_PREFIX
from tests.conftest import make_dir_pool
from tests.loopfs import can_use_loop_devices, release_partitioned
from tests.lvmenv import Lvm, can_use_lvm, lvm_fixture  # noqa: F401 (fixture 'lvm')

MiB = 1 << 20
DASH_NAMES = ["-rf", "--help", "-o"]
SAFE = ["nodev", "nosuid", "noexec"]
# options (of the tools the name could reach) whose next argv element is their value
VALUE_OPTIONS = {
    "qemu-img": {"-f", "-F", "-O", "-o", "-b", "-t", "-T"},
    "lvcreate": {"--name", "-n", "-L", "-V", "--virtualsize", "--size"},
    "lvresize": {"-L", "--size"},
    "mount": {"-o", "-t"},
}

needs_loops = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loops")


# == recording what the tools get ======================================================
@pytest.fixture
def argvs() -> Iterator[list[list[str]]]:
    """The argv of every tool call made while the test runs (secrets unmasked)."""
    seen: list[list[str]] = []
    remove = runner.COMMAND_LOG.add_listener(lambda done: seen.append(list(done.argv)))
    try:
        yield seen
    finally:
        remove()


def loose_name_positions(argv: list[str], name: str) -> list[int]:
    """Where `name` stands alone in argv where a tool could read it as an option: not
    after a `--` and not the value of the option before it."""
    bad = []
    for i, arg in enumerate(argv):
        if arg != name or i == 0:
            continue
        if "--" in argv[1:i] or argv[i - 1] in VALUE_OPTIONS.get(argv[0], ()):
            continue
        bad.append(i)
    return bad


def test_loose_name_check_can_fail() -> None:
    assert loose_name_positions(["lvremove", "-f", "-rf"], "-rf") == [2]
    assert loose_name_positions(["lvremove", "-f", "--", "-rf"], "-rf") == []
    assert loose_name_positions(["lvcreate", "--name", "-rf", "vg"], "-rf") == []


# == dir: names that begin with '-' work, as file paths ================================
_RUN_SPECIFIC = [(re.compile(re.escape(PARTIAL_PREFIX) + r"[0-9a-f]+"), "PARTIAL"),
                 (re.compile(r"/dev/fd/[0-9]+"), "/dev/fd/N"),
                 (re.compile(r"/proc/[0-9]+/fd/[0-9]+"), "/proc/PID/fd/N")]


def normalised(argvs: list[list[str]]) -> list[list[str]]:
    """argv lists without what differs from run to run (temp names, fd numbers)."""
    out = []
    for argv in argvs:
        new = []
        for arg in argv:
            for pattern, replacement in _RUN_SPECIFIC:
                arg = pattern.sub(replacement, arg)
            new.append(arg)
        out.append(new)
    return out


def dir_life(ctl: StorageController, pool: Path, name: str, tmp_path: Path) -> None:
    """Every volume verb on `name` (qcow2) and its raw clone `name`.raw, then both gone."""
    ctl.create_volume_def("p", VolumeDef(name=name, capacity=MiB,
                                         target=VolumeTarget(format="qcow2"))).wait(60)
    clone_xml = (f"<volume><name>{name}.raw</name><capacity unit='bytes'>{MiB}</capacity>"
                 "<target><format type='raw'/></target>"
                 "</volume>")
    ctl.clone_volume("p", name, f"{name}.raw", xml=clone_xml).wait(60)
    ctl.resize_volume("p", name, 2 * MiB).wait(60)
    ctl.wipe_volume("p", f"{name}.raw", "nnsa").wait(60)  # scrub
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"\x42" * 4096)
    ctl.upload_volume("p", f"{name}.raw", str(upload)).wait(60)
    out = tmp_path / "out" / f"dl-{len(name)}.bin"
    out.parent.mkdir(exist_ok=True)
    ctl.download_volume("p", f"{name}.raw", str(out)).wait(60)
    assert out.read_bytes()[:4096] == b"\x42" * 4096
    assert ctl.volume_info("p", name).format == "qcow2"
    assert f"<name>{name}</name>" in ctl.volume_xml("p", name)
    ctl.delete_volume("p", f"{name}.raw")
    ctl.delete_volume("p", name)
    assert list(pool.iterdir()) == []


@pytest.mark.parametrize("name", DASH_NAMES)
def test_dir_pool_runs_the_same_argv_for_a_dash_name(ctl, tmp_path, argvs, name) -> None:
    pool = make_dir_pool(ctl, "p", tmp_path / "images")
    plain = "plainname"
    argvs.clear()
    dir_life(ctl, pool, plain, tmp_path)
    plain_argvs = normalised(argvs)
    baseline = [[x.replace(plain, name) for x in a] for a in plain_argvs]
    assert {tuple(a[:2]) for a in baseline} >= {
        ("qemu-img", "create"), ("qemu-img", "convert"), ("qemu-img", "resize"), ("scrub", "-f")}
    argvs.clear()
    dir_life(ctl, pool, name, tmp_path)
    assert normalised(argvs) == baseline
    # the tools get a partial name or /dev/fd/N, never the volume's path
    assert not any(str(pool / name) in a for argv in argvs for a in argv), argvs
    # where the plain name stood alone, the dash name must not be readable as an option
    for argv, plain_argv in zip(argvs, plain_argvs, strict=True):
        for vol in (name, f"{name}.raw"):
            alone = {i for i, x in enumerate(plain_argv) if x == vol.replace(name, plain)}
            assert not alone & set(loose_name_positions(argv, vol)), argv


def test_cli_takes_a_dash_name_only_after_double_dash(cli, ctl, tmp_path) -> None:
    pool = make_dir_pool(ctl, "p", tmp_path / "images")
    r = cli("vol-create-as", "--format", "qcow2", "p", "--", "-rf", "1M")
    assert r.code == 0, r
    assert (pool / "-rf").is_file()
    # without `--` argparse reads it as an unknown option: refused, nothing deleted
    r = cli("vol-delete", "-rf", "--pool", "p")
    assert r.code != 0 and "Traceback" not in r.err, r
    assert (pool / "-rf").is_file()
    r = cli("vol-info", "--pool", "p", "--", "-rf")
    assert r.code == 0 and "-rf" in r.out, r
    r = cli("vol-delete", "--pool", "p", "--", "-rf")
    assert r.code == 0, r
    assert not (pool / "-rf").exists()


# == logical and disk: refused, and the name reaches no tool ===========================
def refusals(verbs: dict[str, Callable[[str], object]], argvs: list[list[str]],
             name: str, control: str) -> None:
    """Each verb on `name` is refused like on `control` (another impossible name), with
    exactly the same tool calls: nothing of `name` reached a tool."""
    for verb, call in verbs.items():
        seen: dict[str, list[list[str]]] = {}
        for candidate in (control, name):
            argvs.clear()
            with pytest.raises(PoolkeeperError) as exc:
                result = call(candidate)
                if hasattr(result, "wait"):
                    result.wait(60)
            assert str(exc.value) and "Traceback" not in str(exc.value), verb
            seen[candidate] = [list(a) for a in argvs]
        assert not any(control in x for a in seen[control] for x in a), verb
        assert seen[name] == seen[control], verb


@pytest.fixture
def logical_pool(ctl: StorageController, lvm: Lvm) -> str:
    vg = "pkdash" + hashlib.sha256(os.urandom(8)).hexdigest()[:6]
    ctl.define_pool_def(PoolDef(type="logical", name=vg, source=PoolSource(
        name=vg, devices=[SourceDevice(lvm.disk(64))], format="lvm2"),
        target=PoolTarget(path=f"/dev/{vg}")))
    ctl.build_pool(vg).wait(120)
    ctl.start_pool(vg)
    return vg


def test_logical_pool_keeps_dash_names_away_from_lvm(ctl, logical_pool, argvs) -> None:
    vg = logical_pool
    argvs.clear()
    ctl.create_volume_def(vg, VolumeDef(name="plain-lv", capacity=8 * MiB)).wait(120)
    creates = [a for a in argvs if a[0] == "lvcreate"]
    assert creates and creates[0][creates[0].index("--name") + 1] == "plain-lv"
    ctl.delete_volume(vg, "plain-lv")
    removes = [a for a in argvs if a[0] == "lvremove"]
    assert removes and removes[0][-2:] == ["--", f"{vg}/plain-lv"]
    verbs = {
        "create": lambda n: ctl.create_volume_def(vg, VolumeDef(name=n, capacity=8 * MiB)),
        "delete": lambda n: ctl.delete_volume(vg, n),
        "resize": lambda n: ctl.resize_volume(vg, n, 16 * MiB),
        "wipe": lambda n: ctl.wipe_volume(vg, n),
        "info": lambda n: ctl.volume_info(vg, n),
    }
    for name in DASH_NAMES:
        refusals(verbs, argvs, name, control="no!such!lv")
    with pytest.raises(ValidationError, match="-rf"):
        lvdrv.check_lv_name("-rf")
    assert [v.name for v in ctl.list_volumes(vg)] == []


@pytest.fixture
def disk_device(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(64 * MiB)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        yield dev
    finally:
        release_partitioned(dev, image)


@needs_loops
def test_disk_pool_keeps_dash_names_away_from_parted(ctl, disk_device, argvs) -> None:
    ctl.define_pool(f"<pool type='disk'><name>d</name><source><device path='{disk_device}'/>"
                    "<format type='gpt'/></source><target><path>/dev</path></target></pool>")
    ctl.build_pool("d").wait(120)
    ctl.start_pool("d")
    try:
        first = partition_name(disk_device, 1)
        argvs.clear()
        ctl.create_volume_def("d", VolumeDef(name=first, capacity=8 * MiB)).wait(120)
        assert any(a[0] == "parted" and "mkpart" in a for a in argvs)
        ctl.delete_volume("d", first)
        verbs = {
            "create": lambda n: ctl.create_volume_def("d", VolumeDef(name=n, capacity=MiB)),
            "delete": lambda n: ctl.delete_volume("d", n),
            "resize": lambda n: ctl.resize_volume("d", n, 16 * MiB),
            "wipe": lambda n: ctl.wipe_volume("d", n),
            "info": lambda n: ctl.volume_info("d", n),
        }
        for name in DASH_NAMES:
            refusals(verbs, argvs, name, control="nosuchpart")
        assert ctl.list_volumes("d") == []
    finally:
        ctl.stop_pool("d")


# == mount argv: the safe options always come last =====================================
ALLOWED_FLAGS = sorted(fsdrv._FLAG_OPTIONS)
ALLOWED_VALUES = ["nfsvers=4.1", "vers=3", "proto=tcp", "timeo=600", "rsize=65536",
                  "sec=sys", "uid=107", "umask=022", "context=system_u:object_r:virt_t:s0",
                  "compress=zstd:3", "subvol=/images", "data=ordered", "errors=remount-ro"]


def ends_safely(argv: list[str]) -> None:
    assert argv[0] == "mount" and argv.count("-o") == 1, argv
    opts = argv[argv.index("-o") + 1].split(",")
    assert opts[-3:] == SAFE, argv
    assert not {"exec", "suid", "dev", "defaults"} & set(opts), argv
    assert len(opts) == len(set(opts)), argv


@settings(max_examples=150, deadline=None)
@given(options=st.lists(st.sampled_from(ALLOWED_FLAGS + ALLOWED_VALUES), max_size=8,
                        unique=True),
       fmt=st.sampled_from(["ext4", "xfs", "btrfs", "vfat", "auto"]))
def test_fs_mount_argv_ends_with_the_safe_options(options: list[str], fmt: str) -> None:
    pdef = PoolDef(type="fs", name="f", source=PoolSource(
        devices=[SourceDevice("/dev/loop63")], format=fmt),
        target=PoolTarget(path="/srv/pk-f"), mount_opts=options)
    argv = fsdrv.FsDriver(pdef)._mount_argv("/dev/loop63")
    ends_safely(argv)
    assert argv[-2:] == ["/dev/loop63", "/srv/pk-f"]


@settings(max_examples=150, deadline=None)
@given(options=st.lists(st.sampled_from(ALLOWED_FLAGS + ALLOWED_VALUES), max_size=8,
                        unique=True),
       fmt=st.sampled_from(["auto", "nfs", "cifs", "glusterfs"]),
       port=st.none() | st.integers(1, 65535),
       version=st.none() | st.sampled_from(["3", "4", "4.2"]))
def test_netfs_mount_argv_ends_with_the_safe_options(options, fmt, port, version) -> None:
    if version and (fmt not in ("auto", "nfs") or any(
            o.startswith(("nfsvers=", "vers=")) for o in options)):
        version = None
    if fmt == "glusterfs":
        port = None
    pdef = PoolDef(type="netfs", name="n", source=PoolSource(
        hosts=[SourceHost("nfs.example.com", port)], dir="/export", format=fmt,
        protocol_ver=version), target=PoolTarget(path="/srv/pk-n"), mount_opts=options)
    fsdrv.NetfsDriver.validate(pdef)
    ends_safely(fsdrv.NetfsDriver(pdef).mount_argv())


@pytest.fixture
def fs_image(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(image, mount point) for an fs pool on an image file; whatever stays mounted at the
    mount point or attached from the image is undone at the end (ours only)."""
    image, target = tmp_path / "fs.img", tmp_path / "mnt"
    with open(image, "wb") as fh:
        fh.truncate(64 * MiB)
    try:
        yield image, target
    finally:
        for _ in range(3):
            if not os.path.ismount(target):
                break
            subprocess.run(["umount", str(target)], capture_output=True)
        for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
            if backing.read_text().strip() == str(image):
                subprocess.run(["losetup", "-d", f"/dev/{backing.parent.parent.name}"],
                               capture_output=True)


def mount_options_of(target: Path) -> list[str]:
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == str(target):
                return fields[5].split(",")
    raise AssertionError(f"{target} is not mounted")


@needs_loops
def test_a_real_fs_pool_is_mounted_with_the_safe_options_last(ctl, fs_image, argvs) -> None:
    image, target = fs_image
    ctl.define_pool(
        "<pool type='fs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'>"
        f"<name>f</name><source><device path='{image}'/><format type='ext4'/></source>"
        f"<target><path>{target}</path></target><fs:mount_opts><fs:option name='noatime'/>"
        "<fs:option name='ro'/><fs:option name='rw'/></fs:mount_opts></pool>")
    ctl.build_pool("f").wait(300)
    argvs.clear()
    ctl.start_pool("f")
    try:
        mounts = [a for a in argvs if a[0] == "mount"]
        assert len(mounts) == 1
        ends_safely(mounts[0])
        assert mounts[0][2] == "noatime,ro,rw,nodev,nosuid,noexec"
        assert set(SAFE) <= set(mount_options_of(target))
        assert "rw" in mount_options_of(target)  # the user's last ro/rw won, as asked
    finally:
        ctl.stop_pool("f")
    assert not os.path.ismount(target)


# == refused at define time ============================================================
FS_NS = "xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'"


def opts_xml(*options: str) -> str:
    return ("<fs:mount_opts>" + "".join(f"<fs:option name='{o}'/>" for o in options)
            + "</fs:mount_opts>")


def netfs(host: str = "nfs.example.com", options: tuple[str, ...] = ()) -> str:
    return (f"<pool type='netfs' {FS_NS}><name>n</name><source><host name='{host}'/>"
            "<dir path='/export'/><format type='nfs'/></source><target><path>/srv/pk-n"
            f"</path></target>{opts_xml(*options) if options else ''}</pool>")


def fs(options: tuple[str, ...]) -> str:
    return (f"<pool type='fs' {FS_NS}><name>f</name><source><device path='/dev/loop63'/>"
            "<format type='ext4'/></source><target><path>/srv/pk-f</path></target>"
            f"{opts_xml(*options)}</pool>")


def iscsi(kind: str, *, host: str = "127.0.0.1", iqn: str = "iqn.2024-01.org.example:t0",
          initiator: str = "iqn.2024-01.org.example:host1") -> str:
    target = "" if kind == "iscsi-direct" else "<target><path>/dev/disk/by-path</path></target>"
    return (f"<pool type='{kind}'><name>i</name><source><host name='{host}'/>"
            f"<device path='{iqn}'/><initiator><iqn name='{initiator}'/></initiator>"
            f"</source>{target}</pool>")


LONG_IQN = "iqn.2024-01.org.example:" + "a" * 276  # 300 bytes
HOSTILE_DEFINITIONS = {
    "netfs-host-option": (netfs(host="-oexec"), "-oexec"),
    "netfs-opts-one": (netfs(options=("rw,suid,dev,exec",)), "rw,suid,dev,exec"),
    "netfs-opts-separate": (netfs(options=("rw", "suid", "dev", "exec")), "suid"),
    "netfs-exec-only": (netfs(options=("noatime", "exec")), "exec"),
    "netfs-nfsvers-exec": (netfs(options=("nfsvers=3,exec",)), "nfsvers=3,exec"),
    "netfs-defaults": (netfs(options=("defaults",)), "defaults"),
    "fs-opts-one": (fs(("rw,suid,dev,exec",)), "rw,suid,dev,exec"),
    "fs-dev": (fs(("dev",)), "dev"),
    "fs-nfsvers-exec": (fs(("nfsvers=3,exec",)), "nfsvers=3,exec"),
}
for _kind in ("iscsi", "iscsi-direct"):
    HOSTILE_DEFINITIONS |= {
        f"{_kind}-iqn-dotdot": (iscsi(_kind, iqn="iqn.2024-01.org.example:../../etc"), "../"),
        f"{_kind}-initiator-dotdot": (iscsi(_kind, initiator="iqn.2024-01.a:../x"), "../"),
        f"{_kind}-portal-semicolon": (iscsi(_kind, host="127.0.0.1;reboot"), ";"),
        f"{_kind}-portal-option": (iscsi(_kind, host="-oProxyCommand=x"), "-o"),
        f"{_kind}-iqn-300-bytes": (iscsi(_kind, iqn=LONG_IQN), "a" * 20),
        f"{_kind}-initiator-300-bytes": (iscsi(_kind, initiator=LONG_IQN), "a" * 20),
    }


@pytest.mark.parametrize("case", sorted(HOSTILE_DEFINITIONS))
def test_hostile_definitions_are_refused_at_define(ctl, cli, tmp_path, argvs, case) -> None:
    doc, shown = HOSTILE_DEFINITIONS[case]
    with pytest.raises((ValidationError, XMLError)) as exc:
        ctl.define_pool(doc)
    message = str(exc.value)
    assert shown in message or "bytes" in message or "characters" in message, message
    assert ctl.pool_names() == []
    path = tmp_path / "pool.xml"
    path.write_text(doc)
    r = cli("pool-define", str(path))
    assert r.code == 1 and "error: " in r.err and "Traceback" not in r.err, r
    assert set(ctl.pool_names()) <= {"default"}  # the CLI's first run makes that one
    assert not [a for a in argvs if a[0] in ("mount", "iscsiadm", "iscsi-ls", "qemu-img")]


def test_definitions_built_in_code_are_checked_as_well(ctl) -> None:
    """Past the XML parser (the TUI and pool-define-as build PoolDefs): the same refusals."""
    netfs_base = dict(type="netfs", name="n", target=PoolTarget(path="/srv/pk-n"))
    cases = [
        PoolDef(**netfs_base, source=PoolSource(hosts=[SourceHost("-oexec")], dir="/export",
                                                format="nfs")),
        PoolDef(**netfs_base, source=PoolSource(hosts=[SourceHost("h")], dir="/export",
                                                format="nfs"), mount_opts=["exec"]),
        PoolDef(**netfs_base, source=PoolSource(hosts=[SourceHost("h")], dir="/export",
                                                format="nfs"), mount_opts=["nfsvers=3,exec"]),
        PoolDef(**netfs_base, source=PoolSource(hosts=[SourceHost("h")], dir="-oexec",
                                                format="nfs")),
        PoolDef(type="iscsi-direct", name="i", source=PoolSource(
            hosts=[SourceHost("127.0.0.1;id")], devices=[SourceDevice("iqn.2024-01.a:b")],
            initiator_iqn="iqn.2024-01.a:c")),
        PoolDef(type="iscsi-direct", name="i", source=PoolSource(
            hosts=[SourceHost("127.0.0.1")], devices=[SourceDevice("iqn.2024-01.a:../b")],
            initiator_iqn="iqn.2024-01.a:c")),
        PoolDef(type="iscsi", name="i", source=PoolSource(
            hosts=[SourceHost("127.0.0.1")], devices=[SourceDevice(LONG_IQN)]),
            target=PoolTarget(path="/dev/disk/by-path")),
    ]
    for pdef in cases:
        with pytest.raises(ValidationError):
            ctl.define_pool_def(pdef)
    assert ctl.pool_names() == []


def test_cli_pool_define_as_refuses_an_option_as_host(cli, state_root) -> None:
    r = cli("pool-define-as", "n", "netfs", "--source-host=-oexec", "--source-path",
            "/export", "--target", "/srv/pk-n")
    assert r.code == 1 and "-oexec" in r.err and "Traceback" not in r.err, r
    assert not (state_root / "storage" / "n.xml").exists()
