"""No function in tracker/ or ui/ runs longer than MAX_LINES (STYLE.md: functions stay under ~80 lines).

Counted from the ``def`` line (decorators left out) to the function's last line, docstring and
comments included: what a reader has to hold in their head. Nested functions count inside their
parent and on their own. There is no allow-list; cut a long function into its steps instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tracker", "ui")
MAX_LINES = 80


def long_functions(path: Path, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """``(qualified name, first line, length)`` of every function in ``path`` longer than ``limit``."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                length = child.end_lineno - child.lineno + 1
                if length > limit:
                    found.append((name, child.lineno, length))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), filename=str(path)), "")
    return found


def sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_there_are_sources_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in sources()}
    assert {"tracker/workspace.py", "tracker/session.py", "ui/app.py", "ui/handlers.py"} <= names


@pytest.mark.parametrize("path", sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_long_functions(path):
    too_long = [f"{name} (line {line}: {length} lines)" for name, line, length in long_functions(path)]
    assert not too_long, f"{path.relative_to(ROOT)}: functions over {MAX_LINES} lines: {too_long}"


def test_the_counter_sees_methods_and_nested_functions(tmp_path):
    def body(indent: str) -> str:
        return "\n".join(f"{indent}x{i} = {i}" for i in range(MAX_LINES))

    source = tmp_path / "sample.py"
    source.write_text(
        f"def short():\n    pass\n\n\nclass Thing:\n    @property\n    def long(self):\n{body(' ' * 8)}\n\n\n"
        f"def outer():\n    def inner():\n{body(' ' * 8)}\n    return inner\n"
    )
    assert [(name, length) for name, _, length in long_functions(source)] == [
        ("Thing.long", MAX_LINES + 1),
        ("outer", MAX_LINES + 3),  # its def, the inner def, the body, the return
        ("outer.inner", MAX_LINES + 1),
    ]
