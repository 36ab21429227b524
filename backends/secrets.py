"""Secrets (iSCSI CHAP passwords) in root-only files under the state root.

    CONFIG/secrets/                  0700, owned by us
    CONFIG/secrets/<sha256 of usage> 0600, owned by us, the value's bytes and nothing else

A pool names its secret with <auth><secret usage='NAME'/> (or uuid='...'; the same store
holds both kinds of name). The file name is a hash, so a usage name never becomes a path.
A value is written atomically (temp file created 0600 + fsync + rename + directory fsync)
and read back only from a regular file that we own, that nobody else can read or write
and that has no other link; anything else is refused, never "repaired".

No message raised here, and nothing logged, ever contains a value: only the usage name.
A driver passes the value to tools through the environment or a file (the store's own
file, see `path`), and where a tool needs it in argv, through runner.run(secrets=[value])
so that the command log and errors show it masked.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path

from .checks import control_char
from .errors import NotFound, UnsafePath, ValidationError
from .pathsafety import ensure_state_dir, refuse_unfit_dir
from .store import atomic_write

SECRETS_DIR = "secrets"
MAX_SECRET_BYTES = 1024
MAX_USAGE_BYTES = 1024


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


class SecretStore:
    def __init__(self, config_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(config_dir) / SECRETS_DIR

    # -- paths ----------------------------------------------------------------------------
    @staticmethod
    def file_name(usage: str) -> str:
        return hashlib.sha256(_check_usage(usage).encode("utf-8")).hexdigest()

    def _file(self, usage: str) -> Path:
        return self.dir / self.file_name(usage)

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

    def _open_checked(self, usage: str) -> int:
        """An fd on the secret's file after every check, or SecretNotFound."""
        if not self._check_dir(create=False):
            raise SecretNotFound(self._missing(usage))
        path = self._file(usage)
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
            elif st.st_size > MAX_SECRET_BYTES:
                problem = "is too large to be a secret"
            if problem:
                raise UnsafePath(f"the file of secret '{usage}' ({path}) {problem}; poolkeeper "
                                 "refuses it: set the secret again (secret-set)")
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _missing(usage: str) -> str:
        return (f"no value is stored for the secret '{usage}'; set it with "
                f"`poolkeeper secret-set '{usage}'` (the value is read from stdin)")

    # -- verbs ----------------------------------------------------------------------------
    def set(self, usage: str, value: str | bytes) -> None:
        data = _check_value(value)
        path = self._file(usage)
        self._check_dir(create=True)
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(f"'{path}' is not a regular file; remove it first")
        atomic_write(path, data, mode=0o600)

    def get(self, usage: str) -> str:
        fd = self._open_checked(usage)
        try:
            data = os.read(fd, MAX_SECRET_BYTES + 1)
        finally:
            os.close(fd)
        if not data:
            raise SecretNotFound(f"the secret '{usage}' is empty; set it again (secret-set)")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"the secret '{usage}' is not UTF-8 text; set it again",
                                  "secret") from None

    def path(self, usage: str) -> Path:
        """The checked file holding the value, for a tool that reads a secret from a file
        (qemu's `--object secret,file=...`): the value never reaches argv."""
        os.close(self._open_checked(usage))
        return self._file(usage)

    def has(self, usage: str) -> bool:
        try:
            os.close(self._open_checked(usage))
        except SecretNotFound:
            return False
        return True

    def delete(self, usage: str) -> bool:
        if not self._check_dir(create=False):
            return False
        try:
            os.unlink(self._file(usage))
        except FileNotFoundError:
            return False
        return True
