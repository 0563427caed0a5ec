"""What every rule set shares during the one walk over the tree."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandbox.checker.diagnostics import Findings
from sandbox.checker.scopes import Scopes

Handler = Callable[[Any], None]


@dataclass
class Context:
    findings: Findings
    scopes: Scopes
    tree: ast.Module
    # ids of the top-level (async) defs named act: reported by the act contract, not elsewhere.
    top_level_act: frozenset[int]
    # ids of expressions that are called (a Call's func). The walk is breadth first, so a call
    # is seen, and its callee recorded here, before the callee itself.
    callees: set[int] = field(default_factory=set)


class RuleSet(Protocol):
    """A topic's rules: what to do with each node type, during the walk."""

    def handlers(self) -> Mapping[type[ast.AST], Handler]: ...
