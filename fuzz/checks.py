"""The properties the fuzzers check, shared by the Hypothesis tests (tests/reliability/) and
the atheris harnesses (fuzz/fuzz_*.py), so that both hold the code to the same rules.

Each check takes an input (a definition, a text, a table), runs what the product runs on
it, and either returns a short outcome ("ok", "refused: InvalidName") or fails an assert.
Only our own errors (PoolkeeperError) count as a refusal: any other exception escapes and
is a bug. No check runs a tool: where a driver would, a recording runner stands in.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator

from backends import runner, xmlio
from backends.checks import is_remote_backing, require_host_name
from backends.drivers import disk as diskdrv
from backends.drivers import driver_class, lvm_report
from backends.drivers import fs as fsdrv
from backends.drivers import iscsi as iscsidrv
from backends.drivers import iscsi_direct as directdrv
from backends.drivers import logical as lvmdrv
from backends.drivers.dir import DirDriver
from backends.errors import PoolkeeperError
from backends.model import (
    CREATABLE_FILE_FORMATS,
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceDevice,
    VolumeDef,
)
from backends.secret_defs import format_secret, parse_secret

SAFE_LAST = ["nodev", "nosuid", "noexec"]  # mount's last option wins: these must be last
ISCSIADM_WITH_ARG = ("--mode", "--type", "--portal", "--targetname", "--interface", "--op",
                     "--name", "--value")
QEMU_IMG_OPTIONS = {"compat", "cluster_size", "lazy_refcounts", "extended_l2", "nocow"}
REFUSED_MOUNT_KEYS = ("exec", "suid", "dev", "defaults", "user", "users", "remount", "bind",
                      "loop", "password", "credentials")
DIR_TARGET = "/pool"


def refused(exc: PoolkeeperError) -> str:
    assert str(exc).strip(), f"{type(exc).__name__} without a message"
    return f"refused: {type(exc).__name__}"


# == argv ===============================================================================
def assert_no_option_injection(argv: list[str], *, with_arg: Iterable[str] = (),
                               flags: Iterable[str] = (), words: int = 1,
                               nul_ok: bool = False) -> list[str]:
    """Walk argv as getopt would (GNU getopt permutes: an argument anywhere that begins
    with '-' is an option) and return the positional arguments after the first `words`
    (the program, and its subcommand if it has one). Only our own flags may begin with
    '-'; a value that does is safe only as an option's argument or after --. A NUL makes
    exec fail with ValueError: validated values never hold one (`nul_ok` is for builders
    called on raw input, where that failure cannot smuggle anything in)."""
    assert isinstance(argv, list) and argv, argv
    for arg in argv:
        assert type(arg) is str, f"{arg!r} in {argv} is not a str"
        assert nul_ok or "\x00" not in arg, f"NUL in {arg!r}: exec would fail with ValueError"
    takes_arg, plain = set(with_arg), set(flags)
    positional: list[str] = []
    i, after_dashes = words, False
    while i < len(argv):
        arg = argv[i]
        if after_dashes:
            positional.append(arg)
        elif arg == "--":
            after_dashes = True
        elif arg in takes_arg:
            assert i + 1 < len(argv), f"{arg} has no argument in {argv}"
            i += 1
        elif arg not in plain:
            assert not arg.startswith("-"), f"{arg!r} would be read as an option: {argv}"
            positional.append(arg)
        i += 1
    return positional


def split_qemu_opts(text: str) -> dict[str, str]:
    """qemu's KEY=VALUE,KEY=VALUE with ',,' standing for a comma inside a value."""
    out: dict[str, str] = {}
    for item in text.replace(",,", "\x00").split(","):
        key, sep, value = item.partition("=")
        assert sep and key not in out, f"{key!r} twice or without a value in {text!r}"
        out[key] = value.replace("\x00", ",")
    return out


@contextlib.contextmanager
def patched(obj: object, **attrs: object) -> Iterator[None]:
    saved = {name: getattr(obj, name) for name in attrs}
    for name, value in attrs.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)


class RecordingRunner:
    """Stands in for runner.run: records argv, runs nothing. iscsiadm discovery offers
    `target`; `iscsiadm --mode session` has none (exit 21); everything else exits 0."""

    def __init__(self, target: str = "") -> None:
        self.target = target
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], **_kwargs: object) -> runner.Completed:
        argv = list(argv)
        self.calls.append(argv)
        out = f"127.0.0.1:3260,1 {self.target}\n" if "discovery" in argv else ""
        rc = 21 if argv[1:3] == ["--mode", "session"] else 0
        return runner.Completed(argv, argv, rc, out, "", 0.0)


