"""virsh's argument forms: one table of option specs per verb, parsed as virsh parses them.

Every option is `--name VALUE` or `--name=VALUE` (booleans: `--name`), in any order. A word
that is not an option fills the next option, in the table's order, that takes a value, was
not given yet and may be given without its name (virsh 9: `vol-info VOL POOL` is
`vol-info --vol VOL --pool POOL`). `--` ends the options; `-10G` is a value, never an
option, and any other word that starts with '-' is refused before `--` (virsh would take
`-rf` for a name; here it must follow `--`). `--help` shows virsh's NAME / SYNOPSIS /
OPTIONS page for the verb.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import field
from typing import Any, TextIO

from backends.records import record
from backends.records import set_field as _set

from .verbs import UsageError

Handler = Callable[[Any, argparse.Namespace, TextIO], int]


@record(frozen=True)
class Opt:
    """One option of a verb, as virsh has it."""
    name: str  # as virsh spells it, without the dashes
    kind: str = "bool"  # bool, string or number
    help: str = ""
    required: bool = False
    positional: bool = True  # a value option that may be given without its name
    repeat: bool = False  # given more than once: a list (--source-dev)
    default: Any = None
    choices: tuple[str, ...] = ()

    def __init__(
            self, name: str, kind: str = "bool", help: str = "", required: bool = False,
            positional: bool = True, repeat: bool = False, default: Any = None,
            choices: tuple[str, ...] = ()) -> None:
        _set(self, "name", name)
        _set(self, "kind", kind)
        _set(self, "help", help)
        _set(self, "required", required)
        _set(self, "positional", positional)
        _set(self, "repeat", repeat)
        _set(self, "default", default)
        _set(self, "choices", choices)

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


def data(name: str, help_text: str, required: bool = True, **kw: Any) -> Opt:
    """A value option virsh shows as `[--name] <string>`: given by name or in its place."""
    return Opt(name, "string", help_text, required=required, **kw)


def string(name: str, help_text: str, **kw: Any) -> Opt:
    return Opt(name, "string", help_text, **kw)


def number(name: str, help_text: str, **kw: Any) -> Opt:
    return Opt(name, "number", help_text, **kw)


def flag(name: str, help_text: str) -> Opt:
    return Opt(name, "bool", help_text)


@record(frozen=True)
class Verb:
    """A verb of the CLI: its name, summary, handler and options."""
    name: str
    summary: str
    handler: Handler
    opts: tuple[Opt, ...] = ()
    description: str = ""
    group: str = "pool"  # pool, volume or secret: the help's sections
    exclusive: tuple[tuple[str, str], ...] = field(default=())

    def __init__(
            self, name: str, summary: str, handler: Handler, opts: tuple[Opt, ...] = (),
            description: str = "", group: str = "pool",
            exclusive: tuple[tuple[str, str], ...] = ()) -> None:
        _set(self, "name", name)
        _set(self, "summary", summary)
        _set(self, "handler", handler)
        _set(self, "opts", opts)
        _set(self, "description", description)
        _set(self, "group", group)
        _set(self, "exclusive", exclusive)

    def opt(self, name: str) -> Opt | None:
        return next((o for o in self.opts if o.name == name), None)


_NUMBER = re.compile(r"[+-]?[0-9]+")
_NEGATIVE = re.compile(r"-\d[\w.]*")  # -512K, -1.5G: a size, never an option


def _hint(verb: Verb) -> str:
    return f"(see `poolkeeper {verb.name} --help`)"


def parse(verb: Verb, argv: Sequence[str]) -> argparse.Namespace:
    """The verb's arguments as virsh reads them; UsageError says what was wrong."""
    values: dict[str, Any] = {}
    seen: set[str] = set()

    def give(opt: Opt, value: Any) -> None:
        if opt.name in seen and not opt.repeat:
            raise UsageError(f"option --{opt.name} already seen {_hint(verb)}")
        seen.add(opt.name)
        if opt.kind == "bool":
            values[opt.dest] = True
            return
        if value == "":
            raise UsageError(f"option --{opt.name} needs a value: it is empty {_hint(verb)}")
        if opt.kind == "number":
            # ASCII digits as virsh's strtol reads them: int() would also take "١٠",
            # "1_000" and spaces around
            if not _NUMBER.fullmatch(value):
                raise UsageError(f"option --{opt.name} takes a number, not '{value}' "
                                 f"{_hint(verb)}")
            value = int(value, 10)
        if opt.choices and value not in opt.choices:
            raise UsageError(f"option --{opt.name}: '{value}' is not one of "
                             f"{', '.join(opt.choices)} {_hint(verb)}")
        if opt.repeat:
            values.setdefault(opt.dest, []).append(value)
        else:
            values[opt.dest] = value

    words = list(argv)
    i, options_over = 0, False
    while i < len(words):
        word = words[i]
        i += 1
        if not options_over and word == "--":
            options_over = True
            continue
        if not options_over and word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            opt = verb.opt(name)
            if opt is None:
                raise UsageError(f"command '{verb.name}' doesn't support option --{name} "
                                 f"{_hint(verb)}")
            if opt.kind == "bool":
                if eq:
                    raise UsageError(f"option --{name} takes no value {_hint(verb)}")
                give(opt, True)
                continue
            if not eq:
                if i >= len(words):
                    raise UsageError(f"expected syntax: --{name} <{opt.kind}> {_hint(verb)}")
                value = words[i]
                i += 1
            give(opt, value)
            continue
        if not options_over and word.startswith("-") and word != "-" \
                and not _NEGATIVE.fullmatch(word):
            # virsh would take it for a value; a name like -rf is safer after `--`
            raise UsageError(f"'{word}' looks like an option, but options start with '--'; "
                             f"a value that starts with '-' goes after '--' {_hint(verb)}")
        slot = next((o for o in verb.opts if o.kind != "bool" and o.positional
                     and o.name not in seen), None)
        if slot is None:
            raise UsageError(f"unexpected data '{word}' {_hint(verb)}")
        give(slot, word)
    for opt in verb.opts:
        if opt.required and opt.name not in seen:
            raise UsageError(f"command '{verb.name}' requires <{opt.name}> option "
                             f"{_hint(verb)}")
    for a, b in verb.exclusive:
        if a in seen and b in seen:
            raise UsageError(f"Options --{a} and --{b} are mutually exclusive")
    ns = argparse.Namespace(command=verb.name, func=verb.handler)
    for opt in verb.opts:
        default = opt.default if opt.kind != "bool" else False
        setattr(ns, opt.dest, values.get(opt.dest, default))
    return ns


