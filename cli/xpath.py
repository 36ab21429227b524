"""--xpath EXPR [--wrap] of the dumpxml verbs, as virsh prints them.

Each node the expression selects is printed on its own line as it is in the document: an
element as its XML, a text node as its text, an attribute as ` name="value"`. --wrap puts
them all in one `<nodes>` element, indented. An expression whose result is no node set
(count(), string()) is refused, as virsh refuses it.
"""

from __future__ import annotations

import copy

from lxml import etree

from backends.errors import PoolkeeperError


def select(xml: str, expr: str, wrap: bool = False) -> str:
    doc = etree.fromstring(xml.encode("utf-8"))
    try:
        found = doc.xpath(expr)
    except etree.XPathError as exc:
        raise PoolkeeperError(f"the XPath expression '{expr}' is not valid: {exc}") from None
    if not isinstance(found, list):
        raise PoolkeeperError(f"the XPath expression '{expr}' gives a "
                              f"{type(found).__name__.replace('float', 'number')}, not "
                              "nodes: --xpath selects elements, attributes or text")
    if wrap:
        return _wrapped(found)
    lines = []
    for node in found:
        if isinstance(node, etree._Element):
            lines.append(etree.tostring(_formatted(node), encoding="unicode"))
        elif getattr(node, "is_attribute", False):
            lines.append(f" {node.attrname}=\"{_attr(str(node))}\"")
        else:
            lines.append(str(node))
    return "".join(line + "\n" for line in lines)


def _attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;"))


def _formatted(node: etree._Element) -> etree._Element:
    """A copy indented from its own level, as libxml2 writes a node: whitespace between
    elements is replaced, whitespace that is an element's only content is kept."""
    node = copy.deepcopy(node)
    node.tail = None
    for el in node.iter():
        if len(el) and (el.text is None or not el.text.strip()):
            el.text = None
            for child in el:
                if child.tail is not None and not child.tail.strip():
                    child.tail = None
    etree.indent(node, "  ")
    return node


def _wrapped(found: list) -> str:
    nodes = etree.Element("nodes")
    mixed = False
    last: etree._Element | None = None
    for node in found:
        if isinstance(node, etree._Element):
            child = _formatted(node)
            nodes.append(child)
            last = child
        elif getattr(node, "is_attribute", False):
            nodes.set(node.attrname, str(node))
        else:
            mixed = True
            if last is None:
                nodes.text = (nodes.text or "") + str(node)
            else:
                last.tail = (last.tail or "") + str(node)
    if not mixed and len(nodes):
        etree.indent(nodes, "  ")
    return etree.tostring(nodes, encoding="unicode") + "\n"
