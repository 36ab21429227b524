"""System directories and the state root are never a pool's target.

Refused as the target of any pool, with all below them: /etc, /boot, /usr, /bin, /sbin,
/lib* (programs, libraries, configuration: a dir pool on /etc/cron.d plus vol-upload is a
root cron job), /proc, /sys and /dev (kernel interfaces; /dev and below stay allowed for
disk, logical and iscsi pools, whose volumes are device nodes there). Refused as the
directory itself only: /, /var, /var/lib, /run, /home, /root, /tmp, /var/tmp (every file
in them would be listed as a volume that can be wiped or deleted; their subdirectories,
such as /var/lib/libvirt/images, are ordinary pool places). The state root and anything
under it is refused too, except the default pool's directory.

However the path is spelled: `//etc`, `/./etc`, `/usr/../etc`, a symlink to /etc or to a
directory above the target, a bind mount of /etc or of a directory inside it. Checked at
define, and again at build and start (a link on the way may have changed since).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.errors import PoolkeeperError, ValidationError
from backends.model import PoolDef, PoolSource, PoolTarget, SourceDevice
from tests.conftest import make_dir_pool

TREES = ["/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/proc", "/sys", "/dev"]
EXACT = ["/", "/var", "/var/lib", "/run", "/home", "/root", "/tmp", "/var/tmp"]
FILE_POOL_TYPES = ["dir", "fs", "netfs"]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


def pool_def(pool_type: str, target: str, name: str = "x") -> PoolDef:
    source = PoolSource()
    if pool_type == "fs":
        source = PoolSource(devices=[SourceDevice("/dev/loop99")], format="ext4")
    elif pool_type == "netfs":
        source = PoolSource(hosts=[_host()], dir="/export", format="nfs")
    elif pool_type == "disk":
        source = PoolSource(devices=[SourceDevice("/dev/loop98")], format="gpt")
    elif pool_type == "logical":
        source = PoolSource(name="vg_pk_test", format="lvm2")
    elif pool_type == "iscsi":
        source = PoolSource(hosts=[_host()], devices=[SourceDevice(
            "iqn.2024-01.org.example:target")])
    return PoolDef(type=pool_type, name=name, target=PoolTarget(path=target), source=source)


def _host():
    from backends.model import SourceHost

    return SourceHost("192.0.2.1")


def refused(ctl, pdef: PoolDef, *words: str) -> str:
    with pytest.raises(ValidationError) as info:
        ctl.define_pool_def(pdef)
    message = str(info.value)
    assert "target path" in message and all(w in message for w in words), message
    assert ctl.pool_names() == []  # nothing stored
    return message


def a_subdirectory_of(top: str) -> str:
    return next(str(p) for p in sorted(Path(top).iterdir()) if p.is_dir() and not p.is_symlink())


# == define ============================================================================
@pytest.mark.parametrize("pool_type", FILE_POOL_TYPES)
@pytest.mark.parametrize("top", TREES)
def test_system_trees_and_all_below_are_refused(ctl, pool_type, top):
    refused(ctl, pool_def(pool_type, top), top)
    refused(ctl, pool_def(pool_type, top + "/poolkeeper-images"), top)


@pytest.mark.parametrize("top", EXACT)
def test_system_dirs_themselves_are_refused_but_not_below(ctl, top):
    refused(ctl, pool_def("dir", top), "itself" if top != "/" else "/")
    ctl.define_pool_def(pool_def("dir", top.rstrip("/") + "/pk-test-pools/images"))
    ctl.undefine_pool("x")


@pytest.mark.parametrize("spelling", ["//etc", "/./etc", "/etc/", "/usr/../etc",
                                      "/etc/./cron.d", "///usr//local"])
def test_every_spelling_is_caught(ctl, spelling):
    refused(ctl, pool_def("dir", spelling))


def test_a_symlink_to_a_system_dir_is_caught(ctl, tmp_path):
    (tmp_path / "innocent").symlink_to("/etc")
    refused(ctl, pool_def("dir", str(tmp_path / "innocent")), "/etc")
    (tmp_path / "parent").symlink_to("/usr/share")
    refused(ctl, pool_def("dir", str(tmp_path / "parent" / "images")), "/usr")
    (tmp_path / "root-link").symlink_to("/")
    refused(ctl, pool_def("dir", str(tmp_path / "root-link")), "itself")


@contextlib.contextmanager
def bind_mount(source: str, mount_point: Path) -> Iterator[Path]:
    mount_point.mkdir()
    subprocess.run(["mount", "--bind", source, str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


@needs_root
def test_a_bind_mount_of_a_system_dir_is_caught(ctl, tmp_path):
    with bind_mount("/etc", tmp_path / "bind-etc") as bound:
        refused(ctl, pool_def("dir", str(bound)), "/etc")
        refused(ctl, pool_def("dir", str(bound / "pk-images")), "/etc")
    inner = a_subdirectory_of("/usr")  # a bind of a directory inside a tree
    with bind_mount(inner, tmp_path / "bind-inner") as bound:
        refused(ctl, pool_def("fs", str(bound)), inner)


@pytest.mark.parametrize("pool_type,target", [("disk", "/dev"), ("logical", "/dev/vg_pk_test"),
                                              ("iscsi", "/dev/disk/by-path")])
def test_device_pools_may_use_dev(ctl, pool_type, target):
    ctl.define_pool_def(pool_def(pool_type, target))
    assert ctl.pool_def("x").target.path == target


def test_device_pools_may_not_use_other_system_dirs(ctl):
    refused(ctl, pool_def("iscsi", "/etc"), "/etc")  # (disk and logical have own rules)


def test_the_state_root_and_all_below_is_refused(ctl, state_root, tmp_path):
    for target in (state_root, state_root / "storage", state_root / "run",
                   state_root / "locks", state_root / "some-dir"):
        refused(ctl, pool_def("dir", str(target)), "state directory")
    (tmp_path / "to-state").symlink_to(state_root / "storage")
    refused(ctl, pool_def("dir", str(tmp_path / "to-state")), "state directory")
    # the default pool's directory (and below) is the one place inside it pools may use
    ctl.define_pool_def(pool_def("dir", str(ctl.paths.images_dir), "images"))
    ctl.define_pool_def(pool_def("dir", str(ctl.paths.images_dir / "sub"), "sub"))


def test_the_default_pool_still_starts(state_root):
    from backends.controller import StorageController

    with StorageController(state_root, autostart=False) as ctl:
        assert not ctl.startup_errors, ctl.startup_errors
        assert ctl.pool_info("default").state == "running"


def test_cli_refuses_with_the_reason(cli):
    result = cli("pool-define-as", "sys", "dir", "--target", "//etc/")
    assert result.code == 1 and "Traceback" not in result.err, result
    assert "/etc" in result.err and "system files" in result.err, result


# == build and start: the path changed after define ====================================
def test_build_and_start_check_again(ctl, tmp_path):
    safe = tmp_path / "safe"
    safe.mkdir()
    link = tmp_path / "via"
    link.symlink_to(safe)
    # a pool whose target sits below a link: fine while the link points somewhere harmless
    make_dir_pool(ctl, "p", link / "images")
    ctl.stop_pool("p")
    sub = Path(a_subdirectory_of("/etc")).name
    ctl.define_pool_def(PoolDef(type="dir", name="q", target=PoolTarget(
        path=str(link / sub))))
    (safe / sub).mkdir()
    link.unlink()
    link.symlink_to("/proc")  # the target of p is now /proc/images
    with pytest.raises(PoolkeeperError, match="/proc"):
        ctl.build_pool("p").wait(60)
    link.unlink()
    link.symlink_to("/etc")  # the target of q is now an existing directory in /etc
    with pytest.raises(PoolkeeperError, match="/etc"):
        ctl.start_pool("q")
    assert ctl.pool_info("q").state == "inactive"
