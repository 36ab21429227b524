"""RelaxNG validation against poolkeeper's own schemas (backends/schemas/*.rng).

The last line of defence after the structural walk and the value checks: a document that
got this far must also match the schema. Decides where the schemas are found, that the
pool types the schema allows are the registered ones (filled in at load, so a new type
needs no schema line unless it brings new XML), and how libxml2's messages are told to
the user (a reason in words, the element and its line, the schema's own message in
brackets).
"""

from __future__ import annotations

import re
import threading
from functools import cache
from pathlib import Path

from lxml import etree

from ..drivers import pool_types
from ..errors import ValidationError
from .reading import _make_parser

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

_RNG_LOCK = threading.Lock()  # lxml validators keep per-object state


RNG_NS = "http://relaxng.org/ns/structure/1.0"


def schema_tree(kind: str, types: tuple[str, ...]) -> etree._ElementTree:
    """The schema document, its list of pool types filled in with `types`."""
    tree = etree.parse(str(SCHEMA_DIR / f"{kind}.rng"), _make_parser())
    for choice in tree.iter(f"{{{RNG_NS}}}choice"):
        if choice.get("id") == "pool-types":
            del choice.attrib["id"]
            for pool_type in types:
                etree.SubElement(choice, f"{{{RNG_NS}}}value").text = pool_type
    return tree


def _schema(kind: str) -> etree.RelaxNG:
    return _compiled(kind, pool_types())


@cache
def _compiled(kind: str, types: tuple[str, ...]) -> etree.RelaxNG:
    return etree.RelaxNG(schema_tree(kind, types))


def _rng_validate(kind: str, root: etree._Element) -> None:
    """Last line of defence: the document must match our own RelaxNG schema."""
    schema = _schema(kind)
    with _RNG_LOCK:
        ok = schema.validate(root.getroottree())
        entries = list(schema.error_log)
    if ok:
        return
    if not entries:
        raise ValidationError(f"does not match poolkeeper's {kind} schema", element=kind)
    # libxml2 puts the most telling message first but often without a line; a later
    # entry usually carries the line and the element's path.
    first = entries[0]
    located = next((e for e in entries if e.line), first)
    raise ValidationError(
        f"does not match poolkeeper's {kind} schema: {_rng_reason(first)} "
        f"(schema message: {first.message.strip()})",
        element=_rng_element(located, kind),
        line=located.line or None,
    )


def _rng_element(entry: etree._LogEntry, default: str) -> str:
    path = getattr(entry, "path", None) or ""
    last = path.rstrip("/").rsplit("/", 1)[-1] if path else ""
    last = re.sub(r"\[\d+\]$", "", last)
    if last.startswith("*") or not last:
        m = re.search(r"[Ee]lement (\S+)", entry.message)
        return m.group(1).rstrip(":,") if m else default
    return last


def _rng_reason(entry: etree._LogEntry) -> str:
    kind = entry.type_name
    if "INTEREXTRA" in kind:
        return "this element is repeated, misplaced or holds an invalid value"
    if "EXTRA" in kind or "NOTALLOWED" in kind or "INTERSEQ" in kind:
        return "an element is not allowed here or appears too often"
    if "DATA" in kind or "VALUE" in kind or "INVALIDATTR" in kind:
        return "a value is not valid"
    if "NOELEM" in kind or "NOATTR" in kind or "ELEMMISSING" in kind:
        return "something required is missing"
    return "the structure is not valid"
