"""wipe, upload and download through a file descriptor on a volume's bytes, shared by the
pool types whose volumes are block devices (disk partitions, logical volumes, the LUNs of
an iscsi pool), as libvirt shares these verbs across its backends.

A driver mixes FdDataVerbs in before PoolDriver and says how to open a volume
(`open_volume_write`, `open_volume_read`) and what to do when an upload does not fit
(`fit_hint`). Whether data fits is one rule for every pool type
(fileops.refuse_upload_past_end, dir pools too): checked before a byte is written, a
ValidationError that names the volume and its size.
"""

from __future__ import annotations

import os
from typing import ClassVar

from .. import fileops
from ..model import VolumeInfo
from ..progress import NULL_CONTEXT, JobContext


class FdDataVerbs:
    fit_hint: ClassVar[str] = "resize the volume first (vol-resize)"

    def open_volume_write(self, vol: VolumeInfo) -> int:
        """A read-write fd on the volume's bytes, opened as only this driver may (the
        checks of what it opens are the driver's)."""
        raise NotImplementedError

    def open_volume_read(self, vol: VolumeInfo) -> int:
        raise NotImplementedError

    def wipe_volume(self, vol: VolumeInfo, algorithm: str, ctx: JobContext) -> None:
        fd = self.open_volume_write(vol)
        try:
            fileops.wipe_fd(fd, algorithm, ctx=ctx or NULL_CONTEXT)
        finally:
            os.close(fd)

    def upload_volume(self, vol: VolumeInfo, src_path: str, offset: int, length: int | None,
                      ctx: JobContext, sparse: bool = False) -> int:
        fileops.check_range(offset, length)
        amount = fileops.upload_amount(src_path, length)
        fd = self.open_volume_write(vol)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)  # the device as it is now
            fileops.refuse_upload_past_end(vol.name, amount, offset, size, self.fit_hint)
            return fileops.upload_fd(fd, src_path, offset=offset, length=length,
                                     ctx=ctx or NULL_CONTEXT)
        finally:
            os.close(fd)

    def download_volume(self, vol: VolumeInfo, dst_path: str, offset: int, length: int | None,
                        sparse: bool, ctx: JobContext) -> int:
        fd = self.open_volume_read(vol)
        try:
            return fileops.download_fd(fd, dst_path, offset=offset, length=length,
                                       sparse=sparse, ctx=ctx or NULL_CONTEXT)
        finally:
            os.close(fd)
