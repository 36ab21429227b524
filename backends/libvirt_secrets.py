"""libvirt's secrets over a connection (virSecret*): define, set and get a value, list,
dump and undefine, a secret named by UUID or by its usage (volume path, ceph or iSCSI
name, ...), as the native secret verbs name them.

Undefining a secret an encrypted volume of an active pool needs is refused unless forced
(libvirt itself does not check; the volume could never be opened again): each volume's
XML is read for its <encryption>'s <secret uuid>.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lxml import etree

from .errors import PoolkeeperError, StateError
from .libvirt_controller import LibvirtController

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
_USAGE_TYPES = ("none", "volume", "ceph", "iscsi", "tls", "vtpm")  # virSecretUsageType


@dataclass(slots=True, frozen=True)
class RemoteSecret:
    uuid: str
    usage_type: str | None  # None: no usage
    usage_id: str | None
    description: str | None
    private: bool
    ephemeral: bool

    @property
    def usage_text(self) -> str:
        """virsh secret-list's Usage column."""
        return f"{self.usage_type} {self.usage_id}" if self.usage_type else "Unused"


def _described(secret: Any) -> RemoteSecret:
    doc = etree.fromstring(secret.XMLDesc(0).encode("utf-8"), _PARSER)
    kind = int(secret.usageType())
    usage = _USAGE_TYPES[kind] if 0 < kind < len(_USAGE_TYPES) else None
    return RemoteSecret(uuid=str(secret.UUIDString()), usage_type=usage,
                        usage_id=str(secret.usageID()) if usage else None,
                        description=doc.findtext("description"),
                        private=doc.get("private") == "yes",
                        ephemeral=doc.get("ephemeral") == "yes")