def _shape(opt: Opt) -> str:
    """The option as virsh's OPTIONS list shows it."""
    if opt.kind == "bool":
        return f"--{opt.name}"
    if opt.required:
        return f"[--{opt.name}] <{opt.kind}>"
    return f"--{opt.name} <{opt.kind}>"


def synopsis(verb: Verb) -> str:
    parts = [verb.name]
    for opt in verb.opts:
        if opt.kind == "bool":
            parts.append(f"[--{opt.name}]")
        elif opt.required:
            parts.append(f"<{opt.name}>")
        else:
            parts.append(f"[--{opt.name} <{opt.kind}>]")
    return " ".join(parts)


def help_page(verb: Verb) -> str:
    """virsh's `help VERB` page: NAME, SYNOPSIS, DESCRIPTION and OPTIONS."""
    lines = ["  NAME", f"    {verb.name} - {verb.summary}", "", "  SYNOPSIS",
             f"    {synopsis(verb)}", ""]
    if verb.description:
        lines += ["  DESCRIPTION", f"    {verb.description}", ""]
    if verb.opts:
        lines.append("  OPTIONS")
        lines += [f"    {_shape(opt):<15}  {opt.help}".rstrip() for opt in verb.opts]
        lines.append("")
    return "\n".join(lines) + "\n"


def group_listing(verbs: Sequence[Verb], title: str, keyword: str) -> str:
    """virsh's `help GROUP` block: the group's verbs and their summaries."""
    lines = [f" {title} (help keyword '{keyword}'):"]
    lines += [f"    {v.name:<30} {v.summary}" for v in verbs]
    return "\n".join(lines) + "\n"
