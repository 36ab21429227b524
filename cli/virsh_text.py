"""The listings as virsh prints them, byte for byte, so that scripts written for virsh work.

What is copied (and checked against real virsh output: tests/data/virsh/ and
tests/cli/test_virsh_compat.py):

- sizes: vshPrettyCapacity, "%.2f UNIT" with B, KiB, ... EiB stepping at x1024
  (`349.00 B`, `0.00 B`); pool-info --bytes prints the bare integer, vol-info --bytes
  "N bytes";
- tables (vshTable): every cell is " " + text, each cell but the last padded to its
  column's widest plus two spaces, a header row, then sum(width + 3) dashes;
- pool-list: `Name State Autostart` (State active/inactive), --details adds Persistent
  and the sizes (`-` unless the pool is running or degraded); vol-list: `Name Path`,
  --details `Name Path Type Capacity Allocation`; both sorted by name, ASCII case ignored;
- pool-info: `%-15s %s` lines Name UUID State Persistent Autostart, the sizes while
  running or degraded; vol-info: Name Type Capacity Allocation (Physical instead of Allocation with
  --physical);
- the empty line virsh prints after every command (without -q).

poolkeeper's extras that virsh has no place for (a disk pool's largest extent, why a pool
is inaccessible, what this host cannot do with its volumes, a volume's format, backing
store, a header that disagrees, an unreadable volume) come as more `%-15s %s` lines after
all of virsh's, before the empty line: a parser that picks lines by key, or by position,
reads what it reads from virsh. The tables carry nothing extra; `--json` has everything.

Every string is escaped by cli.output.printable once, here, as it is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from backends import textsafe

from .output import printable

if TYPE_CHECKING:  # cli.quick hands pool_list its own rows, without the engine's model
    from backends import model

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def pretty_capacity(value: int | None) -> str:
    """virsh's size: the first unit under which the value is below 1024 (the integer
    compared, as vshPrettyCapacity does), "%.2f"; None (not known) is "-"."""
    if value is None:
        return "-"
    limit = 1024
    for i, unit in enumerate(_UNITS):
        if value < limit or unit == "EiB":
            return f"{value / (1 << (10 * i)):.2f} {unit}"
        limit <<= 10
    raise AssertionError("unreachable")


def _width(text: str) -> int:
    """Columns `text` takes on a terminal (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _padded(cell: str, width: int) -> str:
    if cell.isascii():
        return cell.ljust(width)
    return cell + " " * (width - _width(cell))


def table(out: TextIO, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """vshTable's layout; the cells are escaped here (as printable does, the stream's
    encoding looked up once: 10,000 volumes are 50,000 cells)."""
    encoding = getattr(out, "encoding", None)
    escape = textsafe.escape
    cells = [list(headers)] + [[escape(cell, encoding) for cell in row] for row in rows]
    last = len(headers) - 1
    widths = [max(map(_width, column)) + 2 for column in zip(*cells, strict=True)]
    lines = [" " + " ".join([*map(_padded, row[:last], widths), row[last]]) for row in cells]
    lines.insert(1, "-" * (sum(widths) + len(widths)))
    out.write("\n".join(lines) + "\n")


def end(out: TextIO) -> None:
    """The empty line virsh writes after each command's output."""
    out.write("\n")


def _fields(out: TextIO, lines: Iterable[tuple[str, str]]) -> None:
    out.write("".join(f"{key:<15} {printable(value, out)}\n" for key, value in lines))


def name_order(name: str) -> bytes:
    """virsh's sort key for pools and volumes: the name with ASCII letters folded
    (g_ascii_strcasecmp); other characters by their UTF-8 bytes."""
    return name.encode("utf-8", "surrogateescape").lower()


def by_name(item: Any) -> bytes:
    """name_order(item.name), in one call (a sort key called 10,000 times)."""
    return item.name.encode("utf-8", "surrogateescape").lower()


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# == pools ==============================================================================
def pool_list(out: TextIO, pools: Sequence[model.PoolStatus], details: bool) -> None:
    pools = sorted(pools, key=by_name)
    if details:
        rows = []
        for p in pools:
            sized = p.state in ("running", "degraded")  # as pool-info: virsh's rule
            rows.append([p.name, p.state, _yes(p.autostart), _yes(p.persistent),
                         *(pretty_capacity(v) if sized else "-"
                           for v in (p.capacity, p.allocation, p.available))])
        table(out, ["Name", "State", "Autostart", "Persistent", "Capacity", "Allocation",
                    "Available"], rows)
    else:
        table(out, ["Name", "State", "Autostart"],
              [[p.name, "active" if p.started else "inactive", _yes(p.autostart)]
               for p in pools])
    end(out)


def _bare(value: int | None, as_bytes: bool) -> str:
    """pool-info's size: the integer alone with --bytes (virsh prints no unit there)."""
    if value is None:
        return "-"
    return str(value) if as_bytes else pretty_capacity(value)


def pool_info(out: TextIO, p: model.PoolStatus, as_bytes: bool) -> None:
    lines = [("Name:", p.name), ("UUID:", p.uuid), ("State:", p.state),
             ("Persistent:", _yes(p.persistent)), ("Autostart:", _yes(p.autostart))]
    if p.state in ("running", "degraded"):
        lines += [("Capacity:", _bare(p.capacity, as_bytes)),
                  ("Allocation:", _bare(p.allocation, as_bytes)),
                  ("Available:", _bare(p.available, as_bytes))]
        if p.largest_free is not None:  # a disk pool: the largest partition it can take now
            lines.append(("Largest extent:", _bare(p.largest_free, as_bytes)))
    if p.state == "inaccessible" and p.detail:  # why, and what to do (virsh says nothing)
        lines.append(("Problem:", p.detail))
    if p.active and p.volume_limit:  # what does not work on this host (virsh says nothing)
        lines.append(("Limit:", p.volume_limit))
    _fields(out, lines)
    end(out)


# == volumes ============================================================================
def vol_list(out: TextIO, vols: Sequence[model.VolumeInfo], details: bool) -> None:
    """`vols` sorted by name_order already (cmd_vol_list sorts them once)."""
    if details:
        table(out, ["Name", "Path", "Type", "Capacity", "Allocation"],
              [[v.name, v.path, v.type, pretty_capacity(v.capacity),
                pretty_capacity(v.allocation)] for v in vols])
    else:
        table(out, ["Name", "Path"], [[v.name, v.path] for v in vols])
    end(out)


def _sized(value: int | None, as_bytes: bool) -> str:
    """vol-info's size: "N bytes" with --bytes."""
    if value is None:
        return "-"
    return f"{value} bytes" if as_bytes else pretty_capacity(value)


def vol_info(out: TextIO, v: model.VolumeInfo, as_bytes: bool, physical: bool) -> None:
    lines = [("Name:", v.name), ("Type:", v.type),
             ("Capacity:", _sized(v.capacity, as_bytes))]
    if physical:  # virsh puts the physical size in Allocation's place
        lines.append(("Physical:", _sized(v.physical, as_bytes)))
    else:
        lines.append(("Allocation:", _sized(v.allocation, as_bytes)))
    lines.append(("Format:", v.format or "-"))  # poolkeeper's, after virsh's lines
    if v.backing:
        lines.append(("Backing:", f"{v.backing.path} ({v.backing.format or 'format unknown'})"))
    if v.probed_format and v.probed_format != v.format:
        lines.append(("Header says:", f"{v.probed_format} (ignored: created as {v.format})"))
    if v.error:
        lines.append(("Error:", v.error))
    _fields(out, lines)
    end(out)
