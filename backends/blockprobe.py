"""What is on a block device, who uses it, and what is mounted where.

Every device-backed pool (fs now; disk and logical later) asks these questions before it
touches a device: `probe()`/`signatures()` (blkid -p + wipefs -n: filesystems, partition
tables, LVM and RAID members), `device_users()` (mounted, held open, claimed by the kernel),
`mounts()` (/proc/self/mountinfo), the loop-device identity kept so that a reused loop
number is never mistaken for ours, `disk_lock()` (udev's whole-disk flock convention) and
`image_lock()` (the same on an image file itself, where every state root and every loop
device of the image meet).

Nothing here writes to a device. Tools run through runner.run like everywhere else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import re
import stat
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from . import runner
from .errors import Busy, StateError
from .records import record
from .records import set_field as _set

# blkid exit codes (blkid(8)): 0 found, 2 nothing found, 8 ambivalent (several signatures).
_BLKID_NOTHING, _BLKID_AMBIVALENT = 2, 8
PARTITION_TABLES = frozenset({
    "gpt", "PMBR", "dos", "atari", "bsd", "dvh", "mac", "sun", "sgi", "solaris", "unixware",
    "minix", "aix",
})
# wipefs/blkid types that are not filesystems, with what to call them.
_KINDS = {
    "LVM2_member": "LVM2 physical volume",
    "LVM1_member": "LVM1 physical volume",
    "swap": "swap area",
    "swsuspend": "hibernation image",
    "zfs_member": "ZFS pool member",
    "ceph": "Ceph OSD",
    "bcache": "bcache device",
    "drbd": "DRBD device",
    "VMFS_volume_member": "VMFS volume member",
}
_PROBE_BYTES = 64 * 1024  # read to prove the device is readable at all
DISK_LOCK_WAIT = 3.0  # seconds disk_lock waits for another holder (udev holds it briefly)
LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64 = struct.Struct("=QQQQQIIII64s64s32s2Q")  # struct loop_info64 (linux/loop.h)
_MOUNTINFO = "/proc/self/mountinfo"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


# == signatures ========================================================================
@record(frozen=True)
class Signature:
    """One signature blkid or wipefs found on a device."""
    type: str  # as blkid/wipefs name it: ext4, xfs, gpt, dos, LVM2_member, ...
    kind: str  # "filesystem", "partition table", "LVM2 physical volume", ...
    label: str | None = None
    uuid: str | None = None
    offset: int | None = None

    def __init__(
            self, type: str, kind: str, label: str | None = None, uuid: str | None = None,
            offset: int | None = None) -> None:
        _set(self, "type", type)
        _set(self, "kind", kind)
        _set(self, "label", label)
        _set(self, "uuid", uuid)
        _set(self, "offset", offset)

    def describe(self) -> str:
        """'an ext4 filesystem (label 'x')', 'a gpt partition table', 'an LVM2 ...'."""
        if self.kind in ("filesystem", "partition table"):
            text = f"{_article(self.type)} {self.type} {self.kind}"
        else:
            text = f"{_article(self.kind)} {self.kind}"
        if self.label:
            text += f" (label '{self.label}')"
        return text


@record()
class Probe:
    """What a device holds: its signatures, or why the probe could not tell."""
    device: str
    signatures: list[Signature]
    problem: str | None = None  # why the probe could not tell what is there

    def __init__(
            self, device: str, signatures: list[Signature], problem: str | None = None) -> None:
        self.device = device
        self.signatures = signatures
        self.problem = problem

    @property
    def blank(self) -> bool:
        """Nothing found, and the probe could tell (an unreadable device is not blank)."""
        return not self.signatures and self.problem is None

    def describe(self) -> str:
        parts = [s.describe() for s in self.signatures]
        if not parts:
            return "nothing poolkeeper recognises"
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# Words that are read letter by letter and so take "an" (an LVM2 ..., an xfs ...).
_AN_PREFIXES = ("a", "e", "i", "o", "LVM", "xfs", "hfs", "ntfs", "f2fs", "sgi", "nilfs", "MBR")


def _article(word: str) -> str:
    return "an" if word.startswith(_AN_PREFIXES) else "a"


def kind_of(sig_type: str, usage: str | None = None) -> str:
    if sig_type in PARTITION_TABLES:
        return "partition table"
    if sig_type in _KINDS:
        return _KINDS[sig_type]
    if sig_type.endswith("_raid_member") or usage == "raid":
        return "RAID member"
    if sig_type.startswith("crypto_") or sig_type == "BitLocker" or usage == "crypto":
        return "encrypted volume"
    return "filesystem"


def probe(device: str) -> Probe:
    """Everything blkid and wipefs see on `device` (a block device or an image file).

    `problem` is set when the answer is uncertain (unreadable, blkid failed, ambivalent):
    callers that are about to destroy data treat that as "in use".
    """
    result = Probe(device, [])
    unreadable = _readable(device)
    if unreadable:
        result.problem = unreadable
        return result
    found: dict[str, Signature] = {}
    for sig in _wipefs_signatures(device, result):
        found.setdefault(sig.type, sig)
    for sig in _blkid_signatures(device, result):
        if sig.type in found:  # blkid knows the usage (raid, crypto) better
            old = found[sig.type]
            found[sig.type] = Signature(old.type, sig.kind, old.label or sig.label,
                                        old.uuid or sig.uuid, old.offset)
        else:
            found[sig.type] = sig
    if "gpt" in found:
        found.pop("PMBR", None)  # the protective MBR is part of the GPT
    result.signatures = list(found.values())
    return result


def signatures(device: str) -> list[str]:
    """What is on `device`, one description each ("an ext4 filesystem (label 'x')");
    an uncertain probe adds "unknown content (...)"."""
    found = probe(device)
    described = [s.describe() for s in found.signatures]
    if found.problem:
        described.append(f"unknown content ({found.problem})")
    return described


def _readable(device: str) -> str | None:
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        return f"cannot open it: {exc.strerror}"
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        if size == 0:
            return "it has a size of 0 bytes"
        os.pread(fd, min(_PROBE_BYTES, size), 0)
    except OSError as exc:
        return f"cannot read it: {exc.strerror}"
    finally:
        os.close(fd)
    return None


def _blkid_signatures(device: str, result: Probe) -> list[Signature]:
    done = runner.run(["blkid", "-p", "-o", "export", "--", device], check=False, timeout=60)
    if done.returncode == _BLKID_NOTHING:
        return []
    if done.returncode == _BLKID_AMBIVALENT:
        result.problem = "blkid found several conflicting signatures"
        return []
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        result.problem = f"blkid failed (exit {done.returncode}): {tail}"
        return []
    values = parse_export(done.stdout)
    sigs = []
    if values.get("TYPE"):
        sigs.append(Signature(values["TYPE"], kind_of(values["TYPE"], values.get("USAGE")),
                              values.get("LABEL"), values.get("UUID")))
    if values.get("PTTYPE"):
        sigs.append(Signature(values["PTTYPE"], "partition table", None, values.get("PTUUID")))
    return sigs


def _wipefs_signatures(device: str, result: Probe) -> list[Signature]:
    done = runner.run(["wipefs", "--no-act", "--json", "--", device], check=False, timeout=60)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        result.problem = f"wipefs failed (exit {done.returncode}): {tail}"
        return []
    try:
        rows = json.loads(done.stdout or "{}").get("signatures", []) if done.stdout.strip() else []
    except ValueError:
        result.problem = "wipefs printed something that is not JSON"
        return []
    sigs = []
    for row in rows:
        sig_type = str(row.get("type") or "")
        if not sig_type:
            continue
        offset = row.get("offset")
        try:
            offset = int(offset, 0) if isinstance(offset, str) else offset
        except ValueError:
            offset = None
        sigs.append(Signature(sig_type, kind_of(sig_type), row.get("label") or None,
                              row.get("uuid") or None, offset))
    return sigs


def parse_export(text: str) -> dict[str, str]:
    """blkid -o export: KEY=value lines (one device)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def source_kind(path: str, pool: str) -> str:
    """'block' or 'image' for a pool's source device; a clear error for anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise StateError(f"the source device {path} of pool '{pool}' does not exist; "
                         "check <source><device path=...>") from None
    except OSError as exc:
        raise StateError(f"cannot use {path}: {exc.strerror}") from None
    if stat.S_ISBLK(mode):
        return "block"
    if stat.S_ISREG(mode):
        return "image"
    raise StateError(f"{path} is neither a block device nor an image file")


def lsblk(columns: str, device: str | None = None) -> list[dict]:
    """`lsblk -J -b -o COLUMNS [-- DEVICE]` rows, each followed by its children (flat)."""
    argv = ["lsblk", "-J", "-b", "-o", columns]
    if device is not None:
        argv += ["--", device]
    out = runner.run(argv, timeout=60).stdout
    return _flatten(json.loads(out or "{}").get("blockdevices", []))


def _flatten(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        out.append(row)
        out += _flatten(row.get("children") or [])
    return out


def fill_from_blkid(rows: list[dict], column: str, tag: str) -> None:
    """lsblk reads FSTYPE/PTTYPE from udev's database; without udev (as in containers and
    this VM) ask blkid for the rows that lack `column`, in one call."""
    unknown = [r for r in rows if not r.get(column) and r.get("size") and r.get("path")]
    if not unknown:
        return
    done = runner.run(["blkid", "-p", "-o", "export", "--", *(r["path"] for r in unknown)],
                      check=False, timeout=120)
    by_path: dict[str, str] = {}
    for block in done.stdout.split("\n\n"):
        values = parse_export(block)
        if values.get("DEVNAME") and values.get(tag):
            by_path[values["DEVNAME"]] = values[tag]
    for row in unknown:
        row[column] = by_path.get(row["path"])


# == mounts ============================================================================
@record(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""
    id: int
    parent: int
    major: int
    minor: int
    root: str
    target: str
    options: str
    fstype: str
    source: str
    super_options: str

    def __init__(
            self, id: int, parent: int, major: int, minor: int, root: str, target: str,
            options: str, fstype: str, source: str, super_options: str) -> None:
        _set(self, "id", id)
        _set(self, "parent", parent)
        _set(self, "major", major)
        _set(self, "minor", minor)
        _set(self, "root", root)
        _set(self, "target", target)
        _set(self, "options", options)
        _set(self, "fstype", fstype)
        _set(self, "source", source)
        _set(self, "super_options", super_options)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\040-style octal."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    result = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            major, minor = fields[2].split(":")
            result.append(Mount(
                id=int(fields[0]), parent=int(fields[1]), major=int(major), minor=int(minor),
                root=_unescape(fields[3]), target=_unescape(fields[4]), options=fields[5],
                fstype=fields[sep + 1], source=_unescape(fields[sep + 2]),
                super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
            ))
        except (ValueError, IndexError):
            continue  # a line we do not understand is not a mount we manage
    return result


def mounts() -> list[Mount]:
    """The mount table of this process's namespace, in mount order."""
    with open(_MOUNTINFO, encoding="utf-8", errors="surrogateescape") as fh:
        return parse_mountinfo(fh.read())


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return path


