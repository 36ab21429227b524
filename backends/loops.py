"""Loop devices poolkeeper attaches for image-backed pools, claimed before they exist.

A kill -9 between `losetup` and the matching `losetup -d` (in the middle of a build, a
start, or a look inside an fs pool before its delete) would leave the image attached, and
build and start refuse an attached image. So:
  * before attaching, a claim is written under RUNTIME/loops/ (runtime state: loop devices
    do not outlive a boot, and a root's runtime dir, /run/poolkeeper, does not either; a
    claim from another boot is void): the loop node chosen with `losetup --find`, the
    image's path and (st_dev, st_ino), the pool, our pid and its start time, the boot.
    Then `losetup NODE IMAGE` attaches exactly that node; the kernel's record of it (the
    backing file's device and inode) must be the image we stat'ed, and its diskseq is added
    to the claim. A cancel or Ctrl-C never kills losetup (runner.NOT_KILLED_ON_CANCEL); if
    the call fails anyway after the attach (cancelled once it was done, interrupted, or
    losetup killed by someone else), a claimed node that shows the image is ours: it is
    detached, or keeps its claim for the next use to release. A loop device of ours is
    never left without a claim;
  * poolkeeper's own detach removes the claim;
  * on the next build, start or delete of a pool on the image (under the image's lock, see
    blockprobe.image_lock), a claim whose process is dead, whose node still has that image
    behind it (same device and inode, and the same diskseq once recorded) and which nobody
    mounts, holds or has open is released: a look-inside mount poolkeeper left under
    RUNTIME/peek is unmounted, partition nodes are dropped (partx -d) and the device is
    detached. A loop device without such a claim is never detached, whoever attached it;
    a claim whose device went away or now has something else behind it is forgotten.

Claims are per state root: a poolkeeper with another root never releases ours (it refuses
the attached image, naming the device), and we never release its.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from . import blockprobe, pathsafety, runner
from .errors import Busy, PoolkeeperError, StateError, ToolFailed
from .store import atomic_write, boot_id, json_records

CLAIMS_DIR = "loops"  # under the runtime dir
PEEK_DIR = "peek"  # under the runtime dir: private mount points of read-only looks inside
_ATTACH_TRIES = 8  # `losetup --find` and the attach are two steps: another may take the node
_START_SLACK = 0.05  # seconds: psutil's create_time of one process is stable to the tick


def _start_time(pid: int) -> float | None:
    import psutil  # imported when used: it costs a listing ~10 ms
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def owner_alive(claim: dict) -> bool:
    """Is the process that wrote `claim` still running (not a later one with its pid)?"""
    import psutil  # imported when used: it costs a listing ~10 ms
    pid, started = claim.get("pid"), claim.get("started")
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False  # dead, its fds closed; only its exit status is left to collect
        return not isinstance(started, (int, float)) or \
            abs(proc.create_time() - started) < _START_SLACK
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # cannot tell: treat it as alive, never release what might be in use


def _same_attachment(ident: blockprobe.LoopIdentity, claim: dict) -> bool:
    if (ident.st_dev, ident.st_ino) != (claim.get("st_dev"), claim.get("st_ino")):
        return False
    seq = claim.get("diskseq")
    return seq is None or ident.diskseq is None or seq == ident.diskseq


class LoopClaims:
    """The claims of one state root (`runtime_dir` None: a bare driver in a unit test,
    which attaches without claims as poolkeeper did before)."""

    def __init__(self, runtime_dir: Path | None) -> None:
        self.dir = Path(runtime_dir) / CLAIMS_DIR if runtime_dir is not None else None
        self.peek_root = Path(runtime_dir) / PEEK_DIR if runtime_dir is not None else None

    # -- attach / detach -------------------------------------------------------------------
    def attach(self, image: str, pool: str, *, read_only: bool = False
               ) -> blockprobe.LoopIdentity:
        """losetup `image` (an absolute, resolved path) on a free node, claimed first."""
        st = os.stat(image)
        claim: dict = {"image": image, "st_dev": st.st_dev, "st_ino": st.st_ino, "pool": pool,
                       "pid": os.getpid(), "started": _start_time(os.getpid()),
                       "boot": boot_id(), "device": None, "diskseq": None}
        path = self._new_claim_path()
        device = ident = None
        try:
            try:
                device = self._attach_claimed(image, claim, path, read_only)
            except BaseException:
                # cancelled or interrupted once losetup was done, or losetup killed after
                # its attach (its timeout): what shows our image on our node is ours
                ident = self._attached_anyway(claim)
                raise
            ident = blockprobe.loop_identity(device)  # what losetup attached, whatever it is
            if ident is None:
                raise StateError(f"losetup attached {image} but {device!r} cannot be read "
                                 "back")
            if (ident.st_dev, ident.st_ino) != (st.st_dev, st.st_ino):
                # losetup opened the path after our stat: something else is there now
                raise StateError(f"{image} was replaced while poolkeeper attached it; "
                                 "nothing was changed, try again")
            claim["diskseq"] = ident.diskseq
            self._write(path, claim)
        except BaseException:
            if ident is not None:
                with contextlib.suppress(PoolkeeperError):
                    blockprobe.detach_loop(ident)  # ours a moment ago (same diskseq)
            if path is not None and (ident is None and device is None or (
                    ident is not None and blockprobe.loop_identity(ident.device) != ident)):
                _unlink(path)  # nothing of ours is attached; a leftover keeps its claim
            raise
        return ident

    @staticmethod
    def _attached_anyway(claim: dict) -> blockprobe.LoopIdentity | None:
        """The node the claim names, if it has the claimed image behind it (losetup
        attached it even though the call did not return the device)."""
        device = claim.get("device")
        ident = blockprobe.loop_identity(device) if isinstance(device, str) else None
        if ident is None or (ident.st_dev, ident.st_ino) != (claim["st_dev"],
                                                            claim["st_ino"]):
            return None
        return ident

    def _attach_claimed(self, image: str, claim: dict, path: Path | None,
                        read_only: bool) -> str:
        ro = ["--read-only"] if read_only else []
        if path is None:
            return runner.run(["losetup", *ro, "--find", "--show", image],
                              timeout=60).stdout.strip()
        for _ in range(_ATTACH_TRIES):
            device = runner.run(["losetup", "--find"], timeout=60).stdout.strip()
            if not device.startswith("/dev/loop"):
                raise StateError(f"losetup --find named no loop device ({device!r})")
            claim["device"] = device
            self._write(path, claim)  # before the attach: a kill after it finds the claim
            done = runner.run(["losetup", *ro, device, image], check=False, timeout=60)
            if done.returncode == 0:
                return device
            if "busy" not in done.stderr.lower():
                raise ToolFailed(done.shown, done.returncode, done.stderr)
            # another process attached that node between our --find and our attach
        raise Busy(f"no free loop device could be attached for {image} (others kept taking "
                   "them); try again")

    def detach(self, ident: blockprobe.LoopIdentity) -> None:
        """losetup -d (only if the node still has our attachment), then drop its claim."""
        blockprobe.detach_loop(ident)
        self.forget(ident)

    def forget(self, ident: blockprobe.LoopIdentity) -> None:
        """Drop the claims on this attachment (it was detached)."""
        for path, claim in self._claims():
            if claim.get("device") == ident.device and _same_attachment(ident, claim):
                _unlink(path)

    # -- stale claims ------------------------------------------------------------------------
    def release_stale(self, image: str) -> list[str]:
        """Detach the loop devices of `image` that a killed poolkeeper of this root left
        (see the module docstring); returns the devices released."""
        try:
            st = os.stat(image)
        except OSError:
            return []
        boot = boot_id()
        released = []
        for path, claim in self._claims():
            if claim.get("boot") != boot:
                _unlink(path)  # from another boot: its loop devices are long gone
                continue
            if owner_alive(claim):
                continue
            device = claim.get("device")
            ident = blockprobe.loop_identity(device) if isinstance(device, str) else None
            if ident is None or not _same_attachment(ident, claim):
                _unlink(path)  # never attached, detached since, or someone else's now
                continue
            if (claim.get("st_dev"), claim.get("st_ino")) != (st.st_dev, st.st_ino):
                continue  # another image's: the next use of its own pool judges it
            if self._release(ident, claim):
                _unlink(path)
                released.append(ident.device)
        return released

    def _release(self, ident: blockprobe.LoopIdentity, claim: dict) -> bool:
        self._unmount_left_looks(ident.device)
        if blockprobe.device_users(ident.device):
            return False  # mounted, open or held: not stale, whoever uses it
        if blockprobe.partitions(ident.device):
            runner.run(["partx", "-d", ident.device], check=False, timeout=60)
        with contextlib.suppress(PoolkeeperError):
            blockprobe.detach_loop(ident)
        now = blockprobe.loop_identity(ident.device)
        return now is None or not _same_attachment(now, claim)

    def _unmount_left_looks(self, device: str) -> None:
        """A kill during a look inside leaves the device mounted read-only under PEEK_DIR,
        which only poolkeeper uses: unmount it there (never anywhere else)."""
        if self.peek_root is None:
            return
        prefix = str(self.peek_root) + "/"
        for mount in reversed(blockprobe.mounts_of(device)):
            if mount.target.startswith(prefix):
                runner.run(["umount", mount.target], check=False, timeout=120)
                with contextlib.suppress(OSError):
                    os.rmdir(mount.target)

    # -- a private mount point ---------------------------------------------------------------
    @contextlib.contextmanager
    def peek_dir(self) -> Iterator[str]:
        """A new empty directory only root can enter, removed afterwards (if empty)."""
        base = None
        if self.peek_root is not None:
            pathsafety.ensure_state_dir(self.peek_root, "the private mount dir", 0o700,
                                        private=True)
            base = str(self.peek_root)
        import tempfile  # only here: a listing of an fs pool loads this module (~1.5 ms)

        path = tempfile.mkdtemp(prefix="look-", dir=base)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.rmdir(path)

    # -- the files ---------------------------------------------------------------------------
    def _new_claim_path(self) -> Path | None:
        if self.dir is None:
            return None
        pathsafety.ensure_state_dir(self.dir, "the loop claims dir", 0o700, private=True)
        return self.dir / f"{os.urandom(8).hex()}.json"

    @staticmethod
    def _write(path: Path | None, claim: dict) -> None:
        if path is not None:
            atomic_write(path, json.dumps(claim, sort_keys=True).encode(), 0o600)

    def _claims(self) -> list[tuple[Path, dict]]:
        return json_records(self.dir)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
