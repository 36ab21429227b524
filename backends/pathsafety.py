"""Which directories poolkeeper may use, decided in one place.

Two rules live here:

* State directories (the state root, its `storage`, `run`, `locks`, `secrets`, ...): each
  must be a real directory (never a symlink), owned by us or root and not writable by
  other users; it is checked before anything is created in or under it, and a missing one
  is made with mkdir (which never follows a link) in a parent that passed the same check.
  Group write is accepted only when the group is our own private group (Debian's user
  private groups: with umask 002, ~/.config is 0775 and its group is ours alone): its gid
  is our primary gid, it lists no other member, and no other account has it as its
  primary group. A root-owned sticky directory such as /tmp is acceptable only as the
  parent we create our own directory in. Anything else is refused with a message naming
  the directory.

* Pool targets: system directories are refused as the target of a pool, however the path
  is spelled. A path is compared as written (normalised: `//`, `/./`, `..`), with its
  symlinks resolved, through every bind mount of the same filesystem, and by (device,
  inode) of the target and each existing directory above it. The state root and anything
  under it is refused too, except the directory of the default pool.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path

from . import blockprobe
from .errors import StateError, ValidationError

# == state directories =================================================================
_STATE_ADVICE = ("point --root (or $POOLKEEPER_ROOT, XDG_CONFIG_HOME, XDG_RUNTIME_DIR) at "
                 "a directory that only you can change")


def own_private_group(gid: int) -> bool:
    """Is `gid` our own private group: our primary group, with no other member and no
    other account having it as its primary group (a user private group, as Debian's
    useradd makes)? Then its group write lets nobody else in."""
    uid = os.geteuid()
    try:
        me = pwd.getpwuid(uid)
        group = grp.getgrgid(gid)
    except KeyError:
        return False  # an account or group without an entry: cannot tell who is in it
    if me.pw_gid != gid or any(member != me.pw_name for member in group.gr_mem):
        return False
    return not any(other.pw_gid == gid and other.pw_uid != uid for other in pwd.getpwall())


def _write_problem(st: os.stat_result) -> str | None:
    """Who besides the owner can write the directory: others, or a group that is not
    our own private group."""
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o002:
        return f"is writable by others (mode {mode:04o})"
    if mode & 0o020 and not own_private_group(st.st_gid):
        return (f"is group-writable (mode {mode:04o}) and its group ({_group_name(st.st_gid)})"
                " is not your own private group")
    return None


def _group_name(gid: int) -> str:
    try:
        return f"'{grp.getgrgid(gid).gr_name}', gid {gid}"
    except KeyError:
        return f"gid {gid}"


def dir_problem(st: os.stat_result, *, private: bool = False) -> str | None:
    """What makes a directory (seen by lstat) unfit to hold poolkeeper's state, or None.
    `private`: nobody else may even read it (secrets)."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link, not a directory"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid not in (os.geteuid(), 0):
        return f"belongs to another user (uid {st.st_uid})"
    mode = stat.S_IMODE(st.st_mode)
    if private and mode & 0o077:
        return f"is open to other users (mode {mode:04o}, not 0700)"
    return _write_problem(st)


