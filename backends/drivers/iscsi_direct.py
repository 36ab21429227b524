"""iscsi-direct pools: the LUNs of one iSCSI target through libiscsi, in userspace.

Nothing is logged in. A refresh runs `iscsi-ls -s` (libiscsi's REPORT LUNS), then
`iscsi-readcapacity16` and `iscsi-inq` per LUN (iscsi-ls stops at the first target that
refuses it, so when another target hides ours the LUNs are probed one by one). A volume's
path is `iscsi://HOST:PORT/IQN/LUN`; its bytes move through qemu-img (qemu-block-extra's
iscsi driver, with qemu's raw offset/size layer for windows; a last partial sector is
read, patched and written back), with progress and cancel, and a watchdog that ends a
transfer whose target stopped answering (qemu would retry forever). What both iSCSI pool
types share is in iscsi_common.py.

CHAP secrets never reach a command line here: libiscsi's tools read them from the
environment (LIBISCSI_CHAP_USERNAME/PASSWORD), qemu-img from the store's 0600 file
(`--object secret,file=...`).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from typing import ClassVar

from .. import fileops, runner
from ..errors import (
    Cancelled,
    PoolkeeperError,
    StateError,
    ToolFailed,
    Unsupported,
    ValidationError,
)
from ..model import PoolDef, PoolSizes, PoolSource, SourceRule, VolumeInfo
from ..progress import JobContext
from .iscsi_common import (
    SOURCE_NEEDS,
    IscsiAuthError,
    IscsiError,
    _IscsiDriver,
    check_iscsi_name,
    discovery_portal,
    error_tail,
    lun_of,
    target_sources,
    volume_name,
)

TOOL_TIMEOUT = 30.0  # one libiscsi tool call: connect, login, a command or two
QEMU_IO_TIMEOUT = 30  # qemu's iSCSI per-request timeout (seconds); a dead target fails
SECTOR = 512  # qemu's raw offset/size layer works in these
STALL_CHECK = 15.0  # seconds a qemu-img meter may stand still before the target is checked
STALL_PROBE_TIMEOUT = 10.0  # that check's own limit (a hung target fails it too)
PROBE_LUNS = 64  # LUNs 0..63 are probed when iscsi-ls cannot list the target (see _luns)
# iscsi-ls needs an initiator name even for discovery; find_sources has none to offer.
DISCOVERY_INITIATOR = "iqn.2005-03.org.poolkeeper:discovery"
QEMU_SECRET_ID = "pk-chap"

_LS_TARGET_RE = re.compile(r"^Target:(\S+) Portal:(\S+)\s*$")
_LS_LUN_RE = re.compile(r"^Lun:(\d+)\s+Type:(\S+)")
_PERCENT_RE = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")
_DIRECT_ACCESS = "DIRECT_ACCESS"


def _qemu_opt(value: object) -> str:
    """A value inside qemu's KEY=VALUE,... syntax: a comma is written twice."""
    return str(value).replace(",", ",,")


