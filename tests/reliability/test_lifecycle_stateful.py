"""A stateful fuzz test of the volume lifecycle of a real dir pool, through StorageController.

Hypothesis runs random programs of: create raw/qcow2 volumes (through volume XML, random
valid names and sizes, sparse or allocated; and hostile names), clone, resize (grow,
shrink, allocate), wipe, delete, stop/start the pool, each followed by a refresh (the
listing in the invariants), against a model of what the pool should hold. Only our own
errors may come out, and only where the model expects one.

After every step (invariants):
  * the volume list equals the files in the target directory, which equal the model: no
    half-made or leftover file, nothing missing;
  * every volume's path is TARGET/NAME, and its realpath stays in the target;
  * every volume has the format recorded when it was made (wipe makes qcow2 raw), and its
    capacity is what the file says: raw -> st_size; qcow2 -> the virtual size in its header
    (bytes 24-31, read here without poolkeeper's prober), both equal to the model's;
  * allocation is what the file says: st_blocks * 512;
  * pool sizes come from statvfs of the filesystem the pool lives on, which other files
    share, so "capacity sums" means: capacity == allocation + available, available >= 0,
    and the sum of the volumes' allocations <= the pool's allocation (our blocks are part
    of the filesystem's used blocks); the sum of the volumes' capacities equals the sum the
    files state.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from backends import xmlio
from backends.controller import StorageController
from backends.errors import (
    AlreadyExists,
    InvalidName,
    PoolkeeperError,
    StateError,
    ValidationError,
    VolumeNotFound,
)
from backends.model import PoolDef, PoolTarget, VolumeDef, VolumeTarget
from backends.names import check_name

from .conftest import LONG

pytestmark = pytest.mark.fuzz
FUZZ = settings.get_profile("poolkeeper-fuzz")  # registered by conftest.py
KiB, MiB = 1024, 1 << 20
POOL = "fz"


def _valid(name: str) -> bool:
    try:
        check_name(name)
    except InvalidName:
        return False
    return True


names = st.text(st.sampled_from("abcXYZ019-_.+ é漢😀"), min_size=1, max_size=24).filter(_valid)
bad_names = st.sampled_from(["", ".", "..", "a/b", "../x", "/abs", "a\nb", "a\x00b", "\t",
                             "x" * 256, "é" * 128, ".poolkeeper-partial-x"])
capacities = st.integers(1, 8 * MiB) | st.sampled_from([1, 511, 512, 1023, KiB, MiB + 1])


@dataclass
class Vol:
    format: str
    capacity: int | None  # None: whatever the file's size is (a wiped qcow2 is raw now)


def qcow2_virtual_size(path: str) -> int:
    with open(path, "rb") as fh:
        head = fh.read(32)
    assert head[:4] == b"QFI\xfb", f"{path} is not a qcow2 image"
    return struct.unpack(">Q", head[24:32])[0]


def is_all_zero(path: str) -> bool:
    with open(path, "rb") as fh:
        while chunk := fh.read(MiB):
            if chunk.count(0) != len(chunk):
                return False
    return True


class LifecycleMachine(RuleBasedStateMachine):
    base: Path  # set by the test: a directory of its tmp_path
    programs = 0

    @initialize()
    def make_pool(self) -> None:
        LifecycleMachine.programs += 1
        self.tmp = Path(tempfile.mkdtemp(prefix="program-", dir=self.base))
        self.target = str(self.tmp / "images")
        self.ctl = StorageController(self.tmp / "state", create_default=False, autostart=False)
        self.ctl.define_pool_def(PoolDef(type="dir", name=POOL,
                                         target=PoolTarget(path=self.target)))
        self.ctl.build_pool(POOL).wait()
        self.ctl.start_pool(POOL)
        self.active = True
        self.model: dict[str, Vol] = {}

    def teardown(self) -> None:
        ctl = getattr(self, "ctl", None)
        if ctl is not None:
            ctl.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------------
    def expect(self, error: type[PoolkeeperError] | None, fn, *args, **kwargs):
        """Run a verb (waiting for its job); exactly the expected error, or none."""
        try:
            result = fn(*args, **kwargs)
            if hasattr(result, "wait"):
                result = result.wait(60)
        except PoolkeeperError as exc:
            assert error is not None and isinstance(exc, error), \
                f"{fn.__name__}{args}: unexpected {type(exc).__name__}: {exc}"
            assert str(exc).strip()
            return exc
        assert error is None, f"{fn.__name__}{args} did not raise {error.__name__}"
        return result

    def inactive_error(self) -> type[PoolkeeperError] | None:
        return None if self.active else StateError

    def pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.model)), label="volume")

    # -- rules -----------------------------------------------------------------------------
    @rule(name=names | names | bad_names, fmt=st.sampled_from(["raw", "qcow2"]),
          capacity=capacities, unit=st.sampled_from([None, "bytes", "b"]),
          allocation=st.none() | st.just(0) | st.integers(0, 8 * MiB))
    def create(self, name: str, fmt: str, capacity: int, unit: str | None,
               allocation: int | None) -> None:
        if allocation is not None:
            allocation = min(allocation, capacity)
        vdef = VolumeDef(name=name, capacity=capacity, allocation=allocation,
                         target=VolumeTarget(format=fmt))
        error = self.inactive_error()
        if not _valid(name):  # refused before any file is touched (the invariants check)
            self.expect(error or ValidationError, self.ctl.create_volume_def, POOL, vdef)
            return
        xml = xmlio.format_volume(vdef)
        if unit != "bytes":  # the unit attribute is read, whatever the writer chose
            xml = xml.replace("unit='bytes'", f"unit='{unit}'" if unit else "")
        error = error or (AlreadyExists if name in self.model else None)
        self.expect(error, self.ctl.create_volume, POOL, xml)
        if error is None:
            expected = capacity if fmt == "raw" else math.ceil(capacity / KiB) * KiB
            self.model[name] = Vol(fmt, expected)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), new=names)
    def clone(self, data: st.DataObject, new: str) -> None:
        src = self.pick(data)
        if not self.active:
            self.expect(StateError, self.ctl.clone_volume, POOL, src, new)
            return
        error = AlreadyExists if new in self.model else None
        self.expect(error, self.ctl.clone_volume, POOL, src, new)
        if error is None:
            source = self.model[src]
            self.model[new] = Vol(source.format, source.capacity)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), capacity=capacities, shrink=st.booleans(), allocate=st.booleans())
    def resize(self, data: st.DataObject, capacity: int, shrink: bool, allocate: bool) -> None:
        name = self.pick(data)
        if not self.active:
            self.expect(StateError, self.ctl.resize_volume, POOL, name, capacity)
            return
        vol = self.model[name]
        current = self.current_capacity(name)
        fmt = vol.format
        new = capacity if fmt == "raw" else (capacity + 511) // 512 * 512
        if capacity < current and not shrink:
            self.expect(ValidationError, self.ctl.resize_volume, POOL, name, capacity)
        elif allocate and fmt != "raw":
            self.expect(PoolkeeperError, self.ctl.resize_volume, POOL, name, capacity,
                        shrink=shrink, allocate=True)
        else:
            self.expect(None, self.ctl.resize_volume, POOL, name, capacity, shrink=shrink,
                        allocate=allocate)
            vol.capacity = new

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def wipe(self, data: st.DataObject) -> None:
        name = self.pick(data)
        self.expect(self.inactive_error(), self.ctl.wipe_volume, POOL, name, "zero")
        if self.active:
            assert is_all_zero(os.path.join(self.target, name))
            if self.model[name].format != "raw":
                self.model[name] = Vol("raw", None)  # its bytes are no image any more

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = self.pick(data)
        self.expect(self.inactive_error(), self.ctl.delete_volume, POOL, name)
        if self.active:
            del self.model[name]
            self.expect(VolumeNotFound, self.ctl.volume_info, POOL, name)

    @precondition(lambda self: self.active)
    @rule()
    def stop(self) -> None:
        self.ctl.stop_pool(POOL)
        self.active = False

    @precondition(lambda self: not self.active)
    @rule()
    def start(self) -> None:
        self.ctl.start_pool(POOL)
        self.active = True

    # -- invariants ------------------------------------------------------------------------
    def current_capacity(self, name: str) -> int:
        vol = self.model[name]
        path = os.path.join(self.target, name)
        if vol.format == "qcow2":
            return qcow2_virtual_size(path)
        return os.stat(path).st_size

    @invariant()
    def files_are_the_model(self) -> None:
        assert sorted(os.listdir(self.target)) == sorted(self.model)

    @invariant()
    def listing_matches_the_files(self) -> None:
        if not self.active:
            return
        volumes = self.ctl.list_volumes(POOL)
        assert sorted(v.name for v in volumes) == sorted(self.model)
        real_target = os.path.realpath(self.target)
        total_capacity = total_allocation = 0
        for v in volumes:
            assert v.path == os.path.join(self.target, v.name)
            assert os.path.dirname(os.path.realpath(v.path)) == real_target
            assert v.error is None and v.symlink is None
            model = self.model[v.name]
            assert (v.format, v.format_recorded) == (model.format, True), v
            st_ = os.stat(v.path)
            on_disk = self.current_capacity(v.name)
            assert v.capacity == on_disk, v
            if model.capacity is not None:
                assert v.capacity == model.capacity, (v, model)
            else:
                assert v.capacity == st_.st_size
            assert v.allocation == st_.st_blocks * 512, v
            total_capacity += on_disk
            total_allocation += v.allocation
        assert sum(v.capacity for v in volumes) == total_capacity
        info = self.ctl.pool_info(POOL)
        assert info.state == "running"
        assert info.capacity == info.allocation + info.available
        assert info.available >= 0
        assert total_allocation <= info.allocation, (total_allocation, info)


def test_pool_and_volume_lifecycle(tmp_path: Path, record_property) -> None:
    LifecycleMachine.base = tmp_path
    LifecycleMachine.programs = 0
    run_state_machine_as_test(LifecycleMachine, settings=settings(
        FUZZ, max_examples=50 if LONG else 20, stateful_step_count=50 if LONG else 25))
    record_property("fuzz_examples", LifecycleMachine.programs)
    assert not list(tmp_path.iterdir()), "every program cleans up after itself"
