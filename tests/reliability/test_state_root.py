"""The state root is checked before anything is created in or under it.

A state directory (the root, `storage`, `storage/autostart`, `storage/volumes`, `run`,
`locks`, `secrets`) that is a symlink, belongs to another user, or is writable by group
or others is refused with a message that names it and says what to do, and nothing is
created through a planted link or inside a foreign directory. For a user without
XDG_RUNTIME_DIR the per-user parent under the temp directory must be theirs and 0700:
made so when missing, refused when another user made it first (tested as `nobody`, in a
child process).

Group write is refused too ("group-writable"), except by the user's own private group:
with umask 002 (Debian's user private groups) ~/.config is 0775 and belongs to a group
that is the user's alone, and a first run must work there (tested as a throwaway user
made with useradd, and removed again). A group with another member, or that another
account has as its primary group, is refused.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import StateError

SUBDIRS = ["", "storage", "storage/autostart", "storage/volumes", "run", "locks", "secrets"]
KINDS = {
    "symlink": "is a symbolic link",
    "other-owner": "belongs to another user",
    "group-writable": "is group-writable",
    "world-writable": "writable by others",
}
NOBODY = 65534
OTHER_USER = 1  # "daemon": neither us, nor root, nor nobody
OTHER_GROUP = 1  # "daemon": not our own private group
REPO = Path(__file__).resolve().parents[2]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def plant(root: Path, sub: str, kind: str, elsewhere: Path) -> Path:
    """Make `root` with the state directories above `sub`, then plant `sub` as `kind`."""
    planted = root / sub if sub else root
    planted.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        planted.symlink_to(elsewhere)
        return planted
    mode = 0o700 if sub in ("run", "locks", "secrets") else 0o755
    planted.mkdir(mode=mode)
    os.chmod(planted, {"group-writable": mode | 0o020, "world-writable": mode | 0o002}.get(
        kind, mode))
    if kind == "other-owner":
        os.chown(planted, NOBODY if os.geteuid() == 0 else OTHER_USER, -1)
    if kind == "group-writable" and os.geteuid() == 0:  # a group that is not ours alone
        os.chown(planted, -1, OTHER_GROUP)
    return planted


@needs_root
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sub", SUBDIRS, ids=[s or "root" for s in SUBDIRS])
def test_unfit_state_directory_is_refused_before_anything_is_made(tmp_path, sub, kind):
    root = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = plant(root, sub, kind, elsewhere)
    with pytest.raises(StateError) as info:
        StorageController(root, create_default=False, autostart=False).close()
    message = str(info.value)
    expected = "open to other users" if sub == "secrets" and "writable" in kind else KINDS[kind]
    assert f"'{planted}'" in message and expected in message, message
    assert any(w in message for w in ("chmod", "remove the link", "--root")), message
    assert tree(elsewhere) == []  # nothing was created through the link
    if kind != "symlink":
        assert tree(planted) == []  # nor inside the foreign or open directory


@needs_root
def test_the_cli_names_the_planted_link(cli, state_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (state_root / "storage").symlink_to(elsewhere)
    result = cli("pool-list", "--all")
    assert result.code == 1 and "Traceback" not in result.err, result
    assert f"'{state_root / 'storage'}' is a symbolic link" in result.err, result
    assert tree(elsewhere) == []


def test_a_fit_root_is_made_private_where_it_must_be(tmp_path):
    root = tmp_path / "fresh" / "state"
    StorageController(root, create_default=False, autostart=False).close()
    modes = {sub: stat.S_IMODE(os.lstat(root / sub).st_mode)
             for sub in ("storage", "storage/autostart", "storage/volumes", "run", "locks")}
    assert modes == {"storage": 0o755, "storage/autostart": 0o755, "storage/volumes": 0o755,
                     "run": 0o700, "locks": 0o700}


# == as an unprivileged user (a child process running as nobody) ========================
CHILD = """
import json, os, sys
import tempfile  # resolve_paths imports it only for this case (no XDG_RUNTIME_DIR)
from backends.controller import StorageController
from backends.errors import PoolkeeperError
# Imported as root (the interpreter may live where nobody cannot read), then nobody:
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    StorageController(create_default=False, autostart=False).close()
except PoolkeeperError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(1)
print(json.dumps({"ok": True}))
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A base nobody can reach (pytest's tmp_path is in root's 0700 dir), with a root-owned sticky
    `tmp` standing in for /tmp and a `home` owned by nobody."""
    base = Path(tempfile.mkdtemp(prefix="pk-i13-state-"))
    try:
        os.chmod(base, 0o755)
        (base / "tmp").mkdir()
        os.chmod(base / "tmp", 0o1777)
        (base / "home").mkdir()
        os.chown(base / "home", NOBODY, NOBODY)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run_as_nobody(base: Path, **env: str) -> tuple[int, dict]:
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base / "home"),
               "TMPDIR": str(base / "tmp"), "PYTHONPATH": str(REPO), "LC_ALL": "C", **env}
    done = subprocess.run([sys.executable, "-c", CHILD], env=environ, cwd=base / "home",
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


@needs_root
def test_user_runtime_parent_is_made_ours_and_0700(shared_tmp):
    code, result = run_as_nobody(shared_tmp)
    assert code == 0, result
    parent = shared_tmp / "tmp" / f"poolkeeper-{NOBODY}"
    st = os.lstat(parent)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == NOBODY
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert (parent / "poolkeeper" / "locks").is_dir()
    assert (shared_tmp / "home" / ".config" / "poolkeeper" / "storage").is_dir()


@needs_root
@pytest.mark.parametrize("planted", ["other-user", "root-made", "symlink", "ours-0755"])
def test_user_runtime_parent_made_by_someone_else_is_refused(shared_tmp, planted):
    parent = shared_tmp / "tmp" / f"poolkeeper-{NOBODY}"
    elsewhere = shared_tmp / "home" / "elsewhere"  # a directory nobody owns and can write
    elsewhere.mkdir()
    os.chown(elsewhere, NOBODY, NOBODY)
    if planted == "symlink":
        parent.symlink_to(elsewhere)
    else:
        parent.mkdir()
        owner = {"other-user": OTHER_USER, "root-made": 0, "ours-0755": NOBODY}[planted]
        os.chmod(parent, 0o777 if planted == "other-user" else
                 0o755 if planted == "ours-0755" else 0o700)
        os.chown(parent, owner, owner)
    code, result = run_as_nobody(shared_tmp)
    assert code == 1, result
    assert f"'{parent}'" in result["error"] and "0700" in result["error"], result
    assert tree(elsewhere) == []
    if planted != "symlink":
        assert tree(parent) == []  # nothing of ours was made in someone else's directory


@needs_root
def test_user_with_a_runtime_dir_needs_no_temp_parent(shared_tmp):
    runtime = shared_tmp / "home" / "run"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, NOBODY, NOBODY)
    code, result = run_as_nobody(shared_tmp, XDG_RUNTIME_DIR=str(runtime))
    assert code == 0, result
    assert (runtime / "poolkeeper" / "run").is_dir()
    assert os.listdir(shared_tmp / "tmp") == []


@needs_root
def test_user_config_dir_owned_by_another_user_is_refused(shared_tmp):
    config = shared_tmp / "home" / "cfg"
    config.mkdir()
    (config / "poolkeeper").mkdir()
    os.chown(config / "poolkeeper", OTHER_USER, OTHER_USER)
    code, result = run_as_nobody(shared_tmp, XDG_CONFIG_HOME=str(config))
    assert code == 1, result
    assert f"'{config / 'poolkeeper'}' belongs to another user (uid {OTHER_USER})" in \
        result["error"], result
    assert tree(config / "poolkeeper") == []


# == umask 002: group write by the user's own private group ==============================
AS_USER = """
import json, os, sys
import tempfile  # as in CHILD
from backends.controller import StorageController
from backends.errors import PoolkeeperError
uid, gid = int(sys.argv[1]), int(sys.argv[2])
os.setgroups([gid])  # as a login gives it: its private group
os.setgid(gid)
os.setuid(uid)
os.umask(0o002)
try:
    StorageController(create_default=False, autostart=False).close()