def _real_parent(path: str) -> str:
    """`path` with its parent resolved but not itself: stat'ing a mount point of a dead NFS
    server can hang, its parent directory is local."""
    path = os.path.normpath(path)
    parent, name = os.path.split(path)
    return os.path.join(_real(parent), name) if name else path


def mount_at(path: str, table: list[Mount] | None = None) -> Mount | None:
    """The mount visible at `path` (the top of the stack), or None if it is no mount point."""
    target = _real_parent(path)
    stack = [m for m in (mounts() if table is None else table) if m.target == target]
    if not stack:
        return None
    ids = {m.id for m in stack}
    tops = [m for m in stack if not any(o.parent == m.id for o in stack if o.id in ids)]
    return (tops or stack)[-1]


def mounts_below(path: str, table: list[Mount] | None = None) -> list[Mount]:
    """Mounts strictly inside `path` (they keep it busy)."""
    prefix = _real_parent(path).rstrip("/") + "/"
    return [m for m in (mounts() if table is None else table) if m.target.startswith(prefix)]


# == one thing spelled two ways ========================================================
def _is_link_entry(parent: str, name: str) -> bool:
    """Is `name` a symlink, read from its parent's listing (d_type): the entry itself is
    never stat'ed, so a mount point of a dead NFS server cannot hang us."""
    try:
        with os.scandir(parent) as entries:
            return any(e.name == name and e.is_symlink() for e in entries)
    except OSError:
        return False


