"""A kill -9 at random moments loses nothing and tears nothing.

Writers are forked from this (already imported) test process and SIGKILLed after a random
0-5 ms, at least 1,000 times and on until every outcome was seen (a loaded machine makes the
test longer, never vacuous; only a generous cap fails it); the definitions must each be the
old or the new version, and the next start must remove the temp files the killed writers
left. A clone killed mid-copy (a real CLI process) must leave no file under the volume's name,
and the next controller must remove its hidden partial file. The state root of the kill loop
is a tmpfs: a save there takes 0.1 ms instead of 10 (no fsync wait), so the kills land in
every phase of it.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends import fileops, xmlio
from backends.controller import StorageController
from backends.errors import AlreadyExists, InvalidName
from backends.model import PoolDef, PoolTarget, VolumeDef, VolumeTarget
from backends.names import PARTIAL_PREFIX
from backends.store import Store, StorePaths, atomic_write, create_locked_temp

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
KILLS = 1000
KILL_CAP_FACTOR = 20  # kills past KILLS allowed before a kill loop gives up


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "fast"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "pktest", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def partials(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.startswith(PARTIAL_PREFIX))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def killed_at_random(work: Callable[[], None], max_delay: float, repeat: bool = True) -> None:
    """Fork a child running work() (again and again if `repeat`, else once and then
    waiting), SIGKILL it after 0..max_delay s and reap it; the child must have died of the
    kill, not of an error of its own."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            work()
            while True:
                if repeat:
                    work()
                else:
                    time.sleep(1)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    time.sleep(random.uniform(0, max_delay))
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status


