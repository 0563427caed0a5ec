"""Scopes: which binding a name refers to (Python's rules, as far as the checker needs them)."""

from __future__ import annotations

import ast
import enum
import math

import pytest

from sandbox.checker.scopes import PolicyClass, Scopes


def loads(source: str, name: str) -> tuple[Scopes, list[ast.Name]]:
    """The module's scopes, and every read of `name` in source order."""
    tree = ast.parse(source)
    reads = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)
    ]
    return Scopes(tree), sorted(reads, key=lambda node: (node.lineno, node.col_offset))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("x = dir\n", [True], id="never-bound"),
        pytest.param("dir = 1\nx = dir\n", [False], id="bound-above"),
        pytest.param("x = dir\ndir = 1\ny = dir\n", [True, False], id="read-before-and-after"),
        pytest.param("dir = dir\n", [True], id="own-right-hand-side"),
        pytest.param("if c:\n    dir = 1\nx = dir\n", [True], id="bound-in-an-if"),
        pytest.param("dir = 1\ndel dir\nx = dir\n", [True], id="deleted"),
        pytest.param("def f():\n    dir = 1\n    return dir\n", [False], id="function-local"),
        pytest.param("def f(dir):\n    return dir\n", [False], id="parameter"),
        pytest.param("def f(g=dir):\n    dir = 1\n", [True], id="default-outside"),
        pytest.param(
            "def f():\n    global dir\n    return dir\n", [True], id="declared-global-unbound"
        ),
        pytest.param(
            "def f():\n    dir = 1\n    def g():\n        return dir\n", [False], id="closure"
        ),
        pytest.param(
            "class C:\n    dir = 1\n    def m(self):\n        return dir\n",
            [True],
            id="class-body-invisible-from-methods",
        ),
        pytest.param("class C:\n    dir = 1\n    x = dir\n", [False], id="class-body-itself"),
        pytest.param("def dir():\n    return dir\n", [False], id="recursion-inside-own-def"),
        pytest.param(
            "def f():\n    return [dir for dir in range(3)]\n", [False], id="comprehension-target"
        ),
        pytest.param("x = [dir for _ in range(3)]\n", [True], id="comprehension-free-name"),
        pytest.param("def f():\n    [y := 1 for _ in dir]\n", [True], id="first-iterable-outside"),
    ],
)
def test_scopes_may_be_builtin(source: str, expected: list[bool]) -> None:
    scopes, reads = loads(source, "dir")
    assert [scopes.may_be_builtin(node) for node in reads] == expected


def test_scopes_imported_module_only_for_certain_imports() -> None:
    source = (
        "import math\nimport math as m\nimport enum\nenum = 3\n"
        "def f():\n    return math, m, enum\n"
        "def g():\n    math = 1\n    return math\n"
    )
    tree = ast.parse(source)
    scopes = Scopes(tree)
    reads = {
        (node.id, node.lineno): node
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }
    assert scopes.imported_module(reads["math", 6]) == "math"
    assert scopes.imported_module(reads["m", 6]) == "math"
    assert scopes.imported_module(reads["enum", 6]) is None  # also assigned
    assert scopes.imported_module(reads["math", 9]) is None  # a local variable


def test_scopes_static_value_follows_imports_aliases_and_classes() -> None:
    source = (
        "import enum\nfrom math import floor as f\nE = enum.IntEnum\n"
        "class Action(E):\n    UP = 2\nx = (enum.Enum, f, E, Action, unknown, enum.nothing)\n"
    )
    tree = ast.parse(source)
    scopes = Scopes(tree)
    values = next(node for node in ast.walk(tree) if isinstance(node, ast.Tuple))
    found = [scopes.static_value(element) for element in values.elts]
    assert found[:3] == [enum.Enum, math.floor, enum.IntEnum]
    assert isinstance(found[3], PolicyClass) and found[3].node.name == "Action"
    assert found[4:] == [None, None]


def test_scopes_static_value_stops_on_cycles() -> None:
    tree = ast.parse("a = b\nb = a\nx = a\n")
    scopes = Scopes(tree)
    statement = tree.body[2]
    assert isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Name)
    read = statement.value
    assert scopes.static_value(read) is None
