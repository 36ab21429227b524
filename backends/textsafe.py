"""Text bound for a terminal: one escaping rule for the CLI and every TUI label, and the
characters a pool or volume name must not hold.

Names, paths, backing names and tool messages come from disk, from image headers and from
other programs: they may hold anything. Before any of them reaches a terminal, `escape`
turns these characters into backslash sequences:
  * the backslash itself (`\\\\`), so that the output is unambiguous: a name typed as
    `a\\x1b` shows as `a\\\\x1b`, never like the escaped ESC `a\\x1b`;
  * control characters (category Cc: C0, DEL, C1): ESC and the 8-bit CSI 0x9b drive the
    terminal;
  * format characters (Cf): bidi controls (U+061C, U+200E/F, U+202A-U+202E,
    U+2066-U+2069) reorder what follows them ("Trojan Source"); zero-width characters,
    the soft hyphen, the BOM and tag characters are invisible, so two different names
    would look the same;
  * line and paragraph separators (Zl, Zp), which some terminals take as a new line;
  * lone surrogates (Cs): the bytes of a file name that are not UTF-8 (os.fsdecode maps
    byte 0x9b to U+DC9B); shown as the original byte, `\\x9b`;
  * given an `encoding` (a strict ASCII stdout, the TUI's --ascii), whatever it cannot
    encode, so that writing the result never raises.
`\\xNN` is a byte (below 0x80 also the character), `\\uNNNN` and `\\UNNNNNNNN` a code
point: the C1 character U+009B shows as `\\u009b`, the undecodable byte 0x9b as `\\x9b`.
Everything else (accented letters, CJK, emoji) is shown as it is.

The categories are Python's Unicode database, read per character: no list to keep up to
date. Names refuse the same characters (backends.names), and a scan lists an existing file
whose name holds one with an error saying to rename it (drivers/dir.py).

The rule: messages (errors, warnings, a volume's error, a job's description) carry names
as they are, never escaped where they are composed; every string is escaped exactly once,
where it is written to the terminal (cli/output.py `printable`, tui/shown.py `shown`),
backslashes included, so a message can never show a name in two ways. A message names an
offending character by code point and Unicode name (`describe`: "U+202E RIGHT-TO-LEFT
OVERRIDE"), not by an escape. A message is one line: a newline in it is escaped like any
control character; the only line breaks on a terminal are between lines the front end
composed itself (a failed tool's last lines of stderr, each escaped on its own).
"""

from __future__ import annotations

import codecs
import re
import unicodedata

# Cc control, Cf format, Cs surrogate, Zl line separator, Zp paragraph separator.
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ASCII_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f\\]")
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE_BYTES = range(0xDC80, 0xDD00)  # os.fsdecode's surrogateescape of bytes 0x80-0xff
_XML_WHITESPACE = "\t\n\r"


def is_unsafe(ch: str) -> bool:
    """A character that must never reach a terminal as it is (nor be in a new name)."""
    return unicodedata.category(ch) in UNSAFE_CATEGORIES


def first_unsafe(text: str) -> str | None:
    """The first character of `text` that is_unsafe, or None."""
    if text.isascii():
        found = _ASCII_CONTROL_RE.search(text)
        return found.group() if found else None
    return next((ch for ch in text if is_unsafe(ch)), None)


def describe(ch: str) -> str:
    """'the control character U+001B', 'the invisible format character U+202E
    (RIGHT-TO-LEFT OVERRIDE)', 'the byte 0x9B, which is not UTF-8': for messages. The
    character is named, never put in (nor escaped: the message is escaped once where it
    is printed, and an escape would then show doubled)."""
    code = ord(ch)
    if code in _SURROGATE_BYTES:
        return f"the byte 0x{code - 0xDC00:02X}, which is not UTF-8"
    category = unicodedata.category(ch)
    name = unicodedata.name(ch, "")
    point = f"U+{code:04X}" + (f" ({name})" if name else "")
    if category == "Cc":
        return f"the control character {point}"
    if category == "Cs":
        return f"the lone surrogate {point}, which is not text"
    if category in ("Zl", "Zp"):
        return f"the line break character {point}"
    if category == "Cf":
        return f"the invisible format character {point}"
    return f"the character {point}"


def quoted(value: object) -> str:
    """A value for a message: text as it is, in quotes (escaped once where printed);
    anything else (a wrong type) as Python shows it."""
    return f"'{value}'" if isinstance(value, str) else repr(value)


def escape_char(ch: str) -> str:
    """The backslash sequence for one character (see the module docstring)."""
    code = ord(ch)
    if ch == "\\":
        return "\\\\"
    if code in _SURROGATE_BYTES:
        return f"\\x{code - 0xDC00:02x}"  # the byte the file name really holds
    if code < 0x80:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _is_utf(encoding: str | None) -> bool:
    if encoding is None:
        return True
    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-16", "utf-32")
    except LookupError:
        return False


def _encodable(ch: str, encoding: str) -> bool:
    try:
        ch.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def escape(text: str, encoding: str | None = None) -> str:
    """`text` made safe and unambiguous for a terminal, and encodable in `encoding` (None:
    any Unicode terminal). Applied once, to the whole string, where it is written."""
    if text.isascii():
        if not _ASCII_UNSAFE_RE.search(text):
            return text  # the common case: one C-level scan
        return _ASCII_UNSAFE_RE.sub(lambda m: escape_char(m.group()), text)
    check = None if _is_utf(encoding) else encoding
    out = []
    for ch in text:
        if ch == "\\" or is_unsafe(ch) or (
                check is not None and not ch.isascii() and not _encodable(ch, check)):
            out.append(escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


def escape_xml(xml: str, encoding: str | None = None) -> str:
    """XML (as xmlio writes it) for a terminal: every character `escape` would escape,
    and every one `encoding` cannot carry, becomes a character reference (&#x9b;), which
    means the same character to any XML reader, so the document stays valid and reads back
    the same. The document's own tab, newline and CR stay. Characters XML cannot carry at
    all (C0 controls, lone surrogates) raise ValueError: xmlio never writes them."""
    if xml.isascii() and not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", xml):
        return xml
    check = None if _is_utf(encoding) else encoding
    out = []
    for ch in xml:
        code = ord(ch)
        if ch in _XML_WHITESPACE or (code >= 0x20 and ch.isascii() and code != 0x7F):
            out.append(ch)
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"XML cannot carry {describe(ch)}")
        elif is_unsafe(ch) or (check is not None and not _encodable(ch, check)):
            out.append(f"&#x{code:x};")
        else:
            out.append(ch)
    return "".join(out)
