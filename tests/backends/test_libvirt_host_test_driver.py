"""LibvirtHostController's API shape on libvirt's test driver (test:///default, in this
process, no daemon): pool ids, a listing that comes pending and is filled in batches
(probe_first's names first), pool events from libvirt's event loop, the monitor's look
at volumes another connection made, jobs, the checks' refusals, the guests that use a
volume, and the extent bar's layout from real libvirtd XML (tests/data/xml/virsh).

The test driver's state lives while a connection to it is open: each test holds its
controller (and makes its own names), and the state starts afresh once all are closed.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.errors import PoolkeeperError, PoolNotFound, StateError
from backends.events import Event, JobFinished, PoolChanged, VolumesChanged
from backends.libvirt_controller import LibvirtController
from backends.libvirt_host import LibvirtHostController, device_layouts
from backends.libvirt_host_listing import BATCH
from backends.model import PoolDef, PoolTarget, VolumeDef

try:
    import libvirt  # noqa: F401

    MISSING = None
except ImportError:
    MISSING = "libvirt-python is not installed (pip install -e '.[libvirt]')"
pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))

URI = "test:///default"
POOL = "default-pool@t"  # the test driver's one pool, as the controller named 't' calls it
DATA = Path(__file__).resolve().parents[1] / "data" / "xml" / "virsh"


class Recorder:
    """The events a controller published, waited for by predicate."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait(self, pred: Callable[[list[Event]], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (found := pred(self.events)):
                left = deadline - time.monotonic()
                assert left > 0, f"not seen in {timeout} s; events: {self.events[-20:]}"
                self._cond.wait(left)
        return found

    def pool_reasons(self, pool: str) -> list[str]:
        return [e.reason for e in self.events if isinstance(e, PoolChanged) and e.pool == pool]

    def changed(self, pool: str) -> list[str]:
        return [n for e in self.events if isinstance(e, VolumesChanged) and e.pool == pool
                for n in e.changed]


@pytest.fixture
def host() -> Iterator[LibvirtHostController]:
    ctl = LibvirtHostController(URI, "t")
    try:
        yield ctl
    finally:
        ctl.close()


@pytest.fixture
def other() -> Iterator[Any]:
    """Another client of the same test driver (libvirt-python, no poolkeeper)."""
    lc = LibvirtController(URI)
    try:
        yield lc.connection.conn
    finally:
        lc.close()


def make_volumes(conn: Any, count: int, prefix: str, size: int = 1 << 20) -> list[str]:
    pool = conn.storagePoolLookupByName("default-pool")
    names = [f"{prefix}{i:04d}" for i in range(count)]
    for name in names:
        pool.createXML(f"<volume><name>{name}</name><capacity>{size}</capacity></volume>", 0)
    return names


def test_pools_are_named_by_id_and_plain_names_are_refused(host: LibvirtHostController,
                                                             other: Any) -> None:
    assert [p.name for p in host.list_pools()] == [POOL]
    status = host.pool_info(POOL)
    assert (status.name, status.type, status.state) == (POOL, "dir", "running")
    assert status.features is not None and status.features.volumes_are_files
    assert host.plain(POOL) == "default-pool" and host.qualify("x") == "x@t"
    with pytest.raises(PoolNotFound, match="no pool of connection 't'"):
        host.pool_info("default-pool")  # a plain name is not an id of this connection
    with pytest.raises(PoolNotFound):
        host.plain("@t")
    # a libvirt pool whose own name holds '@' (only the suffix is stripped)
    host.define_pool("<pool type='dir'><name>a@t</name><target><path>/a</path></target>"
                     "</pool>")
    assert host.pool_info("a@t@t").name == "a@t@t"
    assert "<name>a@t</name>" in host.pool_xml("a@t@t")  # definitions name it plainly
    assert host.pool_def("a@t@t").name == "a@t"
    host.undefine_pool("a@t@t")
    with pytest.raises(PoolNotFound):
        host.pool_info("a@t@t")


def test_without_a_name_pools_are_plain(other: Any) -> None:
    ctl = LibvirtHostController(URI)
    try:
        assert [p.name for p in ctl.list_pools()] == ["default-pool"]
        assert ctl.plain("default-pool") == "default-pool"
        assert ctl.lost() is None
    finally:
        ctl.close()


