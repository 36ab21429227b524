"""Secrets (iSCSI CHAP passwords) in root-only files under the state root.

    CONFIG/secrets/                  0700, owned by us
    CONFIG/secrets/<sha256 of usage> 0600, owned by us, the value's bytes and nothing else
    CONFIG/secrets/<sha256>.usage    0600, the usage name itself, so that secret-list can
                                     name the value (written before it; values stored
                                     before this was kept have none: "name not recorded")

A pool names its secret with <auth><secret usage='NAME'/> (or uuid='...'; the same store
holds both kinds of name). The file name is a hash, so a usage name never becomes a path.
A value is written atomically (temp file created 0600 + fsync + rename + directory fsync)
and read back only from a regular file that we own, that nobody else can read or write
and that has no other link; anything else is refused, never "repaired".

No message raised here, and nothing logged, ever contains a value: only the usage name.
A driver passes the value to tools through the environment or a file (the store's own
file, see `path`), and where a tool needs it in argv, through runner.run(secrets=[value])
so that the command log and errors show it masked.

libvirt-shaped secrets (secret-define) live beside them:

    CONFIG/secrets/def-<uuid>.xml    0600, the secret's definition (secret_defs)
    CONFIG/secrets/val-<uuid>        0600, its value, under the same checks
    CONFIG/secrets/volume-keys.json  0600, volume path -> the uuid of the secret it was
                                     encrypted with (a clone keeps its source's secret);
                                     read before any secret's volume usage

A name a pool or volume gives (`ref`) is looked up as a defined secret's uuid, then as a
defined secret's usage (volume path, iSCSI target, name), and last as a usage-named value
stored before secrets had definitions (the sha256 files above): those keep working, and
setting the value of a definition whose usage names one replaces it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from .checks import control_char
from .errors import (
    AlreadyExists,
    NotFound,
    PoolkeeperError,
    StateError,
    UnsafePath,
    ValidationError,
    XMLError,
)
from .imageprobe import probe_fd
from .pathsafety import ensure_state_dir, refuse_unfit_dir
from .secret_defs import SecretDef, canonical_uuid, format_secret, parse_secret
from .store import atomic_write

SECRETS_DIR = "secrets"
MAX_SECRET_BYTES = 1024
MAX_USAGE_BYTES = 1024
MAX_DEF_BYTES = 16384
VOLUME_KEYS = "volume-keys.json"
USAGE_SUFFIX = ".usage"
_HASH_CHARS = frozenset("0123456789abcdef")


class SecretNotFound(NotFound):
    """No value is stored for that usage name."""


def _check_usage(usage: object) -> str:
    if not isinstance(usage, str) or not usage.strip():
        raise ValidationError("a secret needs a non-empty usage name", "secret")
    if len(usage.encode("utf-8")) > MAX_USAGE_BYTES:
        raise ValidationError(f"a secret usage name is at most {MAX_USAGE_BYTES} bytes",
                              "secret")
    if control_char(usage):
        raise ValidationError("a secret usage name must not contain control characters",
                              "secret")
    return usage


def _check_value(value: str | bytes) -> bytes:
    """The bytes to store. The message never quotes the value."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if not data:
        raise ValidationError("the secret value is empty", "secret")
    if len(data) > MAX_SECRET_BYTES:
        raise ValidationError(f"the secret value is longer than {MAX_SECRET_BYTES} bytes",
                              "secret")
    if any(b < 0x20 or b == 0x7F for b in data):
        raise ValidationError(
            "the secret value must not contain control characters or line breaks "
            "(give it without a trailing newline)", "secret")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("the secret value is not valid UTF-8 text", "secret") from None
    return data


def _decoded(data: bytes, label: str) -> str:
    if not data:
        raise SecretNotFound(f"the secret '{label}' is empty; set it again (secret-set)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"the secret '{label}' is not UTF-8 text; set it again",
                              "secret") from None


