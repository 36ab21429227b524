"""Every registered pool type against the driver contract (tests/driver_contract.py), and
the registry against the schema and the define form."""

from __future__ import annotations

import shutil

import pytest
from lxml import etree

from backends import runner
from backends.drivers import driver_class, features, pool_types
from backends.errors import ToolMissing, Unsupported
from backends.xmlio import relaxng
from tests.driver_contract import contract_problems, schema_pool_types


@pytest.mark.parametrize("pool_type", pool_types())
def test_driver_keeps_the_contract(pool_type: str) -> None:
    cls = driver_class(pool_type)
    assert cls.type == pool_type
    assert contract_problems(cls) == []


def test_schema_allows_exactly_the_registered_types() -> None:
    assert schema_pool_types() == set(pool_types())
    schema = relaxng._schema("pool")
    for pool_type, ok in (("dir", True), ("rbd", False)):
        doc = etree.fromstring(f"<pool type='{pool_type}'><name>p</name>"
                               "<target><path>/srv/p</path></target></pool>")
        assert schema.validate(doc.getroottree()) == ok, pool_type


def test_a_driver_that_forgets_something_fails_the_contract() -> None:
    class Forgetful(driver_class("dir")):  # type: ignore[misc, valid-type]
        type = "forgetful"
        can_resize_volumes = False  # ... but it inherits resize_volume()
        form_fields = ("name",)  # ... and drops the target field
        discover_hint = "look around"  # ... without find_sources()

    problems = contract_problems(Forgetful)
    assert any("can_resize_volumes" in p for p in problems)
    assert any("'target' missing" in p for p in problems)
    assert any("find_sources" in p for p in problems)


def test_unknown_type_is_refused_with_the_list() -> None:
    with pytest.raises(Unsupported, match="available: dir, disk, fs"):
        features("rbd")



def test_a_missing_tool_names_the_package_its_driver_declares(
        monkeypatch: pytest.MonkeyPatch) -> None:
    driver_class("disk")  # loading a driver tells the runner its tools' packages
    monkeypatch.setattr(shutil, "which", lambda tool, path=None: None)
    with pytest.raises(ToolMissing, match="apt-get install parted"):
        runner.tool_path("parted")
