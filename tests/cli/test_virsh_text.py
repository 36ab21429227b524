"""The listings against real virsh output (golden files): byte for byte.

tests/data/virsh/ holds what virsh printed for node.xml through libvirt's test driver
(make-golden.sh there names the command that made each file). Here the same pools and
volumes, with the values virsh showed, go through poolkeeper's handlers for pool-list,
pool-info, vol-list and vol-info, and what they print must be those bytes, poolkeeper's
extra lines (vol-info's Format:) aside. tests/cli/test_virsh_compat.py compares with virsh
on one real pool, where a private libvirtd can run.
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from backends import model
from cli.main import parse_command
from cli.virsh_text import pretty_capacity

DATA = Path(__file__).resolve().parents[1] / "data" / "virsh"


def golden(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def _bytes_info(name: str) -> dict[str, str]:
    """pool-info --bytes as virsh printed it: its own numbers for the pool."""
    return dict((key.strip(), value.strip()) for key, value in
                (line.split(":", 1) for line in golden(name).splitlines() if line))


def _pool(name: str, state: str) -> model.PoolStatus:
    info = _bytes_info(f"pool-info-bytes-{name}.txt" if name != "stopped" or state != "running"
                       else "pool-info-bytes-stopped-running.txt")
    sizes = {}
    if state == "running":
        sizes = {key.lower(): int(info[key]) for key in ("Capacity", "Allocation", "Available")}
    return model.PoolStatus(name=name, type="dir", uuid=info["UUID"], state=state,
                            autostart=info["Autostart"] == "yes",
                            persistent=info["Persistent"] == "yes", **sizes)


def _volumes(pool: str) -> list[model.VolumeInfo]:
    """The pool's volumes as node.xml gives them to virsh (reversed: the handler sorts)."""
    tree = ET.parse(DATA / "node.xml")
    found = next(p for p in tree.getroot().iter("pool") if p.findtext("name") == pool)
    vols = [model.VolumeInfo(name=v.findtext("name"), key=v.findtext("target/path"),
                             path=v.findtext("target/path"), type=v.get("type"),
                             format=v.find("target/format").get("type"),
                             capacity=int(v.findtext("capacity")),
                             allocation=int(v.findtext("allocation")))
            for v in found.iter("volume")]
    return vols[::-1]


class Values:
    """What virsh was shown, handed to the handlers in the controller's place."""

    def __init__(self, stopped: str) -> None:
        self.pools = {"vms": _pool("vms", "running"), "stopped": _pool("stopped", stopped),
                      "Backup": _pool("Backup", "running")}  # unsorted, as stored
        self.store = self  # pools are named by name here (backends.refs asks the store)

    def read_definition(self, name: str) -> object | None:
        return self.pools.get(name)

    def list_pools(self) -> list[model.PoolStatus]:
        return list(self.pools.values())

    def pool_info(self, name: str) -> model.PoolStatus:
        return self.pools[name]

    def list_volumes(self, pool: str) -> list[model.VolumeInfo]:
        return _volumes(pool)

    def volume_info(self, pool: str, name: str) -> model.VolumeInfo:
        return next(v for v in _volumes(pool) if v.name == name)


def run(*argv: str) -> str:
    """The handler's output; the pool `stopped` is stopped where virsh's was (the golden
    files made with `pool-destroy stopped` first, see make-golden.sh)."""
    args = parse_command(argv[0], list(argv[1:]), io.StringIO())
    assert args is not None
    running = argv in (("pool-list",), ("pool-list", "--details"))
    out = io.StringIO()
    assert args.func(Values("running" if running else "inactive"), args, out) == 0
    return out.getvalue()


