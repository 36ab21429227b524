"""dir pools end to end through the controller, with the real tools on real files."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from backends.errors import (
    AlreadyExists,
    InsufficientSpace,
    InUse,
    InvalidSize,
    PoolkeeperError,
    UnsafePath,
    ValidationError,
)
from backends.model import (
    BackingStore,
    Permissions,
    PoolDef,
    PoolTarget,
    VolumeDef,
    VolumeInfo,
    VolumeTarget,
)
from tests.conftest import make_dir_pool, needs_root

MiB = 1 << 20
GiB = 1 << 30


def qemu_info(path: Path, fmt: str) -> dict:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-f", fmt, str(path)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def create(ctl, name, capacity, pool="p", **kw):
    fmt = kw.pop("format", None)
    backing = kw.pop("backing", None)
    vdef = VolumeDef(name=name, capacity=capacity, target=VolumeTarget(format=fmt),
                     backing=backing, **kw)
    return ctl.create_volume_def(pool, vdef).wait(120)


# == build / start / delete =============================================================
@needs_root
def test_build_applies_target_permissions(ctl, tmp_path):
    target = tmp_path / "deep" / "perm"
    ctl.define_pool_def(PoolDef(type="dir", name="perm", target=PoolTarget(
        path=str(target), permissions=Permissions(mode=0o750, owner=1234, group=4321))))
    ctl.build_pool("perm").wait()
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o750 and (st.st_uid, st.st_gid) == (1234, 4321)
    ctl.start_pool("perm")
    assert "<mode>0750</mode>" in ctl.pool_xml("perm")


def test_start_without_build_says_to_build(ctl, tmp_path):
    ctl.define_pool_def(PoolDef(type="dir", name="nb", target=PoolTarget(
        path=str(tmp_path / "missing"))))
    with pytest.raises(PoolkeeperError, match="pool-build nb"):
        ctl.start_pool("nb")
    assert ctl.pool_info("nb").state == "inactive"


# == create =============================================================================
def test_raw_sparse_and_fully_allocated(ctl, pool):
    create(ctl, "sparse.img", 64 * MiB, allocation=0)
    create(ctl, "full.img", 64 * MiB)
    create(ctl, "part.img", 64 * MiB, allocation=16 * MiB)
    sparse, full, part = (os.stat(pool / n) for n in ("sparse.img", "full.img", "part.img"))
    assert sparse.st_size == full.st_size == part.st_size == 64 * MiB
    assert sparse.st_blocks * 512 < MiB
    assert full.st_blocks * 512 >= 64 * MiB
    assert 16 * MiB <= part.st_blocks * 512 < 64 * MiB
    assert stat.S_IMODE(full.st_mode) == 0o600
    vols = {v.name: v for v in ctl.list_volumes("p")}
    assert vols["full.img"].allocation == full.st_blocks * 512
    assert vols["sparse.img"].format == "raw" and vols["sparse.img"].capacity == 64 * MiB


def test_listed_volumes_share_permissions_that_cannot_be_changed_in_place(ctl, pool):
    """A listing shares one Permissions per (mode, owner, group): were it mutable, changing
    one volume's would change every volume's with the same owners."""
    create(ctl, "a.img", MiB)
    create(ctl, "b.img", MiB)
    vols = {v.name: v for v in ctl.list_volumes("p")}
    perms = vols["a.img"].permissions
    assert perms is not None and perms == vols["b.img"].permissions
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        perms.mode = 0o777  # type: ignore[misc]
    assert vols["b.img"].permissions.mode == 0o600


@pytest.mark.parametrize("fmt", ["qcow2", "qcow", "qed", "vmdk", "vpc", "vdi"])
def test_image_formats_via_qemu_img(ctl, pool, fmt):
    create(ctl, f"v.{fmt}", 100 * MiB, format=fmt)
    info = qemu_info(pool / f"v.{fmt}", fmt)
    assert info["format"] == fmt
    vol = ctl.volume_info("p", f"v.{fmt}")
    assert vol.format == fmt and vol.probed_format == fmt
    # our header probe and qemu-img agree on the virtual size
    assert vol.capacity == info["virtual-size"]


def test_qcow2_with_backing_volume_from_another_pool(ctl, pool, tmp_path):
    make_dir_pool(ctl, "base", tmp_path / "base")
    create(ctl, "base.img", 32 * MiB, pool="base", allocation=0)
    base_path = str(tmp_path / "base" / "base.img")
    vol = create(ctl, "overlay.qcow2", 0, backing=BackingStore(path=base_path),
                 format="qcow2")
    info = qemu_info(pool / "overlay.qcow2", "qcow2")
    assert info["backing-filename"] == base_path
    assert info["backing-filename-format"] == "raw"
    assert vol.capacity == 32 * MiB and vol.backing.path == base_path
    # the base cannot be deleted while an overlay uses it
    ctl.list_volumes("p")
    with pytest.raises(InUse, match="backing store of 'overlay.qcow2'"):
        ctl.delete_volume("base", "base.img")


def test_backing_outside_pools_or_remote_is_refused(ctl, pool, tmp_path):
    outside = tmp_path / "outside.img"
    outside.write_bytes(b"\0" * MiB)
    for path in (str(outside), "json:{\"file.filename\":\"/etc/shadow\"}", "nbd://127.0.0.1/x"):
        with pytest.raises((PoolkeeperError, ValidationError)):
            create(ctl, "o.qcow2", MiB, backing=BackingStore(path=path, format="raw"),
                   format="qcow2")
    assert not (pool / "o.qcow2").exists()


def test_existing_name_is_refused(ctl, pool):
    create(ctl, "v", MiB, allocation=0)
    with pytest.raises(AlreadyExists):
        create(ctl, "v", MiB, allocation=0)


def test_allocation_past_free_space_refused_before_writing(ctl, pool):
    available = ctl.pool_info("p").available
    with pytest.raises(InsufficientSpace, match="available"):
        create(ctl, "huge", available + GiB)
    assert not (pool / "huge").exists()
    # a sparse volume may overcommit, with a warning
    job = ctl.create_volume_def("p", VolumeDef(name="thin", capacity=available + GiB,
                                               allocation=0))
    job.wait(60)
    assert any("overcommits" in w for w in job.warnings)
    assert os.stat(pool / "thin").st_size == available + GiB


def test_capacity_zero_is_an_empty_file_and_garbage_is_refused(ctl, pool):
    create(ctl, "zero", 0)  # as libvirt makes it (and lists an empty file)
    assert (pool / "zero").stat().st_size == 0
    with pytest.raises(PoolkeeperError):
        ctl.create_volume("p", "<volume><name>g</name><capacity>-1</capacity></volume>")
    assert not (pool / "g").exists()


# == refresh ============================================================================
def test_refresh_lists_odd_entries_with_reasons(ctl, pool):
    os.symlink("nowhere", pool / "dangling")
    os.symlink("loop", pool / "loop")
    os.mkfifo(pool / "fifo")
    (pool / "bad\x01name").write_bytes(b"x")
    (pool / "ok.img").write_bytes(b"\0" * 4096)
    vols = {v.name: v for v in ctl.list_volumes("p")}
    assert "fifo" not in vols  # never opened: a FIFO would block the refresh
    assert "dangling symlink" in vols["dangling"].error
    assert vols["loop"].error  # ELOOP: listed with the reason, not dropped
    assert "control character" in vols["bad\x01name"].error
    assert vols["ok.img"].error is None and vols["ok.img"].capacity == 4096


def test_recorded_format_wins_over_a_forged_header(ctl, pool, tmp_path):
    """A guest writes a qcow2 header pointing at /etc/shadow into its raw disk."""
    create(ctl, "guest.img", 16 * MiB, allocation=0)
    forged = tmp_path / "forged.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", "-u", "-b", "/etc/shadow", "-F", "raw",
                    str(forged), "1G"], check=True, capture_output=True)
    header = forged.read_bytes()[:4096]
    with open(pool / "guest.img", "r+b") as fh:
        fh.write(header)
    vol = ctl.volume_info("p", "guest.img")
    assert vol.probed_format == "qcow2"
    assert vol.format == "raw" and vol.capacity == 16 * MiB and vol.backing is None
    xml = ctl.volume_xml("p", "guest.img")
    assert "<format type=\"raw\"/>" in xml.replace("'", '"') and "shadow" not in xml


# == clone ==============================================================================
def test_clone_sparse_copy_keeps_holes_and_source(ctl, pool):
    create(ctl, "src.img", 256 * MiB, allocation=0)
    with open(pool / "src.img", "r+b") as fh:
        for i in range(0, 256, 32):
            fh.seek(i * MiB)
            fh.write(os.urandom(MiB))
    before = (sha(pool / "src.img"), os.stat(pool / "src.img").st_mtime_ns)
    method = ctl.clone_volume("p", "src.img", "copy.img").wait(120)
    assert method in ("reflink", "sparse-copy")
    assert sha(pool / "copy.img") == before[0]
    assert (sha(pool / "src.img"), os.stat(pool / "src.img").st_mtime_ns) == before
    assert os.stat(pool / "copy.img").st_blocks * 512 < 64 * MiB  # holes stayed holes


def test_clone_to_other_format_uses_qemu_img_convert(ctl, pool):
    create(ctl, "src.img", 8 * MiB, allocation=0)
    with open(pool / "src.img", "r+b") as fh:
        fh.write(b"poolkeeper" * 100)
    vdef_xml = ("<volume><name>conv.qcow2</name><capacity>8388608</capacity>"
                "<target><format type='qcow2'/></target></volume>")
    method = ctl.clone_volume("p", "src.img", "conv.qcow2", xml=vdef_xml).wait(120)
    assert method == "qemu-img convert"
    assert qemu_info(pool / "conv.qcow2", "qcow2")["format"] == "qcow2"
    subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(pool / "src.img"),
                    str(pool / "conv.qcow2")], check=True, capture_output=True)


def test_clone_xml_without_a_capacity_takes_the_source_size(ctl, pool):
    """As vol-create-from in libvirt: the clone's XML may leave the size to the source."""
    create(ctl, "src.img", 8 * MiB, allocation=0)
    xml = "<volume><name>x</name><target><format type='qcow2'/></target></volume>"
    ctl.clone_volume("p", "src.img", "sized.qcow2", xml=xml).wait(120)
    assert qemu_info(pool / "sized.qcow2", "qcow2")["virtual-size"] == 8 * MiB
    with pytest.raises(InvalidSize, match="missing <capacity>"):
        ctl.create_volume("p", xml)  # a new volume still needs one