def validate_pool(pool: PoolDef, through_xmlio: bool) -> None:
    """What define_pool_def checks before a definition is stored; or (through_xmlio False)
    the driver's own checks alone, which must be enough to keep argv safe by themselves."""
    if through_xmlio:
        xmlio.validate_pool(pool)
    driver_class(pool.type).validate(pool)


# -- fs / netfs: mount ------------------------------------------------------------------
def check_mount_options(per_type: list[str], user: list[str]) -> str:
    try:
        text = fsdrv.mount_options(per_type, user)
    except PoolkeeperError as exc:
        return refused(exc)
    opts = text.split(",")
    assert opts[-3:] == SAFE_LAST, text
    assert not {"exec", "suid", "dev", "defaults"} & set(opts), text
    assert all(o and not o.startswith("-") and o.isprintable() and " " not in o
               for o in opts), text
    for opt in opts[:-3]:
        assert opt in per_type or fsdrv.check_mount_option(opt) == opt
    return "ok"


def check_mount_option(opt: str) -> str:
    try:
        assert fsdrv.check_mount_option(opt) == opt
    except PoolkeeperError as exc:
        return refused(exc)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_=.:+/@-]*", opt), opt
    assert opt.partition("=")[0] not in REFUSED_MOUNT_KEYS, opt
    return "ok"


def _check_mount_argv(argv: list[str], target: str | None) -> list[str]:
    assert argv[:2] == ["mount", "-o"], argv
    assert argv[2].split(",")[-3:] == SAFE_LAST, argv
    positional = assert_no_option_injection(argv, with_arg=("-o", "-t"))
    assert len(positional) == 2 and positional[1] == target, argv
    return positional


def check_fs_mount(pool: PoolDef, through_xmlio: bool) -> str:
    try:
        validate_pool(pool, through_xmlio)
        argv = fsdrv.FsDriver(pool)._mount_argv(pool.source.devices[0].path)
    except PoolkeeperError as exc:
        return refused(exc)
    device, _target = _check_mount_argv(argv, pool.target.path)
    assert device == pool.source.devices[0].path and device.startswith("/"), argv
    assert "," not in device, argv
    return "ok"


def check_netfs_mount(pool: PoolDef, through_xmlio: bool) -> str:
    try:
        validate_pool(pool, through_xmlio)
        argv = fsdrv.NetfsDriver(pool).mount_argv()
    except PoolkeeperError as exc:
        return refused(exc)
    source, _target = _check_mount_argv(argv, pool.target.path)
    host = pool.source.hosts[0].name
    assert require_host_name(host) == host, argv
    assert source.startswith(("//", host, f"[{host}]")), argv
    return "ok"


# -- logical: pvcreate, vgcreate, lvcreate ----------------------------------------------
def check_logical_build(pool: PoolDef, through_xmlio: bool) -> str:
    """pvcreate -- DEV and vgcreate -- VG DEV...: the values are checked even though they
    follow --, since LVM reads a VG name like 'a/b' or '..' as a path."""
    try:
        validate_pool(pool, through_xmlio)
        driver = lvmdrv.LogicalDriver(pool)
        vg, devices, path = driver.vg, driver.devices, driver.volume_path("v")
    except PoolkeeperError as exc:
        return refused(exc)
    assert re.fullmatch(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}", vg) and vg not in (".", "..")
    for dev in [*devices, path]:
        assert dev.startswith("/") and "\x00" not in dev and ".." not in dev.split("/"), dev
    assert_no_option_injection(["vgcreate", "--", vg, *devices])
    return "ok"


def check_lvcreate(vol: VolumeDef, state: lvm_report.VGState, lvs: list[lvm_report.LVState],
                   validate_first: bool) -> str:
    driver = lvmdrv.LogicalDriver(PoolDef(type="logical", name=state.name,
                                          source=PoolSource(name=state.name)))
    try:
        if validate_first:
            xmlio.validate_volume(vol, "logical")
        argv = driver.create_argv(vol, state, lvs)
    except PoolkeeperError as exc:
        return refused(exc)
    assert argv[:2] == ["lvcreate", "--yes"], argv
    positional = assert_no_option_injection(argv, with_arg=("--name", "-n", "-L", "-V"),
                                            flags=("--yes", "--thin", "-s"))
    name_at = argv.index("--name") if "--name" in argv else argv.index("-n")
    assert argv[name_at + 1] == vol.name == lvmdrv.check_lv_name(vol.name), argv
    assert len(positional) == 1, argv
    vg, _, lv = positional[0].partition("/")
    assert vg == state.name and (not lv or lv in {x.name for x in lvs}), argv
    for flag in ("-L", "-V"):
        if flag in argv:
            size = argv[argv.index(flag) + 1]
            assert re.fullmatch(r"[1-9][0-9]*b", size), argv
            assert int(size[:-1]) % state.extent_size == 0, argv
    return "ok"