def _encrypted_file(path: str) -> bool:
    """Does an encrypted image (or one that cannot be read to tell) exist at `path`?"""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.lexists(path)  # there but not readable: count it, never guess
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISBLK(st.st_mode):
            return False
        size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
        return probe_fd(fd, size).encryption is not None
    except (OSError, PoolkeeperError):
        return True
    finally:
        os.close(fd)


def _sha256(data: bytes) -> str:
    import hashlib  # here: OpenSSL costs every command ~3 ms (volume_encryption imports us)

    return hashlib.sha256(data).hexdigest()


class SecretStore:
    def __init__(self, config_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(config_dir) / SECRETS_DIR

    # -- paths ----------------------------------------------------------------------------
    @staticmethod
    def file_name(usage: str) -> str:
        return _sha256(_check_usage(usage).encode("utf-8"))

    def _file(self, usage: str) -> Path:
        return self.dir / self.file_name(usage)

    def _name_file(self, usage: str) -> Path:
        return self.dir / (self.file_name(usage) + USAGE_SUFFIX)

    def _def_file(self, uuid: str) -> Path:
        return self.dir / f"def-{uuid}.xml"

    def _value_file(self, uuid: str) -> Path:
        return self.dir / f"val-{uuid}"

    def _check_dir(self, create: bool) -> bool:
        """True if the directory exists and is safe; False if it does not exist (and
        `create` is False). Refuses a directory that is a link, not ours or open to others
        (pathsafety's rule for every state directory, here with nothing readable by others)."""
        if create:
            ensure_state_dir(self.dir, "the secrets directory", 0o700, private=True,
                             error=UnsafePath)
            return True
        return refuse_unfit_dir(self.dir, "the secrets directory", private=True,
                                error=UnsafePath)

    def _open_checked(self, usage: str, path: Path | None = None,
                      limit: int = MAX_SECRET_BYTES) -> int:
        """An fd on the secret's file (`path`, else the usage-named one) after every
        check, or SecretNotFound."""
        if not self._check_dir(create=False):
            raise SecretNotFound(self._missing(usage))
        path = path or self._file(usage)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            raise SecretNotFound(self._missing(usage)) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(f"the file of secret '{usage}' ({path}) is a symbolic link; "
                                 "poolkeeper refuses it") from None
            raise
        try:
            st = os.fstat(fd)
            problem = None
            if not stat.S_ISREG(st.st_mode):
                problem = "is not a regular file"
            elif st.st_uid != os.geteuid():
                problem = f"belongs to uid {st.st_uid}, not to us"
            elif st.st_mode & 0o077:
                problem = (f"is readable or writable by other users (mode "
                           f"{stat.S_IMODE(st.st_mode):04o}, not 0600)")
            elif st.st_nlink != 1:
                problem = "has other hard links"
            elif st.st_size > limit:
                problem = "is too large to be a secret"
            if problem:
                raise UnsafePath(f"the file of secret '{usage}' ({path}) {problem}; poolkeeper "
                                 "refuses it: set the secret again (secret-set)")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _read(self, label: str, path: Path, limit: int = MAX_SECRET_BYTES) -> bytes:
        fd = self._open_checked(label, path, limit)
        try:
            return os.read(fd, limit + 1)
        finally:
            os.close(fd)

    @staticmethod
    def _missing(usage: str) -> str:
        return (f"no value is stored for the secret '{usage}'; set it with "
                f"`poolkeeper secret-set '{usage}'` (the value is read from stdin)")

    # -- definitions (secret-define) ------------------------------------------------------
    def definitions(self) -> list[SecretDef]:
        """Every defined secret, by uuid."""
        if not self._check_dir(create=False):
            return []
        names = sorted(n for n in os.listdir(self.dir)
                       if n.startswith("def-") and n.endswith(".xml"))
        return [self.definition(n[4:-4]) for n in names]

    def definition(self, uuid: str) -> SecretDef:
        uid = canonical_uuid(uuid)
        try:
            data = self._read(uid, self._def_file(uid), MAX_DEF_BYTES)
        except SecretNotFound:
            raise SecretNotFound(f"no secret with uuid '{uid}' is defined; see "
                                 "`poolkeeper secret-list`") from None
        try:
            sdef = parse_secret(data)
        except (XMLError, ValidationError) as exc:
            raise UnsafePath(f"the definition of secret {uid} ({self._def_file(uid)}) does not "
                             f"read as a secret ({exc}); undefine it (poolkeeper "
                             f"secret-undefine {uid}) and define it again") from None
        if sdef.uuid != uid:
            raise UnsafePath(f"the definition file of secret '{uid}' names another uuid; "
                             "undefine it and define it again")
        return sdef

    def find(self, ref: str) -> SecretDef | None:
        """The defined secret whose uuid or usage is `ref`, or None. A usage text names one
        secret whatever its type (define refuses a second); two defined before that rule
        are refused here, never one picked."""
        with contextlib.suppress(ValidationError):
            uid = canonical_uuid(ref)
            if self._def_file(uid).exists() or self._def_file(uid).is_symlink():
                return self.definition(uid)
        found = [s for s in self.definitions() if s.usage_id is not None and s.usage_id == ref]
        if len(found) > 1:
            raise ValidationError(
                f"secrets {', '.join(s.uuid for s in found)} all have the usage '{ref}'; "
                "name the one you mean by its uuid, and undefine the others", "secret")
        return found[0] if found else None

    def define(self, xml: str | bytes) -> SecretDef:
        """Store a secret definition (new, or a change to one with the same uuid); refused
        if another secret has the same usage, or a private secret would become readable."""
        sdef = parse_secret(xml)
        self._check_dir(create=True)
        with self._locked():  # two defines of one usage at once: the second sees the first
            self._define(sdef)
        return sdef

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _define(self, sdef: SecretDef) -> None:
        for other in self.definitions():
            # the usage text alone names a secret (find, secret-set, a pool's usage=):
            # one of another type with the same text would take its place
            if (other.uuid != sdef.uuid and sdef.usage_id is not None
                    and other.usage_id == sdef.usage_id):
                raise AlreadyExists(f"secret {other.uuid} is already defined for use with "
                                    f"{other.usage_text}; change that one or undefine it")
            if other.uuid == sdef.uuid and other.private and not sdef.private:
                raise ValidationError(f"secret {sdef.uuid} is private; it cannot be made "
                                      "readable (private='no') by defining it again", "secret")
        atomic_write(self._def_file(sdef.uuid), format_secret(sdef).encode(), mode=0o600)

    def undefine(self, uuid: str, force: bool = False) -> SecretDef:
        """Remove a defined secret and its value (also one whose definition file no longer
        reads as a secret: that is how it is cleared). Refused, unless `force`, while an
        existing encrypted volume needs it: its value may be the passphrase's only copy.
        Under the directory's lock, so a set_value at once cannot leave a value behind."""
        uid = canonical_uuid(uuid)
        if not self._check_dir(create=False):
            raise SecretNotFound(f"no secret with uuid '{uid}' is defined; see "
                                 "`poolkeeper secret-list`")
        with self._locked():
            try:
                sdef = self.definition(uid)
            except UnsafePath:
                if not os.path.lexists(self._def_file(uid)):
                    raise
                sdef = SecretDef(uuid=uid)
            if not force:
                self._refuse_in_use(sdef)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._value_file(uid))
            os.unlink(self._def_file(uid))
        return sdef

    def volumes_of(self, sdef: SecretDef) -> list[str]:
        """The existing encrypted volumes that open with `sdef`: its volume usage's path,
        and the paths recorded for it (made or cloned with it)."""
        keys = self._volume_keys()
        paths = [p for p, u in keys.items() if u == sdef.uuid]
        if (sdef.usage_type == "volume" and sdef.usage_id is not None
                and keys.get(sdef.usage_id, sdef.uuid) == sdef.uuid):  # else made with another
            paths.insert(0, sdef.usage_id)
        return [p for p in dict.fromkeys(paths) if _encrypted_file(p)]

    def _refuse_in_use(self, sdef: SecretDef) -> None:
        used = self.volumes_of(sdef)
        if used:
            raise StateError(
                f"secret {sdef.uuid} opens the encrypted volume(s) {', '.join(used)}; "
                "undefining it deletes the passphrase (a private secret's value cannot be "
                "read back), and they could no longer be opened. Delete or re-key them first, "
                "or add --force if you know the passphrase another way")

    def has_value(self, uuid: str) -> bool:
        try:
            os.close(self._open_checked(uuid, self._value_file(canonical_uuid(uuid))))
        except SecretNotFound:
            return False
        return True

    def set_value(self, uuid: str, value: str | bytes) -> SecretDef:
        """Store the value of a defined secret; a usage-named value stored for the same
        usage before (secret-set) goes, so there is one value."""
        data = _check_value(value)
        if not self._check_dir(create=False):
            self.definition(uuid)  # no directory: no definition either (SecretNotFound)
        with self._locked():  # an undefine at once: no value left behind without its secret
            sdef = self.definition(uuid)
            atomic_write(self._value_file(sdef.uuid), data, mode=0o600)
        if sdef.usage_id is not None:
            self._forget_usage_named(sdef.usage_id)
        return sdef

    def _forget_usage_named(self, usage: str) -> bool:
        """Remove the value stored under the usage name, then its name file."""
        try:
            os.unlink(self._file(usage))
        except (FileNotFoundError, ValidationError):
            return False
        finally:
            with contextlib.suppress(FileNotFoundError, ValidationError):
                os.unlink(self._name_file(usage))
        return True

    def usage_named(self) -> list[str | None]:
        """The usage names of the values stored by usage name (secret-set USAGE), sorted;
        None for each stored before the name was recorded beside it (its file name is a
        hash: the name cannot be had back)."""
        if not self._check_dir(create=False):
            return []
        names: list[str] = []
        unnamed = 0
        for entry in sorted(os.listdir(self.dir)):
            if len(entry) != 64 or not set(entry) <= _HASH_CHARS:
                continue
            if not stat.S_ISREG(os.lstat(self.dir / entry).st_mode):
                continue
            name = self._recorded_name(entry)
            if name is None:
                unnamed += 1
            else:
                names.append(name)
        return [*sorted(names), *[None] * unnamed]

    def _recorded_name(self, hashed: str) -> str | None:
        """The usage name recorded for the value file `hashed`, if it is whole and ours
        (its sha256 is the file's name)."""
        path = self.dir / (hashed + USAGE_SUFFIX)
        try:
            data = self._read(path.name, path, MAX_USAGE_BYTES)
        except (SecretNotFound, UnsafePath):
            return None
        try:
            name = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return name if _sha256(data) == hashed else None

    def reveal_value(self, uuid: str) -> str:
        """A defined secret's value, for `secret-get-value --reveal`; refused for a private
        secret (as libvirt: its value is never given out)."""
        sdef = self.definition(uuid)
        if sdef.private:
            raise ValidationError(f"secret {sdef.uuid} is private (private='yes'): its value "
                                  "is never shown", "secret")
        # its own value only: a usage-named file (a write-only CHAP password) is never shown
        data = self._read(sdef.uuid, self._value_file(sdef.uuid))
        return _decoded(data, sdef.uuid)

    # -- the secret a volume was encrypted with -------------------------------------------
    def volume_secret(self, path: str) -> SecretDef | None:
        """The secret of the encrypted volume at `path`: the one it was made or cloned with
        (volume-keys.json: what poolkeeper wrote), if still defined; else the one whose
        usage names the path (as libvirt). A secret defined later for the path, or left from
        an older volume there, does not override the key the volume was made with."""
        uid = self._volume_keys().get(path)
        if uid is not None:
            with contextlib.suppress(SecretNotFound):
                return self.definition(uid)
        return self.usage_secret(path)

    def usage_secret(self, path: str) -> SecretDef | None:
        """The secret whose volume usage names `path`, or None."""
        for sdef in self.definitions():
            if sdef.usage_type == "volume" and sdef.usage_id == path:
                return sdef
        return None

    def remember_volume(self, path: str, uuid: str | None) -> None:
        """Record (or with None forget) the secret the volume at `path` is encrypted with
        (read, changed and written under the directory's lock: two clones at once)."""
        if uuid is None and path not in self._volume_keys():
            return  # nothing to forget (every delete asks): no lock, no directory made
        self._check_dir(create=True)
        with self._locked():
            keys = self._volume_keys()
            if keys.get(path) == uuid:
                return
            if uuid is None:
                keys.pop(path, None)
            else:
                keys[path] = canonical_uuid(uuid)
            atomic_write(self.dir / VOLUME_KEYS, json.dumps(keys, sort_keys=True).encode(),
                         mode=0o600)

    def _volume_keys(self) -> dict[str, str]:
        try:
            data = self._read(VOLUME_KEYS, self.dir / VOLUME_KEYS, 16 << 20)
        except SecretNotFound:
            return {}
        try:
            keys = json.loads(data)
        except ValueError:
            keys = None
        if not isinstance(keys, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in keys.items()):
            raise UnsafePath(f"{self.dir / VOLUME_KEYS} is not poolkeeper's record of volume "
                             "secrets; move it aside (the volumes' secrets are then found "
                             "by their usage only)")
        return keys

    # -- values by the name a pool or volume gives (uuid or usage) ------------------------
    def _value_path(self, ref: str, legacy: bool) -> tuple[Path, str]:
        """The value file for `ref` and the name to show in messages. With `legacy` (a
        pool's CHAP login only), an iscsi secret defined with no value yet still finds a
        value stored by its usage name (or by the uuid itself, as a pool's <secret
        uuid=...> was) before it was defined; nothing else ever reads such a file."""
        sdef = self.find(ref)
        if sdef is None:
            return self._file(ref), ref
        own = self._value_file(sdef.uuid)
        if legacy and sdef.usage_type == "iscsi" and not os.path.lexists(own):
            for name in (sdef.usage_id, ref):
                if name and os.path.lexists(self._file(name)):
                    return self._file(name), name
        return own, sdef.uuid

    def set(self, usage: str, value: str | bytes) -> None:
        data = _check_value(value)
        sdef = self.find(_check_usage(usage))
        if sdef is not None:
            self.set_value(sdef.uuid, data)
            return
        path = self._file(usage)
        self._check_dir(create=True)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(f"'{path}' is not a regular file; remove it first")
        # the name first: a value listed always has its name (a name alone is harmless)
        atomic_write(self._name_file(usage), usage.encode("utf-8"), mode=0o600)
        atomic_write(path, data, mode=0o600)

    def get(self, usage: str) -> str:
        """The value a pool's <auth> names (its CHAP password)."""
        path, label = self._value_path(_check_usage(usage), legacy=True)
        return _decoded(self._read(label, path), label)

    def path(self, usage: str, legacy: bool = True) -> Path:
        """The checked file holding the value, for a tool that reads a secret from a file
        (qemu's `--object secret,file=...`): the value never reaches argv. `legacy`: as
        _value_path (a pool's CHAP login; a volume's key passes False)."""
        path, label = self._value_path(_check_usage(usage), legacy)
        os.close(self._open_checked(label, path))
        return path

    def has(self, usage: str) -> bool:
        """Is there a value for what a pool's <auth> names? (its CHAP password)"""
        try:
            path, label = self._value_path(_check_usage(usage), legacy=True)
            os.close(self._open_checked(label, path))
        except SecretNotFound:
            return False
        return True

    def delete(self, usage: str, force: bool = False) -> bool:
        if not self._check_dir(create=False):
            return False
        sdef = self.find(_check_usage(usage))
        if sdef is not None:
            self.undefine(sdef.uuid, force)
            return True
        return self._forget_usage_named(usage)
