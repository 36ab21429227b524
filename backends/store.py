"""Persistent definitions and runtime state under one root, written atomically.

Layout (config and runtime dirs are the same directory when a root is given):
  CONFIG/storage/NAME.xml            pool definitions
  CONFIG/storage/autostart/NAME      autostart links (-> ../NAME.xml)
  CONFIG/storage/volumes/NAME.json   formats poolkeeper recorded for the pool's volumes
  CONFIG/storage/volumes/.undefined-ID.json  the records of an undefined pool, with its
                                     definition, until a pool on the same storage, or one
                                     listing the very files they were made for, takes them
  CONFIG/storage/.initialized        the default pool was offered once
  RUNTIME/run/NAME.xml               live XML of an active pool (exists <=> active)
  RUNTIME/run/NAME.json              backend runtime extras (e.g. the loop device attached)
  RUNTIME/run/.events[.1]            the pool events every process's verbs made, for
                                     pool-event (event_journal)
  RUNTIME/transient/NAME.xml         the definition of a transient pool (pool-create): it
                                     exists only while the pool runs; no CONFIG file
  RUNTIME/locks/                     flock files (see locks.py)

Each of these directories is checked before anything is created in or under it (see
pathsafety): a symlink, or a directory another user owns or can write, is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from pathlib import Path

from .errors import InvalidName, StateError
from .names import MAX_NAME_BYTES, PARTIAL_PREFIX, check_name
from .oserror import os_failure
from .pathsafety import ensure_own_private_dir, ensure_state_dir, refuse_unfit_dir
from .records import record
from .records import set_field as _set

# A pool's name becomes the file names NAME.xml and NAME.json, which must fit in 255 bytes.
MAX_POOL_NAME_BYTES = MAX_NAME_BYTES - len(".json")
_UNDEFINED_PREFIX = ".undefined-"  # no pool name starts with "." (check_pool_name)


@record(frozen=True)
class StorePaths:
    """The state root's directories: configuration, runtime, default images."""
    config_dir: Path
    runtime_dir: Path
    images_dir: Path  # where the "default" dir pool lives
    # A per-user parent of runtime_dir in a shared directory (/tmp/poolkeeper-UID): it
    # must be ours and 0700, since another user could have made it first.
    private_parent: Path | None = None

    def __init__(
            self, config_dir: Path, runtime_dir: Path, images_dir: Path,
            private_parent: Path | None = None) -> None:
        _set(self, "config_dir", config_dir)
        _set(self, "runtime_dir", runtime_dir)
        _set(self, "images_dir", images_dir)
        _set(self, "private_parent", private_parent)


def resolve_paths(root: str | os.PathLike[str] | None = None) -> StorePaths:
    """--root DIR, else $POOLKEEPER_ROOT, else the system (root) or XDG (user) defaults."""
    chosen = root or os.environ.get("POOLKEEPER_ROOT")
    if chosen:
        base = Path(chosen).absolute()
        # A self-contained root keeps its default pool inside it too.
        return StorePaths(base, base, base / "images")
    if os.geteuid() == 0:
        return StorePaths(
            Path("/etc/poolkeeper"), Path("/run/poolkeeper"), Path("/var/lib/poolkeeper/images")
        )
    home = Path.home()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config") / "poolkeeper"
    data = Path(os.environ.get("XDG_DATA_HOME") or home / ".local/share") / "poolkeeper"
    xdg_runtime = os.environ.get("XDG_RUNTIME_DIR")
    if xdg_runtime:
        return StorePaths(config, Path(xdg_runtime) / "poolkeeper", data / "images")
    import tempfile  # only here: with random, it costs every other command ~1.5 ms

    fallback = Path(tempfile.gettempdir()) / f"poolkeeper-{os.getuid()}"
    return StorePaths(config, fallback / "poolkeeper", data / "images",
                      private_parent=fallback)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _names(dir_fd: int, name: str, fd: int) -> bool:
    """Is `name` in the directory still the file open as `fd`?"""
    try:
        there = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def create_locked_temp(dir_fd: int, mode: int = 0o600) -> tuple[int, str]:
    """A new empty file PARTIAL_PREFIX+random in the directory, flocked for as long as the
    fd is open, so that remove_abandoned() of any process leaves it alone: (fd, name)."""
    for _ in range(8):
        name = PARTIAL_PREFIX + os.urandom(8).hex()
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, mode, dir_fd=dir_fd)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a sweeper holds it for a moment at most
            if _names(dir_fd, name, fd):
                return fd, name
        except BaseException:
            with contextlib.suppress(OSError):
                if _names(dir_fd, name, fd):
                    os.unlink(name, dir_fd=dir_fd)
            os.close(fd)
            raise
        os.close(fd)  # a sweep removed it between our create and our lock: again
    raise StateError("could not create a temporary file (a sweep kept removing it); try again")


