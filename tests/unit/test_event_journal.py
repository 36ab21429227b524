"""The pool-event journal: two processes appending at once lose no line and split none,
across rotations; a reader starts at the end; rotation keeps one old generation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from backends.event_journal import JOURNAL, EventJournal, JournalReader

REPO = Path(__file__).resolve().parents[2]
WRITER = """
import sys, time
from pathlib import Path
from backends.event_journal import EventJournal
j = EventJournal(Path(sys.argv[1]), max_bytes=int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    j.append("lifecycle", sys.argv[4] + "-" + "x" * 40, str(i))
    time.sleep(0.0005)  # a busy verb rate; a reader loses only a whole journal skipped
"""


def test_a_reader_starts_at_the_end(tmp_path):
    EventJournal(tmp_path).append("lifecycle", "old", "Started")
    reader = JournalReader(tmp_path)
    assert reader.read() == []
    EventJournal(tmp_path).append("refresh", "new")
    assert reader.read() == [("refresh", "new", "")]
    assert reader.read() == []
    reader.close()


def test_a_reader_made_before_the_journal_sees_its_first_line(tmp_path):
    reader = JournalReader(tmp_path)
    EventJournal(tmp_path).append("lifecycle", "p", "Defined")
    assert reader.read() == [("lifecycle", "p", "Defined")]
    assert (os.stat(tmp_path / JOURNAL).st_mode & 0o777) == 0o600
    reader.close()


def test_two_writers_at_once_through_rotations(tmp_path):
    per_writer, cap = 1000, 48 * 1024  # ~170 KB in all: several rotations
    reader = JournalReader(tmp_path)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(cap),
                                 str(per_writer), who], cwd=REPO) for who in ("a", "b")]
    seen: list[tuple[str, str, str]] = []
    while any(w.poll() is None for w in writers):
        seen += reader.read()
        time.sleep(0.001)
    seen += reader.read()
    assert [w.returncode for w in writers] == [0, 0]
    for who in ("a", "b"):  # every line, whole, in its writer's order
        mine = [int(d) for _k, p, d in seen if p.startswith(who + "-")]
        assert mine == list(range(per_writer)), who
    assert len(seen) == 2 * per_writer
    assert os.path.getsize(tmp_path / (JOURNAL + ".1")) > cap  # rotated, capped
    assert os.path.getsize(tmp_path / JOURNAL) <= cap + 200
    for name in (JOURNAL, JOURNAL + ".1"):  # no split or merged line in either file
        for line in (tmp_path / name).read_bytes().splitlines():
            assert set(json.loads(line)) == {"kind", "pool", "detail"}
    reader.close()


def test_a_reader_two_rotations_behind_loses_nothing(tmp_path):
    journal, reader = EventJournal(tmp_path, max_bytes=1000), JournalReader(tmp_path)
    for i in range(25):  # ~1,500 bytes: rotated after ~16 lines, then the next ~16
        journal.append("lifecycle", "p", str(i))
    assert [int(d) for _k, _p, d in reader.read()] == list(range(25))
    reader.close()


def test_lines_that_are_not_events_are_skipped(tmp_path):
    reader = JournalReader(tmp_path)
    with open(tmp_path / JOURNAL, "ab") as fh:
        fh.write(b"garbage\n{\"kind\": \"other\", \"pool\": \"p\"}\n[1]\n")
    EventJournal(tmp_path).append("refresh", "p")
    assert reader.read() == [("refresh", "p", "")]
    reader.close()


def test_the_controller_journals_verbs_not_listings(ctl, pool, tmp_path):
    """pool-refresh and a finished upload are refresh events (libvirt's); a view's
    listing and a volume created are none; the monitor's sight of another process's
    stop is not journalled again."""
    from backends.model import VolumeDef

    reader = JournalReader(ctl.store.run_dir)
    ctl.list_volumes("p")
    ctl.create_volume_def("p", VolumeDef(name="v", capacity=1 << 20)).wait()
    assert reader.read() == []
    ctl.refresh_pool("p")
    assert reader.read() == [("refresh", "p", "")]
    src = tmp_path / "src"
    src.write_bytes(b"x" * 4096)
    job = ctl.upload_volume("p", "v", str(src))
    job.wait()
    deadline = time.monotonic() + 10  # its event follows the job's end
    seen: list[tuple[str, str, str]] = []
    while not seen and time.monotonic() < deadline:
        seen = reader.read()
        time.sleep(0.02)
    assert seen == [("refresh", "p", "")]
    ctl.poll()
    from backends.controller import StorageController

    with StorageController(ctl.paths.config_dir, create_default=False,
                           autostart=False) as other:
        other.stop_pool("p")
    ctl.poll()  # sees the stop: no second Stopped
    assert reader.read() == [("lifecycle", "p", "Stopped")]
    reader.close()
