"""What iscsi and iscsi-direct pools share: the LUNs of one iSCSI target, pre-allocated on
the target, reached at one portal, as one initiator, with CHAP.

Volumes cannot be created, deleted or resized here, only listed, wiped, uploaded to and
downloaded from. Both pool types name a LUN `unit:0:0:N` as libvirt does; its key is the
LUN's identifier (device identification page, else unit serial number) when known, else
its path.

Every name that reaches a tool (portal, target and initiator IQNs) is checked again when
it is read from the definition. CHAP secrets come from the SecretStore under the state
root and never reach a log, an error or (where the tool allows) a command line.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from typing import ClassVar

from .. import fileops
from ..checks import control_char, require_host_name
from ..errors import PoolkeeperError, StateError, ValidationError, VolumeNotFound
from ..model import (
    PoolDef,
    PoolSizes,
    PoolSource,
    SourceDevice,
    SourceHost,
    VolumeInfo,
)
from ..secrets import SecretStore
from ..textsafe import quoted
from .base import Claim, PoolDriver

DEFAULT_PORT = 3260
VOLUME_PREFIX = "unit:0:0:"

# iSCSI names (iqn., eui., naa., and the plain names of some targets): no ',' '/' '@' '%'
# '?' '#' or spaces, so that they can go into a URL, qemu's option syntax and argv as is.
_ISCSI_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,222}")
_VOLUME_RE = re.compile(re.escape(VOLUME_PREFIX) + r"(\d{1,5})")


class IscsiError(PoolkeeperError):
    """The target could not be reached, refused us, or does not have what was asked."""


class IscsiAuthError(IscsiError):
    """The target refused the login (CHAP or initiator not allowed)."""


# == small helpers =====================================================================
def check_iscsi_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _ISCSI_NAME_RE.fullmatch(value):
        raise ValidationError(
            f"{what} {quoted(value)} is not usable: an iSCSI name has letters, digits and . : _ - "
            "only, starts with a letter or digit and is at most 223 characters (e.g. "
            "iqn.2013-06.com.example:target0)", "device" if "target" in what else "iqn")
    return value


def volume_name(lun: int) -> str:
    return f"{VOLUME_PREFIX}{lun}"


def lun_of(name: str) -> int:
    """The LUN number of a volume name `unit:0:0:N`."""
    match = _VOLUME_RE.fullmatch(name) if isinstance(name, str) else None
    if not match:
        raise VolumeNotFound(f"'{name}' is not a LUN volume name (they look like "
                             f"{VOLUME_PREFIX}1)")
    return int(match.group(1))


def portal_of(host: str, port: int) -> str:
    """HOST:PORT, with an IPv6 address in brackets."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


def parse_host_arg(text: str | None) -> tuple[str, int | None]:
    """'host', 'host:port', '[v6]' or '[v6]:port' (find-storage-pool-sources --host)."""
    if not text:
        raise ValidationError("give the iSCSI portal with --host HOST[:PORT]", "host")
    host, port = text, None
    match = re.fullmatch(r"\[([^\]]+)\](?::([0-9]{1,5}))?", text)
    if match:
        host, port = match.group(1), match.group(2)
    elif text.count(":") == 1:
        host, port = text.split(":")
    if port is not None:
        # ASCII digits only: "²" is a digit to isdigit (and int() refuses it), "٣" to int()
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValidationError(f"port '{port}' is not a TCP port number", "host")
        port = int(port)
    return require_host_name(host), port


def discovery_portal(text: str | None) -> tuple[str, int | None, str]:
    """find-storage-pool-sources --host: (host, port or None, the portal to ask)."""
    host, port = parse_host_arg(text)
    return host, port, portal_of(host, port or DEFAULT_PORT)