def remove_if_abandoned(dir_fd: int, name: str, also: tuple[str, ...] = ()) -> list[str]:
    """If no live process holds the flock of the temp file `name`, remove the files `also`
    and then `name` (with the lock held); returns what was removed."""
    try:
        if not stat.S_ISREG(os.lstat(name, dir_fd=dir_fd).st_mode):
            return []  # not a file we make
        # O_RDWR: on NFS a flock is a POSIX write lock, which needs a writable fd
        fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                     | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return []
    removed = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not _names(dir_fd, name, fd):
            return []
        for other in also:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(other, dir_fd=dir_fd)
                removed.append(other)
        os.unlink(name, dir_fd=dir_fd)
        removed.append(name)
    except OSError:  # EWOULDBLOCK: a live writer holds it; EPERM: immutable
        pass
    finally:
        os.close(fd)
    return removed


def remove_abandoned(dir_fd: int) -> list[str]:
    """Remove the PARTIAL_PREFIX files of the directory that no live process holds (a
    killed writer's flock died with it); returns their names."""
    with os.scandir(dir_fd) as entries:
        candidates = [e.name for e in entries if e.name.startswith(PARTIAL_PREFIX)]
    removed = [gone for name in candidates for gone in remove_if_abandoned(dir_fd, name)]
    if removed:
        os.fsync(dir_fd)
    return removed


def json_records(directory: Path | None) -> list[tuple[Path, dict]]:
    """The *.json records of a directory written by atomic_write (loop claims, fill
    records), by name, after removing the temp files of writers killed mid-save; a file
    that does not read as a JSON object is skipped (its owner judges it)."""
    if directory is None or not directory.is_dir():
        return []
    with contextlib.suppress(OSError):
        dfd = _open_dir(directory)
        try:
            remove_abandoned(dfd)
        finally:
            os.close(dfd)
    found = []
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found.append((path, data))
    return found


