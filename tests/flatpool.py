"""A made-up pool type, `flat`, added the way docs/adding-a-pool-type.md says: its
volumes are plain sparse files in the target directory, made and removed by the driver
itself. Only tests/unit/test_new_pool_type.py registers it."""

from __future__ import annotations

import os
from typing import ClassVar

from backends import blockprobe
from backends.drivers.base import Claim, PoolDriver
from backends.errors import AlreadyExists, StateError, VolumeNotFound
from backends.model import PoolDef, PoolSizes, VolumeDef, VolumeInfo
from backends.progress import JobContext

TYPE = "flat"


class FlatDriver(PoolDriver):
    type: ClassVar[str] = TYPE
    volume_formats = ("raw",)
    creatable_formats = ("raw",)
    default_volume_format = "raw"
    can_create_volumes = True
    can_delete_volumes = True
    volumes_are_files = True
    build_does = "has nothing to build"
    delete_does = "is not possible: a flat pool keeps its directory"
    form_fields = ("name", "target")
    target_placeholder = "/srv/flat"
    tools = {"truncate": "coreutils"}

    @classmethod
    def source_claims(cls, pool: PoolDef) -> list[Claim]:
        path = pool.target.path or ""
        return [Claim("directory", key, f"target path '{path}'")
                for key in blockprobe.directory_keys(path)] if path else []

    @property
    def target(self) -> str:
        return self.pool.target.path or ""

    def check(self) -> bool:
        return os.path.isdir(self.target)

    def start(self) -> None:
        if not self.check():
            raise StateError(f"target directory '{self.target}' does not exist")

    def stop(self) -> None:
        pass

    def sizes(self) -> PoolSizes:
        st = os.statvfs(self.target)
        return PoolSizes(st.f_blocks * st.f_frsize, (st.f_blocks - st.f_bfree) * st.f_frsize,
                         st.f_bavail * st.f_frsize)

    def refresh(self) -> tuple[PoolSizes, list[VolumeInfo]]:
        volumes = []
        for name in sorted(os.listdir(self.target)):
            path = self.volume_path(name)
            st = os.stat(path)
            volumes.append(VolumeInfo(name=name, key=path, path=path, format="raw",
                                      capacity=st.st_size, allocation=st.st_blocks * 512))
        return self.sizes(), volumes

    def volume_path(self, name: str) -> str:
        return os.path.join(self.target, name)

    def create_volume(self, vol: VolumeDef, ctx: JobContext) -> None:
        try:
            fd = os.open(self.volume_path(vol.name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise AlreadyExists(f"volume '{vol.name}' already exists") from None
        try:
            os.ftruncate(fd, vol.capacity or 0)
        finally:
            os.close(fd)

    def delete_volume(self, vol: VolumeInfo) -> None:
        try:
            os.unlink(self.volume_path(vol.name))
        except FileNotFoundError:
            raise VolumeNotFound(f"no volume named '{vol.name}'") from None
