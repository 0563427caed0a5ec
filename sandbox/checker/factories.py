"""Calls that build a class from names and values the checker never sees.

A class statement's body is checked line by line (no dunder methods but __init__ and the
comparisons). Enum's functional API, `Enum("Name", [("A", 1), ("__repr__", f)])`, builds a class
from a list instead: its dunder entries become real dunder methods, and `copy.copy()` of a
member with a forged `__reduce_ex__` then writes attributes on any object, around the write
guard. Metaclasses (`enum.EnumType`, `typing.ABCMeta`, ...) do the same from a dict; those are
refused as module attributes (`sandbox.policy_rules.module_attribute_problem`), and `type` as a
builtin. Looking a member up by value, `Action(2)`, stays allowed.
"""

from __future__ import annotations

import ast
import enum
from collections.abc import Mapping

from sandbox.checker.context import Context, Handler
from sandbox.checker.scopes import PolicyClass, Scopes

_MAX_BASE_DEPTH = 20


class FactoryRules:
    def __init__(self, context: Context) -> None:
        self.findings = context.findings
        self.scopes = context.scopes

    def handlers(self) -> Mapping[type[ast.AST], Handler]:
        return {ast.Call: self.visit_Call}

    def visit_Call(self, node: ast.Call) -> None:
        if not _enum_functional_call(node):
            return
        if not _is_enum_class(self.scopes, self.scopes.static_value(node.func)):
            return
        callee = ast.unparse(node.func)
        self.findings.add(
            "class-factory",
            node,
            f"calling the enum class {callee} with member names (Enum's functional API, "
            f"{callee}('Name', [...])) is not allowed: it builds a class from a list the checker "
            "cannot see into, dunder methods included. Define enums with a class statement, "
            "e.g. `class Action(IntEnum):` and one `UP = 2` line per member; to look a member "
            f"up by value, call it with that one value: {callee}(2)",
        )


def _enum_functional_call(node: ast.Call) -> bool:
    """More than the one value an enum lookup takes: a name and members, or keywords."""
    if any(isinstance(arg, ast.Starred) for arg in node.args):
        return True
    return len(node.args) >= 2 or any(kw.arg != "value" for kw in node.keywords)


def _is_enum_class(scopes: Scopes, value: object, depth: int = 0) -> bool:
    """Whether a static value is an enum class: one of the enum module's, or a class of the
    policy's with one among its bases."""
    if isinstance(value, enum.EnumType):
        return True
    if not isinstance(value, PolicyClass) or depth > _MAX_BASE_DEPTH:
        return False
    return any(
        _is_enum_class(scopes, scopes.static_value(base), depth + 1) for base in value.node.bases
    )