def resolved_dir(path: str) -> str:
    """`path` with every symlink resolved, its own last component included, without a
    stat of the directory it names (see _is_link_entry)."""
    path = _real_parent(path)
    for _ in range(40):  # the kernel's own limit on links in one lookup
        parent, name = os.path.split(path)
        if not name or not _is_link_entry(parent, name):
            break
        try:
            path = _real_parent(os.path.join(parent, os.readlink(path)))
        except OSError:
            break
    return path


def directory_keys(path: str) -> set[str]:
    """Spellings of the directory `path` to compare with another's: normalised as written
    (it may not exist yet), and with symlinks resolved."""
    return {os.path.normpath(path), resolved_dir(path)}


def device_keys(path: str) -> set[object]:
    """What identifies the disk or image `path`, however it is spelled: the resolved path,
    and the device number of a block node or the inode of an image file (a hard link or a
    second node of the same disk is the same thing)."""
    keys: set[object] = {_real(path)}
    try:
        st = os.stat(path)
    except OSError:
        return keys
    if stat.S_ISBLK(st.st_mode):
        keys.add(("block", st.st_rdev))
    elif stat.S_ISREG(st.st_mode):
        keys.add(("file", st.st_dev, st.st_ino))
    return keys


def export_key(host: str, directory: str) -> tuple[str, str]:
    """An NFS export (host:dir mount source) as the server sees it: host names are
    case-insensitive and a final dot only says "fully qualified", an IP address is a number
    whatever its spelling, the path is normalised (//, /./, a trailing slash)."""
    try:
        host = ipaddress.ip_address(host.strip("[]")).compressed
    except ValueError:
        host = host.lower().rstrip(".")
    path = os.path.normpath(directory)
    if path.startswith("//"):  # POSIX keeps a leading "//"; NFS servers do not
        path = "/" + path.lstrip("/")
    return host, path


