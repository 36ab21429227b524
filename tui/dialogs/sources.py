"""Reading the <sources> document of find-storage-pool-sources into PoolSource objects.

Lenient on purpose (a source found on the network is a suggestion, not a definition: the
pool XML built from it is validated later), but parsed with the same hardening as every
other XML poolkeeper reads: no DTD, no entities, no network, size capped.
"""

from __future__ import annotations

from lxml import etree

from backends.errors import XMLError
from backends.model import PoolSource, SourceAuth, SourceDevice, SourceHost

MAX_SOURCES_BYTES = 1024 * 1024


def parse_sources(text: str) -> list[PoolSource]:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > MAX_SOURCES_BYTES:
        raise XMLError("the list of sources is too large")
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise XMLError("the list of sources has a DOCTYPE, which is refused")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise XMLError(f"the list of sources is not XML: {exc.msg}") from None
    if root.tag != "sources":
        raise XMLError(f"expected <sources>, found <{root.tag}>")
    return [_source(el) for el in root.iterchildren("source")]


def _source(el: etree._Element) -> PoolSource:
    src = PoolSource()
    for host in el.iterchildren("host"):
        port = host.get("port")
        src.hosts.append(SourceHost(host.get("name", ""),
                                    int(port) if port and port.isdigit() else None))
    for dev in el.iterchildren("device"):
        if dev.get("path"):
            src.devices.append(SourceDevice(dev.get("path", "")))
    if (d := el.find("dir")) is not None:
        src.dir = d.get("path")
    if (n := el.find("name")) is not None and n.text:
        src.name = n.text.strip()
    if (f := el.find("format")) is not None:
        src.format = f.get("type")
    if (iqn := el.find("initiator/iqn")) is not None:
        src.initiator_iqn = iqn.get("name")
    if (auth := el.find("auth")) is not None and auth.get("username"):
        src.auth = SourceAuth(type=auth.get("type", "chap"), username=auth.get("username", ""))
        if (secret := auth.find("secret")) is not None:
            src.auth.secret.usage = secret.get("usage")
            src.auth.secret.uuid = secret.get("uuid")
    return src


def describe_source(src: PoolSource) -> str:
    """One line for a list: 'nas:/export (nfs)', 'vg0 on /dev/sdb1, /dev/sdc1', ...; as
    the server reported it (not trusted): escape it where it is drawn (tui.shown)."""
    parts: list[str] = []
    host = src.hosts[0] if src.hosts else None
    where = ""
    if host is not None:
        where = host.name + (f":{host.port}" if host.port else "")
    devices = ", ".join(d.path for d in src.devices)
    if src.dir is not None:
        parts.append(f"{where}:{src.dir}" if where else src.dir)
    elif src.name is not None:
        parts.append(f"{src.name} on {devices}" if devices else src.name)
    elif devices:
        parts.append(f"{devices} at {where}" if where else devices)
    elif where:
        parts.append(where)
    if src.format:
        parts.append(f"({src.format})")
    return " ".join(parts) or "(empty source)"
