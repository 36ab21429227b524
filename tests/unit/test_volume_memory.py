"""A listed volume holds little: 100,000 of them must fit the TUI in 200 MB (issue 15
item 3). Empty lists are one shared list, the stat tuples share their numbers; what the
fields say is unchanged."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.model import NO_ITEMS, VolumeInfo


def test_volumes_without_extents_share_one_empty_list() -> None:
    a = VolumeInfo(name="a", key="/a", path="/a")
    b = VolumeInfo(name="b", key="/b", path="/b")
    assert a.extents == [] and a.extent_files == [] and isinstance(a.extents, list)
    assert a.extents is b.extents is a.extent_files is NO_ITEMS
    with pytest.raises(TypeError, match="assign a new list"):
        a.extents.append(("/dev/x", []))
    assert b.extents == []  # nothing leaked into the other volume
    a.extents = [("/dev/x", [])]  # assigning works as before
    assert b.extents == [] and replace(a).extents == [("/dev/x", [])]
    assert json.loads(json.dumps(asdict(b)))["extent_files"] == []


def test_a_listing_shares_empty_lists_and_stat_numbers(
        ctl: StorageController, pool: Path) -> None:
    for i in range(3):
        (pool / f"v{i}.img").write_bytes(b"\0" * 4096)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(pool / "q.qcow2"), "1G"],
                   check=True)
    volumes = {v.name: v for v in ctl.refresh_pool("p")}
    raw, qcow2 = volumes["v0.img"], volumes["q.qcow2"]
    assert raw.extent_files is qcow2.extent_files is raw.extents is NO_ITEMS
    assert qcow2.features == [] and qcow2.features is NO_ITEMS  # a probed header, no flags
    assert raw.signature[3] is raw.times_ns[1]  # one mtime, not two equal ints
    assert raw.file_id is not None and raw.file_id[0] is raw.signature[0]  # one inode
    assert raw.signature[3] == raw.times_ns[1] and raw.physical == raw.signature[1] == 4096
    assert raw.stamped().mtime is not None
    other = volumes["v1.img"]  # of the same size: the same int objects
    assert other.capacity is raw.capacity and other.allocation is raw.allocation
