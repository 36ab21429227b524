"""`poolkeeper pool-list` for shell loops: answered from the state files, without loading
the engine (lxml, the drivers, the controller: ~0.1 s of imports), when everything is in
the plain shape checked here. Anything else is left to cli.main, which answers every case:
another verb, a flag or option not listed here, --json, a state directory that is missing
or that this module would not vouch for (it accepts less than pathsafety: no group write
at all), a temp file a killed writer left (the full CLI sweeps it), start-up work still to
do (the default pool on first use, the autostart round of this boot), a running pool that
is not a dir pool, a target that is not the directory the pool started on, or a definition
not in the shape poolkeeper writes. What it prints is what cli.main prints
(tests/cli/test_quick.py compares the two on the same roots).

It reads definitions as poolkeeper wrote them (their type, name and target path), and does
not validate them as xmlio does: pool-info and every other verb do.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from typing import TextIO

from backends.errors import InvalidName
from backends.names import MAX_NAME_BYTES, PARTIAL_PREFIX, check_name

from . import virsh_text

_FLAGS = ("--all", "--inactive", "--details")
_POOL = re.compile(rb"\A<pool type='([a-z][a-z-]*)'>\n  <name>([^<&]*)</name>\n")
_TARGET = re.compile(rb"\n  <target>\n    <path>([^<&]*)</path>\n")
_IDENTITY_KEY = "target_identity"  # drivers/dir.py: the target's (device, inode) at start


class _Elsewhere(Exception):
    """cli.main must answer."""


class _Pool:
    """The fields of model.PoolStatus that the listing shows."""

    persistent = True

    def __init__(self, name: str, type_: str, state: str, autostart: bool,
                 sizes: tuple[int, int, int] | None) -> None:
        self.name, self.type, self.state, self.autostart = name, type_, state, autostart
        self.capacity, self.allocation, self.available = sizes or (None, None, None)

    @property
    def started(self) -> bool:
        return self.state == "running"


def _args(argv: list[str]) -> tuple[str | None, set[str], str | None]:
    """(--root, flags, --type) of `[--root DIR] pool-list [flags]`, or _Elsewhere."""
    root = None
    i = 0
    while i < len(argv) and argv[i] != "pool-list":
        if argv[i] == "--root" and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            root, i = argv[i + 1], i + 2
        elif argv[i].startswith("--root="):
            root, i = argv[i][len("--root="):], i + 1
        else:
            raise _Elsewhere
    if i == len(argv):
        raise _Elsewhere
    flags: set[str] = set()
    types = None
    rest = iter(argv[i + 1:])
    for arg in rest:
        if arg in _FLAGS and arg not in flags:
            flags.add(arg)
        elif arg == "--type" and types is None:
            types = next(rest, "-")
            if types.startswith("-"):
                raise _Elsewhere
        elif arg.startswith("--type=") and types is None:
            types = arg[len("--type="):]
        else:  # another option, or one given twice: cli.main says what virsh says
            raise _Elsewhere
    if types == "" or {"--all", "--inactive"} <= flags:  # refused by cli.main, as virsh
        raise _Elsewhere
    return root, flags, types


def _dirs(root: str | None) -> tuple[str, str]:
    """(config dir, runtime dir) as store.resolve_paths gives them."""
    chosen = root or os.environ.get("POOLKEEPER_ROOT")
    if chosen:
        base = os.path.join(os.getcwd(), chosen)
        return base, base
    if os.geteuid() == 0:
        return "/etc/poolkeeper", "/run/poolkeeper"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime:  # the per-user parent in the temp dir has checks of its own
        raise _Elsewhere
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                               ".config")
    return os.path.join(config, "poolkeeper"), os.path.join(runtime, "poolkeeper")


def _fit(path: str, private: bool = False) -> bool:
    """A real directory of ours or root's that nobody else can write (or read: private)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mode = stat.S_IMODE(st.st_mode)
    return (stat.S_ISDIR(st.st_mode) and st.st_uid in (os.geteuid(), 0)
            and not mode & (0o077 if private else 0o022))


def _no_partials(path: str) -> None:
    with os.scandir(path) as entries:
        if any(e.name.startswith(PARTIAL_PREFIX) for e in entries):
            raise _Elsewhere


