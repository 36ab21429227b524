"""netfs pools: export discovery for real against nfs-ganesha on 127.0.0.1; the mount itself
(this kernel has no NFS client) checked by the exact argv it would run, with runner.run and
the mount table faked in the driver's modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import blockprobe, runner
from backends.drivers import fs as fsdrv
from backends.errors import InUse, PoolkeeperError, StateError, ValidationError
from backends.model import PoolDef, PoolSource, PoolTarget, SourceHost, VolumeDef
from tests.nfsserver import NfsServer, nfs_server  # noqa: F401 (fixture)

SAFE = "nodev,nosuid,noexec"


# == discovery, for real ===============================================================
def test_find_sources_lists_the_ganesha_exports(ctl, nfs_server: NfsServer):  # noqa: F811
    xml = ctl.find_pool_sources("netfs", host="127.0.0.1")
    for export in nfs_server.exports:
        assert f'<dir path="{export}"/>' in xml
    assert xml.count('<host name="127.0.0.1"/>') == len(nfs_server.exports)
    assert xml.count('<format type="nfs"/>') == len(nfs_server.exports)
    sources = fsdrv.NetfsDriver.find_sources(host="127.0.0.1")
    assert [s.dir for s in sources] == [str(p) for p in nfs_server.exports]
    assert all(s.hosts == [SourceHost("127.0.0.1")] and s.format == "nfs" for s in sources)


def test_find_sources_from_the_cli(cli, nfs_server: NfsServer):  # noqa: F811
    r = cli("find-storage-pool-sources", "netfs", "--host", "127.0.0.1")
    assert r.code == 0, r
    assert all(f'<dir path="{p}"/>' in r.out for p in nfs_server.exports)


def test_find_sources_needs_a_valid_host(monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(fsdrv.runner, "run", lambda argv, **kw: calls.append(list(argv)))
    for host in (None, "", "-oexec", "a b", "host;reboot", "fe80::1%eth0"):
        with pytest.raises(ValidationError, match="host"):
            fsdrv.NetfsDriver.find_sources(host=host)
    assert calls == []


def test_showmount_output_is_parsed(monkeypatch):
    out = "/srv/a 10.0.0.0/8\n/srv/with space (everyone)\nnot an export\n/srv/b *\n"
    monkeypatch.setattr(fsdrv.runner, "run", lambda argv, **kw: runner.Completed(
        list(argv), list(argv), 0, out, "", 0.0))
    sources = fsdrv.NetfsDriver.find_sources(host="nfs.example.com")
    assert [s.dir for s in sources] == ["/srv/a", "/srv/with space", "/srv/b"]


# == mount / umount by argv ============================================================
class FakeMounts:
    """Records every tool call; mount/umount succeed and update a fake mount table."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.table: list[blockprobe.Mount] = []
        self.busy = False

    def run(self, argv, **kwargs) -> runner.Completed:
        argv = list(argv)
        self.calls.append(argv)
        rc, err = 0, ""
        if argv[0] == "mount":
            fstype = argv[argv.index("-t") + 1] if "-t" in argv else "nfs"
            self.table.append(blockprobe.Mount(len(self.table) + 100, 1, 0, 50, "/",
                                               os.path.realpath(argv[-1]), argv[2], fstype,
                                               argv[-2], ""))
        elif argv[0] == "umount" and self.busy:
            rc, err = 32, f"umount: {argv[-1]}: target is busy."
        elif argv[0] == "umount":
            self.table = [m for m in self.table if m.target != os.path.realpath(argv[-1])]
        return runner.Completed(argv, argv, rc, "", err, 0.0)

    def of(self, tool: str) -> list[list[str]]:
        return [c for c in self.calls if c[0] == tool]


@pytest.fixture
def fake(monkeypatch) -> Iterator[FakeMounts]:
    fm = FakeMounts()
    monkeypatch.setattr(fsdrv.runner, "run", fm.run)
    monkeypatch.setattr(blockprobe, "mounts", lambda: list(fm.table))
    yield fm


def netfs_xml(name: str, target: Path, host: str = "nfs.example.com", port: int | None = None,
              src_dir: str = "/export/images", fmt: str | None = None, ver: str | None = None,
              options: tuple[str, ...] = ()) -> str:
    port_attr = f" port='{port}'" if port else ""
    parts = [f"<host name='{host}'{port_attr}/>", f"<dir path='{src_dir}'/>"]
    if fmt:
        parts.append(f"<format type='{fmt}'/>")
    if ver:
        parts.append(f"<protocol ver='{ver}'/>")
    opts = ""
    if options:
        opts = ("<fs:mount_opts>" + "".join(f"<fs:option name='{o}'/>" for o in options)
                + "</fs:mount_opts>")
    return ("<pool type='netfs' xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'>"
            f"<name>{name}</name><source>{''.join(parts)}</source>"
            f"<target><path>{target}</path></target>{opts}</pool>")