# -- disk: parted mkpart ----------------------------------------------------------------
def check_mkpart_plan(table: diskdrv.DiskTable, fmt: str, capacity: int,
                      start: int | None) -> str:
    """_plan decides everything mkpart is given: `parted -s DISK mkpart TYPE [FS] {start}B
    {end-1}B` (built inline in _create, which needs a real disk). A plan must lie in one
    free extent, aligned, and its numbers can never begin with '-'."""
    pool = PoolDef(type="disk", name="d", source=PoolSource(devices=[SourceDevice(table.device)]),
                   target=PoolTarget(path="/dev"))
    try:
        plan = diskdrv.DiskDriver(pool)._plan(table.device, table, fmt, capacity, start)
    except PoolkeeperError as exc:
        return refused(exc)
    assert plan.start % diskdrv.ALIGN == 0 and plan.start >= diskdrv.ALIGN, plan
    assert plan.end - plan.start >= capacity and (plan.end - plan.start) % table.sector == 0
    assert start is None or plan.start == start, plan
    gap = next((g for g in table.candidate_gaps(fmt)
                if table.usable(g)[0] <= plan.start and plan.end <= g.end), None)
    assert gap is not None, f"{plan} is in no free extent of {table.gaps}"
    assert not any(p.start < plan.end and plan.start < p.end for p in table.partitions
                   if not (gap.logical and p.kind == "extended")), plan
    assert plan.number not in {p.number for p in table.partitions} and plan.number >= 1
    assert plan.part_type in ("primary", "logical", "extended"), plan
    argv = ["parted", "-s", table.device, "mkpart", plan.part_type, f"{plan.start}B",
            f"{plan.end - 1}B"]
    assert_no_option_injection(argv, flags=("-s",))
    name = diskdrv.partition_name(table.device, plan.number)
    assert diskdrv.partition_number(table.device, name) == plan.number
    return "ok"


def check_parse_parted(text: str) -> str:
    """parted's output carries guest data (GPT partition names): parse_parted returns
    numbers or raises ValueError, which read_table turns into our ToolFailed."""
    try:
        disk, rows = diskdrv.parse_parted(text)
    except ValueError:
        return "refused: ValueError"
    assert isinstance(disk["size"], int) and isinstance(disk["sector"], int)
    for row in rows:
        assert isinstance(row["start"], int) and isinstance(row["end"], int)
    return "ok"


# -- iscsi ------------------------------------------------------------------------------
def check_iscsiadm(pool: PoolDef, through_xmlio: bool) -> str:
    """Every iscsiadm argv of start and stop (no kernel initiator here: recorded)."""
    try:
        validate_pool(pool, through_xmlio)
    except PoolkeeperError as exc:
        return refused(exc)
    pool.source.auth = None  # CHAP is case 16's; here: what the definition puts in argv
    driver = iscsidrv.IscsiDriver(pool)
    fake = RecordingRunner(driver.target)
    with tempfile.TemporaryDirectory() as empty, \
            patched(iscsidrv.runner, run=fake), \
            patched(iscsidrv, BY_PATH_DIR=empty, LUN_WAIT_TIMEOUT=0.0):
        with contextlib.suppress(iscsidrv.IscsiError):  # no LUN appears: it logs out again
            driver.start()
        driver.stop()
    assert fake.calls
    iqn = pool.source.devices[0].path
    for argv in fake.calls:
        assert argv[0] == "iscsiadm", argv
        assert_no_option_injection(argv, with_arg=ISCSIADM_WITH_ARG,
                                   flags=("--login", "--logout"))
        if "--portal" in argv:
            portal = argv[argv.index("--portal") + 1]
            assert not portal.startswith("-") and not re.search(r"[\s;,]", portal), argv
        if "--targetname" in argv:
            assert argv[argv.index("--targetname") + 1] == iqn, argv
    return "ok"


def check_host_arg(text: str) -> str:
    try:
        host, port = iscsidrv.parse_host_arg(text)
    except PoolkeeperError as exc:
        return refused(exc)
    assert require_host_name(host) == host and not host.startswith("-"), host
    assert port is None or 0 < port < 65536, port
    portal = iscsidrv.portal_of(host, port or 3260)
    assert not portal.startswith("-") and " " not in portal, portal
    return "ok"


