"""Builtins a policy may not use at all (eval, open, type, ...), and getattr & co., which it may
use only as a direct call with a string literal name: passed around as a value (aliased, a
parameter default, in a list, returned by a lambda) they look up names that cannot be checked.

A name the policy binds itself is not the builtin: `scopes` tells which reads certainly are the
policy's own, and anything less certain is treated as the builtin.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from sandbox.checker.context import Context, Handler
from sandbox.checker.names import check_name
from sandbox.policy_rules import ATTRIBUTE_BUILTINS, FORBIDDEN_ATTRIBUTES, FORBIDDEN_BUILTINS


class BuiltinRules:
    def __init__(self, context: Context) -> None:
        self.findings = context.findings
        self.scopes = context.scopes
        self.callees = context.callees

    def handlers(self) -> Mapping[type[ast.AST], Handler]:
        return {ast.Name: self.visit_Name, ast.Call: self.visit_Call}

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if not isinstance(node.ctx, ast.Load):
            return
        if name in FORBIDDEN_BUILTINS:
            if self.scopes.may_be_builtin(node):
                self.findings.add(
                    "forbidden-builtin",
                    node,
                    f"{name}() is not available to policies: {FORBIDDEN_BUILTINS[name]}"
                    + self._own_binding_note(name),
                )
            else:
                check_name(self.findings, name, node)
        elif (
            name in ATTRIBUTE_BUILTINS
            and id(node) not in self.callees
            and self.scopes.may_be_builtin(node)
        ):
            self.findings.add(
                "computed-attribute",
                node,
                f"{name} may only be called directly, as {name}(obj, 'name'...) with a string "
                "literal name: passed around as a value (to map, reduce, a variable, a parameter "
                "default...) it looks up names that cannot be checked"
                + self._own_binding_note(name),
            )

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id in ATTRIBUTE_BUILTINS
            and self.scopes.may_be_builtin(func)
        ):
            self._check_attribute_builtin(func.id, node)

    def _own_binding_note(self, name: str) -> str:
        """For a program that binds the name too, why this use still counts as the builtin."""
        if name not in self.scopes.bound_anywhere:
            return ""
        return (
            f". (The program binds its own {name!r}, but not certainly before this line runs: "
            "it is bound later, only inside an if/loop/try, or deleted somewhere; rename it, or "
            "bind it once near the top of the module)"
        )

    def _check_attribute_builtin(self, name: str, node: ast.Call) -> None:
        if len(node.args) < 2:
            return
        attribute = node.args[1]
        if isinstance(attribute, ast.Constant) and isinstance(attribute.value, str):
            self._check_literal_attribute(name, attribute, attribute.value)
            return
        example = f"{name}(obj, 'speed'{', 0' if name == 'getattr' else ''})"
        self.findings.add(
            "computed-attribute",
            attribute,
            f"{name}() with a computed attribute name is not allowed: the name must be a string "
            f"literal such as {example}, or better, plain attribute access. Objects in obs are "
            "dicts: look computed keys up with obs['Ball'][key] or .get(key)"
            + self._own_binding_note(name),
        )

    def _check_literal_attribute(self, name: str, node: ast.Constant, literal: str) -> None:
        if literal.startswith("_"):
            self.findings.add(
                "computed-attribute",
                node,
                f"{name}(..., {literal!r}) is not allowed: attribute names starting "
                "with '_' reach Python internals or the sandbox's guards; use an ordinary "
                "attribute name",
            )
        elif literal in FORBIDDEN_ATTRIBUTES:
            self.findings.add(
                "attribute-not-allowed",
                node,
                f"the attribute {literal!r} is not allowed: {FORBIDDEN_ATTRIBUTES[literal]}",
            )
        elif literal in INSPECT_ATTRIBUTES:
            self.findings.add(
                "attribute-not-allowed",
                node,
                f"the attribute {literal!r} is not allowed: frames, code objects and "
                "tracebacks reach the interpreter's internals, which a policy never needs",
            )