CASES = {
    "nfs": (dict(fmt="nfs"), ["-o", SAFE, "-t", "nfs", "nfs.example.com:/export/images"]),
    "auto": (dict(), ["-o", SAFE, "nfs.example.com:/export/images"]),
    "protocol-ver": (dict(fmt="nfs", ver="4.1"),
                     ["-o", f"nfsvers=4.1,{SAFE}", "-t", "nfs", "nfs.example.com:/export/images"]),
    "auto-ver-opts": (dict(ver="3", options=("noatime", "proto=tcp", "timeo=600", "soft")),
                      ["-o", f"nfsvers=3,noatime,proto=tcp,timeo=600,soft,{SAFE}",
                       "nfs.example.com:/export/images"]),
    "user-defaults-not-doubled": (dict(fmt="nfs", options=("nosuid", "ro", "nodev")),
                                  ["-o", f"ro,{SAFE}", "-t", "nfs",
                                   "nfs.example.com:/export/images"]),
    "port": (dict(fmt="nfs", port=2050), ["-o", f"port=2050,{SAFE}", "-t", "nfs",
                                          "nfs.example.com:/export/images"]),
    "cifs": (dict(fmt="cifs", host="fileserver", src_dir="share"),
             ["-o", f"guest,{SAFE}", "-t", "cifs", "//fileserver/share"]),
    "cifs-abs": (dict(fmt="cifs", host="fileserver", src_dir="/share/vm"),
                 ["-o", f"guest,{SAFE}", "-t", "cifs", "//fileserver/share/vm"]),
    "glusterfs": (dict(fmt="glusterfs", host="gluster1", src_dir="/gv0"),
                  ["-o", f"direct-io-mode=1,{SAFE}", "-t", "glusterfs", "gluster1:/gv0"]),
    "ipv6": (dict(fmt="nfs", host="::1", src_dir="/export"),
             ["-o", SAFE, "-t", "nfs", "[::1]:/export"]),
    "ipv4": (dict(host="192.0.2.7", src_dir="/export"), ["-o", SAFE, "192.0.2.7:/export"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mount_and_umount_argv(ctl, state_root, fake, tmp_path, case):
    from backends.controller import StorageController

    kwargs, expected = CASES[case]
    target = tmp_path / "mnt" / "net"
    ctl.define_pool(netfs_xml("n", target, **kwargs))
    ctl.start_pool("n")
    assert fake.of("mount") == [["mount", *expected, str(target)]]
    opts = fake.of("mount")[0][2]
    assert opts.endswith(",nodev,nosuid,noexec") or opts == SAFE  # mount's last option wins
    assert ctl.pool_info("n").state == "running"
    with StorageController(state_root, create_default=False, autostart=False) as again:
        assert again.pool_info("n").state == "running"  # found mounted after a restart
    ctl.stop_pool("n")
    assert fake.of("umount") == [["umount", str(target)]]
    assert ctl.pool_info("n").state == "inactive"


def test_started_pool_is_not_mounted_twice(ctl, fake, tmp_path):
    target = tmp_path / "net"
    ctl.define_pool(netfs_xml("n", target, fmt="nfs"))
    ctl.start_pool("n")
    ctl.stop_pool("n")
    fake.run(["mount", "-o", SAFE, "-t", "nfs", "nfs.example.com:/export/images", str(target)])
    fake.calls.clear()
    ctl.start_pool("n")  # already mounted at the target (by hand): counts as started
    assert fake.of("mount") == []


def test_other_mount_on_target_is_refused_and_left_alone(ctl, fake, tmp_path):
    target = tmp_path / "net"
    target.mkdir()
    fake.run(["mount", "-o", SAFE, "-t", "nfs", "other.example.com:/x", str(target)])
    fake.calls.clear()
    ctl.define_pool(netfs_xml("n", target, fmt="nfs"))
    with pytest.raises(StateError, match="already a mount point"):
        ctl.start_pool("n")
    assert fake.calls == []


def test_stop_while_busy_is_refused(ctl, fake, tmp_path):
    target = tmp_path / "net"
    ctl.define_pool(netfs_xml("n", target, fmt="nfs"))
    ctl.start_pool("n")
    fake.busy = True
    with pytest.raises(InUse, match="busy"):
        ctl.stop_pool("n")
    assert ctl.pool_info("n").state == "running"
    fake.busy = False
    ctl.stop_pool("n")


def test_volumes_never_land_on_the_bare_mount_point(ctl, fake, tmp_path):
    target = tmp_path / "net"
    ctl.define_pool(netfs_xml("n", target, fmt="nfs"))
    ctl.start_pool("n")
    ctl.create_volume_def("n", VolumeDef(name="v", capacity=1 << 20)).wait(30)
    fake.table.clear()  # unmounted behind poolkeeper's back
    assert ctl.pool_info("n").state == "inaccessible"
    with pytest.raises(StateError, match="not mounted"):
        ctl.create_volume_def("n", VolumeDef(name="w", capacity=1 << 20)).wait(30)
    assert not (target / "w").exists()


def test_build_makes_the_mount_point_and_delete_removes_it(ctl, fake, tmp_path):
    target = tmp_path / "deep" / "net"
    ctl.define_pool(netfs_xml("n", target, fmt="nfs"))
    ctl.build_pool("n").wait(30)
    assert target.is_dir()
    ctl.delete_pool("n")
    assert not target.exists()
    assert fake.calls == []


# == hostile values: refused before any argv ===========================================
def _pool(target: Path, host: str = "nfs.example.com", src_dir: str = "/export",
          options: list[str] | None = None, fmt: str = "nfs", ver: str | None = None) -> PoolDef:
    return PoolDef(type="netfs", name="h", source=PoolSource(
        hosts=[SourceHost(host)], dir=src_dir, format=fmt, protocol_ver=ver),
        target=PoolTarget(path=str(target)), mount_opts=options or [])


HOSTILE = {
    "host-option": (dict(host="-oexec"), "host name"),
    "host-space": (dict(host="nfs server"), "host name"),
    "host-colon-path": (dict(host="evil:/etc"), "host name"),
    "dir-comma": (dict(src_dir="/export,exec"), "comma"),
    "dir-newline": (dict(src_dir="/export\nexec"), "control character"),
    "dir-dash": (dict(src_dir="-oexec", fmt="cifs"), "must not start with '-'"),
    "dir-dotdot": (dict(src_dir="/export/../etc"), r"\.\."),
    "dir-relative-nfs": (dict(src_dir="export"), "absolute"),
    "opt-exec": (dict(options=["exec"]), "mount option 'exec' is refused"),
    "opt-suid": (dict(options=["noatime", "suid"]), "mount option 'suid' is refused"),
    "opt-dev": (dict(options=["dev"]), "mount option 'dev' is refused"),
    "opt-smuggled": (dict(options=["nfsvers=3,exec"]), "one option per"),
    "opt-unknown": (dict(options=["x-systemd.automount"]), "allow-list"),
    "opt-bad-value": (dict(options=["proto=tcp;reboot"]), "not valid|valid value"),
    "opt-password": (dict(options=["password=hunter2"], fmt="cifs"), "refused"),
    "ver-twice": (dict(options=["nfsvers=4"], ver="3"), "given twice"),
    "ver-cifs": (dict(fmt="cifs", ver="3"), "NFS only"),
    "ver-garbage": (dict(ver="3,exec"), "protocol version"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_values_refused_before_any_argv(fake, tmp_path, case):
    kwargs, message = HOSTILE[case]
    driver = fsdrv.NetfsDriver(_pool(tmp_path / "t", **kwargs))
    with pytest.raises(ValidationError, match=message):
        driver.start()
    with pytest.raises(ValidationError, match=message):
        driver.build(None, None)
    assert fake.calls == []
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("options", [["exec"], ["nfsvers=3,exec"], ["suid"]])
def test_hostile_options_never_mount_through_the_controller(ctl, fake, tmp_path, options):
    target = tmp_path / "net"
    with pytest.raises((ValidationError, PoolkeeperError), match="mount option"):
        ctl.define_pool(netfs_xml("n", target, fmt="nfs", options=tuple(options)))
        ctl.start_pool("n")
    assert fake.of("mount") == []


def test_hostile_host_refused_at_define(ctl, fake, tmp_path):
    with pytest.raises(ValidationError, match="host name"):
        ctl.define_pool(netfs_xml("n", tmp_path / "net", host="-oexec"))
    assert fake.calls == []