@needs_root
def test_clone_is_a_reflink_on_xfs(ctl, tmp_path):
    from tests.loopfs import loop_filesystem

    with loop_filesystem(tmp_path, "xfs", 400) as fs:
        make_dir_pool(ctl, "x", fs.mount / "images")
        create(ctl, "src.img", 64 * MiB, pool="x")
        method = ctl.clone_volume("x", "src.img", "clone.img").wait(60)
        assert method == "reflink"
        ctl.stop_pool("x")


# == delete =============================================================================
def test_delete_symlink_removes_only_the_link(ctl, pool, tmp_path):
    outside = tmp_path / "precious"
    outside.write_bytes(b"keep me")
    os.symlink(outside, pool / "link")
    with pytest.raises(UnsafePath):
        ctl.wipe_volume("p", "link").wait(30)
    ctl.delete_volume("p", "link")
    assert not os.path.lexists(pool / "link")
    assert outside.read_bytes() == b"keep me"


# == wipe ===============================================================================
def test_wipe_zero_random_trim(ctl, pool):
    create(ctl, "w.img", 8 * MiB)
    with open(pool / "w.img", "r+b") as fh:
        fh.write(os.urandom(8 * MiB))
    ctl.wipe_volume("p", "w.img", "zero").wait(60)
    assert (pool / "w.img").read_bytes() == bytes(8 * MiB)
    assert os.stat(pool / "w.img").st_blocks * 512 >= 8 * MiB  # still allocated
    ctl.wipe_volume("p", "w.img", "random").wait(60)
    first = (pool / "w.img").read_bytes()
    assert first != bytes(8 * MiB)
    ctl.wipe_volume("p", "w.img", "trim").wait(60)
    assert os.stat(pool / "w.img").st_size == 8 * MiB
    assert (pool / "w.img").read_bytes() == bytes(8 * MiB)


