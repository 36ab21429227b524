"""backends.fileid: the identity a format record is matched on (inode + birth time, else
generation, else the inode alone)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backends import fileid


def test_the_fd_and_the_path_give_the_same_identity(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fileid.of_fd(fd) == fileid.of_path(str(path))
    finally:
        os.close(fd)
    assert fileid.of_path(str(path))[0] == path.stat().st_ino


def test_writes_renames_and_growth_keep_it(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    before = fileid.of_path(str(path))
    with open(path, "r+b") as fh:
        fh.write(b"QFI\xfb" * 100)
        fh.truncate(1 << 20)
    os.chmod(path, 0o600)
    os.rename(path, tmp_path / "g")
    assert fileid.of_path(str(tmp_path / "g")) == before


def test_a_link_is_not_followed_and_a_device_not_opened(tmp_path: Path) -> None:
    (tmp_path / "link").symlink_to("/dev/null")
    assert fileid.of_path(str(tmp_path / "link"))[0] == os.lstat(tmp_path / "link").st_ino
    ino, _btime, gen = fileid.of_path("/dev/null")
    assert ino == os.stat("/dev/null").st_ino and gen is None


def test_without_birth_times_the_generation_is_used(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a filesystem without birth times (statx missing stands for it): the inode
    generation, where the filesystem keeps one (this /tmp is ext4 or tmpfs)."""
    monkeypatch.setattr(fileid, "_statx", None)
    path = tmp_path / "f"
    path.write_bytes(b"x")
    ino, btime, gen = fileid.of_path(str(path))
    assert (ino, btime) == (path.stat().st_ino, None)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert fileid._generation(fd) == gen  # None where the filesystem keeps none
    finally:
        os.close(fd)


@pytest.mark.parametrize(("record", "now", "same"), [
    ({"ino": 5, "btime": 10, "gen": None}, (5, 10, None), True),
    ({"ino": 5, "btime": 10, "gen": None}, (5, 11, None), False),  # recreated: new birth
    ({"ino": 5, "btime": None, "gen": 7}, (5, None, 8), False),  # new generation
    ({"ino": 5, "btime": 10, "gen": None}, (6, 10, None), False),
    ({"ino": 5, "btime": None, "gen": None}, (5, None, None), True),  # inode alone (NFS)
    ({"format": "raw", "ino": 5}, (5, 99, 3), True),  # written before birth times were kept
    # A field only one side has is not compared (the inode always is):
    ({"ino": 5, "btime": None, "gen": 7}, (5, 10, None), True),  # kernel now gives btime
    ({"ino": 5, "btime": None, "gen": 7}, (6, 10, None), False),
    ({"ino": 5, "btime": 10, "gen": None}, (5, None, 7), True),  # btime no longer given
    ({"ino": 5, "btime": 10, "gen": None}, (5, None, None), True),
    ({"ino": 5, "btime": None, "gen": 7}, (5, 10, 7), True),
    ({"ino": 5, "btime": None, "gen": 7}, (5, 10, 8), False),  # both have gen: it decides
    ({"ino": 5, "btime": 10, "gen": 7}, (5, 11, 7), False),  # both have btime: it decides
])
def test_same_file(record: dict, now: fileid.FileId, same: bool) -> None:
    assert fileid.same_file(record, now) is same


def test_a_record_made_without_birth_time_matches_its_file_once_there_is_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel upgrade case on a real file: recorded where statx gave no birth time
    (inode + generation), looked at again where it gives one (inode + birth time)."""
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with monkeypatch.context() as m:
        m.setattr(fileid, "_statx", None)
        record = fileid.record_fields(fileid.of_path(str(path)))
    now = fileid.of_path(str(path))
    assert record["btime"] is None and fileid.same_file(record, now)


@pytest.mark.parametrize(("record", "now", "identified"), [
    ({"ino": 5, "btime": 10, "gen": None}, (5, 10, None), True),
    ({"ino": 5, "btime": None, "gen": 7}, (5, None, 7), True),
    ({"ino": 5, "btime": None, "gen": 7}, (5, 10, None), False),  # the inode alone
    ({"ino": 5, "btime": None, "gen": None}, (5, None, None), False),
    ({"ino": 5}, (5, 10, None), False),
    ({"ino": 5, "btime": 10, "gen": None}, (5, 11, None), False),
])
def test_identifies_needs_more_than_the_inode(record: dict, now: fileid.FileId,
                                              identified: bool) -> None:
    """What a set-aside record must give to be taken over by another pool's listing: the
    same inode number on another filesystem is another file."""
    assert fileid.identifies(record, now) is identified


@pytest.mark.parametrize("statx", [True, False], ids=["statx", "fstat"])
def test_stat_fd_says_what_fstat_and_of_fd_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              statx: bool) -> None:
    """A listing's one statx per volume gives fstat's fields and of_fd's identity, for a
    regular file, a directory and a device; without statx, fstat and of_fd themselves."""
    if not statx:
        monkeypatch.setattr(fileid, "_statx", None)
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    os.utime(path, ns=(1_234_567_891, 9_876_543_219))
    for what in (path, tmp_path, Path("/dev/null")):
        fd = os.open(what, os.O_RDONLY | os.O_NONBLOCK)
        try:
            st = os.fstat(fd)
            assert what != path or (st.st_size, st.st_mtime_ns) == (5000, 9_876_543_219)
            assert fileid.stat_fd(fd) == (
                (st.st_mode, st.st_uid, st.st_gid, st.st_ino, st.st_size, st.st_blocks,
                 st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns), fileid.of_fd(fd, st))
        finally:
            os.close(fd)
