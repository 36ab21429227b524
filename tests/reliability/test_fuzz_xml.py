"""Fuzzing of the pool and volume XML reader and writer (backends/xmlio/).

* Round trip: definitions generated for every pool type (with text full of XML specials,
  astral characters and quotes) are formatted, parsed back and must be equal, and format
  again to the same bytes.
* Hostile input: mutated documents (seeded with the sample files and generated documents),
  random trees of the known element names, and plain garbage bytes or text. parse_pool and
  parse_volume must return a definition or raise one of our own errors (PoolkeeperError);
  anything else (ValueError, TypeError, lxml's own errors, ...) is a bug. A document that
  is accepted must itself survive format -> parse unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st
from lxml import etree

from backends import checks, textsafe, xmlio
from backends.drivers import features, pool_types
from backends.errors import PoolkeeperError
from backends.model import (
    DISK_POOL_FORMATS,
    DISK_VOLUME_FORMATS,
    FILE_VOLUME_FORMATS,
    FS_POOL_FORMATS,
    LOGICAL_POOL_FORMATS,
    NETFS_POOL_FORMATS,
    VOLUME_TYPES,
    AuthSecret,
    BackingStore,
    Encryption,
    EncryptionSecret,
    Extent,
    FreeExtent,
    Permissions,
    PoolDef,
    PoolSource,
    PoolTarget,
    SourceAuth,
    SourceDevice,
    SourceHost,
    Timestamps,
    VolumeDef,
    VolumeTarget,
)
from fuzz.checks import check_parse

POOL_TYPES = pool_types()

pytestmark = pytest.mark.fuzz
FUZZ = settings.get_profile("poolkeeper-fuzz")  # registered by conftest.py
MAX = 2**63 - 1
DATA = Path(__file__).resolve().parent.parent / "data" / "xml"
SAMPLES = sorted(DATA.glob("*/*.xml"))

# == definitions valid by construction, with hostile but legal text =====================
# Text that XML can carry and poolkeeper accepts: no C0/C1 controls, no surrogates, no
# U+FFFE/U+FFFF; with plenty of the characters an escaper can get wrong.
_XML_SPECIALS = st.sampled_from(["&", "<", ">", "'", '"', "]]>", "&amp;", "&#38;", " ", "--"])
_LEGAL = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff\x85")
_CHAR = st.one_of(_LEGAL, _XML_SPECIALS)
free_text = st.lists(_CHAR, min_size=1, max_size=12).map("".join)
# names: also none of what a name refuses (textsafe.first_unsafe: format, bidi and line
# separator characters as well)
names = st.lists(st.one_of(_CHAR.filter(lambda c: "/" not in c)), min_size=1, max_size=12).map(
    "".join).filter(lambda s: s not in (".", "..") and len(s.encode()) <= 255
                    and textsafe.first_unsafe(s) is None)
segment = st.lists(_CHAR.filter(lambda c: "/" not in c and not c.isspace() and ":" not in c),
                   min_size=1, max_size=8).map("".join)
abs_path = st.lists(segment, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p))
device_path = abs_path.filter(lambda p: checks.device_path_problem(p, lvm=True) is None)
sizes = st.none() | st.sampled_from([0, 1, MAX]) | st.integers(0, MAX)
uuids = st.uuids().map(str) | st.uuids().map(lambda u: u.hex.upper())
ids = st.none() | st.integers(0, 2**32 - 2)
dns_label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10})", fullmatch=True)
hosts = st.one_of(st.lists(dns_label, min_size=1, max_size=3).map(".".join),
                  st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
ports = st.none() | st.integers(1, 65535)
iqns = st.from_regex(r"iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9][a-z0-9-]{0,10}(\.[a-z0-9-]{1,8})"
                     r"{0,2}(:[A-Za-z0-9._:-]{1,30})?", fullmatch=True).filter(
    lambda s: ".." not in s)
vg_names = st.from_regex(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,30}", fullmatch=True).filter(
    lambda s: s not in (".", ".."))
mount_opts = st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_=.:+/@-]{0,20}", fullmatch=True),
                      max_size=4)
timestamp = st.from_regex(r"[0-9]{1,12}(\.[0-9]{0,9})?", fullmatch=True)
extents = st.tuples(st.integers(0, MAX), st.integers(0, MAX)).map(sorted)


@st.composite
def permissions(draw: st.DrawFn) -> Permissions | None:
    perms = Permissions(mode=draw(st.none() | st.integers(0, 0o777)), owner=draw(ids),
                        group=draw(ids), label=draw(st.none() | free_text))
    return None if perms.is_empty() else perms


@st.composite
def timestamps(draw: st.DrawFn) -> Timestamps | None:
    stamps = Timestamps(*(draw(st.none() | timestamp) for _ in range(4)))
    return None if stamps == Timestamps() else stamps


@st.composite
def secret_refs(draw: st.DrawFn) -> tuple[str | None, str | None]:
    """(uuid, usage): exactly one of them."""
    return (draw(uuids), None) if draw(st.booleans()) else (None, draw(free_text))


@st.composite
def pool_defs(draw: st.DrawFn, ptype: str | None = None) -> PoolDef:
    ptype = ptype or draw(st.sampled_from(POOL_TYPES))
    src = PoolSource()
    pool = PoolDef(type=ptype, name=draw(names), uuid=draw(st.none() | uuids), source=src)
    pool.capacity, pool.allocation, pool.available = draw(sizes), draw(sizes), draw(sizes)
    target = PoolTarget(path=draw(abs_path), permissions=draw(permissions()))
    if ptype in ("dir", "fs"):
        pool.cow = draw(st.none() | st.booleans())
    if ptype in ("fs", "netfs"):
        pool.mount_opts = draw(mount_opts)
    if ptype != "iscsi-direct":
        src.vendor, src.product = draw(st.none() | free_text), draw(st.none() | free_text)
    if ptype == "fs":
        src.devices = [SourceDevice(path=draw(device_path))]
        src.format = draw(st.none() | st.sampled_from(FS_POOL_FORMATS))
    elif ptype == "netfs":
        src.hosts = [SourceHost(draw(hosts), draw(ports))]
        src.format = draw(st.none() | st.sampled_from(NETFS_POOL_FORMATS))
        if src.format in ("cifs", "glusterfs"):
            src.dir = draw(abs_path | st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True))
        else:
            src.dir = draw(abs_path)
            src.protocol_ver = draw(st.none() | st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2})?",
                                                              fullmatch=True))
    elif ptype == "logical":
        pool.name = draw(vg_names)
        src.name = draw(st.just(pool.name) | vg_names)
        src.devices = [SourceDevice(path=p) for p in draw(st.lists(device_path, max_size=3))]
        src.format = draw(st.none() | st.sampled_from(LOGICAL_POOL_FORMATS))
        target.path = f"/dev/{src.name}"
    elif ptype == "disk":
        src.devices = [SourceDevice(
            path=draw(device_path), part_separator=draw(st.none() | st.booleans()),
            free_extents=[FreeExtent(a, b) for a, b in draw(st.lists(extents, max_size=3))])]
        src.format = draw(st.none() | st.sampled_from(DISK_POOL_FORMATS))
    elif ptype in ("iscsi", "iscsi-direct"):
        src.hosts = [SourceHost(draw(hosts), draw(ports))]
        src.devices = [SourceDevice(path=draw(iqns))]
        src.initiator_iqn = draw(iqns if ptype == "iscsi-direct" else st.none() | iqns)
        if draw(st.booleans()):
            uuid, usage = draw(secret_refs())
            src.auth = SourceAuth(type="chap", username=draw(free_text),
                                  secret=AuthSecret(usage=usage, uuid=uuid))
        if ptype == "iscsi-direct":
            target = PoolTarget()
    pool.target = target
    return pool


@st.composite
def volume_defs(draw: st.DrawFn) -> tuple[VolumeDef, str | None]:
    pool_type = draw(st.none() | st.sampled_from(POOL_TYPES))
    vol = VolumeDef(name=draw(names), type=draw(st.none() | st.sampled_from(VOLUME_TYPES)),
                    key=draw(st.none() | free_text))
    vol.source_devices = draw(st.lists(st.tuples(
        abs_path, st.lists(extents.map(lambda e: Extent(*e)), max_size=2)), max_size=2))
    if draw(st.booleans()):
        vol.backing = BackingStore(
            path=draw(abs_path), format=draw(st.none() | st.sampled_from(FILE_VOLUME_FORMATS)),
            permissions=draw(permissions()), timestamps=draw(timestamps()))
        vol.capacity = draw(sizes)
    else:
        vol.capacity = draw(st.integers(1, MAX))
    vol.allocation, vol.physical = draw(sizes), draw(sizes)
    if pool_type is not None and not features(pool_type).volume_formats:
        fmt = None
    elif pool_type == "disk":
        fmt = draw(st.none() | st.sampled_from(DISK_VOLUME_FORMATS))
    else:
        fmt = draw(st.none() | st.sampled_from(FILE_VOLUME_FORMATS))
    enc = None
    if draw(st.booleans()):
        refs = draw(st.lists(secret_refs(), max_size=1))
        enc = Encryption(format=draw(st.sampled_from(xmlio.ENCRYPTION_FORMATS)),
                         secrets=[EncryptionSecret(uuid=u, usage=s) for u, s in refs])
    path = abs_path
    if pool_type in (None, "iscsi-direct"):
        path = path | iqns.map(lambda i: f"iscsi://127.0.0.1:3260/{i}/0")
    vol.target = VolumeTarget(
        path=draw(st.none() | path), format=fmt, permissions=draw(permissions()),
        timestamps=draw(timestamps()), encryption=enc,
        compat=draw(st.none() | st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True)),
        nocow=draw(st.booleans()), cluster_size=draw(st.none() | st.integers(1, MAX)),
        features=draw(st.none() | st.lists(st.sampled_from(xmlio.VOLUME_FEATURES), unique=True)),
    )
    return vol, pool_type


@FUZZ
@given(pool_defs())
def test_pool_format_parse_round_trip(pool: PoolDef) -> None:
    xmlio.validate_pool(pool)  # fills libvirt's defaults; valid by construction
    text = xmlio.format_pool(pool)
    note(text)
    again = xmlio.parse_pool(text)
    assert again == pool
    assert xmlio.format_pool(again) == text
    assert xmlio.parse_pool(text.encode("utf-8")) == pool  # bytes and str read alike


@FUZZ
@given(volume_defs())
def test_volume_format_parse_round_trip(case: tuple[VolumeDef, str | None]) -> None:
    vol, pool_type = case
    xmlio.validate_volume(vol, pool_type)
    text = xmlio.format_volume(vol)
    note(text)
    again = xmlio.parse_volume(text, pool_type)
    if vol.target.features:  # libvirt's XML has no <data_file/>: never written
        vol.target.features = [f for f in vol.target.features if f != "data_file"]
    assert again == vol
    assert xmlio.format_volume(again) == text


# == hostile input: only our own errors =================================================
# Fragments that poke at the hardening: DTDs, entities, XInclude, CDATA, encodings, numbers
# past every limit, deep nesting, controls and invalid UTF-8.
TOKENS = [
    b"<!DOCTYPE pool [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>", b"&x;", b"&amp;", b"&#0;",
    b"&#x1F600;", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?pi x?>",
    b"<?xml version='1.0' encoding='ISO-8859-1'?>", b"<?xml version='1.1'?>",
    b"<xi:include xmlns:xi='http://www.w3.org/2001/XInclude' href='/etc/passwd'/>",
    b"xmlns='urn:x'", b"xmlns:fs='http://libvirt.org/schemas/storagepool/fs/1.0'",
    b"<fs:mount_opts><fs:option name='exec'/></fs:mount_opts>", b"unit='EiB'", b"unit='KiB&#10;'",
    b"9" * 25, b"9" * 5000, b"0" * 5000 + b"1", b"-1", b"18446744073709551615",
    b"<capacity unit='bytes'>", b"</capacity>", b"<name>", b"</name>", b"<target>",
    b"<path>/x/../../etc</path>", b"<owner>" + b"9" * 5000 + b"</owner>",
    b"<mode>" + b"7" * 5000 + b"</mode>", b"port='" + b"9" * 5000 + b"'",
    b"start='" + b"9" * 5000 + b"'", b"\x00", b"\x01", b"\x7f", b"\xc2\x85", b"\xff\xfe",
    b"\xed\xa0\x80", b"\xef\xbf\xbe", b"\xef\xbb\xbf", b"\r\n", b"\t", b"<a>" * 300,
    b"'", b'"', b"<", b">", b"/", b"=", b" ",
]


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "truncate",
                                   "byte"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif op == "replace":
            data[pos:pos + draw(st.integers(1, 12))] = draw(st.sampled_from(TOKENS))
        elif op == "duplicate":
            end = min(len(data), pos + draw(st.integers(1, 200)))
            data[end:end] = data[pos:end]
        elif op == "truncate":
            del data[pos:]
        elif pos < len(data):
            data[pos] = draw(st.integers(0, 255))
    return bytes(data)


sample_docs = st.sampled_from([p.read_bytes() for p in SAMPLES])  # empty: an error at draw
generated_docs = st.one_of(
    pool_defs().map(lambda p: (xmlio.validate_pool(p), xmlio.format_pool(p))[1].encode()),
    volume_defs().map(lambda c: (xmlio.validate_volume(*c), xmlio.format_volume(c[0]))[1]
                      .encode()),
)
pool_types = st.none() | st.sampled_from(POOL_TYPES)


@FUZZ
@given(mutated(sample_docs | generated_docs), pool_types)
@example(b"<pool type='dir'><name>x</name><capacity>" + b"9" * 5000 + b"</capacity>"
         b"<target><path>/p</path></target></pool>", None)
@example(b"<pool type='netfs'><name>x</name><source><host name='h' port='" + b"9" * 5000 +
         b"'/><dir path='/e'/></source><target><path>/m</path></target></pool>", None)
@example(b"<pool type='dir'><name>x</name><target><path>/p</path><permissions><owner>" +
         b"9" * 5000 + b"</owner></permissions></target></pool>", None)
@example(b"<volume><name>v</name><capacity>1</capacity><source><device path='/d'>"
         b"<extent start='0' end='" + b"9" * 5000 + b"'/></device></source></volume>", None)
@example(b"<pool type='dir'><name>x</name><capacity unit='KiB&#10;'>1</capacity><target>"
         b"<path>/p</path></target></pool>", None)  # a newline kept in the attribute
def test_mutated_documents_give_a_definition_or_our_error(data: bytes,
                                                          pool_type: str | None) -> None:
    note(repr(data[:2000]))
    check_parse(data, pool_type)


@FUZZ
@given(st.binary(max_size=2000), pool_types)
def test_garbage_bytes_give_our_error(data: bytes, pool_type: str | None) -> None:
    check_parse(data, pool_type)


@FUZZ
@given(st.text(st.characters(exclude_categories=()), max_size=300), pool_types)
@example("<pool type='dir'><name>\ud800</name></pool>", None)  # a lone surrogate in a str
def test_garbage_text_gives_our_error(text: str, pool_type: str | None) -> None:
    check_parse(text, pool_type)


# Random trees of the element and attribute names poolkeeper knows, with odd values: they
# get past the well-formedness checks and reach the structural and semantic ones.
TAGS = ["pool", "volume", "name", "uuid", "capacity", "allocation", "available", "physical",
        "source", "target", "path", "host", "device", "dir", "format", "initiator", "iqn",
        "auth", "secret", "protocol", "vendor", "product", "permissions", "mode", "owner",
        "group", "label", "features", "cow", "freeExtent", "extent", "key", "timestamps",
        "atime", "mtime", "encryption", "compat", "nocow", "clusterSize", "backingStore",
        "lazy_refcounts", "cipher"]
ATTRS = ["type", "unit", "name", "port", "path", "part_separator", "start", "end", "state",
         "usage", "uuid", "username", "ver", "format"]
VALUES = st.one_of(
    st.sampled_from(["dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "raw",
                     "qcow2", "chap", "yes", "no", "bytes", "KiB", "EiB", "0", "1", "-1", "0777",
                     "/dev/sda", "/", "..", "iqn.2013-06.com.example:t", "9" * 30, "9" * 5000,
                     "", " ", "exec", "nfsvers=3"]),
    free_text,
)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    el = etree.Element(draw(st.sampled_from(TAGS)))
    for attr in draw(st.lists(st.sampled_from(ATTRS), unique=True, max_size=3)):
        el.set(attr, draw(VALUES))
    if depth < 4 and draw(st.booleans()):
        for child in draw(st.lists(trees(depth + 1), max_size=4)):
            el.append(child)
    elif draw(st.booleans()):
        el.text = draw(VALUES)
    return el


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    root = draw(trees())
    root.tag = draw(st.sampled_from(["pool", "volume"]))
    if root.tag == "pool" and draw(st.booleans()):
        root.set("type", draw(st.sampled_from(POOL_TYPES)))
    return etree.tostring(root)


@FUZZ
@given(documents(), pool_types)
def test_random_trees_of_known_elements_give_a_definition_or_our_error(
        data: bytes, pool_type: str | None) -> None:
    note(data.decode())
    check_parse(data, pool_type)


# Definitions made in code (the TUI's dialogs, the CLI) pass through validate_pool and
# validate_volume: a hostile value of the right type in any field gives our error, and
# whatever passes can be written and read back unchanged.
hostile_str = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),
    st.sampled_from(["", "-oexec", "--help", "../../etc/x", "/", "//", "/a/../b", "a,b",
                     "json:{}", "nbd://h/x", "iqn.2013-06.x:../y", "x" * 300, "\udcff"]),
)
hostile_int = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([-1, 0, MAX, MAX + 1]))
POOL_FIELDS = {
    "name": hostile_str, "uuid": st.none() | hostile_str, "capacity": hostile_int,
    "allocation": hostile_int, "available": hostile_int,
    "mount_opts": st.lists(hostile_str, max_size=2),
    "target.path": st.none() | hostile_str,
    "target.permissions": st.builds(Permissions, hostile_int, hostile_int, hostile_int,
                                    st.none() | hostile_str),
    "source.hosts": st.lists(st.builds(SourceHost, hostile_str, st.none() | hostile_int),
                             max_size=2),
    "source.devices": st.lists(st.builds(
        SourceDevice, hostile_str, st.none() | st.booleans(),
        st.lists(st.builds(FreeExtent, hostile_int, hostile_int), max_size=2)), max_size=2),
    "source.dir": st.none() | hostile_str, "source.name": st.none() | hostile_str,
    "source.format": st.none() | hostile_str, "source.initiator_iqn": st.none() | hostile_str,
    "source.protocol_ver": st.none() | hostile_str, "source.vendor": st.none() | hostile_str,
    "source.auth": st.none() | st.builds(SourceAuth, hostile_str, hostile_str, st.builds(
        AuthSecret, st.none() | hostile_str, st.none() | hostile_str)),
}
VOLUME_FIELDS = {
    "name": hostile_str, "type": st.none() | hostile_str, "key": st.none() | hostile_str,
    "capacity": st.none() | hostile_int, "allocation": st.none() | hostile_int,
    "source_devices": st.lists(st.tuples(hostile_str, st.lists(
        st.builds(Extent, hostile_int, hostile_int), max_size=2)), max_size=2),
    "target.path": st.none() | hostile_str, "target.format": st.none() | hostile_str,
    "target.compat": st.none() | hostile_str, "target.cluster_size": st.none() | hostile_int,
    "target.features": st.none() | st.lists(hostile_str, max_size=2),
    "target.permissions": st.builds(Permissions, hostile_int, hostile_int, hostile_int,
                                    st.none() | hostile_str),
    "target.timestamps": st.builds(Timestamps, st.none() | hostile_str),
    "target.encryption": st.builds(Encryption, hostile_str, st.lists(st.builds(
        EncryptionSecret, hostile_str, st.none() | hostile_str, st.none() | hostile_str),
        max_size=2)),
    "backing": st.builds(BackingStore, hostile_str, st.none() | hostile_str),
}


def _set(obj: object, dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)


@st.composite
def corrupted(draw: st.DrawFn, base: st.SearchStrategy, fields: dict) -> object:
    obj = draw(base)
    for field in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3)):
        target = obj[0] if isinstance(obj, tuple) else obj
        _set(target, field, draw(fields[field]))
    return obj


@FUZZ
@given(corrupted(pool_defs(), POOL_FIELDS))
def test_pools_built_in_code_give_our_error_or_round_trip(pool: PoolDef) -> None:
    note(repr(pool))
    try:
        xmlio.validate_pool(pool)
        text = xmlio.format_pool(pool)
    except PoolkeeperError:
        return
    assert xmlio.format_pool(xmlio.parse_pool(text)) == text


@FUZZ
@given(corrupted(volume_defs(), VOLUME_FIELDS))
def test_volumes_built_in_code_give_our_error_or_round_trip(
        case: tuple[VolumeDef, str | None]) -> None:
    vol, pool_type = case
    note(repr(vol))
    try:
        xmlio.validate_volume(vol, pool_type)
        text = xmlio.format_volume(vol)
    except PoolkeeperError:
        return
    assert xmlio.format_volume(xmlio.parse_volume(text, pool_type)) == text
