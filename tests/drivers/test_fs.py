"""fs pools end to end, for real: loop devices, mkfs (ext4, xfs, btrfs), mount, umount, wipefs.

Every loop device and mount a test makes is undone by the fixtures below, even when the
test fails; nothing touches a device the test did not make.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import blockprobe, runner
from backends.controller import StorageController
from backends.drivers import fs as fsdrv
from backends.errors import (
    InUse,
    PoolkeeperError,
    StateError,
    ToolMissing,
    ValidationError,
    VolumeNotFound,
)
from backends.model import VolumeDef, VolumeTarget
from tests.loopfs import (  # noqa: F401 (fixture loopfs)
    backing_file,
    can_use_loop_devices,
    loop_device,
    loopfs,
    loops_of,
    sparse_images,
    wait_until,
)

pytestmark = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")

MiB = 1 << 20
SIZES = {"ext4": 64, "xfs": 300, "btrfs": 128}  # MiB, at least what each mkfs accepts


# == helpers ===========================================================================
def mountinfo() -> list[list[str]]:
    with open("/proc/self/mountinfo") as fh:
        return [line.split() for line in fh]


def mount_entry(target: Path) -> dict | None:
    """Our own reading of mountinfo (independent of backends.blockprobe)."""
    for fields in mountinfo():
        if fields[4] == str(target):
            sep = fields.index("-")
            return {"options": fields[5].split(","), "fstype": fields[sep + 1],
                    "source": fields[sep + 2]}
    return None


def head_hash(device: str, mib: int = 4) -> str:
    with open(device, "rb") as fh:
        return hashlib.sha256(fh.read(mib * MiB)).hexdigest()


def blkid(device: str) -> tuple[int, dict[str, str]]:
    done = subprocess.run(["blkid", "-p", "-o", "export", device], capture_output=True,
                          text=True)
    return done.returncode, dict(line.split("=", 1) for line in done.stdout.splitlines()
                                 if "=" in line)


def fs_xml(name: str, device: str, fmt: str | None, target: Path,
           options: tuple[str, ...] = ()) -> str:
    fmt_el = f"<format type='{fmt}'/>" if fmt else ""
    opts = ""
    if options:
        opts = ("<fs:mount_opts>" + "".join(f"<fs:option name='{o}'/>" for o in options)
                + "</fs:mount_opts>")
    ns = " xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'" if options else ""
    return (f"<pool type='fs'{ns}><name>{name}</name><source><device path='{device}'/>{fmt_el}"
            f"</source><target><path>{target}</path></target>{opts}</pool>")


def _umount_all(device: str | None = None, target: Path | None = None) -> None:
    """Unmount what a test left mounted (only mounts of our device or at our target)."""
    for _ in range(3):
        hits = []
        for fields in mountinfo():
            sep = fields.index("-")
            if (device and fields[sep + 2] == device) or (target and fields[4] == str(target)):
                hits.append(fields[4])
        if not hits:
            return
        for mnt in reversed(hits):
            if subprocess.run(["umount", mnt], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mnt], capture_output=True)


def _detach_loops_of(image: Path) -> None:
    for dev in loops_of(image):
        _umount_all(device=dev)
        if backing_file(dev) == str(image):
            subprocess.run(["losetup", "-d", dev], capture_output=True)


# == fixtures ==========================================================================
@pytest.fixture
def make_device(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """make_device(size_mib) -> /dev/loopN (bare); unmounted and detached at the end."""
    with contextlib.ExitStack() as stack:

        def make(size_mib: int = 64, content: bytes | None = None) -> str:
            dev = stack.enter_context(loop_device(tmp_path, size_mib, content))
            stack.callback(_umount_all, dev)  # runs before the detach above
            return dev

        yield make


@pytest.fixture
def make_image(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """make_image(size_mib) -> sparse image file; any loop device of it is detached after."""
    with sparse_images(tmp_path, 64, _detach_loops_of) as make:
        yield make


@pytest.fixture
def targets(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """targets(name) -> a mount point path under tmp_path; unmounted at the end."""
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(tmp_path / "mnt" / name)
        return made[-1]

    try:
        yield make
    finally:
        for target in made:
            _umount_all(target=target)


def build(ctl: StorageController, name: str, overwrite: bool | None = None) -> None:
    ctl.build_pool(name, overwrite).wait(600)


# == the whole life of a pool, per filesystem ==========================================
@pytest.mark.parametrize("fmt", ["ext4", "xfs", "btrfs"])
def test_fs_pool_lifecycle(ctl, state_root, make_device, targets, fmt):
    dev = make_device(SIZES[fmt])
    target = targets("p")
    ctl.define_pool(fs_xml("p", dev, fmt, target))
    build(ctl, "p")
    rc, found = blkid(dev)
    assert rc == 0 and found["TYPE"] == fmt
    assert target.is_dir()

    # A rebuild without --overwrite is refused, and the device is untouched.
    before = head_hash(dev)
    for overwrite in (None, False):
        with pytest.raises(StateError, match=f"{dev} holds an? {fmt} filesystem; pass "
                                             "--overwrite"):
            build(ctl, "p", overwrite)
    assert head_hash(dev) == before

    ctl.start_pool("p")
    entry = mount_entry(target)
    assert entry is not None and entry["fstype"] == fmt and entry["source"] == dev
    assert {"nodev", "nosuid", "noexec"} <= set(entry["options"])
    info = ctl.pool_info("p")
    vfs = os.statvfs(target)
    assert info.state == "running"
    assert info.capacity == vfs.f_frsize * vfs.f_blocks
    assert info.available == vfs.f_frsize * vfs.f_bfree

    # Volumes live inside the mounted filesystem, exactly as in a dir pool.
    ctl.create_volume_def("p", VolumeDef(name="a.img", capacity=8 * MiB)).wait(60)
    ctl.create_volume_def("p", VolumeDef(name="b.qcow2", capacity=16 * MiB,
                                         target=VolumeTarget(format="qcow2"))).wait(60)
    ctl.clone_volume("p", "a.img", "a-copy.img").wait(60)
    assert os.stat(target / "a.img").st_dev == os.stat(target).st_dev
    assert (target / "a-copy.img").stat().st_size == 8 * MiB
    ctl.delete_volume("p", "b.qcow2")
    names = {v.name for v in ctl.list_volumes("p")}
    # exactly the volumes: an ext filesystem's own lost+found is not one
    assert names == {"a.img", "a-copy.img"}
    if (target / "lost+found").is_dir():
        with pytest.raises(VolumeNotFound):
            ctl.volume_info("p", "lost+found")

    # A restarted poolkeeper (new controller, same root) finds it active while mounted.
    with StorageController(state_root, create_default=False, autostart=False) as again:
        assert again.pool_info("p").state == "running"
        assert {"a.img", "a-copy.img"} <= {v.name for v in again.list_volumes("p")}
        again.stop_pool("p")
    assert mount_entry(target) is None
    assert not (target / "a.img").exists()  # the files stayed on the device
    assert ctl.pool_info("p").state == "inactive"

    ctl.start_pool("p")
    assert (target / "a.img").stat().st_size == 8 * MiB
    ctl.stop_pool("p")

    # Its filesystem still holds the volumes: refused, looked at without a change.
    before = head_hash(dev, SIZES[fmt])  # the whole device
    assert ctl.stored_volumes("p") == ["a-copy.img", "a.img"]
    with pytest.raises(StateError, match=r"still holds 2 volumes \(a-copy.img, a.img\).*"
                                         "pool-delete p --force"):
        ctl.delete_pool("p")
    assert head_hash(dev, SIZES[fmt]) == before
    assert blkid(dev)[1]["TYPE"] == fmt and mount_entry(target) is None
    ctl.delete_pool("p", force=True)
    assert blkid(dev)[0] == 2  # no signature left at all
    assert not target.exists()  # the empty mount point went too


def test_overwrite_replaces_the_filesystem(ctl, make_device, targets):
    dev = make_device(SIZES["btrfs"])
    target = targets("p")
    ctl.define_pool(fs_xml("p", dev, "ext4", target))
    build(ctl, "p")
    ctl.define_pool(fs_xml("p", dev, "btrfs", target))  # inactive: may be redefined
    build(ctl, "p", overwrite=True)
    rc, found = blkid(dev)
    assert rc == 0 and found["TYPE"] == "btrfs"
    assert [s.type for s in blockprobe.probe(dev).signatures] == ["btrfs"]  # no stale ext4
    ctl.start_pool("p")
    assert mount_entry(target)["fstype"] == "btrfs"
    ctl.stop_pool("p")


# == refusals before mkfs ==============================================================
def test_partition_table_and_lvm_signatures_refused(ctl, make_device, targets, tmp_path):
    gpt = make_device(32)
    subprocess.run(["parted", "-s", gpt, "mklabel", "gpt"], check=True, capture_output=True)
    lvm = make_device(32)
    conf = tmp_path / "lvm"
    conf.mkdir()
    # Private config: no activation (no device-mapper here), locks and hints under tmp_path.
    (conf / "lvm.conf").write_text(
        f'global {{ activation = 0 locking_dir = "{conf}" }}\n'
        'devices { obtain_device_list_from_udev = 0 hints = "none" }\n'
        'backup { backup = 0 archive = 0 }\n')
    subprocess.run(["pvcreate", "-ff", "-y", lvm], check=True, capture_output=True,
                   env=dict(os.environ, LVM_SYSTEM_DIR=str(conf)))
    for name, dev, what in (("g", gpt, "a gpt partition table"),
                            ("l", lvm, "an LVM2 physical volume")):
        ctl.define_pool(fs_xml(name, dev, "ext4", targets(name)))
        before = head_hash(dev)
        for overwrite in (None, False):
            with pytest.raises(StateError, match=f"{dev} holds {what}; pass --overwrite"):
                build(ctl, name, overwrite)
        assert head_hash(dev) == before
    build(ctl, "g", overwrite=True)
    assert blkid(gpt)[1]["TYPE"] == "ext4" and "PTTYPE" not in blkid(gpt)[1]


def test_label_is_named_in_the_refusal(ctl, make_device, targets):
    dev = make_device(32)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "guestdata", dev], check=True)
    ctl.define_pool(fs_xml("p", dev, "xfs", targets("p")))
    with pytest.raises(StateError, match=r"holds an ext4 filesystem \(label 'guestdata'\)"):
        build(ctl, "p")


def test_uncertain_probe_is_refused_without_overwrite(ctl, make_device, targets, monkeypatch):
    dev = make_device(32)
    ctl.define_pool(fs_xml("p", dev, "ext4", targets("p")))
    unreadable = blockprobe.Probe(dev, [], problem="cannot read it: Input/output error")
    monkeypatch.setattr(blockprobe, "probe", lambda device: unreadable)
    before = head_hash(dev)
    for overwrite in (None, False):
        with pytest.raises(StateError, match="cannot tell whether .* holds data"):
            build(ctl, "p", overwrite)
    assert head_hash(dev) == before


def test_mounted_device_refused_even_with_overwrite(ctl, loopfs, targets):  # noqa: F811
    mounted = loopfs("ext4", 32)
    target = targets("p")
    ctl.define_pool(fs_xml("p", mounted.device, "ext4", target))
    before = head_hash(mounted.device)
    with pytest.raises(InUse, match=f"mounted at {mounted.mount}"):
        build(ctl, "p", overwrite=True)
    with pytest.raises(InUse, match=f"already mounted at {mounted.mount}"):
        ctl.start_pool("p")
    assert head_hash(mounted.device) == before
    assert mount_entry(target) is None and ctl.pool_info("p").state == "inactive"


def test_device_held_open_refused_even_with_overwrite(ctl, make_device, targets):
    dev = make_device(32)
    ctl.define_pool(fs_xml("p", dev, "ext4", targets("p")))
    with open(dev, "rb") as fh:
        holder = subprocess.Popen(["sleep", "60"], stdin=fh)
    try:
        with pytest.raises(InUse, match=rf"open by sleep \(pid {holder.pid}\)"):
            build(ctl, "p", overwrite=True)
    finally:
        holder.kill()
        holder.wait()
    build(ctl, "p", overwrite=True)  # free now
    assert blkid(dev)[1]["TYPE"] == "ext4"


def test_missing_device_is_a_clear_error(ctl, targets):
    ctl.define_pool(fs_xml("p", "/dev/poolkeeper-no-such-disk", "ext4", targets("p")))
    for verb in (lambda: build(ctl, "p", True), lambda: ctl.start_pool("p")):
        with pytest.raises(StateError, match="/dev/poolkeeper-no-such-disk .*does not exist"):
            verb()


def test_missing_mkfs_names_the_package(ctl, make_device, targets, monkeypatch):
    dev = make_device(SIZES["xfs"])
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    ctl.define_pool(fs_xml("p", dev, "xfs", targets("p")))
    real = runner.tool_path

    def no_xfs(tool: str) -> str:
        if tool == "mkfs.xfs":
            raise ToolMissing(tool, runner.TOOL_PACKAGES.get(tool))
        return real(tool)

    monkeypatch.setattr(runner, "tool_path", no_xfs)
    before = head_hash(dev)
    with pytest.raises(ToolMissing, match="'mkfs.xfs' is not installed; install it with: "
                                          "apt-get install xfsprogs"):
        build(ctl, "p", overwrite=True)
    assert head_hash(dev) == before  # nothing was wiped before the tool was found missing


def test_auto_format_cannot_be_built(ctl, make_device, targets):
    dev = make_device(32)
    ctl.define_pool(fs_xml("p", dev, None, targets("p")))
    with pytest.raises(ValidationError, match="format 'auto'.*cannot build"):
        build(ctl, "p", True)


def test_start_on_a_blank_device_says_build_first(ctl, make_device, targets):
    dev = make_device(32)
    target = targets("p")
    ctl.define_pool(fs_xml("p", dev, "ext4", target))
    with pytest.raises(StateError, match=r"holds no filesystem; build the pool first "
                                         r"\(pool-build p\)"):
        ctl.start_pool("p")
    assert mount_entry(target) is None


def test_target_that_is_another_mount_point_is_refused(ctl, loopfs, make_device):  # noqa: F811
    other = loopfs("ext4", 32)
    dev = make_device(32)
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    ctl.define_pool(fs_xml("p", dev, "ext4", other.mount))
    with pytest.raises(StateError, match=f"{other.mount} is already a mount point"):
        ctl.start_pool("p")
    assert mount_entry(other.mount)["source"] == other.device


# == stop while busy ===================================================================
def test_stop_refused_while_a_volume_is_open(ctl, make_device, targets):
    dev = make_device(64)
    target = targets("p")
    ctl.define_pool(fs_xml("p", dev, "ext4", target))
    build(ctl, "p")
    ctl.start_pool("p")
    ctl.create_volume_def("p", VolumeDef(name="disk.img", capacity=4 * MiB)).wait(60)
    with open(target / "disk.img", "rb") as fh:
        guest = subprocess.Popen(["sleep", "60"], stdin=fh)
    try:
        with pytest.raises(InUse, match=rf"busy \(open by sleep \(pid {guest.pid}\)\)"):
            ctl.stop_pool("p")
        assert mount_entry(target) is not None
        assert ctl.pool_info("p").state == "running"
    finally:
        guest.kill()
        guest.wait()
    ctl.stop_pool("p")
    assert mount_entry(target) is None


# == mount options =====================================================================
def test_mount_options_are_allowed_and_safe_defaults_last(ctl, make_device, targets):
    dev = make_device(64)
    target = targets("p")
    ctl.define_pool(fs_xml("p", dev, "ext4", target, ("noatime", "nodiratime")))
    build(ctl, "p")
    seen: list[list[str]] = []
    unhook = runner.COMMAND_LOG.add_listener(lambda c: seen.append(c.argv))
    try:
        ctl.start_pool("p")
    finally:
        unhook()
    assert ["mount", "-o", "noatime,nodiratime,nodev,nosuid,noexec", "-t", "ext4", dev,
            str(target)] in seen
    options = set(mount_entry(target)["options"])
    assert {"noatime", "nodev", "nosuid", "noexec"} <= options
    ctl.stop_pool("p")


@pytest.mark.parametrize("option", ["exec", "suid", "dev", "defaults", "loop", "frobnicate"])
def test_unsafe_or_unknown_mount_options_refused(ctl, make_device, targets, option):
    dev = make_device(32)
    subprocess.run(["mkfs.ext4", "-q", "-F", dev], check=True)
    target = targets("p")
    seen: list[list[str]] = []
    unhook = runner.COMMAND_LOG.add_listener(lambda c: seen.append(c.argv))
    try:
        with pytest.raises(ValidationError, match=f"mount option '{option}'"):
            # refused at define (if the controller validates there) or at start
            ctl.define_pool(fs_xml("p", dev, "ext4", target, ("noatime", option)))
            ctl.start_pool("p")
    finally:
        unhook()
    assert not any(argv[0] == "mount" for argv in seen)
    assert mount_entry(target) is None


# == image files as the source =========================================================
def test_image_file_source_attaches_and_detaches(ctl, state_root, make_image, targets):
    image = make_image(64)
    target = targets("img")
    ctl.define_pool(fs_xml("img", str(image), "ext4", target))
    build(ctl, "img")
    assert loops_of(image) == []  # attached for mkfs only
    assert blkid(str(image))[1]["TYPE"] == "ext4"

    ctl.start_pool("img")
    [loop] = loops_of(image)
    assert mount_entry(target)["source"] == loop
    extras = json.loads((state_root / "run" / "img.json").read_text())
    assert extras["loop"]["device"] == loop and extras["loop"]["image"] == str(image)
    assert extras["loop"]["st_ino"] == image.stat().st_ino
    ctl.create_volume_def("img", VolumeDef(name="v", capacity=MiB)).wait(60)

    with StorageController(state_root, create_default=False, autostart=False) as again:
        assert again.pool_info("img").state == "running"
        again.stop_pool("img")
    assert mount_entry(target) is None
    assert wait_until(lambda: backing_file(loop) != str(image))
    assert loops_of(image) == []
    assert not (state_root / "run" / "img.json").exists()

    ctl.start_pool("img")  # and again: the volume is inside the image
    assert [v.name for v in ctl.list_volumes("img") if v.name == "v"] == ["v"]
    ctl.stop_pool("img")
    assert wait_until(lambda: loops_of(image) == [])
    with pytest.raises(StateError, match=r"still holds 1 volume \(v\)"):
        ctl.delete_pool("img")
    assert loops_of(image) == [] and blkid(str(image))[1]["TYPE"] == "ext4"
    ctl.delete_pool("img", force=True)
    assert blkid(str(image))[0] == 2


def test_reused_loop_number_is_never_detached(ctl, make_image, targets):
    image = make_image(64)
    target = targets("img")
    ctl.define_pool(fs_xml("img", str(image), "ext4", target))
    build(ctl, "img")
    ctl.start_pool("img")
    [loop] = loops_of(image)
    # Behind poolkeeper's back: unmount, detach, and attach the same image again at the
    # same number. Same path, same inode: only the loop's diskseq tells it is not ours.
    subprocess.run(["umount", str(target)], check=True)
    subprocess.run(["losetup", "-d", loop], check=True)
    assert wait_until(lambda: backing_file(loop) is None)
    reattached = subprocess.run(["losetup", loop, str(image)], capture_output=True)
    if reattached.returncode != 0:  # someone else took the number meanwhile: any will do
        subprocess.run(["losetup", "--find", str(image)], check=True)
    [other] = loops_of(image)
    assert ctl.pool_info("img").state == "inaccessible"
    ctl.stop_pool("img")
    assert backing_file(other) == str(image)  # left alone


def test_image_already_attached_elsewhere_is_refused(ctl, make_image, targets):
    image = make_image(64)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["losetup", "--find", str(image)], check=True)
    [loop] = loops_of(image)
    ctl.define_pool(fs_xml("img", str(image), "ext4", targets("img")))
    with pytest.raises(InUse, match=f"already attached as {loop}"):
        ctl.start_pool("img")
    with pytest.raises(InUse, match=f"attached as {loop}"):
        build(ctl, "img", overwrite=True)
    assert loops_of(image) == [loop]


# == discovery =========================================================================
def test_find_sources_lists_devices_with_a_filesystem(ctl, make_device):
    dev = make_device(32)
    blank = make_device(32)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "found", dev], check=True)
    xml = ctl.find_pool_sources("fs", device=dev)
    assert f'<device path="{dev}"/>' in xml and '<format type="ext4"/>' in xml
    everything = ctl.find_pool_sources("fs")
    assert f'<device path="{dev}"/>' in everything
    assert f'<device path="{blank}"/>' not in everything
    with pytest.raises(ValidationError):
        ctl.find_pool_sources("fs", host="example.com")


# == the CLI ===========================================================================
def test_cli_flow(cli, make_device, targets):
    dev = make_device(64)
    target = targets("c")
    r = cli("pool-define-as", "c", "fs", "--source-dev", dev, "--source-format", "ext4",
            "--target", str(target))
    assert r.code == 0, r
    r = cli("pool-build", "c")
    assert r.code == 0, r
    r = cli("pool-build", "c", "--no-overwrite")
    assert r.code == 1 and "holds an ext4 filesystem; pass --overwrite" in r.err, r
    r = cli("pool-start", "c")
    assert r.code == 0 and mount_entry(target)["source"] == dev, r
    r = cli("vol-create-as", "c", "v1", "10M")
    assert r.code == 0 and (target / "v1").stat().st_size == 10 * MiB, r
    r = cli("pool-destroy", "c")
    assert r.code == 0 and mount_entry(target) is None, r


def test_driver_refuses_hostile_values_without_running_anything(monkeypatch, tmp_path):
    """Definitions that did not come through xmlio are checked again by the driver."""
    from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice

    calls: list[list[str]] = []
    monkeypatch.setattr(fsdrv.runner, "run", lambda argv, **kw: calls.append(list(argv)))
    cases = [
        ("-oexec", [], "device path"),
        (str(tmp_path / "x,y"), [], "comma"),
        (str(tmp_path / "x\ny"), [], "control character"),
        (str(tmp_path / "d"), ["exec"], "mount option 'exec'"),
        (str(tmp_path / "d"), ["noatime,exec"], "one option per"),
    ]
    for device, opts, message in cases:
        pool = PoolDef(type="fs", name="h", source=PoolSource(devices=[SourceDevice(device)],
                                                              format="ext4"),
                       target=PoolTarget(path=str(tmp_path / "t")), mount_opts=opts)
        for verb in (lambda d: d.start(), lambda d: d.build(True, None), lambda d: d.delete()):
            with pytest.raises((ValidationError, PoolkeeperError), match=message):
                verb(fsdrv.FsDriver(pool))
    assert calls == []


# == blockprobe ========================================================================
def test_probe_names_every_signature_of_an_ambivalent_device(tmp_path):
    fat, both = tmp_path / "fat.img", tmp_path / "both.img"
    for image in (fat, both):
        with open(image, "wb") as fh:
            fh.truncate(32 * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "lin", str(both)], check=True)
    subprocess.run(["mkfs.vfat", "-I", str(fat)], check=True, capture_output=True)
    with open(fat, "rb") as src, open(both, "r+b") as dst:
        dst.write(src.read(512))  # a FAT boot sector in front of the ext4 superblock
    found = blockprobe.probe(str(both))
    assert {s.type for s in found.signatures} == {"vfat", "ext4"}
    assert found.problem and "several" in found.problem and not found.blank
    assert "an ext4 filesystem (label 'lin')" in blockprobe.signatures(str(both))


def test_mountinfo_escapes_are_decoded():
    line = ("36 35 98:0 / /mnt/with\\040space rw,noatime shared:1 - ext4 /dev/loop7 rw\n"
            "37 36 0:52 / /mnt/with\\040space rw - btrfs /dev/loop8 rw,space_cache=v2\n")
    table = blockprobe.parse_mountinfo(line)
    assert [m.target for m in table] == ["/mnt/with space"] * 2
    top = blockprobe.mount_at("/mnt/with space", table)
    assert top is not None and top.source == "/dev/loop8" and top.fstype == "btrfs"


def test_blank_image_start_fails_clearly_and_detaches(ctl, make_image, targets):
    image = make_image(32)
    target = targets("img")
    ctl.define_pool(fs_xml("img", str(image), "ext4", target))
    with pytest.raises(StateError, match="holds no filesystem; build the pool first"):
        ctl.start_pool("img")
    assert wait_until(lambda: loops_of(image) == [])
    assert mount_entry(target) is None and ctl.pool_info("img").state == "inactive"
