"""Acting on the very image file the controller checked: a volume is opened again by name
only if it is still the same file (inode, birth time, generation), and handed to qemu-img
as a json spec that names every file qemu may open itself, after its header was read again
from the open fd.
"""

from __future__ import annotations

import json
import os
import stat

from .. import fileid, fileops, imageprobe
from ..errors import UnsafePath
from ..model import VolumeInfo
from ..names import check_name


def open_checked(dir_fd: int, vol: VolumeInfo, flags: int) -> int:
    """Open the volume `vol` names (never through a link) and make sure it is the file the
    controller checked (same identity: inode, birth time, generation): its name may have
    been given to another file since, e.g. while the job waited in the queue."""
    fd = fileops.open_volume(dir_fd, check_name(vol.name, "volume name"), flags)
    try:
        if vol.file_id is not None and fileid.of_fd(fd) != vol.file_id:
            raise UnsafePath(f"'{vol.name}' was replaced by another file after poolkeeper "
                             "checked it; nothing was done to it: look at it and try again")
    except BaseException:
        os.close(fd)
        raise
    return fd


# Formats whose qemu driver opens files a header names beyond its backing file (which the
# spec names itself): a qcow2 data file, vmdk extents. qcow and qed have a backing name only,
# but are looked at too: a header rewritten as another format is refused for all four.
_HEADER_FILE_FORMATS = ("qcow", "qcow2", "qed", "vmdk")


def refuse_unchecked_header(vol: VolumeInfo, fd: int) -> None:
    """The header qemu will read from `fd`, read again from that very fd, must still be what
    the controller checked: the format `vol` is opened as, no data file, and the vmdk extents
    the check saw. A file rewritten since the check (a job can wait in the queue for hours
    behind others; "data-file": null in the spec does not stop qemu opening the one a qcow2
    header names) is refused before qemu-img runs."""
    if vol.format not in _HEADER_FILE_FORMATS:
        return  # raw and the rest: their qemu drivers open no other file
    st = os.fstat(fd)
    size = st.st_size if stat.S_ISREG(st.st_mode) else os.lseek(fd, 0, os.SEEK_END)
    found = imageprobe.probe_fd(fd, size)
    if found.format != vol.format:
        now = f"its header now reads as {found.format}"
    elif found.data_file is not None or "data_file" in (found.features or []):
        now = "it now names an external data file" + (
            f" '{found.data_file}'" if found.data_file else "")
    elif found.extents != [written for written, _path in vol.extent_files]:
        now = "it now names other vmdk extents"
    else:
        return
    raise UnsafePath(f"'{vol.name}' changed after poolkeeper checked it ({now}); it was not "
                     "handed to qemu-img: look at it and try again")


def image_spec(vol: VolumeInfo, fd: int) -> str:
    """A qemu image spec for the volume open as `fd`, passed as /dev/fd/N: a link swapped in
    for the name after the open cannot redirect qemu, and a FIFO cannot block it. The format
    is the one the controller trusts (the json driver is qemu's -f). Every backing file is
    named here with its checked format, down to a "backing": null below the last one, so qemu
    never follows a name from a header (a relative one would be looked up under /dev/fd,
    and a guest-written one anywhere); the controller's chain check must have run, and the
    header is read again from `fd` to see that it names nothing that check did not see."""
    refuse_unchecked_header(vol, fd)
    spec: dict = {"driver": vol.format, "file": _file_node(f"/dev/fd/{fd}", fd=fd),
                  "backing": _backing_spec(vol)}
    return "json:" + json.dumps(spec)


def _backing_spec(vol: VolumeInfo) -> dict | None:
    if vol.backing is None:
        return None
    if vol.backing_chain is None:
        raise UnsafePath(f"the backing chain of '{vol.name}' was not checked; poolkeeper does "
                         "not hand qemu-img an image whose chain it has not checked")
    node: dict | None = None
    for store in reversed(vol.backing_chain):
        if not store.format:
            raise UnsafePath(f"'{vol.name}' does not state the format of its backing file "
                             f"'{store.path}'")
        node = {"driver": store.format, "file": _file_node(store.path), "backing": node}
    return node


def _file_node(path: str, fd: int | None = None) -> dict:
    """qemu's protocol node for a file or block device (qemu's 'file' driver refuses a
    block device: an LV or partition needs host_device)."""
    st = os.fstat(fd) if fd is not None else os.stat(path)
    return {"driver": "host_device" if stat.S_ISBLK(st.st_mode) else "file", "filename": path}
