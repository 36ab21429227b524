"""backends.api.Controller, the controller surface the TUI depends on.

Every controller the TUI runs on (StorageController; LibvirtHostController, a libvirt
connection's; the Fleet of hosts around them; the TUI tests' StubController) provides
each member of the protocol with the protocol's parameters: the same names, kinds and order,
a default wherever the protocol has one (the same value where it names one). And the TUI
reaches its controller through these members only, so the protocol is all that another
implementation has to provide.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

from backends.api import Controller
from backends.controller import StorageController
from backends.fleet import Fleet
from backends.jobs import JobManager
from backends.libvirt_host import LibvirtHostController
from tests.tui.stub_controller import StubController

REPO = Path(__file__).resolve().parents[2]
EMPTY = inspect.Parameter.empty
VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)

MEMBERS = {name: value for name, value in vars(Controller).items() if not name.startswith("_")}
METHODS = sorted(name for name, value in MEMBERS.items() if inspect.isfunction(value))
PROPERTIES = sorted(name for name, value in MEMBERS.items() if isinstance(value, property))
IMPLEMENTATIONS = [StorageController, LibvirtHostController, StubController, Fleet]


def test_the_protocol_holds_only_methods_and_properties() -> None:
    assert sorted(MEMBERS) == sorted(METHODS + PROPERTIES)
    assert "list_pools" in METHODS and PROPERTIES == ["jobs"]


def mismatch(expected: inspect.Signature, actual: inspect.Signature) -> str | None:
    """Why a method with signature `actual` cannot stand where `expected` is asked for."""
    want = list(expected.parameters.values())
    have = list(actual.parameters.values())
    if [(p.name, p.kind) for p in have[:len(want)]] != [(p.name, p.kind) for p in want]:
        return f"takes {actual}, the protocol {expected}"
    for w, h in zip(want, have, strict=False):
        if w.default is EMPTY:
            continue
        if h.default is EMPTY:
            return f"'{h.name}' has no default, the protocol's has"
        if w.default is not Ellipsis and h.default != w.default:
            return f"'{h.name}' defaults to {h.default!r}, the protocol's to {w.default!r}"
    extra = [p.name for p in have[len(want):] if p.default is EMPTY and p.kind not in VARIADIC]
    if extra:
        return f"also needs {', '.join(extra)}, which the protocol does not pass"
    return None


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", METHODS)
def test_each_method_is_provided_with_the_protocols_parameters(impl: type, name: str) -> None:
    method = getattr(impl, name, None)
    assert callable(method), f"{impl.__name__} has no method {name}"
    problem = mismatch(inspect.signature(MEMBERS[name]), inspect.signature(method))
    assert problem is None, f"{impl.__name__}.{name} {problem}"


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda c: c.__name__)
def instance(request: pytest.FixtureRequest, ctl: StorageController) -> Any:
    if request.param is Fleet:
        return Fleet(ctl, ctl.paths.config_dir)
    if request.param is LibvirtHostController:  # libvirt's test driver, in this process
        pytest.importorskip("libvirt", reason="libvirt-python is not installed "
                            "(pip install -e '.[libvirt]')")
        host = LibvirtHostController("test:///default", "t")
        request.addfinalizer(host.close)
        return host
    return ctl if request.param is StorageController else StubController()


@pytest.mark.parametrize("name", PROPERTIES)
def test_each_property_is_provided(instance: Any, name: str) -> None:
    assert hasattr(instance, name), f"{type(instance).__name__} has no {name}"
    # the protocol's only property, for now: its type is the one it names
    assert name == "jobs" and isinstance(instance.jobs, JobManager)


def controller_members_used_by_the_tui() -> dict[str, list[str]]:
    """Member -> where the TUI uses it: `self.ctl.NAME`, `ctl.NAME`, `controller.NAME`."""
    used: dict[str, list[str]] = {}
    for path in sorted((REPO / "tui").rglob("*.py")):
        if path.name == "demo.py":  # builds its sandbox on the native controller (its store)
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            if ((isinstance(owner, ast.Attribute) and owner.attr == "ctl")
                    or (isinstance(owner, ast.Name) and owner.id in ("ctl", "controller"))):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                used.setdefault(node.attr, []).append(where)
    return used


def test_the_tui_uses_exactly_the_protocols_members() -> None:
    used = controller_members_used_by_the_tui()
    missing = {name: where for name, where in used.items() if name not in MEMBERS}
    assert not missing, f"the TUI uses controller members the protocol lacks: {missing}"
    unused = sorted(set(MEMBERS) - set(used))
    assert not unused, f"protocol members the TUI does not use: {unused}"
