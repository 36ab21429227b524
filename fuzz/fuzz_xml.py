"""atheris harness: the pool, volume and secret XML readers (backends/xmlio/,
backends/secret_defs.py).

Every input is parsed as a pool, as a volume (for a pool type picked from its length) and as
a secret, as bytes and, where it decodes, as str. Allowed outcomes: a definition that formats and
parses back to itself, or one of our own errors (PoolkeeperError). Anything else -- any
other exception, or an accepted document that does not read back -- is a crash, saved by
libFuzzer under -artifact_prefix.

Run by `make fuzz` (fuzz/run.py, which seeds the corpus with tests/data/xml/*/*.xml and
uses fuzz/xml.dict); by hand:
    .venv/bin/python fuzz/fuzz_xml.py -max_total_time=60 -dict=fuzz/xml.dict CORPUS_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["backends"]):
    from backends.drivers import pool_types
    from fuzz.checks import check_parse

TYPES = (None, *pool_types())


def test_one_input(data: bytes) -> None:
    pool_type = TYPES[len(data) % len(TYPES)]
    check_parse(data, pool_type)
    try:
        text = data.decode("utf-8", "surrogatepass")  # lone surrogates reach the str path
    except UnicodeDecodeError:
        return
    check_parse(text, pool_type)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
