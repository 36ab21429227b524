"""Byte-level work on volumes, by file descriptor.

Everything here works on an open fd so that block devices (partitions, LVs) reuse the
same code as image files. All of it streams with bounded memory, reports progress (and
is cancelled) through a JobContext between chunks, and never follows a symlink for a
destructive act: names are opened relative to a pool directory fd with O_NOFOLLOW.

Nothing here blocks beyond a cancel: pipes, FIFOs and terminals (upload sources, download
destinations) are opened O_NONBLOCK and waited for with poll in WAIT_POLL steps that look
at the cancel flag, and tools (scrub) run through runner.run, which kills them on cancel.

Offsets are always explicit (pread/pwrite/copy_file_range), so the file position of
the fds passed in is left unspecified (SEEK_DATA/SEEK_HOLE move it).

The modules: primitives (chunk sizes, progress, checked reads and writes), sparse (holes),
opening (open_volume), sizing (allocate, resize), building (new files published whole,
create_raw), clone, wipe, streams (what upload and download share), upload, download.
Callers use the names below from the package.
"""

from .building import (
    FS_IOC_GETFLAGS,
    FS_IOC_SETFLAGS,
    FS_NOCOW_FL,
    PARTIAL_DATA,
    RENAME_NOREPLACE,
    Partial,
    building,
    create_raw,
    remove_partials,
)
from .clone import COPY_CHUNK, FICLONE, FICLONERANGE, READAHEAD, clone_fd, clone_file, clone_into
from .download import (
    TargetCheck,
    checking_download_targets,
    download_fd,
    link_refusal,
    open_download_target,
)
from .opening import open_volume
from .primitives import BLKGETSIZE64, CHUNK_SIZE, EXTENT_CHUNK, PROGRESS_STEP, MiB, fallocate
from .sizing import allocation_of, has_data_beyond, resize_raw_fd
from .sparse import PIECE
from .streams import WAIT_POLL, check_range
from .upload import refuse_upload_past_end, upload_amount, upload_fd
from .wipe import (
    BLKDISCARD,
    DIRECT_ALIGN,
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    SCRUB_ALGORITHMS,
    SCRUB_TIMEOUT,
    wipe_fd,
)

__all__ = [
    "BLKDISCARD",
    "BLKGETSIZE64",
    "CHUNK_SIZE",
    "COPY_CHUNK",
    "DIRECT_ALIGN",
    "EXTENT_CHUNK",
    "FALLOC_FL_KEEP_SIZE",
    "FALLOC_FL_PUNCH_HOLE",
    "FICLONE",
    "FICLONERANGE",
    "FS_IOC_GETFLAGS",
    "FS_IOC_SETFLAGS",
    "FS_NOCOW_FL",
    "PARTIAL_DATA",
    "PIECE",
    "PROGRESS_STEP",
    "READAHEAD",
    "RENAME_NOREPLACE",
    "SCRUB_ALGORITHMS",
    "SCRUB_TIMEOUT",
    "WAIT_POLL",
    "MiB",
    "Partial",
    "TargetCheck",
    "allocation_of",
    "building",
    "check_range",
    "checking_download_targets",
    "clone_fd",
    "clone_file",
    "clone_into",
    "create_raw",
    "download_fd",
    "fallocate",
    "has_data_beyond",
    "link_refusal",
    "open_download_target",
    "open_volume",
    "refuse_upload_past_end",
    "remove_partials",
    "resize_raw_fd",
    "upload_amount",
    "upload_fd",
    "wipe_fd",
]
