"""iscsi pools: the LUNs of one iSCSI target through the kernel initiator (open-iscsi).

Start runs iscsiadm (an iface for the initiator name, sendtargets discovery, a node record
with CHAP, login), then waits for the LUN links `ip-HOST:PORT-iscsi-IQN-lun-N` under
BY_PATH_DIR; the LUNs are local block devices from then on and the data verbs use fileops
on them. Stop logs out. What both iSCSI pool types share is in iscsi_common.py.

iscsiadm can only take the CHAP password in argv; there it is masked in the command log
and errors (runner.run(secrets=...)).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import ipaddress
import os
import re
import socket
import stat
import time
from typing import ClassVar

from .. import runner
from ..errors import PoolkeeperError, StateError, UnsafePath, VolumeNotFound
from ..model import PoolSizes, PoolSource, SourceRule, VolumeInfo
from .fddata import FdDataVerbs
from .iscsi_common import (
    DEFAULT_PORT,
    LUN_FIT_HINT,
    SOURCE_NEEDS,
    IscsiAuthError,
    IscsiError,
    _IscsiDriver,
    discovery_portal,
    error_tail,
    lun_of,
    parse_host_arg,
    portal_of,
    target_sources,
    volume_name,
)

# This driver's names, and the shared ones callers know from here (iscsi_common.py).
__all__ = ["DEFAULT_PORT", "IscsiAuthError", "IscsiDriver", "IscsiError", "iscsiadm", "lun_of",
           "parse_host_arg", "parse_sendtargets", "portal_of", "volume_name"]

BY_PATH_DIR = "/dev/disk/by-path"  # where udev links the LUNs of a kernel session
LUN_WAIT_TIMEOUT = 15.0  # seconds to wait for the LUN links after a login
LUN_WAIT_STEP = 0.2
ISCSIADM_TIMEOUT = 60.0  # a login may retry for a while (node.session timeouts)
IFACE_PREFIX = "poolkeeper-"
_DISCOVERY_RE = re.compile(r"^\s*(\S+)\s+(\S+)\s*$")  # iscsiadm sendtargets: portal IQN
_SESSION_RE = re.compile(r"^\S+:\s+\[\d+\]\s+(\S+)\s+(\S+)")  # tcp: [1] PORTAL,TPGT IQN

# iscsiadm exit codes (open-iscsi's iscsi_err.h)
_ISCSI_ERR_SESS_EXISTS = 15
_ISCSI_ERR_NO_OBJS_FOUND = 21
_ISCSIADM_MEANING = {
    8: "the connection to the portal timed out",
    12: "the iSCSI initiator is not set up (no initiator name)",
    15: "a session to this target already exists",
    19: "the login failed",
    20: "iscsid is not running (start it: systemctl start iscsid)",
    21: "no matching node record or session",
    24: "the target refused the CHAP login (wrong user name or secret)",
    25: "this initiator is not allowed to log in to the target",
}


# == iscsi: the kernel initiator =======================================================
class IscsiDriver(FdDataVerbs, _IscsiDriver):
    type: ClassVar[str] = "iscsi"
    source_rule = SourceRule(hosts=(1, 1), devices=(1, 1), initiator=(True, False), auth=True,
                             device_kind="iqn", needs=SOURCE_NEEDS)
    volumes_are_devices = True
    target_hint = "where the LUN device links appear, e.g. /dev/disk/by-path"
    form_fields = ("name", "target", "host", "port", "target_iqn", "initiator", "chap_user",
                   "chap_secret")
    target_placeholder = "/dev/disk/by-path"
    default_target = "/dev/disk/by-path"
    tools = {"iscsiadm": "open-iscsi"}
    fit_hint = LUN_FIT_HINT  # FdDataVerbs' own default would come first in the MRO

    # -- iscsiadm --------------------------------------------------------------------------
    def _iscsiadm(self, args: list[str], *, secrets: list[str] | None = None,
                  ok: tuple[int, ...] = (0,), what: str = "") -> runner.Completed:
        return iscsiadm(args, secrets=secrets or [], ok=ok, what=what)

    def _iface(self) -> str | None:
        """Our iface for the pool's initiator name (one per IQN, shared by its pools)."""
        iqn = self.initiator
        if not iqn:
            return None
        return IFACE_PREFIX + hashlib.sha256(iqn.encode()).hexdigest()[:8]

    def _node(self, iface: str | None) -> list[str]:
        argv = ["--mode", "node", "--portal", self.portal, "--targetname", self.target]
        if iface:
            argv += ["--interface", iface]
        return argv

    def _ensure_iface(self, iface: str, iqn: str) -> None:
        listing = self._iscsiadm(["--mode", "iface"], ok=(0, _ISCSI_ERR_NO_OBJS_FOUND),
                                 what="listing the iSCSI ifaces")
        current = None
        for line in listing.stdout.splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == iface:
                parts = fields[1].split(",")
                current = parts[4] if len(parts) > 4 else ""
        if current is None:
            self._iscsiadm(["--mode", "iface", "--interface", iface, "--op", "new"],
                           what=f"creating the iface {iface}")
        if current != iqn:
            self._iscsiadm(["--mode", "iface", "--interface", iface, "--op", "update",
                            "--name", "iface.initiatorname", "--value", iqn],
                           what=f"setting the initiator name of {iface}")

    def _discover(self, iface: str | None) -> list[tuple[str, str]]:
        argv = ["--mode", "discovery", "--type", "sendtargets", "--portal", self.portal]
        if iface:
            argv += ["--interface", iface]
        argv += ["--op", "nonpersistent"]
        out = self._iscsiadm(argv, what=f"discovering the targets of {self.portal}").stdout
        return parse_sendtargets(out)

    def _sessions(self) -> list[tuple[str, str]]:
        result = self._iscsiadm(["--mode", "session"], ok=(0, _ISCSI_ERR_NO_OBJS_FOUND),
                                what="listing the iSCSI sessions")
        found = []
        for line in result.stdout.splitlines():
            match = _SESSION_RE.match(line)
            if match:
                found.append((match.group(1).rsplit(",", 1)[0], match.group(2)))
        return found

    def _logged_in(self) -> bool:
        return any(iqn == self.target and self._same_portal(portal)
                   for portal, iqn in self._sessions())

    def _same_portal(self, portal: str) -> bool:
        return portal in self._portal_forms()

    def _portal_forms(self) -> set[str]:
        """How the portal may be written in a session or a by-path link: as given, and with
        the host's addresses (udev writes the address, not the name; IPv6 bare too)."""
        forms = {self.portal}
        addresses = {self.host}
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            with contextlib.suppress(OSError, UnicodeError):
                for info in socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM):
                    addresses.add(str(info[4][0]))
        for addr in addresses:
            forms.add(portal_of(addr, self.port))
            forms.add(f"{addr}:{self.port}")
        return forms

    # -- pool ------------------------------------------------------------------------------
    def start(self) -> None:
        chap = self._chap()  # a missing secret fails before anything changes
        secrets = [chap[1]] if chap else []
        iface = self._iface()
        if iface:
            assert self.initiator is not None
            self._ensure_iface(iface, self.initiator)
        offered = [iqn for _portal, iqn in self._discover(iface)]
        if self.target not in offered:
            raise IscsiError(
                f"the portal {self.portal} does not offer the target {self.target}"
                + (f" (it offers: {', '.join(sorted(set(offered)))})" if offered else
                   " (it offers no targets to this initiator)"))
        node = self._node(iface)
        if not self._logged_in():
            self._iscsiadm([*node, "--op", "new"], what="adding the node record")
            if chap:
                user, password = chap
                for name, value in (("node.session.auth.authmethod", "CHAP"),
                                    ("node.session.auth.username", user),
                                    ("node.session.auth.password", password)):
                    self._iscsiadm([*node, "--op", "update", "--name", name, "--value", value],
                                   secrets=secrets, what=f"setting {name}")
            self._iscsiadm([*node, "--login"], secrets=secrets,
                           ok=(0, _ISCSI_ERR_SESS_EXISTS),
                           what=f"logging in to {self.target} at {self.portal}")
        self.extras.update(iface=iface, portal=self.portal, target=self.target)
        try:
            self._wait_for_luns()
        except BaseException:
            with contextlib.suppress(PoolkeeperError, OSError):
                self.stop()
            raise

    def _wait_for_luns(self) -> None:
        deadline = time.monotonic() + LUN_WAIT_TIMEOUT
        while not self._links():
            if time.monotonic() >= deadline:
                raise IscsiError(
                    f"logged in to {self.target} at {self.portal}, but no LUN appeared under "
                    f"{BY_PATH_DIR} within {LUN_WAIT_TIMEOUT:g} s; check that udev is "
                    "running and that the target maps LUNs to this initiator")
            time.sleep(LUN_WAIT_STEP)

    def stop(self) -> None:
        iface = self.extras.get("iface", self._iface())
        self._iscsiadm([*self._node(iface), "--logout"], ok=(0, _ISCSI_ERR_NO_OBJS_FOUND),
                       what=f"logging out of {self.target}")

    def check(self) -> bool:
        if self._links():
            return True
        try:
            return self._logged_in()
        except PoolkeeperError:
            return False

    # -- LUNs from the by-path links -------------------------------------------------------
    def _links(self) -> dict[int, str]:
        """LUN -> link name in BY_PATH_DIR (`ip-HOST:PORT-iscsi-IQN-lun-N`; the -partN links
        of partitions on a LUN are not LUNs)."""
        prefixes = [f"ip-{form}-iscsi-{self.target}-lun-" for form in self._portal_forms()]
        found: dict[int, str] = {}
        try:
            names = os.listdir(BY_PATH_DIR)
        except FileNotFoundError:
            return {}
        for name in names:
            for prefix in prefixes:
                rest = name[len(prefix):] if name.startswith(prefix) else ""
                if rest.isdigit() and len(rest) <= 5:
                    found.setdefault(int(rest), name)
        return found

    def _stable_path(self, link: str) -> str:
        """libvirt's volume path: a link in the pool's target dir to the LUN's device (the
        by-path link itself when the target dir is /dev/disk/by-path)."""
        by_path = os.path.join(BY_PATH_DIR, link)
        target_dir = self.pool.target.path
        if not target_dir or os.path.normpath(target_dir) in (
                os.path.normpath(BY_PATH_DIR), "/dev/disk/by-path"):
            return by_path
        real = os.path.realpath(by_path)
        with contextlib.suppress(OSError):
            for entry in sorted(os.listdir(target_dir)):
                candidate = os.path.join(target_dir, entry)
                if os.path.realpath(candidate) == real:
                    return candidate
        return by_path

    def _volume(self, lun: int, link: str) -> VolumeInfo:
        path = self._stable_path(link)
        info = VolumeInfo(name=volume_name(lun), key=path, path=path, type="block",
                          format="raw")
        try:
            real = os.path.realpath(os.path.join(BY_PATH_DIR, link))
            fd = os.open(real, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                if not (stat.S_ISBLK(st.st_mode) or stat.S_ISREG(st.st_mode)):
                    raise OSError(errno.ENODEV, "not a block device")
                size = os.lseek(fd, 0, os.SEEK_END)
            finally:
                os.close(fd)
        except OSError as exc:
            info.error = f"cannot read the LUN device: {exc.strerror or exc}"
            return info
        info.capacity = info.allocation = info.physical = size
        info.key = _wwid(real) or path
        info.signature = (lun, size, real)
        return info

    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        volumes = [self._volume(lun, link) for lun, link in sorted(self._links().items())]
        return self._sizes_of(volumes), volumes

    def sizes(self) -> PoolSizes:
        return self.refresh()[0]

    def change_token(self) -> object:
        return tuple((v.name, v.capacity, v.error) for v in self.refresh()[1])

    def volume_path(self, name: str) -> str:
        lun = lun_of(name)
        link = self._links().get(lun)
        if link is not None:
            return self._stable_path(link)
        return os.path.join(BY_PATH_DIR, f"ip-{self.portal}-iscsi-{self.target}-lun-{lun}")

    def _scan_lun(self, lun: int) -> VolumeInfo | None:
        link = self._links().get(lun)
        return None if link is None else self._volume(lun, link)

    # -- data: the LUN is a local block device now -----------------------------------------
    def _open_lun(self, vol: VolumeInfo, flags: int) -> int:
        """The LUN's device, found again from its by-path link (never a stale path). A block
        device opened for writing is opened O_EXCL: the kernel refuses it while mounted or
        held by device-mapper, LVM or md."""
        lun = lun_of(vol.name)
        link = self._links().get(lun)
        if link is None:
            raise VolumeNotFound(f"LUN {lun} of {self.target} is gone from {BY_PATH_DIR}")
        real = os.path.realpath(os.path.join(BY_PATH_DIR, link))
        try:
            st = os.stat(real)
        except FileNotFoundError:
            raise VolumeNotFound(f"the device of LUN {lun} ({real}) is gone") from None
        if stat.S_ISBLK(st.st_mode):
            if flags & (os.O_WRONLY | os.O_RDWR):
                flags |= os.O_EXCL
        elif not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"'{real}' (LUN {lun}) is not a block device")
        try:
            fd = os.open(real, flags | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise StateError(f"LUN {lun} ({real}) is in use (mounted, or held by LVM, "
                                 "device-mapper or md); release it first") from None
            raise
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino, fst.st_rdev) != (st.st_dev, st.st_ino, st.st_rdev):
            os.close(fd)
            raise UnsafePath(f"'{real}' changed while it was being opened; try again")
        return fd

    def open_volume_read(self, vol: VolumeInfo) -> int:
        return self._open_lun(vol, os.O_RDONLY)

    def open_volume_write(self, vol: VolumeInfo) -> int:
        return self._open_lun(vol, os.O_RDWR)

    # -- discovery -------------------------------------------------------------------------
    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None
                     ) -> list[PoolSource]:
        name, port, portal = discovery_portal(host)
        out = iscsiadm(["--mode", "discovery", "--type", "sendtargets", "--portal", portal,
                        "--op", "nonpersistent"],
                       what=f"discovering the targets of {portal}").stdout
        return target_sources(name, port, [iqn for _p, iqn in parse_sendtargets(out)])


