"""A private LVM for tests (needs root, loop devices and lvm2).

`lvm` (fixture) gives a test its own LVM_SYSTEM_DIR whose lvm.conf
  * sets `global { activation = 0 }`: PV/VG/LV metadata is real, nothing is activated (this
    machine has no device-mapper, so LV device nodes never appear);
  * admits ONLY the loop devices the test made (devices/filter and global_filter list them
    by exact path): the system's VGs, disks and other tests' devices are invisible to it;
  * keeps locks, backups and archives under the test's tmp dir, so /etc/lvm and /run/lock/lvm
    are never written; no udev, lvmetad, lvmpolld, dbus or devices file.
POOLKEEPER_LVM_SYSTEM_DIR points the driver at it. `lvm.disk(512)` makes a sparse image
and attaches it; `lvm.run(...)`/`lvm.report(...)` call LVM with the same environment.

Teardown, even after a failure: every VG on our devices is removed (`vgreduce
--removemissing` first if a PV was detached), every LVM label on them is removed, then each
loop device is detached only if our image is still behind it, and the images are deleted.

`lvm.fake_dm(monkeypatch)` imitates what device-mapper and udev would make for active LVs
(a block node per LV, backed by a loop device of the LV's size, /dev/VG/LV linking to it,
and its dm uuid in a private sysfs tree), so the driver's wipe/clone/upload/download paths
run against real block devices. LVM itself still never activates anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.loopfs import backing_file, can_use_loop_devices, loops_of

LVM_CONF = """\
# poolkeeper test configuration: metadata only, our loop devices only, nothing outside {base}
config {{
    checks = 1
}}
devices {{
    dir = "/dev"
    scan = [ "/dev" ]
    obtain_device_list_from_udev = 0
    external_device_info_source = "none"
    use_devicesfile = 0
    hints = "none"
    multipath_component_detection = 0
    md_component_detection = 0
    filter = [ {accept}"r|.*|" ]
    global_filter = [ {accept}"r|.*|" ]
}}
global {{
    activation = {activation}
    use_lvmlockd = 0
    use_lvmpolld = 0
    notify_dbus = 0
    event_activation = 0
    system_id_source = "none"
    locking_dir = "{base}/lock"
}}
activation {{
    udev_sync = 0
    udev_rules = 0
    monitoring = 0
}}
backup {{
    backup = 1
    backup_dir = "{base}/backup"
    archive = 1
    archive_dir = "{base}/archive"
}}
"""


class LvmEnv:
    """The private LVM_SYSTEM_DIR and a way to run LVM in it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.system_dir = base / "etc"
        for sub in ("etc", "lock", "backup", "archive"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        self.devices: list[str] = []
        # 0: metadata only. 1: LVM activates LVs as on a real host, which without
        # device-mapper makes lvcreate, lvresize and vgchange -aly fail (item 17's host).
        self.activation = 0
        self.write_conf()

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "LVM_SYSTEM_DIR": str(self.system_dir),
                "LVM_SUPPRESS_FD_WARNINGS": "1", "LC_ALL": "C"}

    def write_conf(self) -> None:
        accept = "".join(f'"a|^{re.escape(d)}$|", ' for d in self.devices)
        text = LVM_CONF.format(base=self.base, accept=accept, activation=self.activation)
        tmp = self.system_dir / "lvm.conf.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.system_dir / "lvm.conf")

    def set_activation(self, on: bool) -> None:
        self.activation = int(on)
        self.write_conf()

    def allow(self, device: str) -> None:
        if device not in self.devices:
            self.devices.append(device)
            self.write_conf()

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(argv), capture_output=True, text=True, env=self.env,
                              stdin=subprocess.DEVNULL, timeout=120, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                               f"{done.stderr.strip()}")
        return done

    def report(self, *argv: str, kind: str) -> list[dict]:
        """Rows of an LVM JSON report, e.g. report("vgs", "-o", "vg_name", kind="vg")."""
        done = self.run(argv[0], "--reportformat", "json", "--units", "b", "--nosuffix",
                        *argv[1:])
        rows: list[dict] = []
        for part in json.loads(done.stdout or "{}").get("report", []):
            rows += part.get(kind, [])
        return rows


STALE = b"\xa5" * (1 << 20)  # what a fake LV holds when it is made