def refuse_unfit_dir(path: Path, what: str, *, private: bool = False,
                     error: type[Exception] = StateError) -> bool:
    """Raise `error` naming `path` if it exists and is unfit (see dir_problem); False if it
    does not exist, True if it is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    problem = dir_problem(st, private=private)
    if problem is None:
        return True
    if stat.S_ISLNK(st.st_mode):
        advice = ("poolkeeper never follows links in its state: remove the link (or "
                  f"{_STATE_ADVICE})")
    elif problem.startswith("belongs"):
        advice = f"another user could change poolkeeper's state there: {_STATE_ADVICE}"
    elif problem.startswith(("is open", "is writable", "is group-writable")):
        advice = f"make it private (chmod {'700' if private else 'go-w'} '{path}')"
    else:
        advice = "remove or move it"
    raise error(f"{what} '{path}' {problem}; poolkeeper refuses to use it: {advice}")


def _fit_as_parent(path: Path, error: type[Exception] = StateError) -> None:
    """The existing directory a state directory is created in: ours or root's and not
    writable by others (group write only by our own private group, see dir_problem), or
    a root-owned sticky directory such as /tmp (nobody else can rename or remove what we
    make there). It is the path the user chose, so links in it are followed."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise error(f"cannot use '{path}' for poolkeeper's state: {exc.strerror}") from None
    mode = stat.S_IMODE(st.st_mode)
    sticky_root = st.st_uid == 0 and mode & stat.S_ISVTX
    problem = dir_problem(st)
    if problem is None or (stat.S_ISDIR(st.st_mode) and sticky_root):
        return
    raise error(
        f"'{path}', where poolkeeper would create its state, {problem}; another user could "
        f"replace what poolkeeper makes there: {_STATE_ADVICE}")


def ensure_state_dir(path: Path, what: str, mode: int = 0o755, *, private: bool = False,
                     error: type[Exception] = StateError) -> None:
    """Make sure `path` is a fit state directory, creating it (and missing parents) with
    `mode` if needed; refuses before anything is created in or through an unfit one (a
    missing one is made only in a parent that is fit, see _fit_as_parent)."""
    if refuse_unfit_dir(path, what, private=private, error=error):
        return
    missing: list[Path] = []
    parent = path
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    _fit_as_parent(parent, error)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700 if directory != path else mode)
        except FileExistsError:  # another process made it: check it as any existing one
            refuse_unfit_dir(directory, what, private=private, error=error)
            continue
        except OSError as exc:
            raise error(f"cannot create {what} '{directory}': {exc.strerror}") from None
        os.chmod(directory, 0o700 if directory != path else mode)  # the umask narrowed it
    refuse_unfit_dir(path, what, private=private, error=error)


def ensure_own_private_dir(path: Path, what: str) -> None:
    """A directory that must be ours and 0700 (the per-user parent under /tmp, which
    another user could have made first): created if missing, refused otherwise."""
    with contextlib.suppress(FileExistsError):
        _fit_as_parent(path.parent)
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
    st = os.lstat(path)
    problem = dir_problem(st, private=True)
    if problem is None and st.st_uid != os.geteuid():
        problem = f"belongs to another user (uid {st.st_uid})"
    if problem is not None:
        raise StateError(
            f"{what} '{path}' {problem}; it must be yours and 0700 (another user may have "
            f"made it first): remove it, or set XDG_RUNTIME_DIR or use --root")


# == pool targets ======================================================================
# The system's programs, configuration and kernel interfaces: the directory and all below.
SYSTEM_TREES = ("/etc", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                "/libx32", "/proc", "/sys", "/dev")
# Directories whose subdirectories are ordinary places for pools, but which themselves
# hold other things a pool's verbs would reach (every entry is listed as a volume).
SYSTEM_DIRS = ("/", "/var", "/var/lib", "/run", "/home", "/root", "/tmp", "/var/tmp")


def _lexical(path: str) -> str:
    """`path` normalised as written: '//', '/./', '..' and a trailing '/' gone."""
    normal = os.path.normpath(path)
    return "/" + normal.lstrip("/") if normal.startswith("/") else normal


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _mount_table() -> list[blockprobe.Mount]:
    try:
        return blockprobe.mounts()
    except OSError:
        return []