# == devices and their users ===========================================================
def _sys_block(device: str) -> Path | None:
    """/sys/class/block/NAME for a block device node (None if it is not one)."""
    try:
        st = os.stat(device)
    except OSError:
        return None
    if not stat.S_ISBLK(st.st_mode):
        return None
    path = Path(f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}")
    return path.resolve() if path.exists() else None


def partitions(device: str) -> list[str]:
    """/dev nodes of the partitions of a whole-disk device (empty for others)."""
    sys_dir = _sys_block(device)
    if sys_dir is None:
        return []
    return sorted(f"/dev/{child.name}" for child in sys_dir.iterdir()
                  if (child / "partition").exists())


def whole_disk(device: str) -> str:
    """The whole-disk node of a partition (the device itself otherwise)."""
    sys_dir = _sys_block(device)
    if sys_dir is not None and (sys_dir / "partition").exists():
        return f"/dev/{sys_dir.parent.name}"
    return device


def _numbers(devices: list[str]) -> set[tuple[int, int]]:
    found = set()
    for dev in devices:
        with contextlib.suppress(OSError):
            st = os.stat(dev)
            if stat.S_ISBLK(st.st_mode):
                found.add((os.major(st.st_rdev), os.minor(st.st_rdev)))
    return found


def mounts_of(device: str, table: list[Mount] | None = None) -> list[Mount]:
    """Mounts of `device` or of its partitions, matched by device number and by node name
    (btrfs shows an anonymous device number, so the name matters too)."""
    family = [device, *partitions(device)]
    numbers = _numbers(family)
    names = {_real(d) for d in family}
    return [m for m in (mounts() if table is None else table)
            if (m.major, m.minor) in numbers or (m.source.startswith("/") and _real(m.source)
                                                  in names)]


def kernel_holders(device: str) -> list[str]:
    """Kernel users (device-mapper, md) listed in sysfs holders/ of the device or its
    partitions."""
    names = []
    for dev in (device, *partitions(device)):
        sys_dir = _sys_block(dev)
        if sys_dir is None or not (sys_dir / "holders").is_dir():
            continue
        names += sorted(h.name for h in (sys_dir / "holders").iterdir())
    return names


