"""The live monitor (StorageController.poll: one round now) is change-driven:
  * a write elsewhere on the pool's filesystem (free space alone) says "sizes" and reads
    no volume (the pool has its own loop-mounted filesystem: no other writer shares it);
  * an entry made, written, renamed, chmod-ed or removed in the pool reads that entry
    only, and publishes what changed;
  * lost events (IN_Q_OVERFLOW) read the pool in full;
  * a pool whose directory cannot be watched is polled, and its poll backs off while
    nothing changes;
  * a stopped pool's watch goes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from backends import monitor as monitor_mod
from backends import watch
from backends.controller import StorageController
from backends.drivers.dir import DirDriver
from backends.events import PoolChanged, VolumesChanged
from tests.conftest import make_dir_pool
from tests.loopfs import loopfs  # noqa: F401  (the fixture)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every volume name a driver reads (a full refresh counts as '*')."""
    seen: list[str] = []
    real_volumes, real_refresh = DirDriver.refresh_volumes, DirDriver.refresh

    def counted(self: DirDriver, names: list[str]):  # type: ignore[no-untyped-def]
        seen.extend(names)
        return real_volumes(self, names)

    def refreshed(self: DirDriver):  # type: ignore[no-untyped-def]
        seen.append("*")
        return real_refresh(self)

    monkeypatch.setattr(DirDriver, "refresh_volumes", counted)
    monkeypatch.setattr(DirDriver, "refresh", refreshed)
    return seen


def _volumes(events: list[object]) -> list[VolumesChanged]:
    return [e for e in events if isinstance(e, VolumesChanged)]


def test_free_space_alone_updates_sizes_without_a_rescan(
        ctl: StorageController, loopfs, reads: list[str]) -> None:  # noqa: F811
    fs = loopfs("ext4", 64)
    images = make_dir_pool(ctl, "p", fs.mount / "images")
    for i in range(20):
        (images / f"v{i}.img").write_bytes(b"")
    ctl.poll()  # first sight: watch, then read it all
    reads.clear()
    events: list[object] = []
    ctl.subscribe(events.append)
    outside = fs.mount / "elsewhere.bin"  # same filesystem, not in the pool
    for _ in range(3):
        with open(outside, "ab") as fh:
            fh.write(b"x" * (1 << 20))
            fh.flush()
            os.fsync(fh.fileno())
        ctl.poll()
    assert reads == []  # not one volume read...
    assert ctl._monitor.full_scans == 0  # (our own start's listing was the first read)
    assert PoolChanged("p", "sizes") in events  # ...but the header's sizes follow
    assert _volumes(events) == []


def test_an_event_reads_only_the_entry_it_names(
        ctl: StorageController, pool: Path, reads: list[str]) -> None:
    for i in range(50):
        (pool / f"v{i}.img").write_bytes(b"")
    ctl.poll()
    reads.clear()
    events: list[object] = []
    ctl.subscribe(events.append)

    (pool / "new.img").write_bytes(b"\0" * 4096)
    ctl.poll()
    assert reads == ["new.img"]
    assert _volumes(events) == [VolumesChanged("p", added=("new.img",))]

    reads.clear()
    with open(pool / "v1.img", "ab") as fh:  # appended to: its allocation changes
        fh.write(b"y" * 8192)
    ctl.poll()
    assert reads == ["v1.img"]
    assert _volumes(events)[-1] == VolumesChanged("p", changed=("v1.img",))

    reads.clear()
    os.chmod(pool / "v2.img", 0o640)
    ctl.poll()
    assert reads == ["v2.img"]
    assert ctl.cached_volumes("p", ["v2.img"])[0].permissions.mode == 0o640

    reads.clear()
    os.rename(pool / "v3.img", pool / "w3.img")
    ctl.poll()
    assert sorted(reads) == ["v3.img", "w3.img"]
    assert _volumes(events)[-1] == VolumesChanged("p", added=("w3.img",), removed=("v3.img",))

    reads.clear()
    os.unlink(pool / "v4.img")
    ctl.poll()
    assert reads == ["v4.img"]
    assert _volumes(events)[-1] == VolumesChanged("p", removed=("v4.img",))
    assert ctl._monitor.full_scans == 0
    assert len(ctl.cached_volumes("p")) == 50