def _bind_spellings(real: str, table: list[blockprobe.Mount]) -> set[str]:
    """Other paths of the same directory through bind mounts of its filesystem (a bind of
    /etc/cron.d on /srv/x makes /srv/x/a also /etc/cron.d/a)."""
    holder = None
    for mount in table:  # the deepest mount point above `real`; the last one is on top
        if _under(real, mount.target) and (holder is None
                                           or len(mount.target) >= len(holder.target)):
            holder = mount
    if holder is None:
        return set()
    inside = _lexical(holder.root + "/" + real[len(holder.target):])  # path within the fs
    found = set()
    for mount in table:
        if (mount.major, mount.minor) == (holder.major, holder.minor) and _under(
                inside, mount.root):
            found.add(_lexical(mount.target + "/" + inside[len(mount.root.rstrip("/")):]))
    return found


def spellings(path: str, table: list[blockprobe.Mount] | None = None) -> set[str]:
    """Every path that names the directory `path`: as written, resolved, and through bind
    mounts (of `table`, default: this process's mount table)."""
    lexical = _lexical(path)
    real = os.path.realpath(lexical)
    return {lexical, real} | _bind_spellings(real, _mount_table() if table is None else table)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _existing_chain(path: str) -> list[str]:
    """`path` and every directory above it, deepest first (to compare identities)."""
    chain = []
    current = _lexical(path)
    while True:
        chain.append(current)
        if current == "/":
            return chain
        current = os.path.dirname(current)


def refuse_unsafe_target(path: str | None, state_dirs: Iterable[Path] = (),
                         allowed: Iterable[Path] = (), *, device_nodes: bool = False) -> None:
    """ValidationError if `path` is a system directory or inside the state root, however it
    is spelled. `state_dirs`: the state root's directories (refused with all below them);
    `allowed`: directories under them that pools may use (the default pool's);
    `device_nodes`: the pool's volumes are device nodes, which live under /dev (libvirt:
    /dev, /dev/VG, /dev/disk/by-path), so /dev is allowed."""
    if not path:
        return
    table = _mount_table()
    names = spellings(path, table)
    chain_ids = {ident for p in _existing_chain(path) if (ident := _identity(p))}
    target_id = _identity(path)
    trees = [t for t in SYSTEM_TREES if not (t == "/dev" and device_nodes)]
    for top in trees:
        if any(_under(name, top) for name in names) or _identity(top) in chain_ids:
            raise ValidationError(
                f"the target path '{path}' is {_which(top, names)}: a pool there would let "
                "its volume verbs create, overwrite and delete system files; choose a "
                "directory of its own, e.g. /var/lib/libvirt/images/NAME", "path")
    for top in SYSTEM_DIRS:
        ident = _identity(top)
        if top in names or (ident is not None and ident == target_id):
            raise ValidationError(
                f"the target path '{path}' is {top} itself: every file in it would be listed "
                "as a volume that can be wiped or deleted; use a directory of its own below "
                f"it (e.g. {top.rstrip('/')}/pools)", "path")
    _refuse_state_dir(path, names, chain_ids, list(state_dirs), list(allowed), table)


def _which(top: str, names: set[str]) -> str:
    if top in names:
        return top
    inside = sorted(n for n in names if _under(n, top))
    return f"{inside[0]}, inside {top}" if inside else f"inside {top} (by a link or mount)"


def _refuse_state_dir(path: str, names: set[str], chain_ids: set[tuple[int, int]],
                      state_dirs: list[Path], allowed: list[Path],
                      table: list[blockprobe.Mount]) -> None:
    allowed_names = set().union(*(spellings(str(a), table) for a in allowed))
    allowed_ids = {ident for a in allowed if (ident := _identity(str(a)))}
    if any(_under(n, a) for n in names for a in allowed_names) or allowed_ids & chain_ids:
        return
    for state in dict.fromkeys(state_dirs):  # config and runtime are one dir with --root
        state_names = spellings(str(state), table)
        ident = _identity(str(state))
        if any(_under(n, s) for n in names for s in state_names) or (
                ident is not None and ident in chain_ids):
            raise ValidationError(
                f"the target path '{path}' is inside poolkeeper's state directory '{state}'; "
                "a pool there could overwrite definitions, locks or secrets: choose a "
                "directory outside it", "path")
