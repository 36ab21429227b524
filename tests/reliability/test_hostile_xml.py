"""Hostile pool and volume XML, end to end.

tests/unit/test_xmlio.py checks the parser itself; here the same attacks come in the ways a
person sends them: StorageController.define_pool / create_volume, and the CLI's pool-define
and vol-create with a file or stdin (in-process, and once as a real process). Each document
is refused in under a second (generous: refused quickly = not parsed) with a message and no
traceback, and:
  * nothing was opened: an HTTP listener on 127.0.0.1 that the documents name (external
    DTD, parameter entities, XInclude) records every connection and must get none; a DTD or
    entity that names a FIFO would block its opener (the parse runs in a thread with a
    timeout, and the FIFO must never have had a reader);
  * nothing was stored or made: no pool definition, no volume file;
  * memory stays bounded: a 23 MB document is refused by its size before a tree is built
    (tracemalloc peak in-process; the child's ru_maxrss for a real CLI reading stdin).
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backends.controller import StorageController
from backends.errors import ValidationError, XMLError
from backends.xmlio import MAX_XML_BYTES
from tests.unit.test_xmlio import _fifo_has_reader

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
HUGE = 23 * 1000 * 1000  # a 23 MB document: far past any real definition
DEADLINE = 1.0  # CPU seconds: the bound for each refusal
PASSWD_MARK = "root:x:0:0"  # what /etc/passwd would leak into a message

POOL = "<pool type='dir'><name>{name}</name><target><path>/srv/pk-x</path></target>{extra}" \
       "</pool>"
VOLUME = "<volume><name>{name}</name><capacity unit='bytes'>1048576</capacity>{extra}" \
         "</volume>"
LAUGHS = "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))


# == the listener and the FIFO =========================================================
class Listener:
    """A TCP server on 127.0.0.1 that records every connection (and answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections.append(addr)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept() at once
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "dtd.fifo"
    os.mkfifo(path)
    try:
        yield path
    finally:
        _fifo_has_reader(path)  # opening it for writing releases a reader stuck in open()


def run_bounded(fn: Callable[[], object], timeout: float = 10.0
                ) -> tuple[float, BaseException | None]:
    """(CPU seconds fn() took, exception raised) of fn() run in a thread; fails if it hangs.
    The work is measured in the thread's CPU time (time.thread_time), which a loaded machine
    does not inflate; a wait that costs no CPU is caught by the join's timeout instead."""
    box: dict[str, object] = {"exc": None, "took": None}

    def target() -> None:
        start = time.thread_time()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["exc"] = exc
        box["took"] = time.thread_time() - start

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the call blocked for more than {timeout} s"
    return box["took"], box["exc"]  # type: ignore[return-value]


# == the documents =====================================================================
def hostile_documents(kind: str, port: int, fifo: Path) -> dict[str, str | bytes]:
    """name -> document, for a <pool> (kind 'pool') or a <volume> (kind 'volume')."""
    template = POOL if kind == "pool" else VOLUME
    other = VOLUME if kind == "pool" else POOL
    url = f"http://127.0.0.1:{port}"

    def doc(name: str = "x", prolog: str = "", extra: str = "") -> str:
        return prolog + template.format(name=name, extra=extra)

    xi = "xmlns:xi='http://www.w3.org/2001/XInclude'"
    docs: dict[str, str | bytes] = {
        "file-entity": doc("&x;", f'<!DOCTYPE {kind} [<!ENTITY x SYSTEM '
                                  '"file:///etc/passwd">]>\n'),
        "path-entity": doc("&x;", f'<!DOCTYPE {kind} [<!ENTITY x SYSTEM "/etc/passwd">]>'),
        "parameter-entities": doc("x", f'<!DOCTYPE {kind} [\n<!ENTITY % file SYSTEM '
                                       f'"file:///etc/passwd">\n<!ENTITY % dtd SYSTEM '
                                       f'"{url}/evil.dtd">\n%dtd;\n]>\n'),
        "external-dtd-http": doc("x", f'<!DOCTYPE {kind} SYSTEM "{url}/ext.dtd">\n'),
        "external-dtd-public": doc("x", f'<!DOCTYPE {kind} PUBLIC "-//pk//test//EN" '
                                        f'"{url}/pub.dtd">\n'),
        "external-dtd-fifo": doc("x", f'<!DOCTYPE {kind} SYSTEM "{fifo}">\n'),
        "entity-fifo": doc("&e;", f'<!DOCTYPE {kind} [<!ENTITY e SYSTEM "{fifo}">]>\n'),
        "parameter-entity-fifo": doc("x", f'<!DOCTYPE {kind} [<!ENTITY % p SYSTEM '
                                          f'"{fifo}"> %p;]>\n'),
        "billion-laughs": doc("&lol9;", f'<?xml version="1.0"?>\n<!DOCTYPE {kind} '
                                        f'[<!ENTITY lol0 "lol">{LAUGHS}]>\n'),
        "quadratic-blowup": doc("&a;" * 20_000, f'<!DOCTYPE {kind} [<!ENTITY a '
                                                 f'"{"A" * 40_000}">]>\n'),
        "doctype-after-comment": doc("x", "<!-- hello -->\n<!DOCTYPE x>\n"),
        "xinclude-file": doc("x", extra=f"<xi:include {xi} href='/etc/passwd' "
                                        "parse='text'/>"),
        "xinclude-http": doc("x", extra=f"<xi:include {xi} href='{url}/inc.xml'/>"),
        "duplicate-name": template.format(name="x", extra="<name>y</name>"),
        "wrong-root": other.format(name="x", extra=""),
        "wrong-root-domain": "<domain type='kvm'><name>x</name></domain>",
        "invalid-utf8": doc("x\xff").encode("latin-1"),
        "huge-23MB": doc("x" * HUGE).encode(),
    }
    if kind == "pool":
        docs["duplicate-target"] = POOL.format(
            name="x", extra="<target><path>/srv/pk-y</path></target>")
        docs["missing-target"] = "<pool type='dir'><name>x</name></pool>"
        docs["unknown-element"] = POOL.format(name="x", extra="<evil/>")
    else:
        docs["duplicate-capacity"] = VOLUME.format(name="x", extra="<capacity>2</capacity>")
        docs["missing-capacity"] = "<volume><name>x</name></volume>"
        docs["unknown-element"] = VOLUME.format(name="x", extra="<evil/>")
    return docs


DOC_NAMES = sorted(hostile_documents("pool", 1, Path("/f")))
VOLUME_DOC_NAMES = sorted(hostile_documents("volume", 1, Path("/f")))


def check_refusal(took: float, exc: BaseException | None) -> str:
    assert isinstance(exc, XMLError | ValidationError), repr(exc)
    message = str(exc)
    assert took < DEADLINE, f"refused after {took:.2f} s: {message}"
    assert message and PASSWD_MARK not in message and "Traceback" not in message
    assert len(message) < 1000, message  # a 23 MB document is not echoed back
    return message


# == through the controller ============================================================
@pytest.mark.parametrize("case", DOC_NAMES)
def test_define_pool_refuses(ctl: StorageController, listener: Listener, fifo: Path,
                             case: str) -> None:
    doc = hostile_documents("pool", listener.port, fifo)[case]
    for data in (doc, doc.encode() if isinstance(doc, str) else doc):
        took, exc = run_bounded(lambda d=data: ctl.define_pool(d))
        check_refusal(took, exc)
    assert not _fifo_has_reader(fifo)
    assert ctl.pool_names() == []
    assert listener.connections == []


@pytest.mark.parametrize("case", VOLUME_DOC_NAMES)
def test_create_volume_refuses(ctl: StorageController, pool: Path, listener: Listener,
                               fifo: Path, case: str) -> None:
    doc = hostile_documents("volume", listener.port, fifo)[case]
    took, exc = run_bounded(lambda: ctl.create_volume("p", doc))
    check_refusal(took, exc)
    assert not _fifo_has_reader(fifo)
    assert list(pool.iterdir()) == []
    assert ctl.jobs.running() == []
    assert listener.connections == []


def test_the_listener_and_the_fifo_can_tell(listener: Listener, fifo: Path) -> None:
    """The two witnesses above can fail: a fetch of the URL is recorded, an open of the
    FIFO is seen (and released)."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listener.port),
                                                                 1):
        pass
    deadline = time.monotonic() + 5
    while not listener.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener.connections
    opened = threading.Thread(target=lambda: os.close(os.open(fifo, os.O_RDONLY)),
                              daemon=True)
    opened.start()
    deadline = time.monotonic() + 5
    while not _fifo_has_reader(fifo) and time.monotonic() < deadline:
        time.sleep(0.01)
    opened.join(5)
    assert not opened.is_alive()


# == through the CLI (in-process) ======================================================
def assert_cli_refuses(cli, args: tuple[str, ...], listener, fifo) -> None:
    """One `error:` line, exit 1, quickly, nothing fetched or opened, no file content shown."""
    results: list = []
    took, exc = run_bounded(lambda: results.append(cli(*args)))
    assert exc is None and took < DEADLINE, (took, exc)
    r = results[0]
    assert r.code == 1 and r.out == "", r
    errors = [line for line in r.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in r.err and PASSWD_MARK not in r.err, r
    assert not _fifo_has_reader(fifo)
    assert listener.connections == []


@pytest.mark.parametrize("case", DOC_NAMES)
def test_cli_pool_define_refuses(cli, tmp_path, listener, fifo, case) -> None:
    doc = hostile_documents("pool", listener.port, fifo)[case]
    path = tmp_path / "pool.xml"
    path.write_bytes(doc.encode() if isinstance(doc, str) else doc)
    assert_cli_refuses(cli, ("pool-define", str(path)), listener, fifo)
    # the first CLI call on a root makes the default pool: nothing else may be there
    assert {f.stem for f in (tmp_path / "state" / "storage").glob("*.xml")} <= {"default"}


@pytest.mark.parametrize("case", VOLUME_DOC_NAMES)
def test_cli_vol_create_refuses(cli, pool, tmp_path, listener, fifo, case) -> None:
    doc = hostile_documents("volume", listener.port, fifo)[case]
    path = tmp_path / "vol.xml"
    path.write_bytes(doc.encode() if isinstance(doc, str) else doc)
    assert_cli_refuses(cli, ("vol-create", "p", str(path)), listener, fifo)
    assert list(pool.iterdir()) == []


# == memory: the size cap comes before any parsing =====================================
def peak_while(fn: Callable[[], object]) -> tuple[int, BaseException | None]:
    """Bytes allocated at the peak of fn() (tracemalloc), and what it raised."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        try:
            fn()
            exc = None
        except BaseException as caught:  # noqa: BLE001 - handed to the test
            exc = caught
        return tracemalloc.get_traced_memory()[1] - base, exc
    finally:
        tracemalloc.stop()


def test_huge_document_is_refused_by_size_without_building_a_tree(ctl, pool) -> None:
    name = "x" * HUGE
    pool_doc = POOL.format(name=name, extra="")
    vol_doc = VOLUME.format(name=name, extra="")
    def create(doc: str | bytes) -> object:
        return ctl.create_volume("p", doc)

    for doc, verb in ((pool_doc, ctl.define_pool), (pool_doc.encode(), ctl.define_pool),
                      (vol_doc, create), (vol_doc.encode(), create)):
        start = time.thread_time()  # CPU time: the work, not the machine's load
        peak, exc = peak_while(lambda d=doc, v=verb: v(d))
        assert time.thread_time() - start < DEADLINE
        assert isinstance(exc, XMLError) and f"at most {MAX_XML_BYTES} bytes" in str(exc)
        assert peak < MiB, f"refusing a {HUGE}-byte document allocated {peak} bytes"


@contextlib.contextmanager
def stdin_pipe(data: bytes) -> Iterator[io.TextIOWrapper]:
    """A real pipe as stdin, fed `data` by a thread (a BytesIO would hand out its buffer
    without copying, and hide an unbounded read); closed after the block, which ends the
    writer with EPIPE."""
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        view = memoryview(data)
        with contextlib.suppress(OSError):
            while view:
                view = view[os.write(write_fd, view[:65536]):]
        os.close(write_fd)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    stdin = io.TextIOWrapper(open(read_fd, "rb"))  # noqa: SIM115 - closed below
    try:
        yield stdin
    finally:
        stdin.close()
        writer.join(10)


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_cli_reads_a_huge_document_only_up_to_a_bound(cli, tmp_path, monkeypatch,
                                                      source) -> None:
    data = POOL.format(name="x" * HUGE, extra="").encode()
    path = tmp_path / "huge.xml"
    path.write_bytes(data)
    results: list = []
    with contextlib.ExitStack() as stack:
        if source == "stdin":
            monkeypatch.setattr(sys, "stdin", stack.enter_context(stdin_pipe(data)))
            args = ("pool-define", "-")
        else:
            args = ("pool-define", str(path))
        start = time.thread_time()  # CPU time: the work, not the machine's load
        peak, exc = peak_while(lambda: results.append(cli(*args)))
        took = time.thread_time() - start
    assert exc is None and took < 2 * DEADLINE, (exc, took)
    r = results[0]
    assert r.code == 1 and "larger than the 1 MiB" in r.err and "Traceback" not in r.err, r
    assert peak < 8 * MiB, f"the CLI allocated {peak} bytes for a {HUGE}-byte document"


def _cli_process(state: Path, stdin_file: Path) -> tuple[int, str, int]:
    """A real `poolkeeper pool-define -` reading `stdin_file`: (exit code, stderr,
    peak RSS in KiB of that child, from wait4)."""
    with open(stdin_file, "rb") as stdin:
        proc = subprocess.Popen([sys.executable, "-m", "tui", "--root", str(state),
                                 "pool-define", "-"], cwd=REPO, stdin=stdin,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err, usage.ru_maxrss


def test_a_real_cli_process_refuses_with_bounded_memory(tmp_path: Path) -> None:
    small = tmp_path / "small.xml"
    small.write_text("<!DOCTYPE pool>" + POOL.format(name="x", extra=""))
    huge = tmp_path / "huge.xml"
    huge.write_bytes(POOL.format(name="x" * HUGE, extra="").encode())
    code, err, rss_small = _cli_process(tmp_path / "s1", small)
    assert code == 1 and "DOCTYPE" in err and "Traceback" not in err, err
    code, err, rss_huge = _cli_process(tmp_path / "s2", huge)
    assert code == 1 and "1 MiB" in err and "Traceback" not in err, err
    # reading all 23 MB would show as >= 22000 KiB more
    assert rss_huge - rss_small < 12 * 1024, (rss_small, rss_huge)
