"""What the TUI draws of names, paths, error texts and command lines: backends.textsafe,
the CLI's escaping, with ASCII mode (--ascii, TERM=linux) as the encoding.

Every label, table cell, header, notification, dialog text and log line that holds such a
string goes through one of these (Rich and Textual pass ESC, the 8-bit CSI 0x9b and bidi
controls to the terminal as they are). Text is always put in as plain text, never markup.
"""

from __future__ import annotations

from backends import textsafe


def shown(text: str, ascii: bool = False) -> str:
    """A name, path or other data: textsafe.escape."""
    return textsafe.escape(text, "ascii" if ascii else None)


def shown_message(text: str, ascii: bool = False) -> str:
    """A message poolkeeper composed (names in it escaped already where they were put in)."""
    return textsafe.escape(text, "ascii" if ascii else None, keep_backslashes=True)


def shown_xml(xml: str, ascii: bool = False) -> str:
    """XML with what shown() would escape as character references: still the same XML."""
    try:
        return textsafe.escape_xml(xml, "ascii" if ascii else None)
    except ValueError:  # xmlio never writes what XML cannot carry; never draw it raw
        return shown_message(xml, ascii)