# == definitions ===========================================================================
def test_kill9_while_saving_definitions_leaves_the_old_or_the_new(tmpfs: Path):
    root = tmpfs / "state"
    ctl = StorageController(root, create_default=False, autostart=False)
    names = ["a", "b", "c"]
    # Two versions per pool that differ all along the file: a torn one cannot pass for either.
    versions = {
        name: [PoolDef(type="dir", name=name, uuid=f"3f1c1a43-7d0d-4b7a-9f1e-0d6a2b7c9e1{i}",
                       target=PoolTarget(path=f"/srv/{name}/" + ch * 3000))
               for ch in "xy"]
        for i, name in enumerate(names)
    }
    wanted: dict[str, list[bytes]] = {name: [] for name in names}
    for name in names:
        for pdef in versions[name]:
            ctl.define_pool_def(pdef)
            wanted[name].append((root / "storage" / f"{name}.xml").read_bytes())
    flips = [0]

    def save_all() -> None:
        flips[0] += 1
        for name in names:
            ctl.define_pool_def(versions[name][flips[0] % 2])

    seen: set[tuple[str, int]] = set()
    every = {(name, v) for name in names for v in (0, 1)}
    leftovers = 0
    kills = 0
    # At least KILLS kills; then on until both versions of every file were seen and a kill
    # landed mid-save, so a slow (loaded) machine makes the test longer, never meaningless.
    # Only the cap fails it.
    while kills < KILLS or seen != every or not leftovers:
        assert kills < KILLS * KILL_CAP_FACTOR, (
            f"after {kills} kills: versions seen {sorted(seen)}, temp files left {leftovers}")
        flips[0] = random.randint(0, 1)  # the child's first save writes either version
        # the child gets longer as the kills go on, so a slow machine still gets through saves
        killed_at_random(save_all, 0.005 * (1 + kills // KILLS))
        kills += 1
        for name in names:
            data = (root / "storage" / f"{name}.xml").read_bytes()
            assert data in wanted[name], f"{name}.xml is torn: {data[:200]!r}"
            seen.add((name, wanted[name].index(data)))
        leftovers = max(leftovers, len(partials(root / "storage")))
    ctl.close()

    with StorageController(root, create_default=False, autostart=False) as again:
        assert partials(root / "storage") == []  # the next start removed them
        for name in names:
            assert xmlio.format_pool(again.pool_def(name)).encode() in wanted[name]


@pytest.mark.parametrize("sub", ["storage", "storage/volumes", "run", "secrets"])
def test_a_live_writers_temp_file_is_never_removed(tmp_path: Path, sub: str):
    paths = StorePaths(tmp_path, tmp_path, tmp_path / "images")
    Store(paths)
    directory = tmp_path / sub
    directory.mkdir(mode=0o700, exist_ok=True)
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd, name = create_locked_temp(dfd)  # as a writer in the middle of a save holds it
        os.write(fd, b"half")
        Store(paths)  # another process starting now
        assert partials(directory) == [name]
        os.close(fd)  # the writer dies
        Store(paths)
        assert partials(directory) == []
    finally:
        os.close(dfd)


def test_saves_racing_with_starts_always_succeed(tmpfs: Path):
    """A start's sweep can catch a temp file between its creation and its lock: the writer
    must notice and make another, never fail or lose the save (on a tmpfs, thousands of saves
    against hundreds of sweeps)."""
    paths = StorePaths(tmpfs, tmpfs, tmpfs / "images")
    store = Store(paths)
    target = store.definitions_dir / "x.xml"
    stop = threading.Event()
    errors: list[BaseException] = []

    sweeps = [0]

    def counted_sweep() -> None:
        while not stop.is_set():
            sweep_once()
            sweeps[0] += 1

    def sweep_once() -> None:
        try:
            store.remove_abandoned_temps()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    sweeper = threading.Thread(target=counted_sweep)
    sweeper.start()
    try:
        # A number of saves and of sweeps that ran meanwhile, never a time slice: a loaded
        # machine makes the test longer, not weaker.
        count = 0
        while count < 2000 or sweeps[0] < 200:
            assert count < 200_000, f"only {sweeps[0]} sweeps ran during {count} saves"
            atomic_write(target, str(count).encode())
            assert target.read_text() == str(count)
            count += 1
    finally:
        stop.set()
        sweeper.join()
    assert not errors
    assert partials(store.definitions_dir) == []


# == volumes being built =====================================================================
def make_source(path: Path, size: int, data: int) -> None:
    """A sparse file of `size` bytes with `data` bytes of data spread over it."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        step = size // 8
        block = (b"\xab" * (MiB - 16) + os.urandom(16))
        for at in range(0, size, step):
            fh.seek(at)
            for _ in range(data // 8 // MiB):
                fh.write(block)


def test_kill9_during_a_cli_clone_leaves_no_partial_volume(cli, state_root: Path,
                                                            tmp_path: Path):
    images = tmp_path / "img"
    assert cli("pool-define-as", "t", "dir", "--target", str(images)).code == 0
    assert cli("pool-build", "t").code == 0 and cli("pool-start", "t").code == 0
    assert cli("vol-create-as", "t", "src.img", "1G", "--allocation", "0").code == 0
    make_source(images / "src.img", 1 << 30, 256 * MiB)
    for _ in range(20):  # until a kill lands mid-copy; a clone that won the race goes again
        proc = subprocess.Popen([sys.executable, "-m", "tui", "--root", str(state_root),
                                 "vol-clone", "src.img", "dst.img", "--pool", "t"],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not any(n.endswith(".img") for n in partials(images)) and proc.poll() is None:
                time.sleep(0.002)
            time.sleep(random.uniform(0, 0.02))
            proc.kill()
        finally:
            proc.kill()
            proc.wait()
        if proc.returncode == -signal.SIGKILL and not (images / "dst.img").exists():
            break
        assert proc.returncode in (0, -signal.SIGKILL), proc.returncode
        os.unlink(images / "dst.img")  # it finished before the kill: try again
    else:
        pytest.fail("20 clones in a row finished before they could be killed")
    assert not (images / "dst.img").exists()  # nothing under the final name
    assert partials(images)  # the killed build's files, hidden

    with StorageController(state_root, create_default=False, autostart=False) as again:
        assert [v.name for v in again.list_volumes("t")] == ["src.img"]
        assert os.listdir(images) == ["src.img"]  # its partial files removed
        again.create_volume_def("t", VolumeDef(name="dst.img", capacity=MiB)).wait(60)
    assert (images / "dst.img").stat().st_size == MiB  # the name was free again


def test_kill9_at_random_moments_of_creates_and_clones(tmp_path: Path):
    """Whenever a build dies, the volume's name holds nothing or the complete volume."""
    pool = tmp_path / "pool"
    pool.mkdir()
    make_source(pool / "src", 128 * MiB, 32 * MiB)
    src_hash = sha(pool / "src")
    dfd = os.open(pool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        builds: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
            ("dst", lambda: fileops.clone_file(dfd, "src", dfd, "dst"),
             lambda: sha(pool / "dst") == src_hash or pytest.fail("incomplete clone")),
            ("full", lambda: fileops.create_raw(dfd, "full", 256 * MiB, 256 * MiB),
             lambda: os.stat(pool / "full").st_blocks * 512 >= 256 * MiB
             or pytest.fail("incomplete create")),
        ]
        complete = incomplete = 0
        delay = 0.04
        # At least 30 kills, and on until kills landed both before and after completion
        # (not vacuous); the delay follows what the machine manages, and only the cap fails.
        while complete + incomplete < 30 or not (complete and incomplete):
            assert complete + incomplete < 30 * KILL_CAP_FACTOR, (
                f"{complete} complete, {incomplete} incomplete builds after every kill")
            name, build, check = builds[(complete + incomplete) % 2]
            killed_at_random(build, delay, repeat=False)
            if (pool / name).exists():
                check()
                complete += 1
                os.unlink(pool / name)
            else:
                incomplete += 1
            fileops.remove_partials(dfd)  # what the next pool start does
            assert sorted(os.listdir(pool)) == ["src"]
            if not complete:
                delay *= 1.2  # a slow machine: give the builds time to finish sometimes
            elif not incomplete:
                delay /= 1.2
    finally:
        os.close(dfd)


def test_a_build_in_progress_is_hidden_and_kept(ctl, pool: Path):
    ctl.create_volume_def("p", VolumeDef(name="a.img", capacity=MiB)).wait(60)
    dfd = os.open(pool, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with fileops.building(dfd, "b.img") as part:
            os.write(part.fd, b"in progress")
            assert not (pool / "b.img").exists()
            with StorageController(ctl.paths.config_dir, create_default=False,
                                   autostart=False) as other:  # a second process's sweep
                assert [v.name for v in other.list_volumes("p")] == ["a.img"]
            assert fileops.remove_partials(dfd) == []
            assert len(partials(pool)) == 2  # its lock guard and its data
        assert (pool / "b.img").read_bytes() == b"in progress" and partials(pool) == []
    finally:
        os.close(dfd)


def test_publishing_never_replaces_a_file_that_appeared_meanwhile(tmp_path: Path):
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(AlreadyExists), fileops.building(dfd, "v") as part:
            os.write(part.fd, b"ours")
            (tmp_path / "v").write_bytes(b"theirs")  # another program won the race
        assert (tmp_path / "v").read_bytes() == b"theirs" and partials(tmp_path) == []
    finally:
        os.close(dfd)


@pytest.mark.parametrize("ours", ["unlinked", "renamed away"])
def test_a_link_swapped_in_for_the_build_is_never_written_or_published(ctl, pool: Path,
                                                                       tmp_path: Path,
                                                                       monkeypatch, ours):
    """Someone with write access to the pool directory replaces the hidden file being built
    with a symlink to an outside file: qemu-img writes the file poolkeeper opened, and what
    is published is that file or nothing, never the link."""
    from backends import runner
    from backends.errors import UnsafePath

    canary = tmp_path / "canary"
    canary.write_bytes(b"precious" * 512)
    before = sha(canary)
    real_run = runner.run

    def swap_then_run(argv, **kwargs):  # type: ignore[no-untyped-def]
        if list(argv[:2]) == ["qemu-img", "create"]:
            for name in partials(pool):
                if name.endswith(fileops.PARTIAL_DATA):
                    if ours == "unlinked":
                        os.unlink(pool / name)
                    else:
                        os.rename(pool / name, tmp_path / "moved")
                    os.symlink(canary, pool / name)
        return real_run(argv, **kwargs)

    monkeypatch.setattr(runner, "run", swap_then_run)
    job = ctl.create_volume_def("p", VolumeDef(name="v.qcow2", capacity=MiB,
                                               target=VolumeTarget(format="qcow2")))
    published = pool / "v.qcow2"
    if ours == "unlinked":  # our file has no name left to publish: refused
        with pytest.raises(UnsafePath, match="was replaced"):
            job.wait(60)
        assert not os.path.lexists(published)
    else:
        job.wait(60)
        assert not published.is_symlink() and published.read_bytes()[:4] == b"QFI\xfb"
        assert ctl.volume_info("p", "v.qcow2").capacity == MiB
    assert sha(canary) == before


def test_a_failing_lock_on_a_new_temp_file_leaves_nothing(tmp_path: Path, monkeypatch):
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(37, "No locks available")  # ENOLCK: an NFS without its lock service

    fds_before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(fcntl, "flock", no_locks)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError, match="No locks"):
            create_locked_temp(dfd)
    finally:
        os.close(dfd)
    assert os.listdir(tmp_path) == [] and len(os.listdir("/proc/self/fd")) == fds_before


def test_error_messages_never_show_a_hidden_build_name():
    from backends.oserror import os_failure

    hidden = OSError(28, "No space left on device", f"/pool/{PARTIAL_PREFIX}0123.img")
    assert PARTIAL_PREFIX not in str(os_failure(hidden, "create 'v'"))
    plain = OSError(13, "Permission denied", "/pool/v.img")
    assert "(/pool/v.img)" in str(os_failure(plain, "wipe 'v.img'"))


def test_without_hard_links_publishing_renames_without_replacing(tmp_path: Path, monkeypatch):
    """vfat has no link(2): the fallback is renameat2(RENAME_NOREPLACE)."""
    def no_links(*args, **kwargs):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    dfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fileops.create_raw(dfd, "v", MiB, 0)
        assert (tmp_path / "v").stat().st_size == MiB and partials(tmp_path) == []
        with pytest.raises(AlreadyExists), fileops.building(dfd, "w") as part:
            os.write(part.fd, b"ours")
            (tmp_path / "w").write_bytes(b"theirs")
        assert (tmp_path / "w").read_bytes() == b"theirs" and partials(tmp_path) == []
    finally:
        os.close(dfd)


def test_partial_names_are_reserved_and_foreign_ones_left_alone(ctl, pool: Path):
    with pytest.raises(InvalidName, match="reserves for files being written"):
        ctl.create_volume_def("p", VolumeDef(name=PARTIAL_PREFIX + "x", capacity=MiB))
    # Things with the prefix that poolkeeper never makes are not removed or followed.
    outside = pool.parent / "outside"
    outside.write_bytes(b"keep")
    os.symlink(outside, pool / (PARTIAL_PREFIX + "link"))
    (pool / (PARTIAL_PREFIX + "dir")).mkdir()
    os.mkfifo(pool / (PARTIAL_PREFIX + "fifo"))
    ctl.stop_pool("p")
    ctl.start_pool("p")
    assert len(partials(pool)) == 3 and outside.read_bytes() == b"keep"
    assert ctl.list_volumes("p") == []


def test_every_state_file_of_the_longest_pool_name_can_be_saved(ctl, tmp_path: Path):
    """A pool's name becomes NAME.xml, NAME.json and .NAME.tmp: a name that fits one but
    not another would be saved half (defined, then unable to record or autostart)."""
    with pytest.raises(InvalidName, match="at most 250"):
        ctl.define_pool_def(PoolDef(type="dir", name="n" * 251,
                                    target=PoolTarget(str(tmp_path / "x"))))
    assert sorted(os.listdir(ctl.store.definitions_dir)) == ["autostart", "volumes"]
    name = "n" * 250
    ctl.define_pool_def(PoolDef(type="dir", name=name, target=PoolTarget(str(tmp_path / "l"))))
    ctl.build_pool(name).wait(60)
    ctl.set_autostart(name, True)
    ctl.start_pool(name)
    job = ctl.create_volume_def(name, VolumeDef(name="v", capacity=MiB, allocation=0))
    job.wait(60)
    assert job.warnings == [] and ctl.volume_info(name, "v").format_recorded
    ctl.delete_volume(name, "v")
    ctl.stop_pool(name)
    ctl.undefine_pool(name)
    assert ctl.pool_names() == []
