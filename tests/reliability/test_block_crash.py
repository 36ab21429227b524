"""Block pools under kill -9 and under a second state root.

  * a clone into a disk pool killed mid-copy (a real CLI process, kill -9 until it lands
    in the copy) leaves a partition that is not listed, and the next use removes it, on
    gpt (the partition's name marks it) and dos (a record under the state root does);
  * a pool-build (fs) or pool-start (fs, disk) of an image-backed pool killed after its
    losetup leaves the loop device attached; the next build or start releases it (it was
    claimed by the dead process and nobody uses it) and works. A loop device poolkeeper
    did not claim is never detached;
  * two poolkeepers with separate state roots (no shared lock dir) building on one image
    at the same moment: exactly one mkfs runs (counted by a wrapper first in PATH).

No assertion depends on timing: each kill loop repeats until the kill landed where it
matters (checked from what is on disk afterwards), with a generous cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice
from tests.conftest import make_dir_pool
from tests.loopfs import (
    backing_file,
    can_use_loop_devices,
    loops_of,
    release_partitioned,
    wait_until,
)

pytestmark = pytest.mark.skipif(not can_use_loop_devices(), reason="needs root and loop devices")

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
ATTEMPTS = 40  # kills until one lands where it matters; far more than ever needed


# == helpers ===========================================================================
def poolkeeper(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui", "--root", str(root), *args],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def cli_ok(root: Path, *args: str) -> str:
    proc = poolkeeper(root, *args)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{args}: {err}"
    return out


def kill9(proc: subprocess.Popen) -> bool:
    """SIGKILL it; True if it was still running (the kill landed), reaped either way."""
    alive = proc.poll() is None
    proc.kill()
    proc.communicate()
    return alive


def openers(device: str) -> list[int]:
    """pids with `device` open (read from /proc, independently of poolkeeper)."""
    try:
        rdev = os.stat(device).st_rdev
    except OSError:
        return []
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    st = os.stat(f"/proc/{pid}/fd/{fd}")
                    if stat.S_ISBLK(st.st_mode) and st.st_rdev == rdev:
                        found.append(int(pid))
                        break
    return found


def mounted(device: str) -> bool:
    with open("/proc/self/mountinfo") as fh:
        return any(line.split(" - ")[1].split()[1] == device for line in fh)


def partition_node(device: str, number: int) -> Path:
    name = Path(device).name
    return Path("/sys/block") / name / f"{name}p{number}"


def sfdisk(dev: str) -> dict:
    done = subprocess.run(["sfdisk", "--json", dev], capture_output=True, text=True)
    return json.loads(done.stdout)["partitiontable"] if done.returncode == 0 else {}


def region_sha(dev: str, start: int, length: int) -> str:
    with open(dev, "rb") as fh:
        fh.seek(start)
        return hashlib.sha256(fh.read(length)).hexdigest()


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[Callable[[int], str]]:
    made: list[tuple[str, Path]] = []

    def make(size_mib: int) -> str:
        image = tmp_path / f"disk{len(made)}.img"
        with open(image, "wb") as fh:
            fh.truncate(size_mib * MiB)
        dev = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                             text=True, check=True).stdout.strip()
        made.append((dev, image))
        return dev

    try:
        yield make
    finally:
        for dev, image in reversed(made):
            release_partitioned(dev, image)


def _umount_under(base: Path) -> None:
    with open("/proc/self/mountinfo") as fh:
        targets = [line.split()[4] for line in fh]
    for target in reversed(targets):
        if target.startswith(f"{base}/") and subprocess.run(
                ["umount", target], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.fixture
def images(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    """images(name, size_mib) -> a sparse image; at the end everything mounted under
    tmp_path is unmounted and every loop device of our images released."""
    made: list[Path] = []

    def make(name: str, size_mib: int) -> Path:
        image = tmp_path / name
        with contextlib.suppress(FileNotFoundError):
            image.unlink()
        with open(image, "wb") as fh:
            fh.truncate(size_mib * MiB)
        if image not in made:
            made.append(image)
        return image

    try:
        yield make
    finally:
        _umount_under(tmp_path)
        for image in made:
            for dev in loops_of(image):
                wait_until(lambda dev=dev: not openers(dev), 60)
                release_partitioned(dev, image)


# == item 13: a clone into a disk pool, killed mid-copy =====================================
@pytest.mark.parametrize("label", ["gpt", "dos"])
def test_kill9_mid_clone_into_a_disk_pool_leaves_no_listed_partition(
        ctl, state_root: Path, tmp_path: Path, loop_disk, label: str):
    files = make_dir_pool(ctl, "files", tmp_path / "files")
    size = 160 * MiB
    with open(files / "src.raw", "wb") as fh:  # data all along: a partial copy differs
        block = os.urandom(MiB)
        for i in range(size // MiB):
            fh.write(block[:-8] + i.to_bytes(8, "little"))
    src_sha = hashlib.sha256((files / "src.raw").read_bytes()).hexdigest()
    dev = loop_disk(512)
    ctl.define_pool_def(PoolDef(type="disk", name="d", source=PoolSource(
        devices=[SourceDevice(dev)], format=label), target=PoolTarget(path="/dev")))
    ctl.build_pool("d").wait(120)
    ctl.start_pool("d")
    new = f"{Path(dev).name}p1"

    landed = False
    for _ in range(ATTEMPTS):
        proc = poolkeeper(state_root, "vol-clone", "src.raw", new, "--pool", "files",
                          "--newpool", "d")
        deadline = time.monotonic() + 120
        while not partition_node(dev, 1).exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the clone never made its partition"
            time.sleep(0.001)
        time.sleep(random.uniform(0, 0.05))
        killed = kill9(proc)
        parts = sfdisk(dev).get("partitions", [])
        if killed and parts:
            start = parts[0]["start"] * 512
            if region_sha(dev, start, size) != src_sha:
                landed = True  # a half-copied partition is on the disk
                break
        with StorageController(state_root, create_default=False, autostart=False) as again:
            for vol in again.list_volumes("d"):  # a complete one from a late kill
                again.delete_volume("d", vol.name)
    assert landed, f"no kill landed mid-copy in {ATTEMPTS} attempts"

    # The half-made partition is there, but it is no volume: not listed, no info.
    assert len(sfdisk(dev)["partitions"]) == 1
    assert [v.name for v in ctl.refresh_pool("d")] == []  # this process swept at start
    assert ctl.pool_layout("d")  # still drawable
    # The next use (a new process) removes it; the name is free again.
    with StorageController(state_root, create_default=False, autostart=False) as again:
        assert [v.name for v in again.list_volumes("d")] == []
        assert sfdisk(dev).get("partitions", []) == []
        assert not partition_node(dev, 1).exists()
        records = state_root / "storage" / "partitions-being-filled"
        assert not records.exists() or list(records.glob("*.json")) == []
        again.clone_volume("files", "src.raw", new, target_pool="d").wait(120)
        [vol] = again.list_volumes("d")
        assert vol.name == new and vol.capacity == size
    [part] = sfdisk(dev)["partitions"]
    assert region_sha(dev, part["start"] * 512, size) == src_sha
    if label == "gpt":
        assert part.get("name") == "primary"  # as every other create names it


# == a copy of a disk image: whose record is it? ==========================================
DIES_MID_CLONE = """
import os, signal, sys
from backends import fileops
from cli.main import main