class FakeDeviceMapper:
    """What device-mapper + udev would make for an active LV, without device-mapper:
    DEV/dm-N (a block node of a loop device as big as the LV), DEV/VG/LV -> ../dm-N, and
    SYS/MAJ:MIN/dm/uuid = LVM-<vg uuid><lv uuid>."""

    def __init__(self, world: Lvm) -> None:
        self.world = world
        self.dev = world.base / "fakedev"
        self.sys = world.base / "fakesys"
        self.dev.mkdir(exist_ok=True)
        self.sys.mkdir(exist_ok=True)
        self.active: dict[tuple[str, str], tuple[Path, Path]] = {}  # -> (node, image)
        self._next = 0

    def activate(self, vg: str, lv: str) -> Path:
        row = self.world.env.report("lvs", "-o", "lv_uuid,vg_uuid,lv_size", f"{vg}/{lv}",
                                    kind="lv")[0]
        image = self.world.base / f"fakedm-{uuid.uuid4().hex[:8]}.img"
        size = int(row["lv_size"])
        with open(image, "wb") as fh:  # a new LV shows what a deleted one left there
            fh.write(STALE * (size // len(STALE)))
            fh.truncate(size)
        loop = self.world.attach(image, allow=False)
        st = os.stat(loop)
        node = self.dev / f"dm-{self._next}"
        self._next += 1
        os.mknod(node, 0o600 | stat.S_IFBLK, st.st_rdev)
        (self.dev / vg).mkdir(exist_ok=True)
        (self.dev / vg / lv).symlink_to(f"../{node.name}")
        uuid_dir = self.sys / f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" / "dm"
        uuid_dir.mkdir(parents=True, exist_ok=True)
        (uuid_dir / "uuid").write_text(
            "LVM-" + row["vg_uuid"].replace("-", "") + row["lv_uuid"].replace("-", "") + "\n")
        self.active[(vg, lv)] = (node, image)
        return node

    def deactivate(self, vg: str, lv: str) -> None:
        entry = self.active.pop((vg, lv), None)
        if entry is None:
            return
        node, image = entry
        with contextlib.suppress(OSError):
            (self.dev / vg / lv).unlink()
        with contextlib.suppress(OSError):
            node.unlink()
        self.world.forget(image)

    def node(self, vg: str, lv: str) -> Path:
        return self.active[(vg, lv)][0]

    def adopt(self, vg: str, lv: str) -> None:
        """Take over an LV a forked child activated (its node and loop device), so that
        lvremove and cleanup here deactivate and detach it."""
        node = (self.dev / vg / lv).resolve()
        rdev = os.stat(node).st_rdev
        backing = Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}/loop/backing_file")
        image = Path(backing.read_text().strip())
        if image not in self.world.images:
            self.world.images.append(image)
        self.active[(vg, lv)] = (node, image)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point the driver at the fake tree, and keep it in step with lvcreate/lvremove."""
        from backends import runner
        from backends.drivers import logical

        monkeypatch.setattr(logical, "DEV_DIR", str(self.dev))
        monkeypatch.setattr(logical, "SYS_DEV_BLOCK", str(self.sys))
        real_run = runner.run

        def run(argv, **kwargs):  # type: ignore[no-untyped-def]
            done = real_run(argv, **kwargs)
            args = [str(a) for a in argv]
            if done.returncode == 0 and args[0] == "lvcreate":
                flag = "--name" if "--name" in args else "-n"
                vg = args[-1].split("/")[0]
                self.activate(vg, args[args.index(flag) + 1])
            elif done.returncode == 0 and args[0] == "lvremove":
                vg, lv = args[-1].split("/")
                self.deactivate(vg, lv)
            return done

        monkeypatch.setattr(runner, "run", run)

    def close(self) -> None:
        for vg, lv in list(self.active):
            self.deactivate(vg, lv)


class Lvm:
    """One test's LVM world: the environment, its loop devices, cleanup."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = LvmEnv(base)
        self.images: list[Path] = []
        self.fake: FakeDeviceMapper | None = None

    @property
    def system_dir(self) -> Path:
        return self.env.system_dir

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.env.run(*argv, check=check)

    def report(self, *argv: str, kind: str) -> list[dict]:
        return self.env.report(*argv, kind=kind)

    # -- loop devices -----------------------------------------------------------------------
    def attach(self, image: Path, allow: bool = True) -> str:
        if image not in self.images:
            self.images.append(image)
        done = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True,
                              text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"losetup failed: {done.stderr.strip()}")
        device = done.stdout.strip()
        if allow:
            self.env.allow(device)
        return device

    def disk(self, size_mib: int = 512) -> str:
        """A new sparse image of `size_mib` MiB on a loop device that LVM may see."""
        image = self.base / f"pv-{uuid.uuid4().hex[:8]}.img"
        with open(image, "wb") as fh:
            fh.truncate(size_mib << 20)
        return self.attach(image)

    def image_of(self, device: str) -> Path:
        backing = backing_file(device)
        assert backing is not None and Path(backing) in self.images, f"{device} is not ours"
        return Path(backing)

    def detach(self, device: str) -> Path:
        """Detach one of our loop devices (its image stays for reattach)."""
        image = self.image_of(device)
        _detach_if_ours(device, image)
        return image

    def reattach(self, image: Path) -> str:
        return self.attach(image)

    def forget(self, image: Path) -> None:
        for device in loops_of(image):
            _detach_if_ours(device, image)
        with contextlib.suppress(OSError):
            image.unlink()
        if image in self.images:
            self.images.remove(image)

    def fake_dm(self, monkeypatch: pytest.MonkeyPatch) -> FakeDeviceMapper:
        if self.fake is None:
            self.fake = FakeDeviceMapper(self)
            self.fake.install(monkeypatch)
        return self.fake

    # -- metadata lvcreate cannot make here ------------------------------------------------
    def add_lv_metadata(self, vg: str, make_text: Callable[[dict[str, str]], str]) -> None:
        """Add hand-written LVs (thick snapshots, thin pools and thin LVs: what lvcreate
        refuses without device-mapper) to `vg` with vgcfgbackup + vgcfgrestore --force.
        `make_text` gets {device: "pvN"} (the metadata's PV keys) and returns LV sections
        in LVM's text format; the result is real metadata that lvs/pvs/vgs report."""
        path = self.base / f"{vg}-{uuid.uuid4().hex[:8]}.vg"
        self.run("vgcfgbackup", "-f", str(path), vg)
        meta = path.read_text()
        keys = {dev: key for key, dev in
                re.findall(r'(pv[0-9]+) \{\s*id = "[^"]*"\s*device = "([^"]*)"', meta)}
        text = make_text(keys)
        if "logical_volumes {" in meta:
            at = meta.index("logical_volumes {") + len("logical_volumes {")
            meta = meta[:at] + "\n" + text + meta[at:]
        else:
            at = meta.rindex("}")  # the end of the VG's block
            meta = meta[:at] + "logical_volumes {\n" + text + "\n}\n" + meta[at:]
        path.write_text(meta)
        self.run("vgcfgrestore", "--force", "-f", str(path), vg)

    def free_extents(self, vg: str) -> list[tuple[str, int, int]]:
        """(device, first free PE, count) of `vg`, from pvs --segments."""
        rows = self.report("pvs", "--segments", "-o", "pv_name,vg_name,pvseg_start,pvseg_size,"
                           "lv_name", kind="pvseg")
        return [(r["pv_name"], int(r["pvseg_start"]), int(r["pvseg_size"])) for r in rows
                if r["vg_name"] == vg and not r["lv_name"]]

    # -- teardown ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        if self.fake is not None:
            self.fake.close()
        # Only our devices pass the filter: every VG and PV seen here is one we made.
        with contextlib.suppress(Exception):
            for row in self.report("vgs", "-o", "vg_name,vg_missing_pv_count", kind="vg"):
                vg = row["vg_name"]
                if int(row.get("vg_missing_pv_count") or 0):
                    self.run("vgreduce", "--removemissing", "--force", vg, check=False)
                self.run("vgremove", "-ff", "-y", vg, check=False)
        for image in list(self.images):
            for device in loops_of(image):
                if device in self.env.devices:
                    self.run("pvremove", "-ff", "-y", device, check=False)
        for image in list(self.images):
            self.forget(image)


def _detach_if_ours(device: str, image: Path) -> None:
    if backing_file(device) != str(image):
        return  # not ours any more (or already gone): leave it alone
    for _ in range(20):
        if subprocess.run(["losetup", "-d", device], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    for _ in range(20):  # detach is asynchronous when the device was just closed
        if backing_file(device) != str(image):
            return
        time.sleep(0.05)


def can_use_lvm() -> bool:
    return can_use_loop_devices() and shutil.which("lvm") is not None


@pytest.fixture(name="lvm")
def lvm_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lvm]:
    """A private LVM (see the module docstring); POOLKEEPER_LVM_SYSTEM_DIR points at it."""
    if not can_use_lvm():
        pytest.skip("needs root, loop devices and lvm2")
    world = Lvm(tmp_path / "lvm")
    monkeypatch.setenv("POOLKEEPER_LVM_SYSTEM_DIR", str(world.system_dir))
    try:
        yield world
    finally:
        world.cleanup()
