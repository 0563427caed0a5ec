"""The offline proposer: small random AST edits of the parent that keep it a valid policy.

It needs no network, so a fresh machine can run a whole optimization (the README's first
command), and it is deterministic for a given (seed, iteration, parent), which is what lets a
run killed mid-evaluation resume without playing anything twice.
"""

from __future__ import annotations

import ast
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal, assert_never

from engine.proposers.base import Proposal, ProposalContext, ProposalOrigin, ProposerName
from sandbox.checker import check_source
from sandbox.checker.parsing import parse

ORIGIN: ProposalOrigin = "mutation"

_SWAPPED_COMPARISONS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
}
_SWAPPED_OPERATORS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.FloorDiv,
    ast.FloorDiv: ast.Mult,
}


SiteKind = Literal["action", "number", "compare", "operator", "branches"]


@dataclass(frozen=True)
class _ActionSite:
    """`return 3`: the returned constant is an action index, changed within range."""

    node: ast.Return
    constant: ast.Constant
    kind: ClassVar[SiteKind] = "action"


@dataclass(frozen=True)
class _NumberSite:
    node: ast.Constant
    kind: ClassVar[SiteKind] = "number"


@dataclass(frozen=True)
class _CompareSite:
    node: ast.Compare
    kind: ClassVar[SiteKind] = "compare"


@dataclass(frozen=True)
class _OperatorSite:
    node: ast.BinOp
    kind: ClassVar[SiteKind] = "operator"


@dataclass(frozen=True)
class _BranchesSite:
    node: ast.If
    kind: ClassVar[SiteKind] = "branches"


_Site = _ActionSite | _NumberSite | _CompareSite | _OperatorSite | _BranchesSite


def _number(node: ast.AST) -> int | float | None:
    """The value of a numeric constant (not a bool), or None."""
    if not isinstance(node, ast.Constant):
        return None
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _returned_constant(node: ast.AST) -> ast.Constant | None:
    """The constant of `return <number>`, or None."""
    if isinstance(node, ast.Return) and node.value is not None and _number(node.value) is not None:
        assert isinstance(node.value, ast.Constant)
        return node.value
    return None


def _sites(tree: ast.Module) -> list[_Site]:
    sites: list[_Site] = []
    # A returned constant is an action index: it changes as an action (within range), never
    # as a number, or the mutant would only ever end with `invalid_action`.
    actions = {id(constant) for node in ast.walk(tree) if (constant := _returned_constant(node))}
    for node in ast.walk(tree):
        returned = _returned_constant(node)
        if returned is not None and isinstance(node, ast.Return):
            sites.append(_ActionSite(node, returned))
        elif isinstance(node, ast.Constant) and _number(node) is not None:
            if id(node) not in actions:
                sites.append(_NumberSite(node))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPPED_COMPARISONS:
            sites.append(_CompareSite(node))
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAPPED_OPERATORS:
            sites.append(_OperatorSite(node))
        elif isinstance(node, ast.If) and node.orelse:
            sites.append(_BranchesSite(node))
    return sites


def _tweak_number(value: int | float, rng: random.Random) -> int | float:
    if isinstance(value, int):
        step = max(1, round(abs(value) * rng.uniform(0.1, 0.5)))
        return value + rng.choice((-step, step))
    return round(value * rng.uniform(0.5, 1.5), 4)


def _mutate_site(site: _Site, rng: random.Random, n_actions: int) -> str:
    """Apply one edit in place; returns what changed, for the program's note."""
    line = getattr(site.node, "lineno", "?")
    match site:
        case _ActionSite(constant=constant):
            old = _number(constant)
            constant.value = rng.choice([action for action in range(n_actions) if action != old])
            return f"line {line}: return {old} -> return {constant.value}"
        case _NumberSite(node=node):
            old_number = _number(node)
            assert old_number is not None  # a number site holds a number
            node.value = _tweak_number(old_number, rng)
            return f"line {line}: constant {old_number} -> {node.value}"
        case _CompareSite(node=node):
            old_comparison = type(node.ops[0])
            node.ops[0] = _SWAPPED_COMPARISONS[old_comparison]()
            return f"line {line}: {old_comparison.__name__} -> {type(node.ops[0]).__name__}"
        case _OperatorSite(node=node):
            old_operator = type(node.op)
            node.op = _SWAPPED_OPERATORS[old_operator]()
            return f"line {line}: {old_operator.__name__} -> {type(node.op).__name__}"
        case _BranchesSite(node=node):
            node.body, node.orelse = node.orelse, node.body
            node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
            return f"line {line}: if/else branches swapped (condition negated)"
        case _:
            assert_never(site)


def _edit_count(rng: random.Random) -> int:
    """Mostly one edit: small steps climb; now and then two or three, to jump a ridge."""
    return rng.choices((1, 2, 3), weights=(6, 3, 1))[0]


def _rng_for(seed: int, iteration: int, source: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{iteration}:{source}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class MutationProposer:
    """Numeric constants, comparison and arithmetic operators, returned actions, branches.

    Numeric constants are the likeliest edit, since thresholds are what a hand-written policy
    most often gets wrong. Each proposal makes one to three edits and must pass the checker.
    """

    name: ProposerName = "mutate"

    def __init__(
        self,
        seed: int = 0,
        attempts: int = 30,
        check: Callable[[str], bool] = lambda source: check_source(source).ok,
    ) -> None:
        self.seed = seed
        self.attempts = attempts
        self.check = check

    def propose(self, context: ProposalContext) -> Proposal:
        parent = context.parent.source
        rng = _rng_for(self.seed, context.iteration, parent)
        n_actions = len(context.game.actions)
        try:
            original = ast.unparse(parse(parent))
        except SyntaxError:
            return Proposal(None, ORIGIN, "the parent does not parse; nothing to mutate")
        for _ in range(self.attempts):
            tree = parse(parent)
            sites = _sites(tree)
            if not sites:
                return Proposal(None, ORIGIN, "the parent has nothing the mutator can change")
            weights = [3.0 if site.kind == "number" else 1.0 for site in sites]
            edits = [
                _mutate_site(site, rng, n_actions)
                for site in rng.choices(sites, weights=weights, k=_edit_count(rng))
            ]
            candidate = ast.unparse(ast.fix_missing_locations(tree))
            # (unparse drops comments: compare code with code, not with the commented parent)
            if candidate != original and self.check(candidate + "\n"):
                return Proposal(candidate + "\n", ORIGIN, "; ".join(dict.fromkeys(edits)))
        return Proposal(None, ORIGIN, f"no valid mutant in {self.attempts} attempts")