def test_wipe_with_scrub_pattern(ctl, pool):
    create(ctl, "s.img", MiB)
    (pool / "s.img").write_bytes(b"\x42" * MiB)
    ctl.wipe_volume("p", "s.img", "nnsa").wait(120)
    assert (pool / "s.img").read_bytes() != b"\x42" * MiB
    with pytest.raises(ValidationError, match="unknown wipe algorithm"):
        ctl.wipe_volume("p", "s.img", "shred")


# == resize =============================================================================
def test_resize_raw_grow_shrink_allocate_delta(ctl, pool):
    create(ctl, "r.img", 16 * MiB, allocation=0)
    info = ctl.resize_volume("p", "r.img", 32 * MiB).wait(60)
    assert info.capacity == 32 * MiB == os.stat(pool / "r.img").st_size
    with pytest.raises(ValidationError, match="--shrink"):
        ctl.resize_volume("p", "r.img", 8 * MiB)
    assert os.stat(pool / "r.img").st_size == 32 * MiB
    ctl.resize_volume("p", "r.img", 8 * MiB, shrink=True).wait(60)
    assert os.stat(pool / "r.img").st_size == 8 * MiB
    ctl.resize_volume("p", "r.img", 8 * MiB, delta=True, allocate=True).wait(60)
    st = os.stat(pool / "r.img")
    assert st.st_size == 16 * MiB and st.st_blocks * 512 >= 8 * MiB


