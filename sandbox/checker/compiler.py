"""What the compilers say: Python's own (syntax errors, and the late errors such as 'return'
outside function), and RestrictedPython's transformer, the one the runtime compiles with."""

from __future__ import annotations

import ast
import re

from sandbox.checker.diagnostics import Findings
from sandbox.checker.parsing import compile_tree
from sandbox.results import Diagnostic
from sandbox.runtime.restricted_env import COMPILE_FLAGS, PolicyTransformer

POLICY_FILENAME = "<policy>"

_RESTRICTED_LINE = re.compile(r"^Line (\d+|None): (.*)$", re.DOTALL)


def syntax_diagnostic(error: SyntaxError | ValueError, source: str) -> Diagnostic:
    if not isinstance(error, SyntaxError):
        return Diagnostic(
            rule="syntax", line=1, column=1, message=f"{error}; remove the offending characters"
        )
    line = error.lineno or 1
    text = error.text
    if text is None:
        lines = source.splitlines()
        text = lines[line - 1] if 0 < line <= len(lines) else ""
    shown = f" in {text.strip()!r}" if text.strip() else ""
    return Diagnostic(
        rule="syntax",
        line=line,
        column=max(error.offset or 1, 1),
        message=(
            f"{error.msg}{shown}. The policy must be valid Python 3.11: check this line and the "
            "one before it (an unclosed bracket or a missing colon often shows up a line later)"
        ),
    )


def compiler_diagnostics(tree: ast.Module, source: str) -> list[Diagnostic]:
    """The compiler's late errors. Compiling an AST leaves it unchanged, so this runs before
    RestrictedPython's transformer rewrites the tree in place."""
    try:
        compile_tree(tree, POLICY_FILENAME, COMPILE_FLAGS)
    except (SyntaxError, ValueError) as error:
        return [syntax_diagnostic(error, source)]
    return []


def restricted_diagnostics(tree: ast.Module, findings: Findings) -> list[Diagnostic]:
    """RestrictedPython's findings that our own rules did not already report on that line.

    RestrictedPython's warnings are dropped: in RestrictedPython 9 they are either about the
    `printed` variable (print works in a policy) or duplicate an error. The tree is rewritten
    in place.
    """
    transformer = PolicyTransformer()
    transformer.visit(tree)
    found = []
    for text, (line, col_offset) in zip(
        transformer.errors, transformer.error_positions, strict=True
    ):
        match = _RESTRICTED_LINE.match(text)
        info = match.group(2) if match else text
        line = line or 1
        if line in findings.covered_lines:
            continue
        found.append(
            Diagnostic(
                rule="restricted",
                line=line,
                column=findings.column(line, col_offset or 0),
                message=(
                    f"{info.rstrip('.')}: the sandbox compiles policies with RestrictedPython, "
                    "which refuses this; rewrite the line with ordinary names, attribute reads "
                    "and calls"
                ),
            )
        )
    return found