def test_a_listing_comes_pending_and_is_filled_in_batches(host: LibvirtHostController,
                                                          other: Any) -> None:
    count = 2 * BATCH + 50
    names = make_volumes(other, count, "v", size=3 << 20)
    seen = Recorder()
    host.subscribe(seen)
    wanted = names[-3:]  # the rows "on screen": read first
    host.probe_first(POOL, wanted)
    rows = host.list_volumes(POOL)
    assert sorted(r.name for r in rows) == names
    assert all(r.key == f"/default-pool/{r.name}" for r in rows)
    seen.wait(lambda ev: len(set(seen.changed(POOL))) == count)
    batches = [e.changed for e in seen.events if isinstance(e, VolumesChanged) and e.changed]
    assert len(batches) >= 3 and max(map(len, batches)) <= BATCH  # one call per batch
    assert set(wanted) <= set(batches[0])  # probe_first's names came in the first batch
    filled = host.cached_volumes(POOL)
    assert len(filled) == count
    assert all(not v.pending and v.capacity == 3 << 20 and v.format == "raw" for v in filled)
    assert {r.name: id(r) for r in rows} == {v.name: id(v) for v in filled}  # filled in place


def test_new_rows_are_pending_until_read(host: LibvirtHostController, other: Any) -> None:
    make_volumes(other, 1, "o")
    seen = Recorder()
    host.subscribe(seen)
    host.list_volumes(POOL)
    seen.wait(lambda ev: "o0000" in seen.changed(POOL))
    make_volumes(other, 3, "p")
    snapshots = []

    def snapshot(event: Event) -> None:  # published by the listing, before any is read
        if isinstance(event, VolumesChanged) and event.added:
            snapshots.append(sorted((v.name, v.pending, v.capacity, v.format)
                                    for v in host.cached_volumes(POOL)))
    host.subscribe(snapshot)
    rows = host.list_volumes(POOL)
    assert len(rows) == 4
    assert snapshots[0] == [("o0000", False, 1 << 20, "raw"),
                            *[(f"p{i:04d}", True, 0, "") for i in range(3)]]
    seen.wait(lambda ev: {"p0000", "p0001", "p0002"} <= set(seen.changed(POOL)))
    assert all(not v.pending for v in host.cached_volumes(POOL))


def test_pool_events_come_from_libvirt(host: LibvirtHostController, other: Any) -> None:
    seen = Recorder()
    host.subscribe(seen)
    host.define_pool_def(PoolDef(type="dir", name="ev", target=PoolTarget(path="/ev")))
    host.start_pool("ev@t")
    host.stop_pool("ev@t")
    other.storagePoolLookupByName("ev").create(0)  # another client: still heard
    other.storagePoolLookupByName("ev").refresh(0)
    other.storagePoolLookupByName("ev").destroy()
    host.undefine_pool("ev@t")
    expected = ["defined", "started", "stopped", "started", "refreshed", "stopped",
                "undefined"]
    seen.wait(lambda ev: seen.pool_reasons("ev@t") == expected)


def test_refresh_and_monitor_show_other_clients_volumes(host: LibvirtHostController,
                                                        other: Any) -> None:
    seen = Recorder()
    host.subscribe(seen)
    host.list_volumes(POOL)
    make_volumes(other, 1, "r")
    other.storagePoolLookupByName("default-pool").refresh(0)  # a refresh event: relisted
    seen.wait(lambda ev: any(isinstance(e, VolumesChanged) and e.added == ("r0000",)
                             for e in ev))
    seen.wait(lambda ev: "r0000" in seen.changed(POOL))  # and filled
    assert host.cached_volumes(POOL, ["r0000"])[0].capacity == 1 << 20
    host.start_monitor(0.2)
    make_volumes(other, 1, "m")  # no event from libvirt: the monitor's look finds it
    seen.wait(lambda ev: any(isinstance(e, VolumesChanged) and "m0000" in e.added
                             for e in ev))
    other.storageVolLookupByKey("/default-pool/r0000").delete(0)
    seen.wait(lambda ev: any(isinstance(e, VolumesChanged) and "r0000" in e.removed
                             for e in ev))
    assert [v.name for v in host.cached_volumes(POOL)] == ["m0000"]


def test_volume_verbs_are_jobs_with_pool_ids(host: LibvirtHostController,
                                             other: Any) -> None:
    seen = Recorder()
    host.subscribe(seen)
    host.list_volumes(POOL)
    job = host.create_volume_def(POOL, VolumeDef(name="j.img", capacity=2 << 20))
    assert (job.pool, job.volume, job.kind) == (POOL, "j.img", "create")
    info = job.wait(10)
    assert (info.name, info.capacity) == ("j.img", 2 << 20)
    seen.wait(lambda ev: any(isinstance(e, JobFinished) and e.job is job for e in ev))
    assert any(isinstance(e, VolumesChanged) and e.added == ("j.img",) for e in seen.events)
    clone = host.clone_volume(POOL, "j.img", "k.img")
    assert (clone.pool, clone.volume) == (POOL, "k.img")
    assert clone.wait(10).capacity == 2 << 20
    assert other.storagePoolLookupByName("default-pool").storageVolLookupByName("k.img")
    assert {v.name for v in host.cached_volumes(POOL)} == {"j.img", "k.img"}
    late = host.clone_volume(POOL, "j.img", "l.img")
    late.cancel()  # libvirt cannot stop a clone: it is made, and the job says so
    assert late.wait(10).name == "l.img" and late.state == "done"
    assert late.warnings == ["libvirt cannot cancel a clone once it has begun: it ran to "
                             "its end"]
    host.delete_volume(POOL, "l.img")
    host.delete_volume(POOL, "k.img")
    assert [v.name for v in host.cached_volumes(POOL)] == ["j.img"]
    assert "k.img" not in other.storagePoolLookupByName("default-pool").listVolumes()