@pytest.mark.parametrize(("argv", "file"), [
    (("pool-list",), "pool-list.txt"),
    (("pool-list", "--details"), "pool-list-details.txt"),
    (("pool-list", "--all"), "pool-list-all.txt"),
    (("pool-list", "--all", "--details"), "pool-list-all-details.txt"),
    (("pool-list", "--inactive"), "pool-list-inactive.txt"),
    (("pool-info", "vms"), "pool-info-vms.txt"),
    (("pool-info", "--bytes", "vms"), "pool-info-bytes-vms.txt"),
    (("pool-info", "Backup"), "pool-info-Backup.txt"),
    (("pool-info", "--bytes", "Backup"), "pool-info-bytes-Backup.txt"),
    (("pool-info", "stopped"), "pool-info-stopped.txt"),
    (("pool-info", "--bytes", "stopped"), "pool-info-bytes-stopped.txt"),
    (("vol-list", "vms"), "vol-list-vms.txt"),
    (("vol-list", "vms", "--details"), "vol-list-details-vms.txt"),
    (("vol-list", "Backup"), "vol-list-Backup.txt"),
    (("vol-list", "Backup", "--details"), "vol-list-details-Backup.txt"),
])
def test_listing_is_virsh_byte_for_byte(argv: tuple[str, ...], file: str) -> None:
    assert run(*argv) == golden(file)


@pytest.mark.parametrize(("argv", "file", "fmt"), [
    (("vol-info", "--pool", "vms", "tiny.img"), "vol-info-tiny.txt", "raw"),
    (("vol-info", "--bytes", "--pool", "vms", "tiny.img"), "vol-info-bytes-tiny.txt", "raw"),
    (("vol-info", "--pool", "vms", "web.qcow2"), "vol-info-web.txt", "qcow2"),
    (("vol-info", "--bytes", "--pool", "vms", "web.qcow2"), "vol-info-bytes-web.txt", "qcow2"),
    (("vol-info", "--pool", "vms", "Almost-1MiB.img"), "vol-info-almost.txt", "raw"),
    (("vol-info", "--pool", "vms", "huge.img"), "vol-info-huge.txt", "raw"),
    (("vol-info", "--bytes", "--pool", "vms", "huge.img"), "vol-info-bytes-huge.txt", "raw"),
    (("vol-info", "--pool", "vms", "\u30c7\u30fc\u30bf.img"), "vol-info-wide.txt", "raw"),
])
def test_vol_info_is_virsh_then_the_format(argv: tuple[str, ...], file: str, fmt: str) -> None:
    """virsh's lines first, unchanged; poolkeeper's Format: after them, before the empty
    line that ends every command."""
    expected = golden(file)
    assert expected.endswith("\n\n")
    assert run(*argv) == expected[:-1] + f"Format:         {fmt}\n\n"


@pytest.mark.parametrize(("value", "text"), [
    (0, "0.00 B"), (349, "349.00 B"), (1023, "1023.00 B"), (1024, "1.00 KiB"),
    (1048575, "1024.00 KiB"), (1 << 20, "1.00 MiB"), (1536 << 20, "1.50 GiB"),
    (1 << 40, "1.00 TiB"), (1 << 50, "1.00 PiB"), (2**63 - 1, "8.00 EiB"), (None, "-"),
])
def test_pretty_capacity(value: int | None, text: str) -> None:
    """vshPrettyCapacity's steps (the golden files hold 0, 349, 1023, 1 MiB less a byte,
    2^63-1 among them)."""
    assert pretty_capacity(value) == text


def test_the_goldens_hold_what_the_tests_rely_on() -> None:
    """The golden files are virsh's: sizes under 1 KiB as `349.00 B`, bare integers from
    pool-info --bytes, a wide name padded by its columns."""
    assert " 349.00 B " in golden("vol-list-details-vms.txt")
    assert "Capacity:       107374182400\n" in golden("pool-info-bytes-vms.txt")
    assert "Capacity:       349 bytes\n" in golden("vol-info-bytes-tiny.txt")
    assert golden("pool-list-all.txt").splitlines()[3] == " stopped   inactive   no"


@pytest.mark.parametrize("data", [[], [{"name": "caf\u00e9\u202e.img", "backing": None,
                                        "sizes": [1, 2]}, {"name": "b"}], {"name": "p"}])
def test_json_is_valid_ascii_one_item_a_line(data: object) -> None:
    """--json: what json.loads reads back, ASCII, a list one item per line (the C
    encoder: indent= would take the pure-Python one)."""
    from cli.output import dump_json

    out = io.StringIO()
    dump_json(out, data)
    text = out.getvalue()
    assert json.loads(text) == data and text.isascii() and text.endswith("\n")
    if isinstance(data, list) and data:
        assert text.splitlines()[1:-1] == [json.dumps(item) + "," for item in data[:-1]] + \
            [json.dumps(data[-1])]