def iscsiadm(args: list[str], *, secrets: list[str] | None = None, ok: tuple[int, ...] = (0,),
             what: str = "") -> runner.Completed:
    """Run iscsiadm; a failure says what we were doing and what the exit code means."""
    result = runner.run(["iscsiadm", *args], check=False, secrets=secrets or [],
                        timeout=ISCSIADM_TIMEOUT)
    if result.returncode in ok:
        return result
    rc = result.returncode
    meaning = "it did not finish in time" if rc is None else _ISCSIADM_MEANING.get(rc)
    detail = runner.mask(error_tail(result.stderr or result.stdout), secrets or [])
    cls = IscsiAuthError if rc in (24, 25) else IscsiError
    raise cls(f"iscsiadm failed{' ' + what if what else ''}: "
              + (f"{meaning} ({detail})" if meaning else detail))


def parse_sendtargets(text: str) -> list[tuple[str, str]]:
    """(portal, IQN) per line of `iscsiadm --mode discovery --type sendtargets`."""
    found = []
    for line in text.splitlines():
        match = _DISCOVERY_RE.match(line)
        if match:
            found.append((match.group(1), match.group(2)))
    return found


def _wwid(device: str) -> str | None:
    """The kernel's identifier of a SCSI disk (sysfs wwid, from VPD page 0x83)."""
    if not device.startswith("/dev/"):
        return None
    name = os.path.basename(device)
    with contextlib.suppress(OSError, UnicodeDecodeError):
        with open(f"/sys/class/block/{name}/device/wwid", encoding="utf-8") as fh:
            wwid = fh.read().strip()
        return wwid.replace(" ", "_") or None
    return None
