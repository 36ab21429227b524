"""Upload and download ranges that make no sense, and transfers of a volume
that is still being built.

Each is refused with one of poolkeeper's own errors and a message, before a byte of the
volume changes (hash before/after) and without creating or truncating a download target.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import (
    Busy,
    InsufficientSpace,
    InvalidSize,
    PoolkeeperError,
    ValidationError,
)
from backends.events import JobProgress
from backends.jobs import Job
from backends.model import VolumeDef

MiB = 1 << 20


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def vol(ctl, pool) -> Path:
    """A 1 MiB raw volume 'v.img' full of a pattern."""
    ctl.create_volume_def("p", VolumeDef(name="v.img", capacity=MiB)).wait(60)
    (pool / "v.img").write_bytes(bytes(range(256)) * (MiB // 256))
    return pool / "v.img"


@pytest.fixture
def payload(tmp_path) -> Path:
    path = tmp_path / "payload"
    path.write_bytes(b"\xee" * (64 * 1024))
    return path


# == upload =============================================================================
@pytest.mark.parametrize("offset, length, error, message", [
    (2 * MiB, None, ValidationError, "do not fit in 'v.img'"),  # offset past the end
    (MiB, None, ValidationError, "do not fit in 'v.img'"),  # at the end: nothing fits
    (MiB - 4096, None, ValidationError, "do not fit in 'v.img'"),  # runs past the end
    (MiB - 4096, 8192, ValidationError, "do not fit in 'v.img'"),  # length past the end
    (0, 0, InvalidSize, "length of 0"),
    (-1, None, InvalidSize, "offset must not be negative"),
    (0, -1, InvalidSize, "length must not be negative"),
])
def test_upload_ranges_that_do_not_fit_are_refused(ctl, vol, payload, offset, length, error,
                                                   message):
    before = (sha(vol), vol.stat().st_size)
    with pytest.raises(error, match=message):
        ctl.upload_volume("p", "v.img", str(payload), offset=offset, length=length).wait(30)
    assert (sha(vol), vol.stat().st_size) == before
    # the same volume still takes an upload that fits
    assert ctl.upload_volume("p", "v.img", str(payload), offset=MiB - 65536).wait(30) == 65536


def test_upload_from_a_pipe_stops_at_the_end_of_a_raw_volume(ctl, vol, tmp_path):
    """A pipe's size is unknown until it ends: the volume must not grow past its capacity."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError):  # the upload stops reading at the end
            fifo.write_bytes(b"\xaa" * (3 * MiB))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    with pytest.raises(InsufficientSpace, match="does not fit in the volume"):
        ctl.upload_volume("p", "v.img", str(fifo)).wait(30)
    assert vol.stat().st_size == MiB
    assert ctl.volume_info("p", "v.img").capacity == MiB
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # frees a writer still in open()
    writer.join(10)
    assert not writer.is_alive()


def test_upload_from_a_missing_file_names_it(ctl, vol, tmp_path):
    before = sha(vol)
    with pytest.raises(PoolkeeperError, match="cannot read '.*missing'"):
        ctl.upload_volume("p", "v.img", str(tmp_path / "missing")).wait(30)
    assert sha(vol) == before


# == download ===========================================================================
@pytest.mark.parametrize("offset, length, error, message", [
    (MiB + 1, None, ValidationError, "past the end of the volume"),
    (4 * MiB, 10, ValidationError, "past the end of the volume"),
    (0, 0, InvalidSize, "length of 0"),
    (-1, None, InvalidSize, "offset must not be negative"),
    (0, -5, InvalidSize, "length must not be negative"),
])
def test_download_ranges_past_the_end_are_refused(ctl, vol, tmp_path, offset, length, error,
                                                   message):
    before = sha(vol)
    new, existing = tmp_path / "new.img", tmp_path / "existing.img"
    existing.write_bytes(b"the user's own file")
    for dst in (new, existing):
        with pytest.raises(error, match=message):
            ctl.download_volume("p", "v.img", str(dst), offset=offset, length=length).wait(30)
    assert not new.exists()  # nothing created ...
    assert existing.read_bytes() == b"the user's own file"  # ... nor truncated
    assert sha(vol) == before


def test_download_length_past_the_end_stops_at_the_end(ctl, vol, tmp_path):
    """Not an error: like virsh, a download covers what there is."""
    out = tmp_path / "tail.img"
    assert ctl.download_volume("p", "v.img", str(out), offset=MiB - 100,
                               length=10 * MiB).wait(30) == 100
    assert out.read_bytes() == vol.read_bytes()[-100:]


# == a volume that is still being built =================================================
@pytest.fixture
def held_job(ctl) -> Iterator[Callable[[str], tuple[threading.Event, threading.Event]]]:
    """hold(kind) -> (reached, release): the next job of that kind stops at its first
    progress report (its file is being built then) until `release` is set (set at teardown
    too, so a failing test never leaves a job waiting)."""
    releases: list[threading.Event] = []

    def hold(kind: str) -> tuple[threading.Event, threading.Event]:
        reached, release = threading.Event(), threading.Event()
        releases.append(release)

        def on_event(event: object) -> None:
            if isinstance(event, JobProgress) and event.job.kind == kind \
                    and not reached.is_set():
                reached.set()
                release.wait(30)  # runs in the job's thread: the job waits here

        ctl.subscribe(on_event)
        return reached, release

    yield hold
    for release in releases:
        release.set()


def refuse_transfers_while_built(ctl: StorageController, job: Job, name: str,
                                 tmp_path: Path) -> None:
    payload, out = tmp_path / "payload", tmp_path / "out.img"
    payload.write_bytes(b"\xee" * 4096)
    for attempt in (lambda: ctl.upload_volume("p", name, str(payload)),
                    lambda: ctl.download_volume("p", name, str(out)),
                    lambda: ctl.wipe_volume("p", name),
                    lambda: ctl.resize_volume("p", name, 64 * MiB)):
        with pytest.raises(Busy, match=f"'{name}'.*busy.*being created"):
            attempt()  # refused at once, not queued behind the build
    assert not out.exists()
    assert not job.finished


def test_transfers_of_a_volume_being_created_are_refused(ctl, pool, tmp_path, held_job):
    reached, release = held_job("create")
    job = ctl.create_volume_def("p", VolumeDef(name="new.img", capacity=32 * MiB))
    assert reached.wait(30)
    refuse_transfers_while_built(ctl, job, "new.img", tmp_path)
    release.set()
    job.wait(60)
    assert (pool / "new.img").read_bytes() == bytes(32 * MiB)  # what create made, no more


def test_transfers_of_a_clone_being_made_are_refused(ctl, pool, tmp_path, held_job):
    ctl.create_volume_def("p", VolumeDef(name="src.img", capacity=32 * MiB)).wait(60)
    content = os.urandom(32 * MiB)
    (pool / "src.img").write_bytes(content)
    reached, release = held_job("clone")
    job = ctl.clone_volume("p", "src.img", "dst.img")
    assert reached.wait(30)
    refuse_transfers_while_built(ctl, job, "dst.img", tmp_path)
    release.set()
    job.wait(60)
    assert (pool / "dst.img").read_bytes() == content