class LibvirtSecrets:
    """The secret verbs on `lc`'s connection."""

    def __init__(self, lc: LibvirtController) -> None:
        self.lc = lc
        self.lv = lc.libvirt

    def _secret(self, ref: str) -> Any:
        """By UUID, else by usage of any type (on the worker)."""
        conn, lv = self.lc.connection.conn, self.lv
        missing = (lv.VIR_ERR_NO_SECRET, lv.VIR_ERR_INVALID_ARG)
        try:
            return conn.secretLookupByUUIDString(ref)
        except lv.libvirtError as exc:
            if exc.get_error_code() not in missing:
                raise
        for kind in range(1, len(_USAGE_TYPES)):
            try:
                return conn.secretLookupByUsage(kind, ref)
            except lv.libvirtError as exc:
                if exc.get_error_code() not in missing:
                    raise
        raise PoolkeeperError(f"no secret '{ref}' is defined on '{self.lc.uri}' (by UUID or "
                              "usage); see `secret-list`")

    def define(self, xml: str, validate: bool = False) -> str:
        """Define (or change) the secret `xml` describes; its UUID."""
        flags = self.lv.VIR_SECRET_DEFINE_VALIDATE if validate else 0
        return str(self.lc._call(
            lambda: self.lc.connection.conn.secretDefineXML(xml, flags).UUIDString(),
            "cannot define the secret"))

    def set_value(self, ref: str, value: bytes) -> None:
        self.lc._call(lambda: self._secret(ref).setValue(value, 0),
                      f"cannot set the value of secret '{ref}'")

    def set_by_usage(self, usage: str, value: bytes) -> str:
        """Set the value of the iSCSI secret whose usage is `usage` (what a pool's
        <auth type='chap'><secret usage=...> names: poolkeeper's secret-set); none
        defined: a private one is defined for it first, and undefined again if its value
        cannot be set. Only iSCSI: a ceph or volume secret of the same name is another
        secret, never overwritten. Its UUID."""
        found = self.iscsi_by_usage(usage)
        if found is not None:
            self.set_value(found.uuid, value)
            return found.uuid
        usage_el = etree.Element("usage", type="iscsi")
        etree.SubElement(usage_el, "target").text = usage
        root = etree.Element("secret", ephemeral="no", private="yes")
        root.append(usage_el)
        uuid = self.define(etree.tostring(root, encoding="unicode"))
        try:
            self.set_value(uuid, value)
        except PoolkeeperError:
            try:
                self.undefine(uuid, force=True)  # not left defined without a value
            except PoolkeeperError:
                pass
            raise
        return uuid

    def iscsi_by_usage(self, usage: str) -> RemoteSecret | None:
        return next((s for s in self.list() if s.usage_type == "iscsi"
                     and s.usage_id == usage), None)

    def value(self, ref: str) -> bytes:
        """The value (libvirt refuses a private secret's)."""
        return bytes(self.lc._call(lambda: self._secret(ref).value(0),
                                   f"cannot get the value of secret '{ref}'"))

    def list(self, flags: int = 0) -> list[RemoteSecret]:
        """The secrets listAllSecrets(flags) gives, by UUID as virsh sorts them."""
        def run() -> list[RemoteSecret]:
            found = []
            for secret in self.lc.connection.conn.listAllSecrets(flags):
                try:
                    found.append(_described(secret))
                except self.lv.libvirtError as exc:  # undefined meanwhile
                    if exc.get_error_code() != self.lv.VIR_ERR_NO_SECRET:
                        raise
                self.lc.connection.alive()
            return sorted(found, key=lambda s: s.uuid)
        return list(self.lc._call(run, "cannot list the secrets"))

    def xml(self, ref: str) -> str:
        return str(self.lc._call(lambda: self._secret(ref).XMLDesc(0),
                                 f"cannot dump secret '{ref}'"))

    def undefine(self, ref: str, force: bool = False) -> None:
        """Undefine; refused (unless `force`) while a volume may need it: one whose
        <encryption> names it or whose path its usage names, and, as libvirt forgets
        which secret a volume has once its pool restarts (unless the usage names the
        volume), while an encrypted volume's secret is unknown or a pool is stopped."""
        def run() -> None:
            secret = self._secret(ref)
            if not force:
                self._refuse_needed(ref, secret)
            secret.undefine()
        self.lc._call(run, f"cannot undefine secret '{ref}'", long=True)

    def _refuse_needed(self, ref: str, secret: Any) -> None:
        uuid = str(secret.UUIDString())
        usage = str(secret.usageID() or "") \
            if secret.usageType() == self.lv.VIR_SECRET_USAGE_TYPE_VOLUME else ""
        users, unknown, stopped = self._users(uuid, usage)
        why = []
        if users:
            why.append("it is the key of encrypted volumes (" + _few(users) + ")")
        if unknown:
            why.append("libvirt does not know which secret opens the encrypted volumes ("
                       + _few(unknown) + "): it forgets once their pool restarts")
        if stopped:
            why.append("the pools " + _few(stopped) + " are stopped, so their volumes "
                       "cannot be looked at")
        if why:
            raise StateError(f"secret '{ref}' may still be needed: " + "; ".join(why)
                             + ". Without it an encrypted volume can never be opened again: "
                             "delete the volumes first, or add --force")

    def _users(self, uuid: str, usage: str) -> tuple[list[str], list[str], list[str]]:
        """(volumes whose <encryption> names `uuid` or whose path is `usage`, encrypted
        volumes with no secret named, stopped pools), over every pool."""
        conn, lv = self.lc.connection.conn, self.lv
        users: list[str] = []
        unknown: list[str] = []
        stopped: list[str] = []
        for pool in conn.listAllStoragePools(0):
            if not pool.isActive():
                stopped.append(str(pool.name()))
                continue
            try:
                vols = pool.listAllVolumes(0)
            except lv.libvirtError:
                continue  # stopped or gone meanwhile
            for vol in vols:
                try:
                    doc = etree.fromstring(vol.XMLDesc(0).encode("utf-8"), _PARSER)
                except lv.libvirtError:
                    continue
                self.lc.connection.alive()
                path = doc.findtext("target/path") or str(vol.name())
                named = [s.get("uuid") for s in doc.iterfind("target/encryption/secret")]
                if uuid in named or (usage and path == usage):
                    users.append(path)
                elif doc.find("target/encryption") is not None and not any(named):
                    unknown.append(path)
        return users, unknown, stopped


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")
