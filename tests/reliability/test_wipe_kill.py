"""A kill -9 at any moment of a zero wipe of a sparse raw volume leaves
its size as it was.

The wipe used to truncate the file to 0 and back to its size: a kill in between left a
0-byte volume (capacity 0). Now it punches holes, which never change the size.

A forked child wipes a sparse file with thousands of scattered pieces of data (so the wipe
has many steps) and is SIGKILLed at a random moment; the test keeps going until KILLS kills
landed mid-wipe (the child had said it started and had not said it finished), with a
generous cap on the attempts, and after every kill checks the size and that each piece of
data reads either as it was or as zeros. The random delays are spread over the time a
whole wipe takes here (measured first); nothing is asserted about time.
"""

from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path

from backends import fileops

MiB = 1 << 20
SIZE = 256 * MiB
STEP = 256 * 1024  # a 4 KiB piece of data every STEP bytes: 1024 pieces
PIECE = b"\xab" * 4096
KILLS = 20  # kills that must land mid-wipe
CAP = 400  # attempts before the test gives up (and fails: the kills never landed)


def make_volume(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, SIZE)
        for offset in range(0, SIZE, STEP):
            os.pwrite(fd, PIECE, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def wipe_in_child(path: Path, kill_after: float | None) -> tuple[bool, bool]:
    """Fork a child that wipes `path` with 'zero'; SIGKILL it `kill_after` seconds after it
    said it started (None: let it finish). Returns (started, finished) as the child said."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: no Python-level cleanup, only the wipe
        try:
            os.close(read_end)
            fd = os.open(path, os.O_RDWR)
            os.write(write_end, b"S")
            fileops.wipe_fd(fd, "zero")
            os.write(write_end, b"D")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        started = os.read(read_end, 1) == b"S"
        # The child's next word (or its end) before the delay is up: nothing to kill.
        if kill_after is not None and not select.select([read_end], [], [], kill_after)[0]:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        rest = b""
        while chunk := os.read(read_end, 16):
            rest += chunk
    finally:
        os.close(read_end)
    return started, rest == b"D"


def pieces_left(path: Path) -> int:
    """How many pieces still hold their data; fails on any byte that is neither the
    piece nor zero (a wipe must never leave anything else)."""
    left = 0
    with open(path, "rb") as fh:
        for offset in range(0, SIZE, STEP):
            fh.seek(offset)
            data = fh.read(4096)
            assert data in (PIECE, bytes(4096)), f"bytes at {offset} are neither data nor zeros"
            left += data == PIECE
    return left


def test_kill9_during_a_zero_wipe_of_a_sparse_volume_keeps_its_size(tmp_path: Path):
    vol = tmp_path / "vol.img"
    make_volume(vol)
    began = time.monotonic()
    assert wipe_in_child(vol, None) == (True, True)
    whole = time.monotonic() - began
    assert os.stat(vol).st_size == SIZE
    assert pieces_left(vol) == 0

    mid_wipe = 0
    for _attempt in range(CAP):
        make_volume(vol)
        started, finished = wipe_in_child(vol, random.uniform(0, whole * 1.2))
        assert started
        size = os.stat(vol).st_size
        assert size == SIZE, f"a kill mid-wipe left {size} bytes of {SIZE}"
        pieces_left(vol)
        mid_wipe += not finished
        if mid_wipe >= KILLS:
            break
    assert mid_wipe >= KILLS, f"only {mid_wipe} of {CAP} kills landed mid-wipe"