def test_checks_say_what_would_be_refused(host: LibvirtHostController, other: Any) -> None:
    make_volumes(other, 1, "c")
    assert host.check_volume_def(POOL, VolumeDef(name="new", capacity=1 << 20)) is None
    taken = host.check_volume_def(POOL, VolumeDef(name="c0000", capacity=1 << 20))
    assert taken is not None and taken.element == "name" and "already exists" in taken.message
    huge = host.check_volume_def(POOL, VolumeDef(name="big", capacity=1 << 50))
    assert huge is not None and huge.element == "capacity" and "available" in huge.message
    bad = host.check_volume_def(POOL, VolumeDef(name="a/b", capacity=1))
    assert bad is not None and bad.element == "name"
    assert host.check_clone(POOL, "c0000", "c0001") is None
    same = host.check_clone(POOL, "c0000", "c0000")
    assert same is not None and "already exists" in same.message
    shrink = host.check_resize(POOL, "c0000", 1024)
    assert shrink is not None and "--shrink" in shrink.message
    assert host.check_resize(POOL, "c0000", 4 << 20) is None
    again = host.check_pool_def(PoolDef(type="dir", name="default-pool",
                                        target=PoolTarget(path="/x")))
    assert again is not None and again.element == "name"
    assert host.check_pool_def(PoolDef(type="dir", name="fresh",
                                       target=PoolTarget(path="/x"))) is None
    assert host.check_pool_def(PoolDef(type="dir", name="default-pool",
                                       target=PoolTarget(path="/x")), new=False) is None


def test_guests_using_volumes_are_named(host: LibvirtHostController, other: Any) -> None:
    make_volumes(other, 3, "g")
    host.list_volumes(POOL)

    def domain(name: str, source: str) -> str:
        return (f"<domain type='test'><name>{name}</name><memory>1024</memory><os><type>hvm"
                f"</type></os><devices>{source}<target dev='vda'/></disk></devices></domain>")
    other.defineXML(domain("byfile", "<disk type='file' device='disk'><source "
                           "file='/default-pool/g0000'/>"))
    started = other.defineXML(domain("bypool", "<disk type='volume' device='disk'><source "
                                     "pool='default-pool' volume='g0001'/>"))
    started.create()
    try:
        users = host.volume_users(POOL)
    finally:
        started.destroy()
    assert users == {"g0000": "guest byfile (defined)", "g0001": "guest bypool (running)"}
    assert host.volume_users(POOL)["g0001"] == "guest bypool (defined)"


def test_pool_types_and_features(host: LibvirtHostController) -> None:
    types = host.pool_types()
    assert "dir" in types and types["dir"].volumes_are_files
    assert host.pool_features("disk").has_layout
    assert host.block_devices() == [] and host.startup_problems() == []


def test_layout_from_libvirts_disk_pool_xml() -> None:
    [disk] = device_layouts((DATA / "libvirtd-pool-disk-free-extents.xml").read_text(),
                            [(DATA / "libvirtd-vol-disk-partition.xml").read_text()])
    assert disk.path == "/dev/loop0" and disk.size == 268431360
    assert disk.used == [(1048576, 68157440, "loop0p1")]
    assert [(f.start, f.end) for f in disk.free] == [
        (1024, 1048576), (68157440, 135266304), (202375168, 268431360)]


def test_layout_of_a_logical_pool_is_its_lvs_and_the_gaps() -> None:
    # libvirt's logical pool has no <freeExtent>; an LV's XML has its segments' extents
    pool = ("<pool type='logical'><name>vg</name><capacity unit='bytes'>100</capacity>"
            "<source><device path='/dev/sdb'/><name>vg</name></source></pool>")
    lv = ("<volume type='block'><name>{}</name><source><device path='/dev/sdb'>{}</device>"
          "</source></volume>")
    [pv] = device_layouts(pool, [lv.format("a", "<extent start='10' end='30'/>"),
                                 lv.format("b", "<extent start='50' end='60'/>"
                                                "<extent start='30' end='40'/>")])
    assert pv.used == [(10, 30, "a"), (30, 40, "b"), (50, 60, "b")]
    assert [(f.start, f.end) for f in pv.free] == [(40, 50), (60, 100)]
    assert pv.size == 100


