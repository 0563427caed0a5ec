"""What a policy may take from modules: the import allowlist, and the attributes of allowed
modules that still lead around the guards (`operator.attrgetter`, `enum.bltns`, metaclasses)."""

from __future__ import annotations

import ast
from collections.abc import Mapping

from sandbox.checker.context import Context, Handler
from sandbox.checker.names import attribute_position, check_name
from sandbox.policy_rules import (
    ALLOWED_MODULES,
    allowed_modules_text,
    load_allowed_module,
    module_attribute_problem,
)

_OBS_HINT = "compute the action from the obs dict with plain Python and those modules"

# Extra advice for modules LLMs reach for most often.
_IMPORT_HINTS = {
    "numpy": "numpy is not available: use lists, min/max/sum and the math module",
    "np": "numpy is not available: use lists, min/max/sum and the math module",
    "time": "time is not available: count steps in a module-level variable instead of reading "
    "the clock",
    "re": "there is nothing to parse in an observation; read the dict keys directly",
    "dataclasses": "use a plain class with an __init__ method instead of a dataclass",
    "string": "write the few characters you need as a literal",
    "json": "the observation is already a dict; print() it if you need to see it",
}


class ModuleRules:
    def __init__(self, context: Context) -> None:
        self.findings = context.findings
        self.scopes = context.scopes

    def handlers(self) -> Mapping[type[ast.AST], Handler]:
        return {
            ast.Import: self.visit_Import,
            ast.ImportFrom: self.visit_ImportFrom,
            ast.Attribute: self.visit_Attribute,
        }

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name not in ALLOWED_MODULES:
                self._import_not_allowed(node, alias.name)
                continue
            bound = alias.asname or alias.name.split(".")[0]
            check_name(self.findings, bound, node, what="import name")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module_name = node.module or ""
        if node.level:
            self.findings.add(
                "import-not-allowed",
                node,
                "relative imports are not allowed: a policy is a single module; import only "
                f"from these standard modules: {allowed_modules_text()}",
            )
            return
        if module_name not in ALLOWED_MODULES:
            self._import_not_allowed(node, module_name)
            return
        for alias in node.names:
            self._check_imported_name(node, module_name, alias)

    def _check_imported_name(
        self, node: ast.ImportFrom, module_name: str, alias: ast.alias
    ) -> None:
        if alias.name == "*":
            self.findings.add(
                "import-not-allowed",
                node,
                f"`from {module_name} import *` is not allowed: import the names you use "
                f"(`from {module_name} import name`) or the module (`import {module_name}`)",
            )
            return
        if alias.name.startswith("_"):
            check_name(self.findings, alias.name, node, what="imported name")
            return
        if alias.asname:
            check_name(self.findings, alias.asname, node, what="import name")
        if module_name == "__future__":
            return
        module = load_allowed_module(module_name)
        problem = module_attribute_problem(module, alias.name)
        if problem is not None:
            self.findings.add("module-attribute-not-allowed", node, problem)
        elif not hasattr(module, alias.name):
            self.findings.add(
                "unknown-module-attribute",
                node,
                f"module {module_name!r} has no name {alias.name!r}: check the spelling, or "
                "write the function yourself",
            )

    def _import_not_allowed(self, node: ast.AST, name: str) -> None:
        top = name.split(".")[0]
        hint = _IMPORT_HINTS.get(top, _OBS_HINT)
        self.findings.add(
            "import-not-allowed",
            node,
            f"import of {name!r} is not allowed: policies may import only "
            f"{allowed_modules_text()}; {hint}",
        )

    def visit_Attribute(self, node: ast.Attribute) -> None:
        """`module.name` where the module is certainly an imported allowed module."""
        if node.attr.startswith("_") or not isinstance(node.value, ast.Name):
            return  # NameRules-like checks in AttributeRules report underscore names
        module_name = self.scopes.imported_module(node.value)
        if module_name is None:
            return
        module = load_allowed_module(module_name)
        line, col_offset = attribute_position(node)
        problem = module_attribute_problem(module, node.attr)
        if problem is not None:
            self.findings.add(
                "module-attribute-not-allowed", node, problem, line=line, col_offset=col_offset
            )
        elif not hasattr(module, node.attr):
            self.findings.add(
                "unknown-module-attribute",
                node,
                f"module {module_name!r} has no attribute {node.attr!r}: check the spelling, "
                "or write the function yourself",
                line=line,
                col_offset=col_offset,
            )
