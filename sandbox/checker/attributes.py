"""Attribute names the policy may not read or write on any object, and the str.format templates
that would look attributes up by name where the attribute guard cannot see it."""

from __future__ import annotations

import ast
from collections.abc import Mapping

from sandbox.checker.context import Context, Handler
from sandbox.checker.names import attribute_position, check_name
from sandbox.policy_rules import FORBIDDEN_ATTRIBUTES, template_looks_up_fields

_FORMAT_METHODS = ("format", "format_map")


class AttributeRules:
    def __init__(self, context: Context) -> None:
        self.findings = context.findings
        self.callees = context.callees

    def handlers(self) -> Mapping[type[ast.AST], Handler]:
        return {ast.Attribute: self.visit_Attribute, ast.Call: self.visit_Call}

    def visit_Attribute(self, node: ast.Attribute) -> None:
        line, col_offset = attribute_position(node)
        if node.attr.startswith("_"):
            check_name(
                self.findings, node.attr, node, what="attribute", line=line, col_offset=col_offset
            )
            return
        if node.attr in FORBIDDEN_ATTRIBUTES:
            self.findings.add(
                "attribute-not-allowed",
                node,
                f"the attribute {node.attr!r} is not allowed: {FORBIDDEN_ATTRIBUTES[node.attr]}",
                line=line,
                col_offset=col_offset,
            )
        elif (
            node.attr in _FORMAT_METHODS
            and isinstance(node.ctx, ast.Load)
            and id(node) not in self.callees
        ):
            # `f = template.format` then f(x): the same template, called later.
            self._check_format(node.attr, node.value, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        self.callees.add(id(func))
        if isinstance(func, ast.Attribute) and func.attr in _FORMAT_METHODS:
            self._check_format(func.attr, func.value, node)

    def _check_format(self, method: str, template: ast.expr, node: ast.expr) -> None:
        if isinstance(template, ast.Constant) and isinstance(template.value, str):
            try:
                looks_up = template_looks_up_fields(template.value)
            except ValueError:
                return  # a malformed template fails at run time with a clear ValueError
            if looks_up:
                self.findings.add(
                    "string-format-attribute",
                    node,
                    f"this .{method}() template reads attributes or items inside its braces "
                    "(like {0.x} or {0[1]}); str.format does those lookups in C, around the "
                    "sandbox's attribute guard. Use an f-string such as f\"{ball['x']:.1f}\"",
                )
            return
        if isinstance(template, ast.Constant):
            return  # bytes and numbers have no format method worth checking
        self.findings.add(
            "string-format-attribute",
            node,
            f".{method}() on a computed string is not allowed: its template cannot be checked "
            "for attribute lookups such as '{0.__class__}'. Call it on a string literal, e.g. "
            "'{:.1f}'.format(x), or use an f-string",
        )