def test_pool_verbs_and_their_refusals(host: LibvirtHostController) -> None:
    seen = Recorder()
    host.subscribe(seen)
    status = host.define_pool("<pool type='logical'><name>lg</name><source><name>lg</name>"
                              "<device path='/dev/sdz'/></source><target><path>/dev/lg"
                              "</path></target></pool>")
    assert (status.name, status.state) == ("lg@t", "inactive")
    job = host.build_pool("lg@t")
    assert (job.kind, job.pool) == ("build", "lg@t")
    job.wait(10)
    host.set_autostart("lg@t", True)
    assert host.pool_info("lg@t").autostart
    with pytest.raises(PoolkeeperError, match="libvirt cannot look into"):
        host.stored_volumes("lg@t")  # the delete dialog then says so, and forces
    assert host.stored_volumes(POOL) is None  # a dir pool: libvirt removes only an empty dir
    with pytest.raises(PoolkeeperError, match="--force"):
        host.delete_pool("lg@t")  # a VG's delete erases its LVs
    host.start_pool("lg@t")
    with pytest.raises(StateError, match="is active"):
        host.build_pool("lg@t")
    host.stop_pool("lg@t")
    host.delete_pool("lg@t", force=True)
    host.undefine_pool("lg@t")
    # libvirt's events, in order (they come from its event loop thread, so "autostart",
    # which libvirt has no event for and the controller says at once, may come among them)
    seen.wait(lambda ev: [r for r in seen.pool_reasons("lg@t") if r != "autostart"] == [
        "defined", "built", "started", "stopped", "deleted", "undefined"])
    assert seen.pool_reasons("lg@t").count("autostart") == 1


def test_find_pool_sources_asks_the_host(host: LibvirtHostController) -> None:
    found = host.find_pool_sources("netfs", host="nas.example")
    assert "<host name='nas.example'/>" in found and "<dir path='/testshare'/>" in found
    assert "<name>testvg1</name>" in host.find_pool_sources("logical")


def test_close_during_a_fill_closes_the_connection() -> None:
    """close() deregisters the events and closes the connection while volumes are being
    filled in (close waits up to 1 s for a batch on its way, which would keep the worker
    busy and the connection open; the batch's timing on the test driver is not forced)."""
    other = LibvirtController(URI)
    make_volumes(other.connection.conn, 10000, "f")
    ctl = LibvirtHostController(URI, "t")
    ctl.list_volumes(POOL)  # its fill is on its way
    time.sleep(0.05)
    assert ctl.cached_volumes(POOL)[-1].pending  # (still)
    ctl.close()  # its events deregistered, the connection closed
    other.close()
    # the test driver's state lives while a connection is open: once all are closed
    # (and their objects freed), it starts afresh
    deadline = time.monotonic() + 5
    while True:
        gc.collect()
        fresh = LibvirtController(URI)
        try:
            left = fresh.connection.conn.storagePoolLookupByName("default-pool").numOfVolumes()
        finally:
            fresh.close()
        if left == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == 0


def test_a_failed_connect_says_why_and_leaves_no_thread(tmp_path: Path) -> None:
    uri = f"qemu:///session?socket={tmp_path}/no-such-socket"

    def workers() -> int:
        return sum(t.name == f"libvirt {uri}" for t in threading.enumerate())
    for _ in range(3):  # as a fleet retries a host that is down
        with pytest.raises(PoolkeeperError, match=re.escape(f"cannot connect to '{uri}'")
                           + ".*No such file"):
            LibvirtHostController(uri, "down")
    deadline = time.monotonic() + 5
    while workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers() == 0


def test_a_disk_pools_next_partition_name(host: LibvirtHostController, other: Any) -> None:
    host.define_pool("<pool type='disk'><name>dk</name><source><device path='/dev/loop7'/>"
                     "<format type='gpt'/></source><target><path>/dev</path></target></pool>")
    host.start_pool("dk@t")
    vdef = VolumeDef(name="", capacity=1 << 20)
    assert host.volume_name_for("dk@t", vdef) == "loop7p1"
    pool = other.storagePoolLookupByName("dk")
    for name in ("loop7p1", "loop7p3"):
        pool.createXML(f"<volume><name>{name}</name><capacity>1048576</capacity></volume>", 0)
    assert host.volume_name_for("dk@t", vdef) == "loop7p2"  # parted's lowest free number
    assert host.volume_name_for(POOL, vdef) is None  # a dir pool's names are free