def test_resize_qcow2_uses_qemu_img(ctl, pool):
    create(ctl, "q.qcow2", 16 * MiB, format="qcow2")
    ctl.resize_volume("p", "q.qcow2", 48 * MiB).wait(60)
    assert qemu_info(pool / "q.qcow2", "qcow2")["virtual-size"] == 48 * MiB
    assert ctl.volume_info("p", "q.qcow2").capacity == 48 * MiB


# == upload / download ==================================================================
def test_upload_and_download_with_offset_length_and_sparse(ctl, pool, tmp_path):
    create(ctl, "u.img", 16 * MiB, allocation=0)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(MiB))
    assert ctl.upload_volume("p", "u.img", str(payload), offset=4 * MiB).wait(60) == MiB
    data = (pool / "u.img").read_bytes()
    assert data[4 * MiB:5 * MiB] == payload.read_bytes() and data[:4 * MiB] == bytes(4 * MiB)
    out = tmp_path / "out.img"
    ctl.download_volume("p", "u.img", str(out), sparse=True).wait(60)
    assert out.read_bytes() == data
    assert os.stat(out).st_blocks * 512 < 4 * MiB  # holes kept
    part = tmp_path / "part.img"
    ctl.download_volume("p", "u.img", str(part), offset=4 * MiB, length=MiB).wait(60)
    assert part.read_bytes() == payload.read_bytes()
    with pytest.raises(ValidationError, match="do not fit"):
        ctl.upload_volume("p", "u.img", str(payload), offset=16 * MiB).wait(60)


def test_convert_clone_reports_progress_and_cancel_removes_it(ctl, pool):
    from backends.errors import Cancelled
    from backends.events import JobProgress

    # big enough that the conversion outlasts the 0.1 s between progress events
    create(ctl, "big.img", 768 * MiB)
    with open(pool / "big.img", "r+b") as fh:
        for _ in range(48):
            fh.write(b"\x01" * (16 * MiB))
    seen: list[tuple[int, int]] = []

    def on_event(event):
        if isinstance(event, JobProgress) and event.job.kind == "clone":
            seen.append((event.job.done, event.job.total))

    unsubscribe = ctl.subscribe(on_event)
    xml = ("<volume><name>big.qcow2</name><capacity>1</capacity>"
           "<target><format type='qcow2'/></target></volume>")
    ctl.clone_volume("p", "big.img", "big.qcow2", xml=xml).wait(120)
    assert any(0 < done < total for done, total in seen), seen
    unsubscribe()

    def cancel_on_progress(event):
        if isinstance(event, JobProgress) and event.job.kind == "clone":
            event.job.cancel()

    ctl.subscribe(cancel_on_progress)
    xml = xml.replace("big.qcow2", "again.qcow2")
    with pytest.raises(Cancelled):
        ctl.clone_volume("p", "big.img", "again.qcow2", xml=xml).wait(120)
    assert not (pool / "again.qcow2").exists()


@needs_root
def test_image_spec_names_a_block_device_backing_by_the_host_device_driver(tmp_path):
    """qemu's 'file' driver refuses a block device: a backing LV or partition needs
    host_device (the node is only stat'ed here, never opened)."""
    import json as json_mod

    from backends.drivers.dir import image_spec

    node = tmp_path / "blk"
    os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    plain = tmp_path / "base.img"
    plain.write_bytes(b"")
    image = tmp_path / "o.qcow2"  # image_spec reads its header again from the fd
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"], check=True)
    fd = os.open(image, os.O_RDONLY)
    try:
        specs = []
        for backing in (node, plain):
            store = BackingStore(path=str(backing), format="raw")
            vol = VolumeInfo(name="o.qcow2", key="k", path=str(tmp_path / "o.qcow2"),
                             format="qcow2", backing=store, backing_chain=[store])
            specs.append(json_mod.loads(image_spec(vol, fd).removeprefix("json:")))
    finally:
        os.close(fd)
    for spec, backing, driver in zip(specs, (node, plain), ("host_device", "file"),
                                     strict=True):
        assert spec["file"] == {"driver": "file", "filename": f"/dev/fd/{fd}"}
        assert spec["backing"] == {"driver": "raw", "backing": None,
                                   "file": {"driver": driver, "filename": str(backing)}}