def error_tail(text: str) -> str:
    """The last line of a tool's output, without qemu-img's echo of the option string."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "no error output"
    return re.sub(r"^qemu-img: Could not open '[^']*': ", "", lines[-1])


# What both types' <source> must name, in the words of the error.
SOURCE_NEEDS = {
    "host": "exactly one <host name='...'/>: the iSCSI portal",
    "device": "exactly one <device path='iqn....'/>: the target IQN",
}


# == the common part ===================================================================
LUN_FIT_HINT = "a LUN's size is set on the target"


class _IscsiDriver(PoolDriver):
    """What both pool types share: the portal, the target, the initiator, CHAP."""

    volume_formats: ClassVar[tuple[str, ...]] = ()
    creatable_formats: ClassVar[tuple[str, ...]] = ()
    default_volume_format: ClassVar[str | None] = None
    can_build: ClassVar[bool] = False
    can_create_volumes: ClassVar[bool] = False
    can_delete_volumes: ClassVar[bool] = False
    can_resize_volumes: ClassVar[bool] = False
    article = "an"
    build_does = "has nothing to build (the target is managed on the server)"
    delete_does = "is not possible: iSCSI storage is managed on the server"
    discover_hint = "list the targets of the host (portal)"
    test_packages = ("tgt",)  # the target server the tests start

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        """A target at a portal (an IQN is a name, not a path: the same IQN on another
        portal is another target)."""
        return [Claim("iscsi target", (dev.path, host.name, host.port or DEFAULT_PORT),
                      f"target '{dev.path}' at {host.name}:{host.port or DEFAULT_PORT}")
                for dev in pool.source.devices for host in pool.source.hosts]

    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        src = pool.source
        if len(src.hosts) != 1:
            raise ValidationError(f"an {cls.type} pool needs exactly one <host name='...'/>: "
                                  "the iSCSI portal", "host")
        require_host_name(src.hosts[0].name)
        port = src.hosts[0].port
        if port is not None and not 0 < port < 65536:
            raise ValidationError(f"port {port} is not a TCP port number", "host")
        if len(src.devices) != 1:
            raise ValidationError(f"an {cls.type} pool needs exactly one <device "
                                  "path='iqn....'/>: the target IQN", "device")
        check_iscsi_name(src.devices[0].path, "target IQN")
        if src.initiator_iqn is not None:
            check_iscsi_name(src.initiator_iqn, "initiator IQN")
        auth = src.auth
        if auth is not None:
            if auth.type != "chap":
                raise ValidationError(f"authentication type '{auth.type}' is not supported "
                                      "for iSCSI; use type='chap'", "auth")
            if not auth.username or control_char(auth.username):
                raise ValidationError("the CHAP user name must be non-empty plain text",
                                      "auth")
            if not (auth.secret.usage or auth.secret.uuid):
                raise ValidationError("name the CHAP secret: <secret usage='...'/>", "secret")

    # -- the definition, checked again before it reaches an argv ---------------------------
    @property
    def host(self) -> str:
        return require_host_name(self.pool.source.hosts[0].name)

    @property
    def port(self) -> int:
        return self.pool.source.hosts[0].port or DEFAULT_PORT

    @property
    def portal(self) -> str:
        return portal_of(self.host, self.port)

    @property
    def target(self) -> str:
        return check_iscsi_name(self.pool.source.devices[0].path, "target IQN")

    @property
    def initiator(self) -> str | None:
        iqn = self.pool.source.initiator_iqn
        return check_iscsi_name(iqn, "initiator IQN") if iqn else None

    def describe(self) -> str | None:
        text = f"{self.target} at {self.portal}"
        if self.initiator:
            text += f" as {self.initiator}"
        if self.pool.source.auth is not None:
            text += f" (CHAP user {self.pool.source.auth.username})"
        return text

    # -- CHAP ------------------------------------------------------------------------------
    def _secret_name(self) -> str | None:
        auth = self.pool.source.auth
        if auth is None:
            return None
        return auth.secret.usage or auth.secret.uuid

    def _store(self) -> SecretStore:
        if self.config_dir is None:
            raise StateError("this pool uses a CHAP secret but no state root is known to "
                             "read it from")
        return SecretStore(self.config_dir)

    def _chap(self) -> tuple[str, str] | None:
        """(user, password) from the secret store, or None without <auth>."""
        ref = self._secret_name()
        if ref is None:
            return None
        assert self.pool.source.auth is not None
        return self.pool.source.auth.username, self._store().get(ref)

    # -- volumes ---------------------------------------------------------------------------
    def _sizes_of(self, volumes: list[VolumeInfo]) -> PoolSizes:
        total = sum(v.capacity for v in volumes)
        return PoolSizes(capacity=total, allocation=total, available=0)

    def refresh_volume(self, name: str) -> VolumeInfo | None:
        try:
            lun = lun_of(name)
        except VolumeNotFound:
            return None
        return self._scan_lun(lun)

    def _scan_lun(self, lun: int) -> VolumeInfo | None:
        return next((v for v in self.refresh()[1] if v.name == volume_name(lun)), None)

    fit_hint = LUN_FIT_HINT

    def _fit(self, vol: VolumeInfo, src_path: str, offset: int,
             length: int | None) -> tuple[os.stat_result, int]:
        """(stat of the source, bytes to upload); refuses what would not fit the LUN."""
        if offset < 0 or (length is not None and length < 0):
            raise ValidationError("offset and length must not be negative")
        amount = fileops.upload_amount(src_path, length)
        fileops.refuse_upload_past_end(vol.name, amount, offset, vol.capacity, self.fit_hint)
        try:
            st = os.stat(src_path)
        except OSError as exc:
            raise PoolkeeperError(f"cannot read '{src_path}': {exc.strerror}") from None
        return st, amount or 0



def target_sources(host: str, port: int | None, iqns: list[str]) -> list[PoolSource]:
    """A pool source per target a portal offers (each IQN once; names that are not
    usable iSCSI names left out)."""
    seen: list[str] = []
    for iqn in iqns:
        if iqn not in seen and _ISCSI_NAME_RE.fullmatch(iqn):
            seen.append(iqn)
    return [PoolSource(hosts=[SourceHost(host, port)], devices=[SourceDevice(iqn)])
            for iqn in seen]