def _pool_name(file_name: str) -> str | None:
    """store.definition_names' test: the names that are pool names."""
    name = file_name[:-len(".xml")]
    try:
        check_name(name, "pool name")
    except InvalidName:
        return None
    if name.startswith(".") or len(name.encode("utf-8")) > MAX_NAME_BYTES - len(".json"):
        return None
    return name


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _sizes(name: str, target: str, run: str) -> tuple[int, int, int]:
    """What the dir driver's check() and sizes() find: the target opened without
    following a link, the directory it started on, its filesystem's sizes (libvirt's)."""
    recorded = None
    extras = _read(os.path.join(run, f"{name}.json"))
    if extras:
        import json

        try:
            recorded = json.loads(extras).get(_IDENTITY_KEY)
        except (ValueError, AttributeError):
            raise _Elsewhere from None
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise _Elsewhere from None  # gone, a link, not a directory: the full CLI says
    try:
        st = os.fstat(fd)
        if recorded is not None and [st.st_dev, st.st_ino] != recorded:
            raise _Elsewhere
        vfs = os.fstatvfs(fd)
    finally:
        os.close(fd)
    capacity = vfs.f_frsize * vfs.f_blocks
    available = vfs.f_frsize * vfs.f_bfree
    return capacity, capacity - available, available


def _pools(config: str, runtime: str) -> list[_Pool]:
    storage = os.path.join(config, "storage")
    autostart = os.path.join(storage, "autostart")
    volumes = os.path.join(storage, "volumes")
    run = os.path.join(runtime, "run")
    locks = os.path.join(runtime, "locks")
    secrets = os.path.join(config, "secrets")
    if not all(map(_fit, (config, runtime, storage, autostart, volumes, run, locks))):
        raise _Elsewhere
    transient = os.path.join(runtime, "transient")  # pool-create's pools: cli.main lists them
    if os.path.lexists(transient) and (not _fit(transient) or os.listdir(transient)):
        raise _Elsewhere
    if os.path.lexists(secrets) and not _fit(secrets, private=True):
        raise _Elsewhere
    for path in (storage, volumes, run) + ((secrets,) if os.path.lexists(secrets) else ()):
        _no_partials(path)
    if not os.path.exists(os.path.join(storage, ".initialized")):
        raise _Elsewhere
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = "unknown-boot"
    if _read(os.path.join(run, ".autostarted")) != boot.encode():
        raise _Elsewhere
    pools = []
    with os.scandir(storage) as entries:
        names = [n for e in entries if e.name.endswith(".xml") and e.is_file()
                 if (n := _pool_name(e.name)) is not None]
    for name in names:
        xml = _read(os.path.join(storage, f"{name}.xml")) or b""
        head = _POOL.match(xml)
        if b"<!" in xml or head is None or head.group(2) != name.encode("utf-8"):
            raise _Elsewhere
        type_ = head.group(1).decode()
        if not os.path.exists(os.path.join(run, f"{name}.xml")):
            pools.append(_Pool(name, type_, "inactive", os.path.lexists(
                os.path.join(autostart, name)), None))
            continue
        target = _TARGET.search(xml)
        if type_ != "dir" or target is None:
            raise _Elsewhere
        sizes = _sizes(name, os.fsdecode(target.group(1)), run)
        pools.append(_Pool(name, type_, "running", os.path.lexists(
            os.path.join(autostart, name)), sizes))
    return pools


def pool_list(argv: list[str], out: TextIO | None = None) -> int | None:
    """Answer `argv` if it is a pool-list this module can answer (exit status), else
    None: cli.main must."""
    try:
        root, flags, types = _args(argv)
        pools = _pools(*_dirs(root))
    except (_Elsewhere, OSError, UnicodeDecodeError):
        return None
    if types:
        wanted = set(types.split(","))
        pools = [p for p in pools if p.type in wanted]
    if "--inactive" in flags:
        pools = [p for p in pools if not p.started]
    elif "--all" not in flags:
        pools = [p for p in pools if p.started]
    virsh_text.pool_list(out or sys.stdout, pools, "--details" in flags)  # type: ignore[arg-type]
    return 0
