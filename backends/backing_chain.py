"""Backing chains: every file qemu would open for an image, checked before it opens them.

Each file is a volume of an active pool, opened with the format poolkeeper knows it by: no
link, no header of another format than the one recorded (but raw), no external data file,
vmdk extents named by full path and carrying no descriptor of their own, each backing file
a volume whose format the image states. A new overlay's backing file is resolved the same
way. The checks run when a verb is asked and again when its job starts (a base can change
meanwhile).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from . import imageprobe
from .checks import require_local_backing
from .drivers.base import PoolDriver
from .errors import UnsafePath, ValidationError, VolumeNotFound
from .lookup import PoolLookup
from .model import BackingStore, VolumeInfo


class BackingChains:
    """Resolves a new overlay's backing file, and checks the chain of an existing image."""

    def __init__(self, pools: PoolLookup, active_driver: Callable[[str], PoolDriver]) -> None:
        self._pools = pools
        self._active_driver = active_driver  # an active pool's driver, by pool name

    def resolve_backing(self, backing: BackingStore, block_snapshot: bool = False,
                         for_name: str = "the new volume") -> BackingStore:
        """The backing file must be a volume of an active pool, its format given or recorded
        by us (never read from a header), and every file qemu would open for it, opened
        with that format, must stay inside the pools."""
        require_local_backing(backing.path)
        try:
            pool, name = self._pools.find_volume(backing.path)
        except VolumeNotFound:
            raise VolumeNotFound(
                f"the backing file '{backing.path}' is not a volume of an active pool; a backing "
                "file must be a volume poolkeeper manages (start its pool, or define a pool on "
                "its directory)") from None
        info = self._pools.volume_info(pool, name)
        if block_snapshot:  # an LVM snapshot copies blocks; the driver checks the origin
            return BackingStore(path=info.path, format=None)
        if backing.format is None and not info.format_recorded:
            raise ValidationError(
                f"give the format of the backing volume '{name}' (--backing-vol-format): "
                "poolkeeper did not create it and never trusts a format read from its header",
                element="backingStore",
            )
        if backing.format and info.format_recorded and backing.format != info.format:
            raise ValidationError(
                f"'{name}' was created as {info.format}, not {backing.format}",
                element="backingStore",
            )
        resolved = BackingStore(path=info.path, format=backing.format or info.format)
        # the chain of the overlay-to-be: the base as qemu will open it, with that format
        self.check_chain(VolumeInfo(name=for_name, key="", path="", backing=resolved))
        return resolved

    def check_chain(self, info: VolumeInfo) -> None:
        """Every file qemu would open for this image is a volume of an active pool, opened
        with the format poolkeeper knows it by: no link, no header of another format than
        the one recorded (but raw), no external data file, vmdk extents named by full path,
        each backing file a volume whose format the image states. The checked chain is kept
        in info.backing_chain: image_spec names each of its files itself."""
        chain: list[BackingStore] = []
        image = info
        while True:
            self._check_image_files(image)
            if image.backing is None:
                break
            if len(chain) >= 16:
                raise ValidationError(f"the backing chain of '{info.name}' is too deep (or a loop)")
            image, fmt = self._backing_volume(image)
            chain.append(BackingStore(path=image.path, format=fmt))
        info.backing_chain = chain

    def _check_image_files(self, image: VolumeInfo) -> None:
        """The files of one image of a chain, but its backing file (see check_chain)."""
        if image.symlink is not None:
            raise UnsafePath(f"'{image.name}' is a symlink to '{image.symlink}'; poolkeeper "
                             "does not read images through links")
        if image.format == "raw":
            return  # read as plain bytes: qemu opens nothing else, whatever the header says
        if image.format_recorded and image.probed_format not in (None, image.format):
            raise UnsafePath(
                f"'{image.name}' was created as {image.format}, but its header now reads as "
                f"{image.probed_format}; poolkeeper will not hand it to qemu-img as "
                f"{image.format} (wipe it, or upload a {image.format} image into it)")
        if image.data_file is not None or (
                image.format == "qcow2" and "data_file" in (image.features or [])):
            named = f" '{image.data_file}'" if image.data_file else ""
            raise UnsafePath(
                f"'{image.name}' keeps its data in the external data file{named}; "
                "poolkeeper does not use qcow2 images with a data file"
            )
        for written, path in image.extent_files:
            self._check_extent(image, written, path)

    def _check_extent(self, image: VolumeInfo, written: str, path: str) -> None:
        """A vmdk extent qemu opens: a volume of an active pool named by its full path (qemu
        gets the image as /dev/fd/N, under which a relative name would find another file),
        not a link, and not itself carrying a descriptor (whose extents qemu opens too)."""
        if not written.startswith("/"):
            raise UnsafePath(
                f"'{image.name}' names its vmdk extent '{written}' relative to itself; "
                "poolkeeper hands images to qemu-img by file descriptor, where that name would "
                "find another file, so it uses only vmdk descriptors whose extents are named "
                "by full path")
        try:
            pool, name = self._pools.find_volume(path)
        except VolumeNotFound:
            raise UnsafePath(
                f"'{image.name}' names the vmdk extent '{path}', which is not a volume of an "
                "active pool; poolkeeper will not use it") from None
        extent = self._pools.volume_info(pool, name)
        if extent.symlink is not None:
            raise UnsafePath(f"the vmdk extent '{path}' of '{image.name}' is a symlink; "
                             "poolkeeper does not read images through links")
        try:
            fd = self._active_driver(pool).open_volume_read(extent)
            try:
                nested = imageprobe.carries_descriptor(os.pread(fd, 64, 0))
            finally:
                os.close(fd)
        except OSError as exc:
            raise UnsafePath(f"the vmdk extent '{path}' of '{image.name}' cannot be read "
                             f"({exc.strerror}); poolkeeper will not use it") from None
        if nested:
            raise UnsafePath(
                f"the vmdk extent '{path}' of '{image.name}' carries a vmdk descriptor of its "
                "own, whose files qemu would open too; poolkeeper will not use it")

    def _backing_volume(self, image: VolumeInfo) -> tuple[VolumeInfo, str | None]:
        """The backing file of `image` as qemu will open it, and the format it is opened as."""
        assert image.backing is not None
        require_local_backing(image.backing.path)
        try:
            pool, name = self._pools.find_volume(image.backing.path)
        except VolumeNotFound:
            raise UnsafePath(
                f"'{image.name}' names the backing file '{image.backing.path}', which is not a "
                "volume of an active pool; poolkeeper will not use it"
            ) from None
        base = self._pools.volume_info(pool, name)
        declared = image.backing.format
        if image.type == "block":  # an LVM snapshot's origin: no image format in between
            return base, None
        if declared is None:
            raise UnsafePath(
                f"'{image.name}' does not state the format of its backing file '{name}', so "
                "qemu would guess it from that file's header; poolkeeper will not use it "
                "(qemu-img rebase -u -F FORMAT fixes that)"
            )
        if declared == "raw":  # read as plain bytes: any header in it means nothing
            return replace(base, format="raw", backing=None, data_file=None,
                           extent_files=[]), declared
        if declared != base.format:
            known = "created it as" if base.format_recorded else "reads it as"
            raise UnsafePath(
                f"'{image.name}' says its backing file '{name}' is {declared}, but poolkeeper "
                f"{known} {base.format}; it will not let qemu open it as {declared}"
            )
        return base, declared
