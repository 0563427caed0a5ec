"""The order of the checks, and the one walk over the tree that runs every rule set."""

from __future__ import annotations

import ast
import warnings
from collections import defaultdict

from sandbox.checker.attributes import AttributeRules
from sandbox.checker.builtins import BuiltinRules
from sandbox.checker.compiler import (
    POLICY_FILENAME,
    compiler_diagnostics,
    restricted_diagnostics,
    syntax_diagnostic,
)
from sandbox.checker.context import Context, Handler, RuleSet
from sandbox.checker.contract import check_act, top_level_acts
from sandbox.checker.diagnostics import Findings, make_report, whole_module
from sandbox.checker.factories import FactoryRules
from sandbox.checker.modules import ModuleRules
from sandbox.checker.names import NameRules
from sandbox.checker.parsing import parse
from sandbox.checker.scopes import Scopes
from sandbox.checker.syntax import SyntaxRules
from sandbox.policy_rules import MAX_SOURCE_BYTES
from sandbox.results import CheckReport

_TOO_COMPLEX = (
    "the code nests too deeply to compile (e.g. hundreds of nested brackets or a very long chain "
    "of operators in one expression); split it into several statements, or use a loop or a list"
)


def check_source(source: str) -> CheckReport:
    """Check a policy module's source; report every problem found (see the package docstring)."""
    # The compiler's warnings ('"is" with a literal', invalid escapes) are not reasons to
    # reject, and must not leak to the caller's stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _check(source)
        except (RecursionError, MemoryError):
            # ast.parse, compile(), the scope pass and RestrictedPython's transformer all
            # recurse on nesting.
            return make_report([whole_module("too-complex", _TOO_COMPLEX)])


def _check(source: str) -> CheckReport:
    size = len(source.encode("utf-8", errors="surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        return make_report(
            [
                whole_module(
                    "source-too-large",
                    f"the policy is {size} bytes; the limit is {MAX_SOURCE_BYTES} bytes "
                    f"({MAX_SOURCE_BYTES // 1024} KiB). Write a shorter policy: drop dead "
                    "code, long comments and large data tables",
                )
            ]
        )
    try:
        tree = parse(source, POLICY_FILENAME)
    except (SyntaxError, ValueError) as error:  # ValueError: null bytes on some 3.11 releases
        return make_report([syntax_diagnostic(error, source)])
    findings = Findings(source)
    run_rules(tree, findings)
    diagnostics = findings.diagnostics + compiler_diagnostics(tree, source)
    diagnostics += restricted_diagnostics(tree, findings)
    return make_report(diagnostics)


def run_rules(tree: ast.Module, findings: Findings) -> None:
    """Our AST rules, in one walk over the tree (a dispatch on node type, which is about twice
    as fast as ast.NodeVisitor here), then the act contract, which needs the whole module."""
    context = Context(
        findings=findings,
        scopes=Scopes(tree),
        tree=tree,
        top_level_act=frozenset(
            id(act) for act in top_level_acts(tree) if isinstance(act, ast.AsyncFunctionDef)
        ),
    )
    rule_sets: list[RuleSet] = [
        # AttributeRules first: its Call handler records callees, which the others read.
        AttributeRules(context),
        NameRules(context),
        ModuleRules(context),
        BuiltinRules(context),
        FactoryRules(context),
        SyntaxRules(context),
    ]
    handlers: defaultdict[type[ast.AST], list[Handler]] = defaultdict(list)
    for rule_set in rule_sets:
        for node_type, handler in rule_set.handlers().items():
            handlers[node_type].append(handler)
    # ast.walk is breadth first: a node is seen before its children (a class before its
    # methods, a call before its callee).
    for node in ast.walk(tree):
        for handler in handlers.get(type(node), ()):
            handler(node)
    check_act(tree, findings)
