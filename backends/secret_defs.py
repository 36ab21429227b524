"""libvirt secret definitions (<secret> XML): parsed from untrusted text, written back.

    <secret ephemeral='no' private='yes'>
      <uuid>0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f</uuid>
      <description>...</description>
      <usage type='volume'><volume>/path/of/the/volume</volume></usage>
    </secret>

The usage types are libvirt's: volume (<volume>, a LUKS volume's path), iscsi (<target>,
the name a pool's <auth><secret usage='...'/> gives), ceph, tls and vtpm (<name>). A usage
is optional, as in libvirt. The text is read by xmlio's hardened reader (size cap, no
DOCTYPE, no entities, no XInclude), and anything unknown is refused, never dropped.
"""

from __future__ import annotations

from lxml import etree

from .checks import control_char
from .errors import ValidationError, XMLError
from .names import UUID_RE
from .records import record
from .records import set_field as _set
from .xmlio.reading import _read_document
from .xmlio.writing import escape_text

# usage type -> the element naming what the secret is for
USAGE_ELEMENTS = {"volume": "volume", "iscsi": "target", "ceph": "name", "tls": "name",
                  "vtpm": "name"}
MAX_USAGE_BYTES = 1024
MAX_DESCRIPTION_BYTES = 4096


@record(frozen=True)
class SecretDef:
    """A secret's definition (libvirt <secret> XML); never its value."""
    uuid: str  # canonical: lower case with dashes
    usage_type: str | None = None  # None: no <usage>
    usage_id: str | None = None  # the path, target or name the usage names
    description: str | None = None
    private: bool = False
    ephemeral: bool = False

    def __init__(
            self, uuid: str, usage_type: str | None = None, usage_id: str | None = None,
            description: str | None = None, private: bool = False, ephemeral: bool = False) -> None:
        _set(self, "uuid", uuid)
        _set(self, "usage_type", usage_type)
        _set(self, "usage_id", usage_id)
        _set(self, "description", description)
        _set(self, "private", private)
        _set(self, "ephemeral", ephemeral)

    @property
    def usage_text(self) -> str:
        """As virsh secret-list shows it: "volume /path", or "" without a usage."""
        return f"{self.usage_type} {self.usage_id}" if self.usage_type else ""


def canonical_uuid(text: str) -> str:
    """A UUID in libvirt's printed form; ValidationError for anything else."""
    value = text.strip() if isinstance(text, str) else ""
    if not UUID_RE.fullmatch(value):
        raise ValidationError(f"'{text}' is not a UUID (32 hex digits, dashes optional, as "
                              "in 0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f)", "uuid")
    import uuid  # here, as below: uuid (and platform) cost every command ~2 ms to import

    return str(uuid.UUID(value))


def _yes_no(root: etree._Element, name: str) -> bool:
    value = root.get(name, "no")
    if value not in ("yes", "no"):
        raise XMLError(f"line {root.sourceline}: <secret {name}='{value}'> must be 'yes' "
                       "or 'no'")
    return value == "yes"


def _text(el: etree._Element, what: str, limit: int) -> str:
    if len(el):
        raise XMLError(f"line {el.sourceline}: <{el.tag}> holds elements; {what} is text only")
    text = (el.text or "").strip()
    if len(text.encode("utf-8")) > limit:
        raise ValidationError(f"{what} is longer than {limit} bytes", el.tag)
    if control_char(text.replace("\n", " ").replace("\t", " ")):
        raise ValidationError(f"{what} must not contain control characters", el.tag)
    return text


def _check_attrs(el: etree._Element, allowed: tuple[str, ...]) -> None:
    for name in el.attrib:
        if name not in allowed:
            raise XMLError(f"line {el.sourceline}: <{el.tag}> has an unknown attribute "
                           f"'{name}'; remove it")


def _usage(el: etree._Element) -> tuple[str, str]:
    _check_attrs(el, ("type",))
    kind = el.get("type")
    if kind not in USAGE_ELEMENTS:
        raise ValidationError(f"line {el.sourceline}: unknown secret usage type '{kind}'; use "
                              "one of: " + ", ".join(USAGE_ELEMENTS), "usage")
    want = USAGE_ELEMENTS[kind]
    children = [c for c in el if isinstance(c.tag, str)]
    if len(children) != 1 or children[0].tag != want:
        raise XMLError(f"line {el.sourceline}: <usage type='{kind}'> must hold exactly one "
                       f"<{want}> element")
    _check_attrs(children[0], ())
    value = _text(children[0], f"the <{want}> of a secret's usage", MAX_USAGE_BYTES)
    if not value:
        raise ValidationError(f"the <{want}> of a secret's usage is empty", want)
    if kind == "volume" and not value.startswith("/"):
        raise ValidationError(f"a volume secret's <volume> is the volume's full path; "
                              f"'{value}' is not one", "volume")
    return kind, value


def parse_secret(text: str | bytes) -> SecretDef:
    """A secret definition from libvirt secret XML; a missing <uuid> gets a new one."""
    root = _read_document(text, "secret")
    _check_attrs(root, ("ephemeral", "private"))
    found: dict[str, etree._Element] = {}
    for child in root:
        if not isinstance(child.tag, str):
            continue  # comments and processing instructions
        if child.tag not in ("uuid", "description", "usage"):
            raise XMLError(f"line {child.sourceline}: unknown element <{child.tag}> in "
                           "<secret>; it may hold <uuid>, <description> and <usage>")
        if child.tag in found:
            raise XMLError(f"line {child.sourceline}: <{child.tag}> is given twice")
        if child.tag != "usage":
            _check_attrs(child, ())
        found[child.tag] = child
    if (root.text or "").strip() or any((c.tail or "").strip() for c in root):
        raise XMLError("a <secret> holds stray text between its elements; remove it")
    ephemeral = _yes_no(root, "ephemeral")
    if ephemeral:
        raise ValidationError("poolkeeper has no daemon to keep an ephemeral secret in "
                              "memory; define it with ephemeral='no' (its value is kept in a "
                              "0600 file under the state root)", "secret")
    import uuid

    uid = (canonical_uuid(_text(found["uuid"], "a secret's <uuid>", 64))
           if "uuid" in found else str(uuid.uuid4()))
    kind = usage = None
    if "usage" in found:
        kind, usage = _usage(found["usage"])
    desc = (_text(found["description"], "a secret's <description>", MAX_DESCRIPTION_BYTES)
            if "description" in found else None)
    return SecretDef(uuid=uid, usage_type=kind, usage_id=usage, description=desc,
                     private=_yes_no(root, "private"), ephemeral=False)


def format_secret(sdef: SecretDef) -> str:
    """libvirt's layout of a secret definition (2-space indent, single quotes)."""
    yes_no = {True: "yes", False: "no"}
    lines = [f"<secret ephemeral='{yes_no[sdef.ephemeral]}' private='{yes_no[sdef.private]}'>",
             f"  <uuid>{sdef.uuid}</uuid>"]
    if sdef.description:
        lines.append(f"  <description>{escape_text(sdef.description)}</description>")
    if sdef.usage_type and sdef.usage_id is not None:
        tag = USAGE_ELEMENTS[sdef.usage_type]
        lines += [f"  <usage type='{sdef.usage_type}'>",
                  f"    <{tag}>{escape_text(sdef.usage_id)}</{tag}>", "  </usage>"]
    return "\n".join([*lines, "</secret>"]) + "\n"
