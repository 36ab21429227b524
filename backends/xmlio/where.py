"""Where in the document a value came from, so that an error found later points there.

The XML -> model step notes each element's line under a key ("name", "device.0",
"target.path", ...); the checks raise `_err(message, element, where, key)` and the user
reads `<element> (line N): message` (just `<element>: message` for a definition built
in code, which has no lines).
"""

from __future__ import annotations

from lxml import etree

from ..errors import ValidationError


class _Where:
    """Line numbers of parsed elements, so semantic errors can point into the file."""

    def __init__(self) -> None:
        self.lines: dict[str, int] = {}

    def note(self, key: str, el: etree._Element | None) -> None:
        if el is not None and el.sourceline:
            self.lines[key] = el.sourceline

    def at(self, key: str) -> int | None:
        return self.lines.get(key)

    def alias(self, key: str, other: str) -> None:
        """A defaulted value is reported at the line of the element it came from."""
        line = self.lines.get(other)
        if line and key not in self.lines:
            self.lines[key] = line


def _err(message: str, element: str, where: _Where, key: str) -> ValidationError:
    return ValidationError(message, element=element, line=where.at(key))


def _relocate(exc: ValidationError, element: str, line: int | None) -> ValidationError:
    """Same error class and text, with the element and line we know."""
    raw = exc.message
    if exc.element:
        prefix = f"<{exc.element}>"
        if exc.line:
            prefix += f" (line {exc.line})"
        raw = raw.removeprefix(prefix + ": ")
    return type(exc)(raw, element=element, line=line)