# == iscsi-direct: libiscsi in userspace ===============================================
class IscsiDirectDriver(_IscsiDriver):
    type: ClassVar[str] = "iscsi-direct"
    wipe_algorithms: ClassVar[tuple[str, ...]] = ("zero",)  # libiscsi writes zeroes only
    source_rule = SourceRule(
        hosts=(1, 1), devices=(1, 1), initiator=(True, True), auth=True, vendor=False,
        device_kind="iqn-strict",
        needs={**SOURCE_NEEDS,
               "initiator": "<initiator><iqn name='iqn....'/></initiator>: the initiator name"})
    volume_urls = True  # iscsi://portal/iqn/lun
    has_target = False  # LUNs are reached over the network
    form_fields = ("name", "host", "port", "target_iqn", "initiator", "chap_user",
                   "chap_secret")
    tools = {"iscsi-ls": "libiscsi-bin", "iscsi-inq": "libiscsi-bin",
             "iscsi-readcapacity16": "libiscsi-bin"}

    @classmethod
    def validate(cls, pool: PoolDef) -> None:
        super().validate(pool)
        if not pool.source.initiator_iqn:
            raise ValidationError("an iscsi-direct pool needs <initiator><iqn name='...'/>"
                                  "</initiator>: the initiator name", "initiator")

    @property
    def initiator(self) -> str:
        iqn = self.pool.source.initiator_iqn
        if not iqn:
            raise ValidationError("an iscsi-direct pool needs an initiator IQN", "initiator")
        return check_iscsi_name(iqn, "initiator IQN")

    # -- libiscsi's tools ------------------------------------------------------------------
    def _env(self, chap: tuple[str, str] | None) -> dict[str, str]:
        """CHAP goes to libiscsi by environment, never argv (and set empty without <auth>,
        so that nothing from the caller's environment is used by accident)."""
        user, password = chap if chap else ("", "")
        return {"LIBISCSI_CHAP_USERNAME": user, "LIBISCSI_CHAP_PASSWORD": password}

    def _lun_url(self, lun: int) -> str:
        return f"iscsi://{self.portal}/{self.target}/{lun}"

    def _libiscsi(self, argv: list[str], chap: tuple[str, str] | None,
                  timeout: float = TOOL_TIMEOUT) -> runner.Completed:
        """Run a libiscsi tool (never raises for its exit status: see _fail)."""
        return runner.run(argv, check=False, env=self._env(chap),
                          secrets=[chap[1]] if chap else [], timeout=timeout)

    def _fail(self, result: runner.Completed, what: str, chap: tuple[str, str] | None
              ) -> IscsiError:
        """A clear error from a libiscsi tool or qemu-img failure (never the secret)."""
        secrets = [chap[1]] if chap else []
        text = runner.mask(f"{result.stdout}\n{result.stderr}", secrets)
        return self._explain(text, result.returncode, what, result.shown[0], chap)

    def _explain(self, text: str, rc: int | None, what: str, tool: str,
                 chap: tuple[str, str] | None) -> IscsiError:
        where = f"{self.target} at {self.portal}"
        if rc is None:
            return IscsiError(f"the iSCSI target {where} did not answer within "
                              f"{TOOL_TIMEOUT:g} s while {what}; is it up and reachable?")
        if "Authentication failure" in text or ("CHAP" in text and "fail" in text.lower()):
            if chap:
                return IscsiAuthError(
                    f"the iSCSI target {where} refused the CHAP login of user '{chap[0]}' "
                    f"while {what}: check the secret '{self._secret_name()}' (poolkeeper "
                    "secret-set) and the account on the target")
            return IscsiAuthError(
                f"the iSCSI target {where} requires authentication: add <auth type='chap' "
                "username='...'><secret usage='...'/></auth> to the pool and set the secret")
        if "Authorization failure" in text:
            return IscsiAuthError(
                f"the iSCSI target {where} does not allow the initiator {self.initiator}; "
                "add it to the target's ACL or fix <initiator><iqn name=.../>")
        if "Target not found" in text:
            return IscsiError(f"the portal {self.portal} has no target {self.target}")
        if "LOGICAL_UNIT_NOT_SUPPORTED" in text:
            return IscsiError(f"the target {where} has no such LUN ({what})")
        if re.search(r"Connection refused|connect(ion)? failed|Can not reconnect|socket error"
                     r"|reconnect|No route to host|Network is unreachable|timed out"
                     r"|Connection reset|Broken pipe", text, re.IGNORECASE):
            return IscsiError(
                f"cannot reach the iSCSI target {where} while {what}: {error_tail(text)}; is the "
                "target up and the portal right?")
        if "Unknown driver 'iscsi'" in text or "Unknown protocol 'iscsi'" in text:
            return IscsiError("qemu-img has no iSCSI support here; install it with: "
                              "apt-get install qemu-block-extra")
        return IscsiError(f"'{tool}' failed while {what} ({where}): {error_tail(text)}")

    # -- LUN discovery ---------------------------------------------------------------------
    def _discovery(self, chap: tuple[str, str] | None, *, show_luns: bool,
                   timeout: float = TOOL_TIMEOUT) -> runner.Completed:
        argv = ["iscsi-ls", "-i", self.initiator]
        if show_luns:
            argv.append("-s")
        argv.append(f"iscsi://{self.portal}")
        return self._libiscsi(argv, chap, timeout)

    def _require_target(self, result: runner.Completed, chap: tuple[str, str] | None) -> None:
        targets = [m.group(1) for m in map(_LS_TARGET_RE.match, result.stdout.splitlines())
                   if m]
        if self.target in targets:
            return
        if result.returncode != 0:
            raise self._fail(result, "listing the targets", chap)
        raise IscsiError(
            f"the portal {self.portal} does not offer the target {self.target} to the "
            f"initiator {self.initiator}"
            + (f" (it offers: {', '.join(sorted(set(targets)))})" if targets else ""))

    def _luns(self, chap: tuple[str, str] | None) -> tuple[dict[int, int | None], object]:
        """The target's disk LUNs -> capacity if already known, and a change token.

        `iscsi-ls -s` logs in to every target the portal offers and stops at the first one
        that refuses us, so another target's CHAP can hide ours: then the LUNs are probed
        one by one instead (0..PROBE_LUNS-1)."""
        result = self._discovery(chap, show_luns=True)
        sections: list[tuple[str, list[tuple[int, str, str]], bool]] = []
        for line in result.stdout.splitlines():
            target = _LS_TARGET_RE.match(line)
            if target:
                if sections:
                    name, luns, _done = sections[-1]
                    sections[-1] = (name, luns, True)
                sections.append((target.group(1), [], False))
                continue
            lun = _LS_LUN_RE.match(line)
            if lun and sections:
                sections[-1][1].append((int(lun.group(1)), lun.group(2), line.strip()))
        if sections and result.returncode == 0:
            name, luns, _done = sections[-1]
            sections[-1] = (name, luns, True)
        for name, luns, done in sections:
            if name == self.target and done:
                disks = sorted(n for n, kind, _line in luns if kind == _DIRECT_ACCESS)
                # the token: the LUN lines, with iscsi-ls's rounded sizes
                return dict.fromkeys(disks), ("ls", tuple(line for _n, _k, line in luns))
        reached = any(name == self.target for name, _l, _d in sections)
        if result.returncode == 0 or reached or not sections:
            self._require_target(result, chap)  # not offered, or our own login failed
            raise self._fail(result, "listing the LUNs", chap)
        probed = self._probe(chap)
        return probed, ("probe", tuple(sorted(probed.items())))

    def _probe(self, chap: tuple[str, str] | None) -> dict[int, int | None]:
        found: dict[int, int | None] = {}
        for lun in range(PROBE_LUNS):
            result = self._libiscsi(["iscsi-readcapacity16", "-s", "-i", self.initiator,
                                     self._lun_url(lun)], chap)
            if result.returncode == 0 and result.stdout.strip().isdigit():
                found[lun] = int(result.stdout.strip())
                continue
            text = f"{result.stdout}\n{result.stderr}"
            if "LOGICAL_UNIT_NOT_SUPPORTED" in text or "readcapacity" in text:
                continue  # no such LUN, or not a disk (the controller LUN 0 of tgt)
            raise self._fail(result, f"probing LUN {lun}", chap)
        return found

    def _capacity(self, lun: int, chap: tuple[str, str] | None) -> int:
        result = self._libiscsi(["iscsi-readcapacity16", "-i", self.initiator,
                                 self._lun_url(lun)], chap)
        match = re.search(r"^Total size:\s*(\d+)\s*$", result.stdout, re.MULTILINE)
        if result.returncode != 0 or not match:
            raise self._fail(result, f"reading the size of LUN {lun}", chap)
        return int(match.group(1))

    def _key(self, lun: int, chap: tuple[str, str] | None) -> str | None:
        """The LUN's identifier: a text designator of the device identification page
        (SCSI name string, NAA/EUI as text, T10 vendor id), else the unit serial number.
        Binary designators are printed raw by iscsi-inq and are of no use here."""
        url = self._lun_url(lun)
        result = self._libiscsi(["iscsi-inq", "-i", self.initiator, "-e", "1", "-c", "131",
                                 url], chap)
        if result.returncode == 0:
            key = pick_designator(result.stdout)
            if key:
                return key
        result = self._libiscsi(["iscsi-inq", "-i", self.initiator, "-e", "1", "-c", "128",
                                 url], chap)
        match = re.search(r"Unit Serial Number:\[(.*)\]", result.stdout)
        if result.returncode == 0 and match and match.group(1).strip():
            return "_".join(match.group(1).split())
        return None

    def _volume(self, lun: int, capacity: int, key: str | None) -> VolumeInfo:
        path = self._lun_url(lun)
        return VolumeInfo(name=volume_name(lun), key=key or path, path=path, type="network",
                          format="raw", capacity=capacity, allocation=capacity,
                          physical=capacity, signature=(lun, capacity, key))

    # -- pool ------------------------------------------------------------------------------
    def check(self) -> bool:
        try:
            result = self._discovery(self._chap(), show_luns=False)
        except PoolkeeperError:
            return False
        return result.returncode == 0 and any(
            m and m.group(1) == self.target
            for m in map(_LS_TARGET_RE.match, result.stdout.splitlines()))

    def start(self) -> None:
        """Nothing to log in to (libiscsi connects per call): make sure the target is there
        and, with CHAP, that the secret is set; the refresh that follows logs in."""
        chap = self._chap()
        self._require_target(self._discovery(chap, show_luns=False), chap)

    def stop(self) -> None:
        pass

    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        chap = self._chap()
        luns, _token = self._luns(chap)
        volumes = []
        for lun, known in sorted(luns.items()):
            capacity = known if known is not None else self._capacity(lun, chap)
            volumes.append(self._volume(lun, capacity, self._key(lun, chap)))
        return self._sizes_of(volumes), volumes

    def sizes(self) -> PoolSizes:
        chap = self._chap()
        luns, _token = self._luns(chap)
        total = sum(c if c is not None else self._capacity(n, chap) for n, c in luns.items())
        return PoolSizes(capacity=total, allocation=total, available=0)

    def change_token(self) -> object:
        return self._luns(self._chap())[1]

    def volume_path(self, name: str) -> str:
        return self._lun_url(lun_of(name))

    def _scan_lun(self, lun: int) -> VolumeInfo | None:
        chap = self._chap()
        luns, _token = self._luns(chap)
        if lun not in luns:
            return None
        capacity = luns[lun] if luns[lun] is not None else self._capacity(lun, chap)
        assert capacity is not None
        return self._volume(lun, capacity, self._key(lun, chap))

    # -- qemu-img --------------------------------------------------------------------------
    def _secret_args(self, chap: tuple[str, str] | None) -> list[str]:
        if not chap:
            return []
        ref = self._secret_name()
        assert ref is not None
        path = self._store().path(ref)  # checked: ours, 0600; qemu reads the value itself
        return ["--object", f"secret,id={QEMU_SECRET_ID},file={_qemu_opt(path)},format=raw"]

    def _lun_opts(self, lun: int, offset: int, size: int,
                  chap: tuple[str, str] | None) -> str:
        opts = [
            "driver=raw", f"offset={offset}", f"size={size}",
            "file.driver=iscsi", "file.transport=tcp",
            f"file.portal={_qemu_opt(self.portal)}", f"file.target={_qemu_opt(self.target)}",
            f"file.lun={lun}", f"file.initiator-name={_qemu_opt(self.initiator)}",
            f"file.timeout={QEMU_IO_TIMEOUT}",
        ]
        if chap:
            opts += [f"file.user={_qemu_opt(chap[0])}",
                     f"file.password-secret={QEMU_SECRET_ID}"]
        return ",".join(opts)

    @staticmethod
    def _file_opts(path: str, offset: int, size: int, *, device: bool = False) -> str:
        driver = "host_device" if device else "file"
        return (f"driver=raw,offset={offset},size={size},file.driver={driver},"
                f"file.filename={_qemu_opt(path)}")

    def _convert(self, src: str, dst: str, total: int, ctx: JobContext, what: str,
                 chap: tuple[str, str] | None, extra: tuple[str, ...] = (),
                 grand_total: int | None = None) -> None:
        """qemu-img convert between two option strings, its meter feeding the job; cancel
        kills it. Writes the whole `total` bytes of the target window (-n: no create).

        qemu's iSCSI driver reconnects forever when the target dies, so a transfer whose
        meter has not moved for STALL_CHECK seconds has the target checked (a discovery
        login, TOOL_TIMEOUT bounded); a target that no longer answers ends the transfer
        with a clear error instead of a job that never finishes."""
        grand = grand_total if grand_total is not None else total
        last_move = [time.monotonic()]
        gone: list[str] = []

        def progress(line: str) -> None:
            match = _PERCENT_RE.search(line)
            if match:
                last_move[0] = time.monotonic()
                ctx.done = int(total * float(match.group(1)) / 100)
                with contextlib.suppress(Cancelled):  # the stop watcher kills the tool
                    ctx.update(ctx.done, grand)

        def should_stop() -> bool:
            if ctx.cancelled or gone:
                return True
            if time.monotonic() - last_move[0] >= STALL_CHECK:
                problem = self._unreachable(chap)
                last_move[0] = time.monotonic()
                if problem:
                    gone.append(problem)
                    return True
            return False

        argv = ["qemu-img", "convert", "-p", "-n", "-t", "writeback", *extra,
                *self._secret_args(chap), "--image-opts", "--target-image-opts", src, dst]
        try:
            runner.run_with_progress(argv, progress, should_stop,
                                     secrets=[chap[1]] if chap else [])
        except ToolFailed as exc:
            raise self._explain(exc.stderr, exc.returncode, what, "qemu-img", chap) from None
        if gone:
            raise IscsiError(f"the iSCSI target {self.target} at {self.portal} stopped "
                             f"answering while {what}; the transfer was stopped ({gone[0]})")
        ctx.check()

    def _unreachable(self, chap: tuple[str, str] | None) -> str | None:
        """Why the target cannot be used right now, or None if it answers."""
        try:
            result = self._discovery(chap, show_luns=False, timeout=STALL_PROBE_TIMEOUT)
            self._require_target(result, chap)
        except PoolkeeperError as exc:
            return str(exc)
        return None

    def _window(self, lun: int, capacity: int, pos: int) -> int:
        """Start of the SECTOR-sized window of the LUN that holds byte `pos` (qemu's raw
        layer needs whole sectors; at the end of the LUN the window ends there)."""
        return max(0, min(pos, capacity - SECTOR))

    def _read_window(self, lun: int, start: int, chap: tuple[str, str] | None,
                     what: str) -> bytes:
        """SECTOR bytes of the LUN from `start`, through a memfd (no temp file on disk)."""
        mfd = os.memfd_create("poolkeeper-window", os.MFD_CLOEXEC)
        try:
            os.ftruncate(mfd, SECTOR)
            self._small_convert(self._lun_opts(lun, start, SECTOR, chap),
                                self._file_opts(f"/dev/fd/{mfd}", 0, SECTOR), mfd, what, chap)
            return os.pread(mfd, SECTOR, 0)
        finally:
            os.close(mfd)

    def _write_window(self, lun: int, start: int, data: bytes, chap: tuple[str, str] | None,
                      what: str) -> None:
        mfd = os.memfd_create("poolkeeper-window", os.MFD_CLOEXEC)
        try:
            os.pwrite(mfd, data, 0)
            self._small_convert(self._file_opts(f"/dev/fd/{mfd}", 0, SECTOR),
                                self._lun_opts(lun, start, SECTOR, chap), mfd, what, chap)
        finally:
            os.close(mfd)

    def _small_convert(self, src: str, dst: str, fd: int, what: str,
                       chap: tuple[str, str] | None) -> None:
        argv = ["qemu-img", "convert", "-n", "-t", "writeback", *self._secret_args(chap),
                "--image-opts", "--target-image-opts", src, dst]
        result = runner.run(argv, check=False, pass_fds=(fd,), secrets=[chap[1]] if chap else [],
                            timeout=TOOL_TIMEOUT + QEMU_IO_TIMEOUT)
        if result.returncode != 0:
            raise self._explain(result.stderr, result.returncode, what, "qemu-img", chap)

    # -- data verbs ------------------------------------------------------------------------
    def wipe_volume(self, vol: VolumeInfo, algorithm: str, ctx: JobContext) -> None:
        if algorithm != "zero":
            raise Unsupported(
                f"a LUN of an iscsi-direct pool can only be wiped with the 'zero' algorithm "
                f"(as in libvirt), not '{algorithm}'; for the others use an iscsi pool, where "
                "the LUN is a local block device")
        lun, capacity = lun_of(vol.name), vol.capacity
        if capacity <= 0 or capacity % SECTOR:
            raise StateError(f"'{vol.name}' reports {capacity} bytes, not whole sectors; "
                             "poolkeeper cannot wipe it through qemu")
        chap = self._chap()
        ctx.update(0, capacity)
        self._convert(f"driver=null-co,size={capacity},read-zeroes=on",
                      self._lun_opts(lun, 0, capacity, chap), capacity, ctx,
                      f"wiping {vol.name}", chap)
        ctx.update(capacity, capacity)

    def upload_volume(self, vol: VolumeInfo, src_path: str, offset: int, length: int | None,
                      ctx: JobContext, sparse: bool = False) -> int:
        st, amount = self._fit(vol, src_path, offset, length)
        device = stat.S_ISBLK(st.st_mode)
        if not (device or stat.S_ISREG(st.st_mode)):
            raise Unsupported(
                f"'{src_path}' is not a regular file or block device; an iscsi-direct upload "
                "is read by qemu-img, which needs one (save the stream to a file first)")
        lun, chap = lun_of(vol.name), self._chap()
        body = amount - amount % SECTOR
        what = f"uploading to {vol.name}"
        ctx.update(0, amount)
        if body:
            self._convert(self._file_opts(src_path, 0, body, device=device),
                          self._lun_opts(lun, offset, body, chap), body, ctx, what, chap,
                          grand_total=amount)
        if amount > body:  # the last partial sector: read, patch and write back its window
            fd = os.open(src_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                tail = os.pread(fd, amount - body, body)
            finally:
                os.close(fd)
            if len(tail) != amount - body:
                raise StateError(f"'{src_path}' became shorter during the upload")
            pos = offset + body
            start = self._window(lun, vol.capacity, pos)
            window = bytearray(self._read_window(lun, start, chap, what))
            window[pos - start:pos - start + len(tail)] = tail
            ctx.check()
            self._write_window(lun, start, bytes(window), chap, what)
        ctx.update(amount, amount)
        return amount

    def download_volume(self, vol: VolumeInfo, dst_path: str, offset: int, length: int | None,
                        sparse: bool, ctx: JobContext) -> int:
        if offset < 0 or (length is not None and length < 0):
            raise ValidationError("offset and length must not be negative")
        capacity = vol.capacity
        if offset > capacity:
            raise ValidationError(f"offset {offset} is past the end of the volume "
                                  f"({capacity} bytes)")
        todo = capacity - offset if length is None else min(length, capacity - offset)
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(dst_path)
            if not stat.S_ISREG(st.st_mode):
                raise Unsupported(
                    f"'{dst_path}' is not a regular file; an iscsi-direct download is written "
                    "by qemu-img, which needs one")
        lun, chap = lun_of(vol.name), self._chap()
        what = f"downloading {vol.name}"
        # never through a symlink, checked before it is emptied (fileops.open_download_target)
        fd, created = fileops.open_download_target(dst_path, ctx)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Unsupported(
                    f"'{dst_path}' is not a regular file; an iscsi-direct download is written "
                    "by qemu-img, which needs one")
            os.ftruncate(fd, todo)
            ctx.update(0, todo)
            body = todo - todo % SECTOR
            if body:
                # qemu-img opens the very file we opened (no rename race on dst_path).
                dst = self._file_opts(f"/proc/{os.getpid()}/fd/{fd}", 0, body)
                extra = ("--target-is-zero",) if sparse else ("-S", "0")
                self._convert(self._lun_opts(lun, offset, body, chap), dst, body, ctx, what,
                              chap, extra=extra, grand_total=todo)
            if todo > body:
                pos = offset + body
                start = self._window(lun, capacity, pos)
                window = self._read_window(lun, start, chap, what)
                tail = window[pos - start:pos - start + todo - body]
                if not (sparse and not tail.strip(b"\0")):
                    os.pwrite(fd, tail, body)
            os.fsync(fd)
            ctx.update(todo, todo)
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    if os.path.samestat(os.fstat(fd), os.stat(dst_path)):
                        os.unlink(dst_path)
            raise
        finally:
            os.close(fd)
        return todo

    # -- discovery -------------------------------------------------------------------------
    @classmethod
    def find_sources(cls, host: str | None = None, device: str | None = None
                     ) -> list[PoolSource]:
        """The targets a portal offers (libiscsi discovery, as DISCOVERY_INITIATOR unless
        `device` names an initiator IQN to ask as)."""
        name, port, portal = discovery_portal(host)
        initiator = check_iscsi_name(device, "initiator IQN") if device else DISCOVERY_INITIATOR
        result = runner.run(["iscsi-ls", "-i", initiator, f"iscsi://{portal}"], check=False,
                            env={"LIBISCSI_CHAP_USERNAME": "", "LIBISCSI_CHAP_PASSWORD": ""},
                            timeout=TOOL_TIMEOUT)
        targets = [m.group(1) for m in map(_LS_TARGET_RE.match, result.stdout.splitlines())
                   if m]
        if result.returncode != 0 and not targets:
            text = f"{result.stdout}\n{result.stderr}"
            if result.returncode is None:
                raise IscsiError(f"the portal {portal} did not answer within "
                                 f"{TOOL_TIMEOUT:g} s")
            raise IscsiError(f"cannot list the targets of the portal {portal}: {error_tail(text)}")
        sources = target_sources(name, port, targets)
        if device:  # the answer is what this initiator may see: say so in each source
            for source in sources:
                source.initiator_iqn = initiator
        return sources


def pick_designator(text: str) -> str | None:
    """The best text designator of `iscsi-inq -e 1 -c 131` output (LUN association)."""
    best: tuple[int, str] | None = None
    rank = {8: 0, 3: 1, 2: 1, 1: 2}  # SCSI name string, NAA, EUI-64, T10 vendor id
    for block in text.split("DEVICE DESIGNATOR")[1:]:
        code = re.search(r"Code Set:\((\d+)\)", block)
        assoc = re.search(r"Association:\((\d+)\)", block)
        kind = re.search(r"Designator Type:\((\d+)\)", block)
        value = re.search(r"Designator:\[(.*)\]", block)
        if not (code and assoc and kind and value):
            continue
        if code.group(1) not in ("2", "3") or assoc.group(1) != "0":
            continue  # binary (printed raw), or the port's/target's designator
        text_value = "_".join(value.group(1).split())
        order = rank.get(int(kind.group(1)))
        if order is None or not text_value or not text_value.isprintable():
            continue
        if best is None or order < best[0]:
            best = (order, text_value)
    return best[1] if best else None
