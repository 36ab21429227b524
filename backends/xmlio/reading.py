"""Untrusted XML bytes or text -> an lxml root element, hardened before any parser runs.

Decides what input is read at all: at most MAX_XML_BYTES, UTF-8 only (a declared other
encoding is refused, not guessed), no DOCTYPE, DTD or entity definition (refused on the
text, so nothing a DTD names -- a FIFO, a URL, a file -- is ever opened and no entity is
ever expanded), no XInclude; and the parser settings (entities, DTDs and network off; one
fresh parser per call, as lxml parsers must not be shared between threads). Every refusal
names the line.
"""

from __future__ import annotations

import re

from lxml import etree

from ..errors import XMLError
from ..textsafe import describe

MAX_XML_BYTES = 1024 * 1024  # input size cap, checked before parsing

XINCLUDE_NS = "http://www.w3.org/2001/XInclude"
_DECL_RE = re.compile(r"\A<\?xml\s[^<>]*?\?>")
_ENCODING_RE = re.compile(r"""encoding\s*=\s*["']([^"']*)["']""")
_SYNTAX_POS_RE = re.compile(r",\s*line \d+, column \d+\s*$")
_UTF8_NAMES = ("utf-8", "utf8", "us-ascii", "ascii")


def _read_document(text: str | bytes, root_tag: str) -> etree._Element:
    """Bytes/str -> checked lxml root element named `root_tag`."""
    data = _prepare_input(text)
    root = _parse_bytes(data)
    _refuse_xinclude(root)
    if root.tag != root_tag:
        raise XMLError(
            f"the document's root element is <{_display_tag(root)}> (line {root.sourceline}); "
            f"a {root_tag} definition must start with <{root_tag}"
            + (" type='...'>" if root_tag == "pool" else ">")
        )
    return root


def _prepare_input(text: str | bytes) -> bytes:
    """Size cap, UTF-8 check, XML declaration and DOCTYPE handling; returns UTF-8 bytes."""
    if isinstance(text, bytearray | memoryview):
        text = bytes(text)
    if isinstance(text, bytes):
        _check_size(len(text))
        decoded = _decode_utf8(text)
        from_bytes = True
    elif isinstance(text, str):
        _check_size(len(text))  # a character is at least one byte: refuse before encoding
        decoded = text
        from_bytes = False
    else:
        raise TypeError(f"XML must be str or bytes, not {type(text).__name__}")
    decoded = decoded.removeprefix("\ufeff")
    decoded = _strip_declaration(decoded, from_bytes)
    _refuse_doctype(decoded)
    try:
        data = decoded.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = decoded.count("\n", 0, exc.start) + 1
        raise XMLError(
            f"line {line}: the text is not valid Unicode: it holds "
            f"{describe(decoded[exc.start])}; save the file as UTF-8"
        ) from None
    _check_size(len(data))
    return data


def _check_size(size: int) -> None:
    if size > MAX_XML_BYTES:
        raise XMLError(
            f"the XML document is {size} bytes; poolkeeper accepts at most {MAX_XML_BYTES} "
            "bytes (1 MiB) for a pool or volume definition"
        )


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise XMLError(
            f"line {line}: the document is not valid UTF-8 (byte 0x{data[exc.start]:02x} at "
            f"offset {exc.start}); poolkeeper reads UTF-8 only: convert the file, e.g. with "
            "iconv -t UTF-8"
        ) from None


def _strip_declaration(text: str, from_bytes: bool) -> str:
    """Drop the <?xml ...?> declaration (we hand lxml UTF-8 bytes), keeping line numbers.

    Its encoding= would otherwise make lxml decode our UTF-8 bytes as something else.
    """
    m = _DECL_RE.match(text)
    if not m:
        return text
    enc = _ENCODING_RE.search(m.group(0))
    if from_bytes and enc and enc.group(1).lower() not in _UTF8_NAMES and not text.isascii():
        raise XMLError(
            f"line 1: the document declares encoding '{enc.group(1)}' but poolkeeper reads "
            f"UTF-8 only; convert it (iconv -f {enc.group(1)} -t UTF-8) and change the "
            "declaration to encoding='UTF-8'"
        )
    return "\n" * m.group(0).count("\n") + text[m.end() :]


def _refuse_doctype(text: str) -> None:
    """Refuse any <!...> markup before the root element: DOCTYPE, entities, DTDs.

    Done on the text, before parsing, so that nothing a DTD names (a FIFO, a URL, a
    file) is ever opened and no entity is ever expanded.
    """
    pos, n = 0, len(text)
    while pos < n:
        if text[pos] in " \t\r\n":
            pos += 1
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            if end < 0:
                return  # unterminated comment: the parser reports it
            pos = end + 3
        elif text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            if end < 0:
                return
            pos = end + 2
        elif text.startswith("<!", pos):
            line = text.count("\n", 0, pos) + 1
            if text[pos + 2 : pos + 9].upper() == "DOCTYPE":
                raise XMLError(
                    f"line {line}: the document has a <!DOCTYPE ...> declaration; poolkeeper "
                    "refuses DTDs and entity definitions (they can read files or expand "
                    "without limit): remove the DOCTYPE"
                )
            raise XMLError(
                f"line {line}: unexpected '<!' markup before the root element; "
                "remove it (DTDs and entity declarations are not accepted)"
            )
        else:
            return


def _make_parser() -> etree.XMLParser:
    """A fresh hardened parser (lxml parsers must not be shared between threads)."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        attribute_defaults=False,
        recover=False,
        strip_cdata=True,
    )


def _parse_bytes(data: bytes) -> etree._Element:
    try:
        root = etree.fromstring(data, _make_parser())
    except etree.XMLSyntaxError as exc:
        raise XMLError(_syntax_message(exc)) from None
    docinfo = root.getroottree().docinfo
    # Second guard: the text scan should already have refused these.
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XMLError("the document has a DOCTYPE declaration; remove it")
    return root


def _syntax_message(exc: etree.XMLSyntaxError) -> str:
    msg = _SYNTAX_POS_RE.sub("", (exc.msg or "").strip()).strip()
    if msg.startswith("Excessive depth"):
        msg = "elements are nested more than 256 levels deep"
    elif msg.startswith("Entity '") and msg.endswith("not defined"):
        msg += " (entities other than &amp; &lt; &gt; &apos; &quot; are not accepted)"
    line, col = exc.position if exc.position else (exc.lineno, 0)
    where = f"line {line}, column {col}" if col else f"line {line}"
    return f"{where}: the XML is not well-formed: {msg}"


def _refuse_xinclude(root: etree._Element) -> None:
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{" + XINCLUDE_NS + "}"):
            raise XMLError(
                f"<{_display_tag(el)}> (line {el.sourceline}): XInclude is not allowed in "
                "poolkeeper XML; put the content in the document itself"
            )


def _display_tag(el: etree._Element) -> str:
    """Tag as the user wrote it: 'name', 'fs:mount_opts', 'xi:include'."""
    tag = el.tag if isinstance(el.tag, str) else "?"
    if tag.startswith("{"):
        qname = etree.QName(tag)
        return f"{el.prefix}:{qname.localname}" if el.prefix else tag
    return tag
