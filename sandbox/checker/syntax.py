"""Python syntax the sandbox does not support, with what to write instead."""

from __future__ import annotations

import ast
from collections.abc import Mapping

from sandbox.checker.context import Context, Handler

ASYNC_MESSAGE = (
    "async functions and await are not supported: act is called synchronously and must return an "
    "int; use plain `def` functions"
)


class SyntaxRules:
    def __init__(self, context: Context) -> None:
        self.findings = context.findings
        self.top_level_act = context.top_level_act

    def handlers(self) -> Mapping[type[ast.AST], Handler]:
        return {
            ast.AsyncFunctionDef: self.visit_AsyncFunctionDef,
            ast.ClassDef: self.visit_ClassDef,
            ast.Nonlocal: self.visit_Nonlocal,
            ast.Match: self.visit_Match,
            ast.TryStar: self.visit_TryStar,
            ast.Await: self.visit_async,
            ast.AsyncFor: self.visit_async,
            ast.AsyncWith: self.visit_async,
        }

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        if id(node) not in self.top_level_act:  # a top-level `async def act` is act-signature
            self.findings.add("unsupported-syntax", node, ASYNC_MESSAGE)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for kw in node.keywords:
            if kw.arg == "metaclass":
                self.findings.add(
                    "unsupported-syntax",
                    node,
                    "metaclass= is not allowed: define a plain class (Enum and IntEnum bases "
                    "work without it)",
                )

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.findings.add(
            "unsupported-syntax",
            node,
            "nonlocal is not supported: keep shared state in a module-level variable (updated "
            "with `global name`), in a dict or list, or in an object's attribute",
        )

    def visit_Match(self, node: ast.Match) -> None:
        self.findings.add(
            "unsupported-syntax",
            node,
            "match statements are not supported by the sandbox's compiler; use if/elif/else",
        )

    def visit_TryStar(self, node: ast.TryStar) -> None:
        self.findings.add(
            "unsupported-syntax",
            node,
            "except* (exception groups) is not supported; use a plain except clause",
        )

    def visit_async(self, node: ast.Await | ast.AsyncFor | ast.AsyncWith) -> None:
        self.findings.add("unsupported-syntax", node, ASYNC_MESSAGE)