def test_writes_to_one_volume_are_read_at_most_every_modify_interval(
        ctl: StorageController, pool: Path, reads: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ctl.stop_pool("p")
    (pool / "log.img").write_bytes(b"")  # there before the start: the listing reads it
    ctl.start_pool("p")
    ctl.poll()
    monkeypatch.setattr(monitor_mod, "MODIFY_INTERVAL", 3600.0)
    reads.clear()
    mon = ctl._monitor
    with open(pool / "log.img", "ab") as fh:
        for _ in range(5):
            fh.write(b"z" * 4096)
            fh.flush()
            mon._round(force=False)  # as the thread runs it: limits apply
    assert reads == ["log.img"]  # the first write is read at once, the others wait
    assert "log.img" in mon._pools["p"].names  # ...and the last state is still to read
    ctl.poll()  # (a round with every check due)
    assert reads == ["log.img", "log.img"]
    assert ctl.cached_volumes("p", ["log.img"])[0].allocation >= 5 * 4096


def test_lost_events_read_the_pool_in_full(ctl: StorageController, pool: Path) -> None:
    ctl.poll()
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 40_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to overflow it")
    events: list[object] = []
    ctl.subscribe(events.append)
    for i in range(limit // 2 + 100):  # two events each (create, close_write)
        (pool / f"f{i}.img").write_bytes(b"")
    ctl.poll()
    assert ctl._monitor.full_scans == 1
    assert len(ctl.cached_volumes("p")) == limit // 2 + 100


def test_a_pool_that_cannot_be_watched_is_polled_with_backoff(
        ctl: StorageController, pool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_watch(self: watch.Watcher, dir_fd: int, mask: int = 0) -> int:
        raise OSError(28, "inotify_add_watch: No space left on device")

    ctl.stop_pool("p")
    monkeypatch.setattr(watch.Watcher, "add", no_watch)
    ctl.start_pool("p")
    ctl.poll()
    state = ctl._monitor._pools["p"]
    assert state.mode == "polled"
    steps = []
    for _ in range(5):
        ctl.poll()
        steps.append(state.step)
    assert steps == sorted(steps) and steps[-1] == monitor_mod.POLL_MAX  # backs off
    (pool / "late.img").write_bytes(b"")
    events: list[object] = []
    ctl.subscribe(events.append)
    ctl.poll()
    assert VolumesChanged("p", added=("late.img",)) in events  # a full rescan found it
    assert state.step == ctl._monitor.interval  # and the poll is quick again


def test_a_stopped_pool_loses_its_watch(ctl: StorageController, pool: Path) -> None:
    ctl.poll()
    mon = ctl._monitor
    assert mon._pools["p"].mode == "watched"
    ctl.stop_pool("p")
    ctl.poll()
    assert "p" not in mon._pools and mon._by_wd == {}
    (pool / "after.img").write_bytes(b"")
    ctl.poll()
    assert ctl.cached_volumes("p") == []


def test_an_unmounted_target_is_reported_inaccessible(
        ctl: StorageController, loopfs) -> None:  # noqa: F811
    fs = loopfs("ext4", 16)
    make_dir_pool(ctl, "p", fs.mount)
    ctl.poll()
    mon = ctl._monitor
    assert mon._pools["p"].mode == "watched"
    events: list[object] = []
    ctl.subscribe(events.append)
    # The watch pins nothing: the filesystem can be unmounted under the monitor.
    subprocess.run(["umount", str(fs.mount)], check=True, capture_output=True)
    ctl.poll()
    assert PoolChanged("p", "inaccessible") in events
    assert mon._by_wd == {}
    ctl.poll()
    assert events.count(PoolChanged("p", "inaccessible")) == 1  # said once


def test_a_pool_stopped_and_started_by_another_process_is_announced(
        ctl: StorageController, pool: Path, state_root: Path) -> None:
    ctl.poll()
    events: list[object] = []
    ctl.subscribe(events.append)
    with StorageController(state_root, create_default=False, autostart=False) as other:
        other.stop_pool("p")
        ctl.poll()
        # seen, not done here: the other process journals it for pool-event, not us
        seen_stop, seen_start = (PoolChanged("p", r, journal=False) for r in ("stopped",
                                                                               "started"))
        assert events == [seen_stop]
        other.start_pool("p")
    ctl.poll()
    assert events == [seen_stop, seen_start]
    assert len(ctl.cached_volumes("p")) == 0  # listed (an empty pool), watched again
    (pool / "x.img").write_bytes(b"")
    ctl.poll()
    assert events[-1] == VolumesChanged("p", added=("x.img",))


def test_a_start_of_our_own_is_not_announced_twice(ctl: StorageController, pool: Path) -> None:
    ctl.poll()
    ctl.stop_pool("p")
    ctl.poll()
    events: list[object] = []
    ctl.subscribe(events.append)
    ctl.start_pool("p")
    ctl.poll()
    # the streamed first listing says listing/listed; "started" comes once, from the start
    assert [e for e in events if isinstance(e, PoolChanged)] == [
        PoolChanged("p", "listing"), PoolChanged("p", "listed"), PoolChanged("p", "started")]


def test_our_own_listing_is_not_read_again(
        ctl: StorageController, pool: Path, reads: list[str]) -> None:
    for i in range(30):
        (pool / f"v{i}.img").write_bytes(b"")
    ctl.stop_pool("p")
    ctl.poll()
    ctl.start_pool("p")  # lists the 30 itself, the watch added before the first read
    reads.clear()
    for _ in range(3):
        ctl.poll()
    assert reads == []  # no file opened again after the listing
    assert ctl._monitor.full_scans == 0
    (pool / "new.img").write_bytes(b"")  # and the watch is there
    ctl.poll()
    assert reads == ["new.img"]
    assert len(ctl.cached_volumes("p")) == 31


def test_what_changes_while_our_listing_runs_is_seen(
        ctl: StorageController, pool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(10):
        (pool / f"v{i}.img").write_bytes(b"")
    ctl.stop_pool("p")  # and started again before the monitor's next round
    real = DirDriver.refresh_batches
    waits: list[float] = []

    def racing(self: DirDriver, batch: int = 4):  # type: ignore[no-untyped-def]
        for i, found in enumerate(real(self, batch)):
            yield found
            if i == 0:  # read already, then written to; one made, one removed
                with open(pool / found[0].name, "ab") as fh:
                    fh.write(b"x" * 8192)
                (pool / "late.img").write_bytes(b"")
                os.unlink(pool / found[-1].name)
                ctl._monitor._round(force=False)  # a round while it lists: nothing read
                waits.append(ctl._monitor._sleep_for())  # and no busy loop meanwhile

    monkeypatch.setattr(DirDriver, "refresh_batches", racing)
    ctl.start_pool("p")
    ctl.poll()
    names = {v.name: v for v in ctl.cached_volumes("p")}
    assert "late.img" in names
    assert len(names) == 10  # 10 + late - removed
    assert sum(v.allocation for v in names.values()) >= 8192
    assert ctl._monitor.full_scans == 0
    assert len(waits) == 1 and waits[0] > 0


def test_of_two_first_listings_one_lists_and_the_other_leaves_it_alone() -> None:
    """Two callers that both saw no listing (the TUI's and another refresh) each emptied
    the cache and began one: the second wiped the first one's batches. Checking and
    claiming is one step now."""
    from backends.events import EventBus
    from backends.model import VolumeInfo

    cache = monitor_mod.VolumeCache(EventBus())
    assert cache.begin_listing("p", first=True)
    cache.add_listed("p", [VolumeInfo(name="a.img", key="/p/a.img", path="/p/a.img")])
    assert not cache.begin_listing("p", first=True)  # the second caller: already listing
    assert [v.name for v in cache.volumes("p")] == ["a.img"]
    assert cache.listing("p")