def _open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """temp file + fsync + rename + directory fsync: readers see the old or the new file,
    and a killed writer leaves at most a temp file, which the next Store removes."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        dfd = _open_dir(path.parent)
        try:
            _write_in(dfd, path.name, data, mode)
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise os_failure(exc, f"save '{path}'") from exc


def _write_in(dfd: int, name: str, data: bytes, mode: int) -> None:
    fd, tmp = create_locked_temp(dfd, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)  # the umask must not narrow it
        os.fsync(fd)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    finally:
        os.close(fd)  # drops the flock, after the rename: a sweep never sees it unlocked


def _remove(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise os_failure(exc, f"remove '{path}'") from exc
    fsync_dir(path.parent)
    return True


def check_pool_name(name: str) -> str:
    """Pool names become file names here: no leading '.' (hidden, and our temp files)."""
    check_name(name, "pool name")
    if name.startswith("."):
        raise InvalidName(f"pool name '{name}' must not start with '.'", element="name")
    size = len(name.encode("utf-8"))
    if size > MAX_POOL_NAME_BYTES:
        raise InvalidName(f"pool name is {size} bytes long; at most {MAX_POOL_NAME_BYTES} are "
                          "allowed (it becomes the file name NAME.json)", element="name")
    return name


class Store:
    def __init__(self, paths: StorePaths) -> None:
        self.paths = paths
        self.definitions_dir = paths.config_dir / "storage"
        self.autostart_dir = self.definitions_dir / "autostart"
        self.volumes_dir = self.definitions_dir / "volumes"
        self.run_dir = paths.runtime_dir / "run"
        self.transient_dir = paths.runtime_dir / "transient"
        self.locks_dir = paths.runtime_dir / "locks"
        self._check_and_make_dirs()
        self.remove_abandoned_temps()

    def _check_and_make_dirs(self) -> None:
        """Every state directory is checked before anything is created in or under it: a
        planted symlink, or a directory another user owns or can write, is refused (see
        pathsafety), never followed or repaired."""
        paths = self.paths
        if paths.private_parent is not None:
            ensure_own_private_dir(paths.private_parent, "the runtime directory's parent")
        ensure_state_dir(paths.config_dir, "the state directory", 0o755)
        if paths.runtime_dir != paths.config_dir:
            _private_dir(paths.runtime_dir)
        for d in (self.definitions_dir, self.autostart_dir, self.volumes_dir):
            ensure_state_dir(d, "the state directory", 0o755)
        for d in (self.run_dir, self.transient_dir, self.locks_dir):
            ensure_state_dir(d, "the runtime directory", 0o700)
        # secrets.SECRETS_DIR (it imports us); made by the first secret-set
        refuse_unfit_dir(paths.config_dir / "secrets", "the secrets directory", private=True)

    def remove_abandoned_temps(self) -> list[str]:
        """Temp files of writers killed mid-write (kill -9, power loss); a live writer's
        is locked and stays. A read-only state root is no error: nothing to remove."""
        removed = []
        secrets_dir = self.paths.config_dir / "secrets"  # secrets.SECRETS_DIR (it imports us)
        for d in (self.definitions_dir, self.volumes_dir, self.run_dir, self.transient_dir,
                  secrets_dir):
            with contextlib.suppress(OSError):
                dfd = _open_dir(d)
                try:
                    removed += [str(d / name) for name in remove_abandoned(dfd)]
                finally:
                    os.close(dfd)
        return removed

    # -- definitions -------------------------------------------------------------------
    def _def_path(self, name: str) -> Path:
        return self.definitions_dir / f"{check_pool_name(name)}.xml"

    def definition_names(self) -> list[str]:
        """Names of the stored definitions, persistent and transient (files whose name is
        not a valid pool name, such as our temp files, are not definitions)."""
        names: set[str] = set()
        for directory in (self.definitions_dir, self.transient_dir):
            with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
                for entry in entries:
                    if not entry.name.endswith(".xml") or not entry.is_file():
                        continue
                    with contextlib.suppress(InvalidName):
                        names.add(check_pool_name(entry.name[: -len(".xml")]))
        return sorted(names, key=str.lower)

    def read_definition(self, name: str) -> str | None:
        """The persistent definition, else the transient one (None: no such pool)."""
        for path in (self._def_path(name), self._transient_path(name)):
            try:
                return path.read_text(encoding="utf-8")
            except FileNotFoundError:
                continue
        return None

    def write_definition(self, name: str, xml: str) -> None:
        """The persistent definition; a transient pool of that name becomes persistent
        (as libvirt's pool-define of a running transient pool)."""
        atomic_write(self._def_path(name), xml.encode("utf-8"), mode=0o600)
        _remove(self._transient_path(name))

    # -- transient pools ---------------------------------------------------------------
    def _transient_path(self, name: str) -> Path:
        return self.transient_dir / f"{check_pool_name(name)}.xml"

    def is_persistent(self, name: str) -> bool:
        return self._def_path(name).exists()

    def write_transient_definition(self, name: str, xml: str) -> None:
        atomic_write(self._transient_path(name), xml.encode("utf-8"), mode=0o600)

    def remove_transient_definition(self, name: str) -> None:
        """A transient pool that stopped is gone: its definition, and its volume records
        set aside as an undefined pool's are (see remove_definition)."""
        path = self._transient_path(name)
        if not path.exists() or self.is_persistent(name):
            return
        self._copy_aside_volume_records(name, path.read_text(encoding="utf-8"))
        _remove(path)
        _remove(self.volumes_dir / f"{check_pool_name(name)}.json")

    def remove_definition(self, name: str) -> None:
        """Undefine: the pool's records are copied aside first, then the definition goes,
        then the records file. A kill at any point loses no record: before the definition
        goes, the pool keeps its own records (an extra set-aside copy is harmless, each
        record matching only the file it was made for); after, the copy holds them."""
        definition = self.read_definition(name)
        self._copy_aside_volume_records(name, definition)
        self.set_autostart(name, False)
        _remove(self._def_path(name))
        _remove(self._transient_path(name))  # one whose run state was lost (pool-undefine)
        _remove(self.volumes_dir / f"{check_pool_name(name)}.json")

    # -- autostart ---------------------------------------------------------------------
    def autostart(self, name: str) -> bool:
        return os.path.lexists(self.autostart_dir / check_pool_name(name))

    def set_autostart(self, name: str, enabled: bool) -> None:
        link = self.autostart_dir / check_pool_name(name)
        if not enabled:
            _remove(link)
            return
        if not self.is_persistent(name):
            raise StateError(f"pool '{name}' is transient (made by pool-create): it cannot "
                             "autostart; define it first (pool-dumpxml, then pool-define)")
        if os.path.lexists(link):
            return
        tmp = self.autostart_dir / f".{name}.tmp"  # a leftover one is replaced here
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(f"../{name}.xml", tmp)
            os.replace(tmp, link)
            fsync_dir(self.autostart_dir)
        except OSError as exc:
            raise os_failure(exc, f"enable autostart with '{link}'") from exc

    # -- run state ---------------------------------------------------------------------
    def is_active(self, name: str) -> bool:
        return (self.run_dir / f"{check_pool_name(name)}.xml").exists()

    def run_identity(self, name: str) -> tuple[int, int] | None:
        """Which run of the pool this is (its run state's inode and mtime), None when it
        is not active: a stop and a start in between give another."""
        try:
            st = os.stat(self.run_dir / f"{check_pool_name(name)}.xml")
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns)

    def read_run_state(self, name: str) -> str | None:
        try:
            return (self.run_dir / f"{check_pool_name(name)}.xml").read_text("utf-8")
        except FileNotFoundError:
            return None

    def write_run_state(self, name: str, xml: str) -> None:
        atomic_write(self.run_dir / f"{check_pool_name(name)}.xml", xml.encode(), 0o600)

    def clear_run_state(self, name: str) -> None:
        _remove(self.run_dir / f"{check_pool_name(name)}.xml")

    def read_extras(self, name: str) -> dict:
        return _read_json(self.run_dir / f"{check_pool_name(name)}.json")

    def write_extras(self, name: str, extras: dict) -> None:
        path = self.run_dir / f"{check_pool_name(name)}.json"
        if extras:
            atomic_write(path, json.dumps(extras, sort_keys=True).encode(), 0o600)
        else:
            _remove(path)

    # -- volume records ----------------------------------------------------------------
    def volume_records(self, pool: str) -> dict[str, dict]:
        return _read_json(self.volumes_dir / f"{check_pool_name(pool)}.json")

    def write_volume_records(self, pool: str, records: dict[str, dict]) -> None:
        path = self.volumes_dir / f"{check_pool_name(pool)}.json"
        atomic_write(path, json.dumps(records, sort_keys=True).encode(), 0o600)

    def _copy_aside_volume_records(self, pool: str, definition: str | None) -> None:
        """An undefined pool's records are kept with its definition, for the next pool
        defined on the same storage (or holding the same files): dropping them would make
        every guest-written header in it believed."""
        records = self.volume_records(pool)
        if records:
            kept = {"definition": definition, "records": records,
                    "undefined_ns": time.time_ns()}
            atomic_write(self.volumes_dir / f"{_UNDEFINED_PREFIX}{os.urandom(8).hex()}.json",
                         json.dumps(kept, sort_keys=True).encode(), 0o600)

    def undefined_volume_records(self) -> list[tuple[str, str, dict[str, dict]]]:
        """(key, definition XML, records) of each undefined pool's records, oldest first."""
        kept = []
        for entry in os.scandir(self.volumes_dir):
            if entry.name.startswith(_UNDEFINED_PREFIX) and entry.name.endswith(".json"):
                data = _read_json(Path(entry.path))
                definition, records = data.get("definition"), data.get("records")
                stamp = data.get("undefined_ns")
                if isinstance(definition, str) and isinstance(records, dict):
                    kept.append((stamp if isinstance(stamp, int) else 0, entry.name,
                                 definition, records))
        return [(key, definition, records) for _t, key, definition, records in sorted(kept)]

    def set_aside_keys(self) -> list[str]:
        """The keys of the undefined pools' record sets (one readdir: nothing is read)."""
        with os.scandir(self.volumes_dir) as entries:
            return sorted(e.name for e in entries
                          if e.name.startswith(_UNDEFINED_PREFIX) and e.name.endswith(".json"))

    def set_aside_records(self, key: str) -> dict[str, dict] | None:
        """The records of one set-aside set (None: gone, or not a set)."""
        records = _read_json(self._set_aside_path(key)).get("records")
        return records if isinstance(records, dict) else None

    def drop_undefined_volume_records(self, key: str) -> None:
        _remove(self._set_aside_path(key))

    def _set_aside_path(self, key: str) -> Path:
        if not key.startswith(_UNDEFINED_PREFIX) or "/" in key:
            raise InvalidName(f"'{key}' names no set-aside records")
        return self.volumes_dir / key

    def claim_autostart_round(self) -> bool:
        """True the first time it is called in this boot of the machine for this root."""
        marker = self.run_dir / ".autostarted"
        boot = boot_id()
        try:
            if marker.read_text() == boot:
                return False
        except OSError:
            pass
        atomic_write(marker, boot.encode(), 0o644)
        return True

    # -- first use ---------------------------------------------------------------------
    def initialized(self) -> bool:
        return (self.definitions_dir / ".initialized").exists()

    def mark_initialized(self) -> None:
        atomic_write(self.definitions_dir / ".initialized", b"", 0o644)


def _private_dir(path: Path) -> None:
    """The runtime dir holds locks and run state: it must be ours (or root's), a real
    directory and not writable by others; made 0700 if missing."""
    ensure_state_dir(path, "the runtime directory", 0o700)


def boot_id() -> str:
    """This boot of the kernel: records made before a reboot are of another boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return "unknown-boot"


def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