except PoolkeeperError as exc:
    print(json.dumps({"error": str(exc)}))
    sys.exit(1)
print(json.dumps({"ok": True}))
"""


def _account_tool(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=120)


@pytest.fixture
def accounts() -> Iterator[list[str]]:
    """Throwaway accounts the test makes with useradd; each (and the group useradd made
    for it) is deleted at the end, whatever happened."""
    made: list[str] = []
    try:
        yield made
    finally:
        for name in reversed(made):
            subprocess.run(["userdel", name], capture_output=True, timeout=120)
            subprocess.run(["groupdel", name], capture_output=True, timeout=120)


def new_name() -> str:
    return f"pk{uuid.uuid4().hex[:10]}"


@needs_root
@pytest.mark.parametrize("group", ["private", "with-another-member",
                                   "another-accounts-primary"])
def test_a_0775_config_dir_of_a_user_private_group(shared_tmp, accounts, group):
    """A user with umask 002 and a user private group: ~/.config is 0775, group theirs.
    Accepted when the group is theirs alone; refused as "group-writable" (naming the
    directory) when someone else is in the group."""
    user = new_name()
    _account_tool("useradd", "--user-group", "--no-create-home", "--shell", "/bin/false",
                  "--home-dir", str(shared_tmp / user), user)
    accounts.append(user)
    me = pwd.getpwnam(user)
    if group == "with-another-member":
        other = new_name()
        _account_tool("useradd", "--no-user-group", "--no-create-home", "--shell",
                      "/bin/false", "--groups", user, other)
        accounts.append(other)
    elif group == "another-accounts-primary":
        other = new_name()
        _account_tool("useradd", "--no-user-group", "--no-create-home", "--shell",
                      "/bin/false", "--gid", str(me.pw_gid), other)
        accounts.append(other)
    home = shared_tmp / user
    config = home / ".config"
    config.mkdir(parents=True)
    for path in (home, config):
        os.chown(path, me.pw_uid, me.pw_gid)
    os.chmod(home, 0o755)
    os.chmod(config, 0o775)  # what mkdir gives with umask 002

    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "TMPDIR": str(shared_tmp / "tmp"), "PYTHONPATH": str(REPO), "LC_ALL": "C"}
    done = subprocess.run([sys.executable, "-c", AS_USER, str(me.pw_uid), str(me.pw_gid)],
                          env=environ, cwd=home, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip(), done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if group == "private":
        assert done.returncode == 0, result
        storage = config / "poolkeeper" / "storage"
        assert storage.is_dir() and os.lstat(storage).st_uid == me.pw_uid
        return
    assert done.returncode == 1, result
    message = result["error"]
    assert f"'{config}'" in message and "is group-writable (mode 0775)" in message, message
    assert "writable by others" not in message, message
    assert tree(config) == []  # nothing made in the shared directory
