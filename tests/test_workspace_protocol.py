"""The UI's workspace protocol (ui/protocols.py), the real Workspace and the tests' stand-in agree.

The fast UI tests run on ``StandInWorkspace``; they only say something about the app while the
stand-in has the real workspace's interface. These tests fail when any of the three drifts: a
signature changed in one place only, an attribute dropped, or ``ui/`` reading a workspace member
the protocol does not declare.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from tests.standin_workspace import StandInWorkspace, _Store
from tracker.results import ResultStore
from tracker.workspace import Workspace
from ui.protocols import StoreLike, WorkspaceLike

ROOT = Path(__file__).resolve().parent.parent
# Files whose ``ws`` / ``workspace`` is a workspace the UI hands over: ui/ and the pipeline its /track calls.
READERS = sorted((ROOT / "ui").glob("*.py")) + [ROOT / "tracker" / "pipeline.py"]


def members(protocol: type) -> list[str]:
    """The methods and properties a protocol declares (dunders other than ``__len__`` left out)."""
    return sorted(
        name
        for name, value in vars(protocol).items()
        if (callable(value) or isinstance(value, property))
        and (not name.startswith("_") or name == "__len__")
    )


def attributes(protocol: type) -> list[str]:
    return sorted(vars(protocol).get("__annotations__", {}))


def signature(owner: type, name: str) -> str:
    member = inspect.getattr_static(owner, name, None)
    assert member is not None, f"{owner.__name__} has no {name}"
    if isinstance(member, property):
        member = member.fget
    elif isinstance(member, classmethod | staticmethod):
        member = member.__func__
    return str(inspect.signature(member))


def init_attributes(cls: type) -> set[str]:
    """The ``self.<name>`` an ``__init__`` assigns (annotated or not)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls.__init__)))
    names = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            ):
                names.add(target.attr)
    return names


def workspace_reads(path: Path) -> set[str]:
    """Members read off a workspace in ``path``: ``ws.x``, ``workspace.x``, ``<…>.workspace.x``,
    ``<…>.workspace(session).x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if isinstance(owner, ast.Call):
            owner = owner.func
            is_workspace = isinstance(owner, ast.Attribute) and owner.attr == "workspace"
        else:
            is_workspace = (isinstance(owner, ast.Name) and owner.id in {"ws", "workspace"}) or (
                isinstance(owner, ast.Attribute) and owner.attr == "workspace"
            )
        if is_workspace:
            found.add(node.attr)
    return found


def test_the_protocols_declare_something():
    assert {"track", "retrack", "export", "find_candidates", "undo"} <= set(members(WorkspaceLike))
    assert {"info", "objects", "store", "candidates"} <= set(attributes(WorkspaceLike))
    assert {"__len__", "get", "frames", "mask", "object_ids"} == set(members(StoreLike))


@pytest.mark.parametrize("name", members(WorkspaceLike))
def test_workspace_signatures_agree(name):
    expected = signature(WorkspaceLike, name)
    assert signature(Workspace, name) == expected, f"Workspace.{name} drifted from ui/protocols.py"
    assert signature(StandInWorkspace, name) == expected, f"StandInWorkspace.{name} drifted from Workspace"


def test_open_agrees():
    """``ui.services`` opens either one the same way (each returns its own class)."""

    def parameters(cls: type) -> list[inspect.Parameter]:
        return list(inspect.signature(inspect.getattr_static(cls, "open").__func__).parameters.values())

    assert parameters(StandInWorkspace) == parameters(Workspace)


@pytest.mark.parametrize("name", attributes(WorkspaceLike))
def test_workspace_attributes_exist(name):
    assert name in init_attributes(Workspace), f"Workspace no longer sets {name}"
    assert name in init_attributes(StandInWorkspace), f"StandInWorkspace no longer sets {name}"


@pytest.mark.parametrize("name", members(StoreLike))
def test_store_signatures_agree(name):
    expected = signature(StoreLike, name)
    assert signature(ResultStore, name) == expected
    assert signature(_Store, name) == expected


@pytest.mark.parametrize("path", READERS, ids=lambda p: p.name)
def test_ui_reads_only_declared_members(path):
    declared = set(members(WorkspaceLike)) | set(attributes(WorkspaceLike))
    undeclared = workspace_reads(path) - declared
    assert not undeclared, (
        f"{path.name} uses workspace members missing from WorkspaceLike: {sorted(undeclared)}"
    )


def test_the_reader_scan_sees_each_way_of_reaching_a_workspace(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "ws.track()\nworkspace.info\nsession.workspace.objects\nself.handlers.workspace(session).undo()\n"
        "services.open_workspace(video)\nws_other.thing\n"
    )
    assert workspace_reads(source) == {"track", "info", "objects", "undo"}
