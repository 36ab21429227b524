"""The shape of pool and volume XML: which elements and attributes may appear where.

Decides, before any value is looked at, that a document holds only what poolkeeper reads:
no unknown element or attribute, no element more often than allowed, nothing required
missing, no stray text. `_POOL` and `_VOLUME` are the whole trees; `_walk` refuses with
the element and line, and says what is allowed there instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lxml import etree

from ..errors import ValidationError
from .reading import _display_tag

FS_NS = "http://libvirt.org/schemas/storagepool/fs/1.0"
VOLUME_FEATURES = ("lazy_refcounts", "extended_l2", "data_file")


class _Spec:
    """What an element may hold: attributes, text, children (min, max, spec)."""

    def __init__(
        self,
        attrs: Sequence[str] = (),
        required: Sequence[str] = (),
        text: bool = False,
        children: Mapping[str, tuple[int, int | None, _Spec]] | None = None,
        unsupported: str | None = None,
    ) -> None:
        self.attrs = tuple(attrs)
        self.required = tuple(required)
        self.text = text
        self.children = dict(children or {})
        self.unsupported = unsupported


def _attr_spec(*attrs: str, required: Sequence[str] | None = None) -> _Spec:
    return _Spec(attrs=attrs, required=attrs if required is None else required)


_TEXT = _Spec(text=True)
_EMPTY = _Spec()
_SIZE = _Spec(attrs=("unit",), text=True)
_ONE = 1
_MANY = None

_PERMISSIONS = _Spec(
    children={tag: (0, _ONE, _TEXT) for tag in ("mode", "owner", "group", "label")}
)
_TIMESTAMPS = _Spec(
    children={tag: (0, _ONE, _TEXT) for tag in ("atime", "mtime", "ctime", "btime")}
)
_FORMAT = _attr_spec("type")

_POOL_SOURCE = _Spec(
    children={
        "host": (0, _MANY, _attr_spec("name", "port", required=("name",))),
        "device": (
            0,
            _MANY,
            _Spec(
                attrs=("path", "part_separator"),
                required=("path",),
                children={"freeExtent": (0, _MANY, _attr_spec("start", "end"))},
            ),
        ),
        "dir": (0, _ONE, _attr_spec("path")),
        "name": (0, _ONE, _TEXT),
        "format": (0, _ONE, _FORMAT),
        "initiator": (0, _ONE, _Spec(children={"iqn": (1, _ONE, _attr_spec("name"))})),
        "auth": (
            0,
            _ONE,
            _Spec(
                attrs=("type", "username"),
                required=("type", "username"),
                children={"secret": (1, _ONE, _attr_spec("usage", "uuid", required=()))},
            ),
        ),
        "protocol": (0, _ONE, _attr_spec("ver")),
        "vendor": (0, _ONE, _attr_spec("name")),
        "product": (0, _ONE, _attr_spec("name")),
    }
)

_POOL = _Spec(
    attrs=("type",),
    required=("type",),
    children={
        "name": (0, _ONE, _TEXT),
        "uuid": (0, _ONE, _TEXT),
        "capacity": (0, _ONE, _SIZE),
        "allocation": (0, _ONE, _SIZE),
        "available": (0, _ONE, _SIZE),
        "features": (0, _ONE, _Spec(children={"cow": (0, _ONE, _attr_spec("state"))})),
        "source": (0, _ONE, _POOL_SOURCE),
        "target": (
            0,
            _ONE,
            _Spec(children={"path": (0, _ONE, _TEXT), "permissions": (0, _ONE, _PERMISSIONS)}),
        ),
        f"{{{FS_NS}}}mount_opts": (
            0,
            _ONE,
            _Spec(children={f"{{{FS_NS}}}option": (0, _MANY, _attr_spec("name"))}),
        ),
    },
)

_UNSUPPORTED_CIPHER = (
    "custom encryption parameters are not supported; remove <cipher> and <ivgen> "
    "(poolkeeper uses the LUKS defaults)"
)
_VOLUME_TARGET = _Spec(
    children={
        "path": (0, _ONE, _TEXT),
        "format": (0, _ONE, _FORMAT),
        "permissions": (0, _ONE, _PERMISSIONS),
        "timestamps": (0, _ONE, _TIMESTAMPS),
        "encryption": (
            0,
            _ONE,
            _Spec(
                attrs=("format",),
                required=("format",),
                children={
                    "secret": (0, _MANY, _attr_spec("type", "uuid", "usage", required=())),
                    "cipher": (0, _MANY, _Spec(unsupported=_UNSUPPORTED_CIPHER)),
                    "ivgen": (0, _MANY, _Spec(unsupported=_UNSUPPORTED_CIPHER)),
                },
            ),
        ),
        "compat": (0, _ONE, _TEXT),
        "nocow": (0, _ONE, _EMPTY),
        "clusterSize": (0, _ONE, _SIZE),
        "features": (0, _ONE, _Spec(children={f: (0, _ONE, _EMPTY) for f in VOLUME_FEATURES})),
    }
)

_VOLUME = _Spec(
    attrs=("type",),
    children={
        "name": (0, _ONE, _TEXT),
        "key": (0, _ONE, _TEXT),
        "source": (
            0,
            _ONE,
            _Spec(
                children={
                    "device": (
                        0,
                        _MANY,
                        _Spec(
                            attrs=("path",),
                            required=("path",),
                            children={"extent": (0, _MANY, _attr_spec("start", "end"))},
                        ),
                    )
                }
            ),
        ),
        "capacity": (0, _ONE, _SIZE),
        "allocation": (0, _ONE, _SIZE),
        "physical": (0, _ONE, _SIZE),
        "target": (0, _ONE, _VOLUME_TARGET),
        "backingStore": (
            0,
            _ONE,
            _Spec(
                children={
                    "path": (1, _ONE, _TEXT),
                    "format": (0, _ONE, _FORMAT),
                    "permissions": (0, _ONE, _PERMISSIONS),
                    "timestamps": (0, _ONE, _TIMESTAMPS),
                }
            ),
        ),
    },
)


def _walk(el: etree._Element, spec: _Spec) -> None:
    """Refuse anything the spec does not name: elements, attributes, text, duplicates."""
    tag = _display_tag(el)
    line = el.sourceline
    if spec.unsupported:
        raise ValidationError(spec.unsupported, element=tag, line=line)
    for attr in el.attrib:
        if attr not in spec.attrs:
            allowed = ", ".join(spec.attrs) if spec.attrs else "none"
            raise ValidationError(
                f"unknown attribute '{_attr_display(attr)}' (allowed here: {allowed})",
                element=tag,
                line=line,
            )
    for attr in spec.required:
        if el.get(attr) is None:
            raise ValidationError(f"the {attr}= attribute is required", element=tag, line=line)
    if not spec.text:
        _refuse_text(el.text, tag, line)
    seen: dict[str, list[int]] = {}
    for child in el:
        if not isinstance(child.tag, str):
            raise ValidationError("unexpected content", element=tag, line=child.sourceline)
        _refuse_text(child.tail, tag, child.sourceline)
        ctag = _display_tag(child)
        entry = spec.children.get(child.tag)
        if entry is None:
            allowed = ", ".join(_plain(t) for t in spec.children) or "nothing"
            raise ValidationError(
                f"unknown element inside <{tag}> (allowed here: {allowed})",
                element=ctag,
                line=child.sourceline,
            )
        lines = seen.setdefault(child.tag, [])
        lines.append(child.sourceline or 0)
        if entry[1] is not None and len(lines) > entry[1]:
            raise ValidationError(
                f"duplicate element: <{tag}> may hold only one <{ctag}> "
                f"(the first is on line {lines[0]})",
                element=ctag,
                line=child.sourceline,
            )
        _walk(child, entry[2])
    for ctag, (minimum, _max, _spec) in spec.children.items():
        if len(seen.get(ctag, ())) < minimum:
            hint = _CHILD_HINTS.get(ctag, f"<{ctag}>")
            raise ValidationError(
                f"missing <{_plain(ctag)}>: add {hint} inside it", element=tag, line=line
            )


_CHILD_HINTS = {
    "iqn": "<iqn name='iqn.YYYY-MM.domain:name'/>",
    "secret": "<secret usage='...'/> or <secret uuid='...'/>",
    "path": "<path>/absolute/path</path>",
}


def _refuse_text(text: str | None, tag: str, line: int | None) -> None:
    if text and text.strip():
        snippet = text.strip()
        if len(snippet) > 40:
            snippet = snippet[:40] + "..."
        raise ValidationError(
            f"unexpected text '{snippet}': <{tag}> holds only elements and attributes",
            element=tag,
            line=line,
        )


def _plain(tag: str) -> str:
    return "fs:" + tag.split("}", 1)[1] if tag.startswith("{" + FS_NS) else tag


def _attr_display(attr: str) -> str:
    return etree.QName(attr).localname if attr.startswith("{") else attr
