"""The README's Layout section names every module of backends/, cli/ and tui/, and only
modules that exist: it is how a reader finds their way, so it must match the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backends", "cli", "tui")


def layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def modules() -> set[Path]:
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name not in ("__init__.py", "__main__.py"):
                found.add(path.relative_to(ROOT))
    return found


def test_every_module_is_named_in_the_layout() -> None:
    named = set(re.findall(r"`([\w/]+\.py)`", layout_section()))
    missing = sorted(str(p) for p in modules() if p.name not in named)
    assert missing == []


def test_the_layout_names_no_module_that_is_gone() -> None:
    names = {p.name for p in modules()} | {"__init__.py"}
    named = set(re.findall(r"`([\w/]+\.py)`", layout_section()))
    gone = [n for n in named
            if not ((ROOT / n).exists() if "/" in n else Path(n).name in names)]
    assert gone == []
    for folder in re.findall(r"`([\w]+/)`", layout_section()):
        assert any((ROOT / pkg / folder).is_dir() or (ROOT / folder).is_dir()
                   for pkg in ("", *PACKAGES, "backends")), folder
