"""What the TUI draws of names, paths, messages and command lines: backends.textsafe,
the CLI's escaping, with ASCII mode (--ascii, TERM=linux) as the encoding.

Every label, table cell, header, notification, dialog text and log line that holds such a
string goes through `shown` exactly once, where it is drawn (Rich and Textual pass ESC, the
8-bit CSI 0x9b and bidi controls to the terminal as they are). Messages from the engine
carry names as they are (textsafe's rule), so a message is escaped like a name, backslashes
included: nothing is escaped before it is drawn, and nothing is drawn unescaped. Text of
several lines (a failed tool's last words) is escaped line by line (`shown_lines`), so a
newline inside a name never becomes a line break. Text is always put in as plain text,
never markup.
"""

from __future__ import annotations

from collections.abc import Iterable

from backends import textsafe


def shown(text: str, ascii: bool = False) -> str:
    """A name, path, message or other text: textsafe.escape, once, where it is drawn."""
    return textsafe.escape(text, "ascii" if ascii else None)


def shown_lines(lines: Iterable[str], ascii: bool = False) -> str:
    """Lines the TUI composed, each escaped (a newline inside one shows as \\x0a), joined
    by line breaks."""
    return "\n".join(shown(line, ascii) for line in lines)


def shown_xml(xml: str, ascii: bool = False) -> str:
    """XML with what shown() would escape as character references: still the same XML."""
    try:
        return textsafe.escape_xml(xml, "ascii" if ascii else None)
    except ValueError:  # xmlio never writes what XML cannot carry; never draw it raw
        return shown(xml, ascii)
