"""The checker's findings: rule ids, positions in characters, and the report they make.

Positions: `line` is 1-based; `column` is 1-based and counts characters (ast's col_offset is a
0-based UTF-8 byte offset and is converted). A finding about the whole module (`no-act`,
`source-too-large`) is at line 1, column 1.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Literal, get_args

from sandbox.results import CheckReport, Diagnostic

RuleId = Literal[
    "source-too-large",
    "syntax",
    "too-complex",
    "import-not-allowed",
    "module-attribute-not-allowed",
    "unknown-module-attribute",
    "dunder-name",
    "underscore-name",
    "forbidden-builtin",
    "computed-attribute",
    "attribute-not-allowed",
    "string-format-attribute",
    "class-factory",
    "unsupported-syntax",
    "no-act",
    "act-signature",
    "restricted",
]
RULE_IDS: frozenset[str] = frozenset(get_args(RuleId))


def whole_module(rule: RuleId, message: str) -> Diagnostic:
    """A finding about the module as a whole, at line 1, column 1."""
    return Diagnostic(rule=rule, line=1, column=1, message=message)


class Findings:
    """The diagnostics found so far, and the lines they cover (so that RestrictedPython's
    findings on a line our rules already reported can be dropped as duplicates)."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines()
        self.diagnostics: list[Diagnostic] = []
        self.covered_lines: set[int] = set()

    def column(self, line: int, col_offset: int) -> int:
        """1-based character column from ast's 0-based UTF-8 byte offset."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        if text.isascii():
            return col_offset + 1
        return len(text.encode("utf-8")[:col_offset].decode("utf-8", errors="replace")) + 1

    def add(
        self,
        rule: RuleId,
        node: ast.AST | None,
        message: str,
        *,
        line: int | None = None,
        col_offset: int | None = None,
        also_covers: int | None = None,
    ) -> None:
        """Record a finding at `node` (or at line/col_offset); `node=None` is the whole module,
        reported at line 1, column 1, which covers no line."""
        if node is None:
            self.diagnostics.append(whole_module(rule, message))
            return
        start = line if line is not None else getattr(node, "lineno", 1)
        offset = col_offset if col_offset is not None else getattr(node, "col_offset", 0)
        self.diagnostics.append(
            Diagnostic(rule=rule, line=start, column=self.column(start, offset), message=message)
        )
        first = getattr(node, "lineno", start)
        last = getattr(node, "end_lineno", None) or first
        self.covered_lines.update(range(min(first, start), max(last, start) + 1))
        if also_covers is not None:
            self.covered_lines.add(also_covers)


def make_report(diagnostics: Iterable[Diagnostic]) -> CheckReport:
    """Every distinct finding, in position order."""
    unique = sorted(set(diagnostics), key=lambda d: (d.line, d.column, d.rule, d.message))
    return CheckReport(ok=not unique, diagnostics=unique)


def format_report(report: CheckReport) -> str:
    """Human-readable report: one line per diagnostic, or a single line saying it passed."""
    if report.ok:
        return "ok: no problems found"
    lines = [diagnostic.render() for diagnostic in report.diagnostics]
    count = len(report.diagnostics)
    lines.append(f"rejected: {count} problem{'s' if count != 1 else ''}")
    return "\n".join(lines)