def check_iscsi_direct(pool: PoolDef, through_xmlio: bool, lun: int, offset: int, size: int,
                       file_path: str) -> str:
    """The iscsi:// URL, iscsi-ls argv and qemu's option strings of an iscsi-direct pool."""
    try:
        validate_pool(pool, through_xmlio)
    except PoolkeeperError as exc:
        return refused(exc)
    driver = directdrv.IscsiDirectDriver(pool)
    url = driver._lun_url(lun)
    assert url == f"iscsi://{driver.portal}/{driver.target}/{lun}"
    assert not re.search(r"[\s?#@%]", url), url
    opts = split_qemu_opts(driver._lun_opts(lun, offset, size, None))
    assert opts["file.target"] == pool.source.devices[0].path, opts
    assert opts["file.initiator-name"] == pool.source.initiator_iqn, opts
    assert opts["file.portal"] == driver.portal and opts["file.lun"] == str(lun), opts
    assert set(opts) == {"driver", "offset", "size", "file.driver", "file.transport",
                         "file.portal", "file.target", "file.lun", "file.initiator-name",
                         "file.timeout"}, opts
    if "\x00" not in file_path:
        file_opts = split_qemu_opts(driver._file_opts(file_path, offset, size))
        assert file_opts["file.filename"] == file_path, file_opts
    fake = RecordingRunner()
    with patched(iscsidrv.runner, run=fake):
        driver._discovery(None, show_luns=True)
    assert_no_option_injection(fake.calls[0], with_arg=("-i",), flags=("-s",))
    assert fake.calls[0][-1] == f"iscsi://{driver.portal}", fake.calls
    return "ok"


# -- dir: qemu-img create ---------------------------------------------------------------
def check_qemu_img_create(vol: VolumeDef, validate_first: bool) -> str:
    """The controller validates a volume and resolves its backing store to a volume of a
    pool before a create; the builder must not need either to keep a hostile value out of
    an option position or out of -o."""
    driver = DirDriver(PoolDef(type="dir", name="p", target=PoolTarget(path=DIR_TARGET)))
    fmt = vol.target.format or "raw"
    capacity = vol.capacity or 0
    try:
        if validate_first:
            xmlio.validate_volume(vol, "dir")
        path = driver.volume_path(vol.name)
        if fmt == "raw":
            return "raw: no tool"  # made by fileops
        argv = driver._qemu_img_create_argv(vol, fmt, capacity, path)
    except PoolkeeperError as exc:
        return refused(exc)
    assert argv[:4] == ["qemu-img", "create", "-f", fmt], argv
    assert fmt in CREATABLE_FILE_FORMATS or not validate_first, argv
    positional = assert_no_option_injection(argv, with_arg=("-f", "-b", "-F", "-o"),
                                            flags=("-u",), words=2, nul_ok=not validate_first)
    assert positional[0] == path and os.path.dirname(path) == DIR_TARGET, argv
    assert os.path.normpath(path) == path, argv
    if capacity:
        assert len(positional) == 2 and re.fullmatch(r"[0-9]+K", positional[1]), argv
        assert int(positional[1][:-1]) * 1024 >= capacity, argv
    if "-o" in argv:
        opts = split_qemu_opts(argv[argv.index("-o") + 1])
        assert set(opts) <= QEMU_IMG_OPTIONS, argv
        assert re.fullmatch(r"[0-9]+\.[0-9]+", opts.get("compat", "1.1")), argv
        if "cluster_size" in opts:  # an int, so it cannot carry another option
            assert opts["cluster_size"] == str(vol.target.cluster_size), argv
            assert int(opts["cluster_size"]) > 0 or not validate_first, argv
    if "-b" in argv:
        backing = argv[argv.index("-b") + 1]
        assert not is_remote_backing(backing), f"qemu-img would open {backing!r}: {argv}"
        assert vol.backing is not None and argv[argv.index("-F") + 1] == vol.backing.format
        assert "-u" in argv, f"qemu-img would open the backing file (and its chain): {argv}"
    return "ok"


def check_volume_path(name: str) -> str:
    driver = DirDriver(PoolDef(type="dir", name="p", target=PoolTarget(path=DIR_TARGET)))
    try:
        path = driver.volume_path(name)
    except PoolkeeperError as exc:
        return refused(exc)
    assert os.path.dirname(path) == DIR_TARGET and os.path.basename(path) == name, path
    assert os.path.normpath(path) == path and "\x00" not in path, path
    return "ok"


# == XML ================================================================================
def check_parse(data: str | bytes, pool_type: str | None = None) -> str:
    """Parse as a pool, as a volume and as a secret: a definition that survives format ->
    parse unchanged, or our error."""
    outcomes = []
    readers: list[tuple[Callable, Callable]] = [
        (xmlio.parse_pool, xmlio.format_pool),
        (lambda d: xmlio.parse_volume(d, pool_type), xmlio.format_volume),
        (parse_secret, format_secret),
    ]
    for parse, fmt in readers:
        try:
            parsed = parse(data)
        except PoolkeeperError as exc:
            outcomes.append(refused(exc))
            continue
        text = fmt(parsed)
        assert parse(text) == parsed, f"{text!r} does not read back as {parsed!r}"
        outcomes.append("accepted")
    return ", ".join(outcomes)
