"""backends.records: each class whose __init__ is written (backends.model's, and those of
the modules every command loads) against the
dataclass it stands for, made by dataclasses from the same fields: the same __init__
signature, the same fields after construction (defaults and fresh factory values), and
the same equality, repr and hash. A field added, moved or given another default without
the written __init__ following fails here."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
import sys
from typing import Any

import pytest

from backends import (
    blockprobe,
    events,
    imageprobe,
    model,
    monitor,
    openers,
    runner,
    secret_defs,
    store,
)
from backends.records import record
from cli import argspec

MODULES = (model, events, runner, store, monitor, blockprobe, imageprobe, openers,
           secret_defs, argspec)
RECORDS = [cls for module in MODULES for cls in vars(module).values()
           if isinstance(cls, type) and dataclasses.is_dataclass(cls)
           and cls.__module__ == module.__name__]


def reference(cls: type) -> type:
    """The class as @dataclass would make it from its fields."""
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    spec = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            spec.append((f.name, f.type, dataclasses.field(default=f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            spec.append((f.name, f.type, dataclasses.field(default_factory=f.default_factory)))
        else:
            spec.append((f.name, f.type))
    return dataclasses.make_dataclass(cls.__name__, spec, frozen=params.frozen,
                                      slots="__slots__" in cls.__dict__)


def required(cls: type, salt: int = 0) -> dict[str, Any]:
    """A value for each field without a default."""
    return {f.name: f"{f.name}-{salt}" for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}


def state(obj: object) -> list[tuple[str, Any]]:
    """Each field's type and value (the value only where its type has an equality)."""
    return [(f.name, type(v), v if type(v).__eq__ is not object.__eq__ else None)
            for f in dataclasses.fields(obj)  # type: ignore[arg-type]
            for v in [getattr(obj, f.name)]]


def shown(obj: object) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", repr(obj))


def test_every_dataclass_of_these_modules_writes_its_init() -> None:
    """None is compiled by dataclasses at import (the point of backends.records)."""
    assert len(RECORDS) >= 40
    for cls in RECORDS:
        module = sys.modules[cls.__module__]
        assert cls.__init__.__code__.co_filename == module.__file__, cls


def test_a_post_init_is_refused() -> None:
    with pytest.raises(TypeError, match="__post_init__"):
        @record()
        class Late:
            a: int = 0

            def __init__(self, a: int = 0) -> None:
                self.a = a

            def __post_init__(self) -> None:
                pass


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_record_is_the_dataclass_it_stands_for(cls: type) -> None:
    ref = reference(cls)
    ours_sig, ref_sig = inspect.signature(cls.__init__), inspect.signature(ref.__init__)
    assert [(p.name, p.kind, repr(p.default)) for p in ours_sig.parameters.values()] == \
        [(p.name, p.kind, repr(p.default)) for p in ref_sig.parameters.values()]
    a, r = cls(**required(cls)), ref(**required(cls))
    assert state(a) == state(r) and shown(a) == shown(r)
    for f in dataclasses.fields(cls):  # a factory's value is fresh for each instance
        if f.default_factory is not dataclasses.MISSING and f.default_factory is not \
                model._no_items:
            assert getattr(a, f.name) is not getattr(cls(**required(cls)), f.name), f.name
    b, rb = cls(**required(cls)), ref(**required(cls))
    assert (a == b) is (r == rb) and (a != b) is (r != rb)  # equal, unless a field is not
    assert (a == r) is False  # another class is never equal
    c, rc = cls(**required(cls, 1)), ref(**required(cls, 1))
    if required(cls):
        assert (a == c) is (r == rc) is False
    for f in dataclasses.fields(cls):  # each field takes part in equality and repr
        changed = dataclasses.replace(a, **{f.name: ("other",)})
        ref_changed = dataclasses.replace(r, **{f.name: ("other",)})
        assert (changed == a) is (ref_changed == r) is False, f.name
        assert shown(changed) == shown(ref_changed)
    if cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        assert outcome(hash, a) == outcome(hash, r)  # a value, or unhashable (a dict)
        name = dataclasses.fields(cls)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(a, name, "x")
        assert copy.deepcopy(a) == a
    else:
        assert cls.__hash__ is None and ref.__hash__ is None


def outcome(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the kind is compared
        return type(exc)


def test_frozen_records_hash_copy_and_refuse_changes() -> None:
    perms = model.Permissions(0o644, 1, 2)
    ref = reference(model.Permissions)(0o644, 1, 2)
    assert hash(perms) == hash(ref) and {perms: 1}[model.Permissions(0o644, 1, 2)] == 1
    for obj, name in ((perms, "mode"), (model.SourceRule(), "dir"),
                      (model.PoolFeatures(type="dir"), "type")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, name, "x")
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(obj, name)
        assert copy.deepcopy(obj) == obj and copy.copy(obj) == obj
    assert model.PoolFeatures(type="dir").wipe_algorithms is model.WIPE_ALGORITHMS
    assert dataclasses.asdict(model.PoolDef(type="dir", name="p"))["source"]["hosts"] == []
