"""What every pool driver must declare and keep consistent, checked by the contract test
for each registered type (and for the dummy type the "Adding a pool type" test adds), so
a type that forgets something fails a test, not a user."""

from __future__ import annotations

import inspect
import re
import string

from backends import runner
from backends.drivers import PoolDriver, pool_types
from backends.model import PoolDef
from backends.xmlio import relaxng
from tui.dialogs.define_pool import LABELS

RNG = "{http://relaxng.org/ns/structure/1.0}"

# Verbs without a useful default: every driver implements them.
REQUIRED_VERBS = ("check", "start", "stop", "refresh", "sizes", "volume_path")
# Capability flag -> the verb it promises.
FLAG_VERBS = {
    "can_build": "build",
    "can_create_volumes": "create_volume",
    "can_delete_volumes": "delete_volume",
    "can_resize_volumes": "resize_volume",
}
WORD_FIELDS = ("{target}", "{source}")


def overrides(cls: type[PoolDriver], name: str) -> bool:
    # the raw attributes: a classmethod gives a new bound method at each getattr
    return inspect.getattr_static(cls, name) is not inspect.getattr_static(PoolDriver, name)


def _signature_problems(cls: type[PoolDriver]) -> list[str]:
    problems = []
    for name, base_member in vars(PoolDriver).items():
        if name.startswith("_") or not callable(base_member):
            continue
        if not overrides(cls, name):
            continue
        want = list(inspect.signature(getattr(PoolDriver, name)).parameters)
        params = inspect.signature(getattr(cls, name)).parameters
        have = list(params)
        extra_required = [p for p in have[len(want):]
                          if params[p].default is inspect.Parameter.empty]
        if have[:len(want)] != want or extra_required:
            problems.append(f"{name}{tuple(have)} differs from the contract's {tuple(want)}")
    return problems


def schema_pool_types() -> set[str]:
    """The values the pool schema, as loaded, allows for <pool type=...>."""
    tree = relaxng.schema_tree("pool", pool_types())
    pool = tree.find(f".//{RNG}element[@name='pool']")
    assert pool is not None
    attr = pool.find(f"{RNG}attribute[@name='type']")
    if attr is None:
        return set()
    return {v.text for v in attr.iter(f"{RNG}value")}


def contract_problems(cls: type[PoolDriver]) -> list[str]:
    """Everything wrong with a driver class against the contract ([]: nothing)."""
    f = cls.features()
    rule = f.source
    problems = [f"{verb}() is not implemented" for verb in REQUIRED_VERBS
                if not overrides(cls, verb)]
    problems += _signature_problems(cls)
    for flag, verb in FLAG_VERBS.items():
        if getattr(f, flag) != overrides(cls, verb):
            problems.append(f"{flag} is {getattr(f, flag)} but {verb}() is "
                            f"{'' if overrides(cls, verb) else 'not '}implemented")
    if f.discoverable != overrides(cls, "find_sources"):
        problems.append("discover_hint and find_sources() disagree")
    if not overrides(cls, "source_claims"):
        problems.append("source_claims() is not declared (what no other pool may share)")
    if not set(f.creatable_formats) <= set(f.volume_formats):
        problems.append("creatable_formats are not all volume_formats")
    if f.default_volume_format not in (*f.creatable_formats, None):
        problems.append("default_volume_format is not creatable")
    if f.delete_needs_empty and not f.can_delete_storage:
        problems.append("delete_needs_empty without a delete()")
    if f.can_delete_storage == f.delete_does.startswith("is not possible: "):
        problems.append("delete_does must say 'is not possible: <why>' exactly when "
                        "delete() is not implemented")
    for words in (f.build_does, f.delete_does):
        names = {n for _, n, _, _ in string.Formatter().parse(words) if n}
        if not names <= {w.strip("{}") for w in WORD_FIELDS}:
            problems.append(f"'{words}' names fields other than {WORD_FIELDS}")
    # the define form: its fields exist and cover every <source> part the type takes
    unknown = [c for c in f.form_fields if c not in LABELS]
    if unknown:
        problems.append(f"form_fields names no control of the define form: {unknown}")
    need = {"name": True, "target": f.has_target, "host": rule.needs_host, "srcdir": rule.dir,
            "vg": rule.name, "initiator": rule.initiator[0], "chap_user": rule.auth,
            "chap_secret": rule.auth, "format": bool(f.pool_formats)}
    for control, wanted in need.items():
        if wanted != (control in f.form_fields):
            problems.append(f"form field '{control}' {'missing' if wanted else 'not used'}")
    device_field = "target_iqn" if rule.device_kind.startswith("iqn") else "device"
    if (rule.devices[1] != 0) != (device_field in f.form_fields):
        problems.append(f"form field '{device_field}' does not match the source rule")
    if set(rule.needs) - {"host", "device", "dir", "initiator"}:
        problems.append("source_rule.needs words a part it does not check")
    if f.target_automatic and cls.implied_target(PoolDef(type=f.type, name="x")) is None:
        problems.append("target_automatic without implied_target()")
    for tool, package in {**f.tools, **f.optional_tools}.items():
        if not (re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", package) and tool):
            problems.append(f"tool {tool!r} has no valid Debian package ({package!r})")
        if runner.TOOL_PACKAGES.get(tool) != package:  # what a ToolMissing names
            problems.append(f"the runner does not know {tool!r} comes with {package!r}")
    return problems