def exclusively_claimed(device: str) -> bool:
    """True if the kernel refuses an O_EXCL open: mounted (any namespace), swap, md, dm..."""
    try:
        fd = os.open(device, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as exc:
        return exc.errno == errno.EBUSY
    os.close(fd)
    return False


def _proc_name(pid: int) -> str:
    import psutil  # imported when used: it costs a listing ~10 ms
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"


def _fd_targets(pid: int) -> Iterator[str]:
    """/proc/PID paths whose stat is the object the process uses: fds, cwd, root."""
    base = f"/proc/{pid}"
    yield f"{base}/cwd"
    yield f"{base}/root"
    try:
        fds = os.listdir(f"{base}/fd")
    except OSError:
        return
    for fd in fds:
        yield f"{base}/fd/{fd}"


def _holders(match: Callable[[os.stat_result], bool]) -> list[str]:
    """'name (pid N)' of every other process with an open fd whose target matches.
    psutil's open_files() lists regular files only, so the fds are read from /proc."""
    import psutil  # imported when used: it costs a listing ~10 ms
    users = []
    me = os.getpid()
    for pid in psutil.pids():
        if pid == me:
            continue
        for link in _fd_targets(pid):
            try:
                st = os.stat(link)
            except OSError:
                continue
            if match(st):
                users.append(f"{_proc_name(pid)} (pid {pid})")
                break
    return users


def device_openers(device: str) -> list[str]:
    """Processes (other than us) holding the device or one of its partitions open."""
    numbers = _numbers([device, *partitions(device)])
    if not numbers:
        return []
    return _holders(lambda st: stat.S_ISBLK(st.st_mode)
                    and (os.major(st.st_rdev), os.minor(st.st_rdev)) in numbers)


def processes_using_tree(path: str) -> list[str]:
    """Processes with a cwd, root or open file on the filesystem mounted at `path` (by st_dev,
    so deleted and renamed files count too)."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return []
    return _holders(lambda st: st.st_dev == dev)


def device_users(device: str) -> list[str]:
    """Why `device` must not be overwritten now (empty: nobody uses it that we can see)."""
    reasons = [f"mounted at {m.target}" + (f" ({m.source})" if m.source != device else "")
               for m in mounts_of(device)]
    reasons += [f"held by {name}" for name in kernel_holders(device)]
    reasons += [f"open by {who}" for who in device_openers(device)]
    if not reasons and exclusively_claimed(device):
        reasons.append("claimed by the kernel (mounted in another namespace, swap, RAID, ...)")
    return reasons


@contextlib.contextmanager
def disk_lock(device: str, wait: float | None = None) -> Iterator[None]:
    """Hold the whole disk's BSD lock (the convention udev and systemd tools honour) while
    probing and writing, so no one else re-reads or rewrites it in between. Waits up to
    `wait` (default DISK_LOCK_WAIT) seconds for udev's short holds, then refuses."""
    disk = whole_disk(device)
    with _flocked(disk, wait, f"another program holds the lock on {disk} (a partitioning "
                  "tool or udev); try again when it is done"):
        yield


@contextlib.contextmanager
def image_lock(image: str, wait: float | None = None) -> Iterator[None]:
    """Hold a BSD lock on the image file itself while checking, attaching, building or
    wiping it. Every poolkeeper, whatever its state root, and every loop device of the
    image meet on this one inode (a lock on each process's own loop node, or under its
    state root, would not); qemu's OFD locks on the same file do not conflict with it."""
    with _flocked(image, wait, f"another program holds the lock on {image} (another "
                  "poolkeeper, perhaps with another state root, is building, starting or "
                  "deleting a pool on it); try again when it is done"):
        yield


@contextlib.contextmanager
def _flocked(path: str, wait: float | None, busy: str) -> Iterator[None]:
    """flock `path`, retrying until `wait` runs out. Between tries the file is closed: a
    waiter holding the device open would look like a user of it to the holder's own
    in-use check (device_users), which would then refuse its build."""
    deadline = time.monotonic() + (DISK_LOCK_WAIT if wait is None else wait)
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise Busy(busy) from None
            time.sleep(0.1)
        except BaseException:
            os.close(fd)
            raise
    try:
        yield
    finally:
        os.close(fd)  # releases the lock


# == loop devices ======================================================================
@record(frozen=True)
class LoopIdentity:
    """A loop device and the file it was attached to."""
    device: str
    backing: str  # the image path the kernel recorded (" (deleted)" removed)
    st_dev: int  # of the backing file, as the kernel saw it at attach time
    st_ino: int
    diskseq: int | None  # changes on every attach (Linux >= 5.15): a reused number differs

    def __init__(
            self, device: str, backing: str, st_dev: int, st_ino: int, diskseq: int | None) -> None:
        _set(self, "device", device)
        _set(self, "backing", backing)
        _set(self, "st_dev", st_dev)
        _set(self, "st_ino", st_ino)
        _set(self, "diskseq", diskseq)

    def matches(self, record: dict) -> bool:
        """Is this attachment the one `record` (see `record()`) describes?"""
        seq = record.get("diskseq")
        if seq is not None and self.diskseq is not None and seq != self.diskseq:
            return False
        return (self.backing == record.get("image") and self.st_dev == record.get("st_dev")
                and self.st_ino == record.get("st_ino"))

    def record(self) -> dict:
        return {"device": self.device, "image": self.backing, "st_dev": self.st_dev,
                "st_ino": self.st_ino, "diskseq": self.diskseq}


def loop_backing_file(device: str) -> str | None:
    path = Path("/sys/block") / Path(device).name / "loop" / "backing_file"
    try:
        text = path.read_text().rstrip("\n")
    except OSError:
        return None
    return text.removesuffix(" (deleted)")


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def loop_identity(device: str) -> LoopIdentity | None:
    """Who is behind /dev/loopN now (None if it is detached or not a loop device)."""
    if not re.fullmatch(r"/dev/loop[0-9]+", device):
        return None
    backing = loop_backing_file(device)
    if backing is None:
        return None
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return None
    try:
        buf = bytearray(_LOOP_INFO64.size)
        fcntl.ioctl(fd, LOOP_GET_STATUS64, buf)
    except OSError:
        return None  # ENXIO: detached between the sysfs read and now
    finally:
        os.close(fd)
    lo_device, lo_inode = _LOOP_INFO64.unpack_from(buf)[:2]
    # The kernel encodes dev_t as new_encode_dev; os.makedev gives the st_dev form.
    st_dev = os.makedev((lo_device & 0xFFF00) >> 8, (lo_device & 0xFF) | ((lo_device >> 12)
                                                                          & 0xFFF00))
    seq = _read_int(Path("/sys/block") / Path(device).name / "diskseq")
    return LoopIdentity(device, backing, st_dev, lo_inode, seq)


def loops_backed_by(image: str) -> list[LoopIdentity]:
    """Loop devices whose backing file is `image` (same inode), attached by anyone."""
    try:
        st = os.stat(image)
    except OSError:
        return []
    found = []
    for entry in sorted(Path("/sys/block").glob("loop*")):
        ident = loop_identity(f"/dev/{entry.name}")
        if ident and (ident.st_dev, ident.st_ino) == (st.st_dev, st.st_ino):
            found.append(ident)
    return found


# == shared by the fs and disk drivers (attaching is loops.LoopClaims.attach) ===========
def detach_loop(attached: LoopIdentity) -> None:
    """losetup -d, only if the device still has the attachment we made behind it."""
    now = loop_identity(attached.device)
    if now is not None and now.matches(attached.record()):
        runner.run(["losetup", "-d", attached.device], timeout=60)


def refuse_unless_overwrite(found: Probe, overwrite: bool | None, shown: str) -> None:
    """Building over a signature, or over a device we cannot read, needs --overwrite."""
    if overwrite:
        return
    if found.signatures:
        raise StateError(f"{shown} holds {found.describe()}; pass --overwrite to destroy it")
    if found.problem:
        raise StateError(
            f"cannot tell whether {shown} holds data ({found.problem}); poolkeeper treats "
            "that as in use: pass --overwrite only if you are sure nothing on it is needed")


# == device-mapper ========================================================================
# Where the kernel shows device-mapper's control device (tests point these elsewhere).
DM_MISC = "/sys/class/misc/device-mapper"
DM_CONTROL = "/dev/mapper/control"


def device_mapper_available() -> bool:
    """Is device-mapper in the running kernel? Its misc device is registered (sysfs), or
    opening /dev/mapper/control succeeds, which loads dm_mod where it is a module; ENODEV
    (this machine) or no node at all means no."""
    if os.path.exists(DM_MISC):
        return True
    try:
        fd = os.open(DM_CONTROL, os.O_RDWR | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError:
        return False
    os.close(fd)
    return True
