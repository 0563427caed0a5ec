"""Names that start with "_": dunders reach Python's internals, single underscores are reserved
for RestrictedPython's guards (`_getattr_`, `_write_`, ...), which a policy must not replace."""

from __future__ import annotations

import ast
import keyword
from collections.abc import Mapping

from sandbox.checker.context import Context, Handler
from sandbox.checker.diagnostics import Findings, RuleId
from sandbox.checker.scopes import parameters
from sandbox.policy_rules import ALLOWED_DUNDER_METHODS, FORBIDDEN_BUILTINS

# What to say about particular dunder names, beyond the general rule.
_DUNDER_HINTS = {
    "__name__": (
        "the policy module is imported by the runner, never run as a script: remove the "
        "`if __name__ == '__main__':` block and any test code in it"
    ),
    "__main__": "remove the `if __name__ == '__main__':` block and any test code in it",
    "__all__": "the runner only calls act(); remove __all__",
    "__slots__": "remove __slots__; plain attributes set in __init__ work",
    "__init__": (
        "do not call __init__ yourself (super().__init__() is not supported either): set up "
        "all attributes in the class's own __init__"
    ),
    "__dict__": "keep data you need to look up by name in a dict of your own",
    "__file__": "a policy has no files",
    "__doc__": "use a comment instead",
}


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def check_name(
    findings: Findings,
    name: str,
    node: ast.AST,
    *,
    what: str = "name",
    line: int | None = None,
    col_offset: int | None = None,
    also_covers: int | None = None,
) -> None:
    """Report a name that starts with "_" (a lone "_" is fine)."""
    if not name.startswith("_") or name == "_":
        return
    if is_dunder(name):
        hint = _DUNDER_HINTS.get(
            name, "use ordinary names; to read an object in obs use obs['Ball']['x']"
        )
        rule: RuleId = "dunder-name"
        message = (
            f"the {what} {name!r} is not allowed: names that start and end with '__' reach "
            f"Python internals, which are off limits in a policy; {hint}"
        )
    else:
        rule = "underscore-name"
        message = (
            f"the {what} {name!r} is not allowed: names starting with '_' are reserved for "
            f"the sandbox's guards; rename it to {_suggested_name(name)!r}"
        )
    findings.add(rule, node, message, line=line, col_offset=col_offset, also_covers=also_covers)


def attribute_position(node: ast.Attribute) -> tuple[int, int]:
    """Where the attribute's name is (`c` in `a.b.c`), as (line, col_offset)."""
    line = node.end_lineno or node.lineno
    col_offset = (node.end_col_offset or 0) - len(node.attr.encode("utf-8"))
    return line, max(col_offset, 0)


def _suggested_name(name: str) -> str:
    stripped = name.strip("_")
    if stripped.isidentifier() and not keyword.iskeyword(stripped):
        return stripped
    return f"my{name}"


class NameRules:
    """Every name the policy writes: variables, parameters, functions, classes, keywords."""

    def __init__(self, context: Context) -> None:
        self.findings = context.findings
        self.methods: set[int] = set()  # ids of functions defined directly in a class body

    def handlers(self) -> Mapping[type[ast.AST], Handler]:
        return {
            ast.Name: self.visit_Name,
            ast.keyword: self.visit_keyword,
            ast.ExceptHandler: self.visit_bound_name,
            ast.MatchAs: self.visit_bound_name,
            ast.MatchStar: self.visit_bound_name,
            ast.FunctionDef: self.visit_function,
            ast.AsyncFunctionDef: self.visit_function,
            ast.Lambda: self.visit_Lambda,
            ast.ClassDef: self.visit_ClassDef,
        }

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load) and node.id in FORBIDDEN_BUILTINS:
            return  # BuiltinRules decide: the builtin is refused, the policy's own name checked
        check_name(self.findings, node.id, node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None and is_dunder(node.arg):
            check_name(self.findings, node.arg, node, what="keyword argument")

    def visit_bound_name(self, node: ast.ExceptHandler | ast.MatchAs | ast.MatchStar) -> None:
        if node.name:
            check_name(self.findings, node.name, node)

    def visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        name = node.name
        if is_dunder(name) and id(node) in self.methods:
            if name not in ALLOWED_DUNDER_METHODS:
                allowed = ", ".join(sorted(ALLOWED_DUNDER_METHODS - {"__init__"}))
                self.findings.add(
                    "dunder-name",
                    node,
                    f"defining the method {name!r} is not allowed: a class may define only "
                    f"__init__ and the comparison methods ({allowed}); make it an ordinary "
                    "method instead, e.g. `def describe(self):` rather than `def __repr__(self):`",
                )
        else:
            check_name(self.findings, name, node, what="function name")
        self._check_parameters(node.args, node.lineno)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._check_parameters(node.args, node.lineno)

    def _check_parameters(self, arguments: ast.arguments, def_line: int) -> None:
        for arg in parameters(arguments):
            # RestrictedPython reports parameters on the def line: cover that line too.
            check_name(self.findings, arg.arg, arg, what="parameter", also_covers=def_line)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        # ast.walk is breadth first: a class is seen before the methods in its body.
        self.methods.update(
            id(item)
            for item in node.body
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
        )
        check_name(self.findings, node.name, node, what="class name")
