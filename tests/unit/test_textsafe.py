"""backends/textsafe.py: the one escaping rule for terminal text.
The behaviour through the CLI and the TUI: tests/reliability/test_terminal_output.py."""

from __future__ import annotations

import inspect
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from backends import textsafe
from tests.reliability.conftest import FUZZ_PROFILE


def unescape(text: str) -> str:
    """The inverse of textsafe.escape: \\\\, \\xNN (a byte: >= 0x80 is os.fsdecode's
    surrogate), \\uNNNN, \\UNNNNNNNN."""
    def one(m: re.Match[str]) -> str:
        token = m.group()
        if token == "\\\\":
            return "\\"
        code = int(token[2:], 16)
        if token[1] == "x" and code >= 0x80:
            return chr(0xDC00 + code)
        return chr(code)
    return re.sub(r"\\\\|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8}", one, text)


CASES = [
    ("plain.img", "plain.img"),
    ("lit\\x1b", "lit\\\\x1b"),  # a backslash typed literally
    ("esc\x1bname", "esc\\x1bname"),
    (os.fsdecode(b"bad\x9bbyte"), "bad\\x9bbyte"),  # not UTF-8: the byte
    ("c1\u009bname", "c1\\u009bname"),  # the C1 character
    ("rtl\u202egpj.exe", "rtl\\u202egpj.exe"),
    ("zero\u200bwidth", "zero\\u200bwidth"),
    ("\u2066iso\u2069", "\\u2066iso\\u2069"),
    ("\u061c", "\\u061c"),
    ("l\u2028m", "l\\u2028m"),
    ("\ufeffbom", "\\ufeffbom"),
    ("soft\u00adhy", "soft\\u00adhy"),
    ("\U000e0041", "\\U000e0041"),
    ("\x7f", "\\x7f"),
    ("\ud800", "\\ud800"),  # a lone surrogate that no byte gives
    ("caf\u00e9.img", "caf\u00e9.img"),
    ("\U0001f600", "\U0001f600"),
]


@pytest.mark.parametrize("raw, shown", CASES)
def test_escape_shows_each_kind_unambiguously(raw: str, shown: str) -> None:
    assert textsafe.escape(raw) == shown
    assert unescape(shown) == raw


def test_ascii_mode() -> None:
    assert textsafe.escape("caf\u00e9", "ascii") == "caf\\u00e9"
    assert textsafe.escape("caf\u00e9", "latin-1") == "caf\u00e9"


def test_messages_are_escaped_like_names() -> None:
    """One rule: a message holds names as they are and is escaped
    once, backslashes included, so a typed backslash never reads as an escape."""
    assert textsafe.escape("no volume named 'a\\x1b'") == "no volume named 'a\\\\x1b'"
    assert textsafe.escape("no volume named 'a\x1b'") == "no volume named 'a\\x1b'"
    assert list(inspect.signature(textsafe.escape).parameters) == ["text", "encoding"]


@pytest.mark.parametrize("ch, said", [
    ("\x1b", "the control character U+001B"),
    ("\u009b", "the control character U+009B"),
    ("\u202e", "the invisible format character U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("\u2028", "the line break character U+2028 (LINE SEPARATOR)"),
    ("\udc9b", "the byte 0x9B, which is not UTF-8"),
    ("\ud800", "the lone surrogate U+D800, which is not text"),
    ("\ufffe", "the character U+FFFE"),
])
def test_describe_names_the_character_without_putting_it_in(ch: str, said: str) -> None:
    assert textsafe.describe(ch) == said
    assert textsafe.escape(said) == said  # nothing in it to escape, no backslash


@settings(settings.get_profile(FUZZ_PROFILE))
@given(st.text(st.characters(blacklist_categories=()), max_size=40))
def test_escaping_is_safe_encodable_and_reversible(text: str) -> None:
    for encoding in (None, "ascii", "latin-1"):
        out = textsafe.escape(text, encoding)
        assert textsafe.first_unsafe(out) is None
        out.encode(encoding or "utf-8")  # never raises
        assert unescape(out) == text


@settings(settings.get_profile(FUZZ_PROFILE))
@given(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<&\r"),
               max_size=40).filter(lambda t: not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", t)))
def test_xml_character_references_read_back(text: str) -> None:
    for encoding in (None, "ascii"):
        xml = textsafe.escape_xml(f"<a>{text}</a>", encoding)
        assert textsafe.first_unsafe(xml.replace("\n", "").replace("\t", "")) is None
        xml.encode(encoding or "utf-8")
        assert (etree.fromstring(xml.encode()).text or "") == text


@pytest.mark.parametrize("bad", ["\x1b", "\udc9b"])
def test_xml_never_gets_what_it_cannot_carry(bad: str) -> None:
    with pytest.raises(ValueError):
        textsafe.escape_xml(f"<a>{bad}</a>")
