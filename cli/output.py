"""How the CLI writes to the terminal: escaped text, tables, JSON and a job's progress.

Every string bound for the terminal goes through backends.textsafe, exactly once, where it
is written: names, paths, errors, warnings and job descriptions with `printable` (control,
bidi and invisible characters, undecodable bytes and the backslash escaped, in what the
stream can encode; engine messages hold names as they are, so a message is escaped like a
name), XML with `printable_xml` (character references, so it stays valid XML). JSON is
ASCII (json's \\u escapes). The virsh-shaped listings are cli.virsh_text.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TextIO

from backends import textsafe
from backends.errors import PoolkeeperError

if TYPE_CHECKING:  # cli.quick lists pools with this module and no more of the engine
    from backends.jobs import Job


def _encoding(stream: TextIO | None) -> str | None:
    return getattr(sys.stdout if stream is None else stream, "encoding", None)


def printable(text: str, stream: TextIO | None = None) -> str:
    """A name, path, message or other text, safe and unambiguous on the terminal and
    encodable by `stream` (stdout by default): textsafe.escape, once."""
    return textsafe.escape(text, _encoding(stream))


def printable_xml(xml: str, stream: TextIO | None = None) -> str:
    """XML with the characters printable would escape as character references (&#x9b;)."""
    try:
        return textsafe.escape_xml(xml, _encoding(stream))
    except ValueError as exc:  # xmlio never writes these; never print them raw
        raise PoolkeeperError(f"cannot show the XML: {exc}") from None


def _line_encoder() -> Callable[[Any], str]:
    """json.dumps(item) for many items: one C encoder made once (json.dumps makes one per
    call, which doubles the time of 10,000 volumes); json's own where the C one is not."""
    import json
    from json import encoder

    if encoder.c_make_encoder is None:
        return json.JSONEncoder().encode
    make = encoder.c_make_encoder(None, json.JSONEncoder().default,
                                  encoder.encode_basestring_ascii, None, ": ", ", ",
                                  False, False, True)
    return lambda item: "".join(make(item, 0))


def dump_json(out: TextIO, data: Any) -> None:
    """Valid JSON, one list item per line: json's C encoder does it (indent= would take
    the pure-Python one, 20x slower: 0.6 s for 10,000 volumes), and a line per pool or
    volume still reads and greps well. An object (pool-info, vol-info) is indented."""
    import json  # here: cli.quick lists pools without it

    if isinstance(data, list):
        out.write("[\n" + ",\n".join(map(_line_encoder(), data)) + "\n]\n" if data else "[]\n")
    else:
        json.dump(data, out, indent=2)
        out.write("\n")


def dump_json_lines(out: TextIO, items: Iterable[str]) -> None:
    """dump_json of a list whose items are already JSON text (one a line), written
    _CHUNK lines at a time: the whole text of 10,000 volumes is 3 MB, and it and its
    encoded copy took fresh memory (~8 ms more), where each chunk reuses the last's."""
    from itertools import islice

    lines = iter(items)
    chunk = list(islice(lines, _CHUNK))
    if not chunk:
        out.write("[]\n")
        return
    out.write("[\n" + ",\n".join(chunk))
    while chunk := list(islice(lines, _CHUNK)):
        out.write(",\n" + ",\n".join(chunk))
    out.write("\n]\n")


_CHUNK = 256


def wait_job(job: Job, err: TextIO) -> Any:
    """Wait for a job, drawing progress on a terminal; Ctrl-C cancels it."""
    from backends.units import human
    show = err.isatty()
    try:
        while not job.finished:
            if show and job.total:
                frac = job.fraction or 0.0
                bar = "#" * int(frac * 30)
                eta = f" ETA {job.eta:.0f}s" if job.eta is not None else ""
                err.write(f"\r{printable(job.description, err)}: [{bar:<30}] "
                          f"{frac * 100:5.1f}% "
                          f"{human(int(job.rate))}/s{eta}   ")
                err.flush()
            job.join(0.2)
    except KeyboardInterrupt:
        job.cancel()
        job.join()
    if show and job.total:
        err.write("\r" + " " * 100 + "\r")
    result = job.wait()
    for warning in job.warnings:
        err.write(f"warning: {printable(warning, err)}\n")
    return result

