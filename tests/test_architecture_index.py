"""docs/ARCHITECTURE.md's "Where things live" index names files and functions that exist.

Each row is ``| behaviour | `file` | `Name`, `Class.method`, … |``. A name is looked up in the
file's syntax tree (nothing is imported): a top-level function, class or assignment, then, after
each dot, a method, nested class or class-level assignment of the class before it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "ARCHITECTURE.md"
HEADING = "## Where things live"


def index_rows(text: str) -> list[tuple[str, str, list[str]]]:
    """``(behaviour, file, names)`` of each row of the index table."""
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not line.startswith("|") or set(cells[1]) <= {"-"} or cells[1] == "file":
            continue
        behaviour, file_cell, names_cell = cells
        rows.append((behaviour, file_cell.strip("`"), re.findall(r"`([^`]+)`", names_cell)))
    return rows


def _defined(body: list[ast.stmt]) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            names.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def defines(path: Path, dotted: str) -> bool:
    """Whether ``path`` defines ``dotted`` (``name`` or ``Class.member``)."""
    body = ast.parse(path.read_text()).body
    node: ast.AST | None = None
    for part in dotted.split("."):
        node = _defined(body).get(part)
        if node is None:
            return False
        body = node.body if isinstance(node, ast.ClassDef) else []  # only a class has members
    return True


ROWS = index_rows(DOC.read_text())


def test_the_index_is_there_and_sizeable():
    assert len(ROWS) >= 25
    assert all(names for _, _, names in ROWS), [row for row in ROWS if not row[2]]


@pytest.mark.parametrize(("behaviour", "file", "names"), ROWS, ids=[row[0][:40] for row in ROWS])
def test_every_named_file_and_function_exists(behaviour, file, names):
    path = ROOT / file
    assert path.is_file(), f"{behaviour!r}: {file} does not exist"
    missing = [name for name in names if not defines(path, name)]
    assert not missing, f"{behaviour!r}: {file} defines no {missing}"


def test_the_lookup_can_say_no(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text("LIMIT = 3\nclass Thing:\n    size: int = 1\n    def go(self):\n        inner = 1\n")
    assert defines(source, "LIMIT") and defines(source, "Thing.go") and defines(source, "Thing.size")
    assert (
        not defines(source, "Thing.stop")
        and not defines(source, "go")
        and not defines(source, "Thing.go.inner")
    )
