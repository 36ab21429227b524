"""Dataclasses whose __init__ is written in the class: @record makes the rest as
@dataclass does (fields, __eq__, __repr__, a frozen one's __hash__ and __setattr__), with
no code exec'd at import. dataclasses.dataclass compiles each class's __init__, __repr__
and __eq__ from text when the module loads: ~0.3 ms a class, 8 ms of every command for
backends.model's 22, which a one-shot CLI (a vol-list in a shell loop) pays each time.
fields(), replace(), asdict() and is_dataclass() work as on any dataclass;
tests/unit/test_records.py holds each such class to the dataclass it stands for: the same
__init__ signature, equality, repr and hash. Used by backends.model and the modules every
command loads (events, runner, store, monitor, blockprobe, imageprobe, openers,
secret_defs, cli.argspec)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


class _Factory:
    """The default of a field with a default_factory, in a written __init__."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


FACTORY: Any = _Factory()
set_field = object.__setattr__  # a frozen class's __init__ sets its fields with this


def record(*, frozen: bool = False, slots: bool = False) -> Callable[[T], T]:
    """@dataclass(frozen=frozen, slots=slots) for a class that writes its own __init__
    (the fields in order, each default as the field's; FACTORY where the field has a
    default_factory, calling it when the argument is FACTORY)."""

    def make(cls: T) -> T:
        if hasattr(cls, "__post_init__"):  # the written __init__ would have to call it
            raise TypeError(f"{cls.__name__}: do in __init__ what __post_init__ does")
        cls = dataclass(init=False, repr=False, eq=False, frozen=frozen, slots=slots)(cls)
        names = tuple(f.name for f in fields(cls))
        key = attrgetter(*names) if len(names) > 1 else (lambda o: (getattr(o, names[0]),))

        def __eq__(self: Any, other: object) -> bool:  # noqa: N807 - dataclass's
            if other.__class__ is self.__class__:
                return bool(key(self) == key(other))
            return NotImplemented

        def __repr__(self: Any) -> str:  # noqa: N807
            shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            return f"{self.__class__.__qualname__}({shown})"

        cls.__eq__ = __eq__  # type: ignore[assignment, method-assign]
        cls.__repr__ = __repr__  # type: ignore[assignment, method-assign]
        if frozen:  # hashable, as a frozen dataclass with eq is
            cls.__hash__ = lambda self: hash(key(self))  # type: ignore[assignment, method-assign]
        else:
            cls.__hash__ = None  # type: ignore[assignment, method-assign]
        return cls

    return make