def die(*args, **kwargs):
    # the partition is made and recorded as being filled: die before a byte is copied
    os.kill(os.getpid(), signal.SIGKILL)

fileops.clone_fd = die
sys.exit(main(sys.argv[1:]))
"""


def records_of(root: Path) -> list[Path]:
    return sorted((root / "storage" / "partitions-being-filled").glob("*.json"))


@pytest.mark.parametrize("neighbour", ["same-slot-used", "same-slot-free"])
def test_a_record_never_reaches_a_pool_on_a_copy_of_the_image(state_root: Path,
                                                              tmp_path: Path, images,
                                                              neighbour: str):
    """`parted mklabel msdos a.img; cp a.img b.img`: both disks have the same dos
    identifier and size. A clone into pool A (on a.img) killed mid-copy leaves a
    half-made partition and its record. Pool B (on b.img) must neither hide nor remove
    its own partition in that slot (same-slot-used), nor take A's record for an orphan
    of its own and remove it (same-slot-free); A's next use removes A's partition."""
    a_img = images("a.img", 64)
    subprocess.run(["parted", "-s", str(a_img), "mklabel", "msdos"], check=True,
                   capture_output=True)
    b_img = images("b.img", 64)
    subprocess.run(["cp", "--sparse=always", str(a_img), str(b_img)], check=True)
    for name, image in (("A", a_img), ("B", b_img)):
        cli_ok(state_root, "pool-define-as", name, "disk", "--source-dev", str(image),
               "--source-format", "dos", "--target", "/dev")
        cli_ok(state_root, "pool-start", name)
    [a_dev], [b_dev] = loops_of(a_img), loops_of(b_img)
    files = tmp_path / "files"
    cli_ok(state_root, "pool-define-as", "files", "dir", "--target", str(files))
    cli_ok(state_root, "pool-build", "files")
    cli_ok(state_root, "pool-start", "files")
    (files / "src.raw").write_bytes(os.urandom(4 * MiB))
    b_part = f"{Path(b_dev).name}p1"
    if neighbour == "same-slot-used":  # B's own partition, as large as A's will be
        cli_ok(state_root, "vol-create-as", "B", b_part, str(4 * MiB))
        b_before = sfdisk(b_dev)["partitions"]

    died = subprocess.run([sys.executable, "-c", DIES_MID_CLONE, "--root", str(state_root),
                           "vol-clone", "src.raw", f"{Path(a_dev).name}p1", "--pool", "files",
                           "--newpool", "A"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert died.returncode == -9, died.stderr
    [a_part] = sfdisk(a_dev)["partitions"]  # half-made, and recorded
    [record] = records_of(state_root)

    # B, used by a new process: its own partition stays listed and in its table; A's
    # record stays where it is.
    listed = cli_ok(state_root, "vol-list", "B")
    if neighbour == "same-slot-used":
        assert b_part in listed, listed
        assert sfdisk(b_dev)["partitions"] == b_before
        assert (b_before[0]["start"], b_before[0]["size"]) == (a_part["start"],
                                                               a_part["size"])
    else:
        assert sfdisk(b_dev).get("partitions", []) == []
    assert records_of(state_root) == [record]

    # A, used by a new process: its half-made partition is not listed and is removed.
    listed = cli_ok(state_root, "vol-list", "A")
    assert f"{Path(a_dev).name}p1" not in listed, listed
    assert sfdisk(a_dev).get("partitions", []) == []
    assert records_of(state_root) == []
    if neighbour == "same-slot-used":
        assert sfdisk(b_dev)["partitions"] == b_before
    for name in ("A", "B"):
        cli_ok(state_root, "pool-destroy", name)


# == item 14: a loop device left by a killed build or start =================================
def fs_pool(root: Path, name: str, image: Path, target: Path) -> None:
    cli_ok(root, "pool-define-as", name, "fs", "--source-dev", str(image), "--source-format",
           "ext4", "--target", str(target))


def disk_pool(root: Path, name: str, image: Path) -> None:
    cli_ok(root, "pool-define-as", name, "disk", "--source-dev", str(image), "--source-format",
           "gpt", "--target", "/dev")


def make_many_partitions(image: Path, count: int) -> None:
    """A gpt label with `count` 1 MiB partitions: a start runs partx for each of them,
    which keeps it busy long enough for a kill to land after its losetup."""
    script = "label: gpt\n" + "".join("size=2048, type=linux\n" for _ in range(count))
    subprocess.run(["sfdisk", "-q", str(image)], input=script, text=True, check=True,
                   capture_output=True)


@pytest.mark.parametrize("kind,verb", [("fs", "pool-build"), ("fs", "pool-start"),
                                       ("disk", "pool-start")])
def test_kill9_after_losetup_leaks_no_loop_device(state_root: Path, tmp_path: Path, images,
                                                  kind: str, verb: str):
    image = images("pool.img", 2048 if verb == "pool-build" else 256)
    if kind == "fs":
        fs_pool(state_root, "p", image, tmp_path / "mnt")
        if verb == "pool-start":
            cli_ok(state_root, "pool-build", "p")
    else:
        disk_pool(state_root, "p", image)
        make_many_partitions(image, 100)
    args = [verb, "p", *(["--overwrite"] if verb == "pool-build" else [])]

    leaked = None
    for _ in range(ATTEMPTS):
        proc = poolkeeper(state_root, *args)
        deadline = time.monotonic() + 120
        while not loops_of(image) and proc.poll() is None:
            assert time.monotonic() < deadline, "no loop device was ever attached"
            time.sleep(0.001)
        killed = kill9(proc)
        if (state_root / "run" / "p.xml").exists():  # it got all the way: started
            cli_ok(state_root, "pool-destroy", "p")
            continue
        if killed and loops_of(image):
            [leaked] = loops_of(image)
            if not mounted(leaked):
                break
            # killed after its mount: the next start takes the mount over (no leak); again
            assert wait_until(lambda dev=leaked: not openers(dev), 120)
            cli_ok(state_root, "pool-start", "p")
            cli_ok(state_root, "pool-destroy", "p")
            leaked = None
    assert leaked, f"no kill landed after losetup in {ATTEMPTS} attempts"
    # What the killed process ran (mkfs, partx) may still hold the device for a moment.
    assert wait_until(lambda: not openers(leaked), 120)

    # The next build and start release it and work.
    if verb == "pool-build":
        cli_ok(state_root, "pool-build", "p", "--overwrite")
        assert loops_of(image) == []
    cli_ok(state_root, "pool-start", "p")
    assert len(loops_of(image)) == 1
    cli_ok(state_root, "pool-destroy", "p")
    assert wait_until(lambda: loops_of(image) == [])


def test_a_loop_device_poolkeeper_did_not_claim_is_never_detached(state_root: Path,
                                                                  tmp_path: Path, images):
    image = images("pool.img", 64)
    fs_pool(state_root, "p", image, tmp_path / "mnt")
    cli_ok(state_root, "pool-build", "p")
    theirs = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                            text=True, check=True).stdout.strip()
    for args in (["pool-start", "p"], ["pool-build", "p", "--overwrite"],
                 ["pool-delete", "p", "--force"]):
        proc = poolkeeper(state_root, *args)
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1 and f"attached as {theirs}" in err, err
        assert backing_file(theirs) == str(image)


HOLDS_A_LOOP = """
import sys, time
from pathlib import Path
from backends.loops import LoopClaims
ident = LoopClaims(Path(sys.argv[1])).attach(sys.argv[2], "p")
print(ident.device, flush=True)
time.sleep(600)
"""


def test_a_loop_device_claimed_by_a_live_process_is_left_alone(state_root: Path, images):
    from backends.loops import LoopClaims

    image = images("pool.img", 64)
    holder = subprocess.Popen([sys.executable, "-c", HOLDS_A_LOOP, str(state_root),
                               str(image)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        device = holder.stdout.readline().strip()
        assert backing_file(device) == str(image)
        claims = LoopClaims(state_root)
        assert claims.release_stale(str(image)) == []  # its owner lives: in use
        assert backing_file(device) == str(image)
    finally:
        holder.kill()
        holder.wait()
    assert claims.release_stale(str(image)) == [device]  # dead now, and nobody uses it
    assert loops_of(image) == []


DIES_LOOKING = """
import os, signal, subprocess, sys
from pathlib import Path
from backends.loops import LoopClaims
runtime, source = Path(sys.argv[1]), sys.argv[2]
claims = LoopClaims(runtime)
ident = claims.attach(source, "p", read_only=True)
held = claims.peek_dir()  # (kept referenced: its clean-up must never run)
look = held.__enter__()
subprocess.run(["mount", "-o", "ro", ident.device, look], check=True)
print(ident.device, look, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies holding its look inside: mounted, attached
"""


@pytest.mark.parametrize("kind", ["image", "block"])
def test_a_look_inside_killed_while_mounted_is_released_by_the_next_delete(
        state_root: Path, tmp_path: Path, images, loop_disk, kind: str):
    """pool-delete looks inside an fs pool through a read-only loop device mounted under
    the runtime dir: a poolkeeper killed right there leaves both, and the next look or
    delete releases them (they were claimed, their owner is dead) and works."""
    if kind == "image":
        source = str(images("pool.img", 64))
    else:
        source = loop_disk(64)
    subprocess.run(["mkfs.ext4", "-q", "-F", source], check=True, capture_output=True)
    fs_pool(state_root, "p", Path(source), tmp_path / "mnt")
    try:
        proc = subprocess.run([sys.executable, "-c", DIES_LOOKING, str(state_root), source],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == -9, proc.stderr
        device, look = proc.stdout.split()
        assert backing_file(device) == source and Path(look).is_mount()

        proc = poolkeeper(state_root, "pool-delete", "p")
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err  # empty: deleted, the look's leftovers released
        assert not Path(look).exists() and backing_file(device) != source
        assert loops_of(Path(source)) == []
    finally:  # whatever failed: nothing of this test stays mounted or attached
        _umount_under(state_root)
        for dev in loops_of(Path(source)):
            release_partitioned(dev, Path(source))


# == item 15: two state roots building on one image at once =================================
def counting_wrapper(bin_dir: Path, tool: str, log: Path, when: str = "") -> None:
    """bin_dir/tool: logs one line per run (if argv contains `when`), then runs the real
    tool. First in PATH, so poolkeeper's runner finds it before the real one."""
    real = subprocess.run(["sh", "-c", f"PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH "
                           f"command -v {tool}"], capture_output=True, text=True,
                          check=True).stdout.strip()
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / tool
    wrapper.write_text("#!/bin/sh\n"
                       f'case " $* " in *"{when}"*) echo "$$ $*" >> "{log}";; esac\n'
                       f'exec "{real}" "$@"\n')
    wrapper.chmod(0o755)


BARRIER = """
import os, sys, time
from backends import runner
from cli.main import main
ready, go, tool = sys.argv[1:4]
real = runner.tool_path
waited = []

def tool_path(name):
    # a build's first act is to look its tool up: wait there until every process is there
    if name == tool and not waited:
        waited.append(name)
        open(ready, "w").close()
        while not os.path.exists(go):
            time.sleep(0.0002)
    return real(name)

runner.tool_path = tool_path
sys.exit(main(sys.argv[4:]))
"""


def at_once(runs: list[list[str]], tool: str, tmp_path: Path, env: dict[str, str]
            ) -> list[tuple[int, str]]:
    """Start the CLI runs, let each get as far as its build's first look-up of `tool`,
    then release all of them at the same moment; (exit status, stderr) of each."""
    go = tmp_path / "go"
    with contextlib.suppress(FileNotFoundError):
        go.unlink()
    procs, readies = [], []
    for i, argv in enumerate(runs):
        ready = tmp_path / f"ready{i}"
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        readies.append(ready)
        procs.append(subprocess.Popen([sys.executable, "-c", BARRIER, str(ready), str(go),
                                       tool, *argv], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    assert wait_until(lambda: all(r.exists() for r in readies), 60)
    go.touch()
    errors = [p.communicate(timeout=600)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errors, strict=True)]


ROUNDS = 30
LOSERS = ("holds an ext4 filesystem", "holds a gpt partition table", "another program holds "
          "the lock on", "attached as")


@pytest.mark.parametrize("kind", ["fs", "disk", "fs-on-a-disk"])
def test_two_state_roots_building_one_image_make_one_filesystem(tmp_path: Path, images,
                                                                loop_disk, kind: str):
    """fs: an image file; disk: an image file (parted writes the label into it);
    fs-on-a-disk: a block device, named /dev/loopN by one root and by a symlink to it by
    the other (the whole-disk node, resolved, is what both lock)."""
    log = tmp_path / "tool.log"
    bin_dir = tmp_path / "bin"
    tool = "parted" if kind == "disk" else "mkfs.ext4"
    counting_wrapper(bin_dir, tool, log, when="mklabel" if kind == "disk" else "")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    roots = [tmp_path / "root-a", tmp_path / "root-b"]
    if kind == "fs-on-a-disk":
        device = loop_disk(512)
        link = tmp_path / "disk-link"
        link.symlink_to(device)
        sources = [Path(device), link]
    else:
        sources = [images("shared.img", 512)] * 2
    for i, (root, source) in enumerate(zip(roots, sources, strict=True)):
        if kind == "disk":
            disk_pool(root, "p", source)
        else:
            fs_pool(root, "p", source, tmp_path / f"mnt{i}")
    decided = 0  # rounds where one built and the other was refused for the right reason
    for _ in range(ROUNDS):
        if kind == "fs-on-a-disk":
            subprocess.run(["wipefs", "-a", "-q", str(sources[0])], check=True)
        else:
            images("shared.img", 512)  # blank again, a new inode the pools follow by path
        log.write_text("")
        results = at_once([["--root", str(root), "pool-build", "p"] for root in roots],
                          tool, tmp_path, env)
        ran = log.read_text().splitlines()
        assert len(ran) <= 1, f"{len(ran)} runs: {ran}; {results}"
        assert kind == "fs-on-a-disk" or loops_of(sources[0]) == []
        losers = [err for code, err in results if code]
        if len(ran) == 1 and len(losers) == 1 and any(why in losers[0] for why in LOSERS):
            decided += 1
            if decided == 5:
                break
        # else: another program on the machine had the loop device open for a moment (a
        # `losetup --find` scan opens every loop device), and a build refused it as in use
    assert decided == 5, f"only {decided} rounds of {ROUNDS} ended with one build"
