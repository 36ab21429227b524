"""docs/adding-a-pool-type.md, walked for a made-up type: `flat` (tests/flatpool.py) is
registered with one registry entry and nothing else, and then the XML reader, the schema,
the controller, capabilities, the packages `make test` installs and the TUI's define form
all know it. A step the page leaves out fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Select

from backends import xmlio
from backends.controller import StorageController
from backends.drivers import _DRIVERS, driver_class, pool_types
from backends.drivers import __main__ as packages_cli
from backends.errors import AlreadyExists, ValidationError
from tests.driver_contract import contract_problems, schema_pool_types
from tests.flatpool import TYPE, FlatDriver
from tests.tui.test_dialogs import no_discover, opened, shown_inputs
from tui.dialogs import DefinePoolDialog

README = Path(__file__).resolve().parents[2] / "README.md"
DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-pool-type.md"


@pytest.fixture
def flat_type(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Step 2 of the page: the one registry line."""
    monkeypatch.setitem(_DRIVERS, TYPE, ("tests.flatpool", "FlatDriver"))
    yield


def flat_xml(name: str, target: Path | str) -> str:
    return f"<pool type='{TYPE}'><name>{name}</name><target><path>{target}</path></target></pool>"


def readme_rows() -> dict[str, str]:
    """The README's "Pool types" table: type -> what it needs installed."""
    text = README.read_text()
    section = text.split("## Pool types and what they need", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \|[^|]*\|(.*)\|$",
                                                        section, re.M)}


def readme_problems(types: tuple[str, ...]) -> list[str]:
    rows = readme_rows()
    problems = []
    for pool_type in types:
        row = rows.get(pool_type)
        if row is None:
            problems.append(f"no README row for {pool_type}")
            continue
        problems += [f"README row of {pool_type} does not name {p}"
                     for p in driver_class(pool_type).features().packages if p not in row]
    return problems


def test_the_page_names_the_files_it_says_a_type_touches() -> None:
    page = DOC.read_text()
    for path in ("backends/drivers/base.py", "backends/drivers/__init__.py",
                 "backends/schemas/pool.rng", "tests/unit/test_driver_contract.py"):
        assert path in page
        assert (DOC.parents[1] / path).exists(), path


def test_every_registered_type_has_its_readme_row() -> None:
    assert readme_problems(pool_types()) == []


def test_flat_keeps_the_contract(flat_type: None) -> None:
    assert driver_class(TYPE) is FlatDriver
    assert contract_problems(FlatDriver) == []
    assert TYPE in schema_pool_types()
    assert readme_problems((TYPE,)) == [f"no README row for {TYPE}"]  # step 5 is checked


def test_flat_xml_is_read_checked_and_written(flat_type: None, tmp_path: Path) -> None:
    pdef = xmlio.parse_pool(flat_xml("f", tmp_path))
    assert (pdef.type, pdef.target.path) == (TYPE, str(tmp_path))
    assert xmlio.parse_pool(xmlio.format_pool(pdef)) == pdef
    with pytest.raises(ValidationError, match="flat pools do not use <device>"):
        xmlio.parse_pool(f"<pool type='{TYPE}'><name>f</name><source><device path='/dev/sdb'/>"
                         f"</source><target><path>{tmp_path}</path></target></pool>")
    with pytest.raises(ValidationError, match="'qcow2' is not a valid format for a flat pool"):
        xmlio.parse_volume("<volume><name>v</name><capacity>1</capacity>"
                           "<target><format type='qcow2'/></target></volume>", TYPE)


def test_flat_pool_through_the_controller(flat_type: None, state_root: Path,
                                          tmp_path: Path) -> None:
    target = tmp_path / "flat"
    target.mkdir()
    ctl = StorageController(state_root, create_default=False)
    try:
        status = ctl.define_pool(flat_xml("f", target))
        assert status.features is not None and status.features.type == TYPE
        with pytest.raises(AlreadyExists, match="both use target path"):
            ctl.define_pool(flat_xml("g", f"{target}/./"))
        ctl.start_pool("f")
        ctl.create_volume("f", "<volume><name>v.img</name><capacity>1048576</capacity>"
                               "</volume>").join()
        assert (target / "v.img").stat().st_size == 1 << 20
        assert [(v.name, v.capacity) for v in ctl.list_volumes("f")] == [("v.img", 1 << 20)]
        assert f"<pool type=\"{TYPE}\" supported=\"yes\">" in ctl.capabilities()
        assert ctl.pool_types()[TYPE].form_fields == ("name", "target")
        ctl.delete_volume("f", "v.img")
        assert not (target / "v.img").exists()
        ctl.stop_pool("f")
        ctl.undefine_pool("f")
    finally:
        ctl.close()


def test_flat_packages_are_installed_by_make(flat_type: None) -> None:
    assert "coreutils" in packages_cli.packages(with_tests=False)


async def test_flat_in_the_define_form(flat_type: None, state_root: Path) -> None:
    ctl = StorageController(state_root, create_default=False)
    try:
        types = ctl.pool_types()
    finally:
        ctl.close()
    async with opened(DefinePoolDialog(no_discover, types=types, pool_type=TYPE),
                      size=(120, 40)) as (app, pilot):
        assert app.screen.query_one("#type", Select).value == TYPE
        assert shown_inputs(app) == {"name", "target"}
        assert app.screen.query_one("#target").placeholder == "/srv/flat"
