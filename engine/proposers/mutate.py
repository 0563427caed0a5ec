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

from engine.proposers.base import Proposal, ProposalContext
from sandbox.checker import check_source

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


@dataclass(frozen=True)
class _Site:
    """One place the mutator can change, and how."""

    node: ast.AST
    kind: str


def _is_number(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    )


def _returned_action(node: ast.AST) -> bool:
    return isinstance(node, ast.Return) and node.value is not None and _is_number(node.value)


def _sites(tree: ast.Module) -> list[_Site]:
    sites: list[_Site] = []
    # A returned constant is an action index: it changes as an action (within range), never
    # as a number, or the mutant would only ever end with `invalid_action`.
    actions = {id(node.value) for node in ast.walk(tree) if _returned_action(node)}
    for node in ast.walk(tree):
        if _returned_action(node):
            sites.append(_Site(node, "action"))
        elif _is_number(node) and id(node) not in actions:
            sites.append(_Site(node, "number"))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPPED_COMPARISONS:
            sites.append(_Site(node, "compare"))
        elif isinstance(node, ast.BinOp) and type(node.op) in _SWAPPED_OPERATORS:
            sites.append(_Site(node, "operator"))
        elif isinstance(node, ast.If) and node.orelse:
            sites.append(_Site(node, "branches"))
    return sites


def _tweak_number(value: int | float, rng: random.Random) -> int | float:
    if isinstance(value, int):
        step = max(1, round(abs(value) * rng.uniform(0.1, 0.5)))
        return value + rng.choice((-step, step))
    return round(value * rng.uniform(0.5, 1.5), 4)


def _mutate_site(site: _Site, rng: random.Random, n_actions: int) -> str:
    """Apply one edit in place; returns what changed, for the program's note."""
    node = site.node
    line = getattr(node, "lineno", "?")
    if site.kind == "action":
        assert isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
        old = node.value.value
        choices = [action for action in range(n_actions) if action != old]
        node.value.value = rng.choice(choices)
        return f"line {line}: return {old} -> return {node.value.value}"
    if site.kind == "number":
        assert isinstance(node, ast.Constant)
        old = node.value
        node.value = _tweak_number(old, rng)
        return f"line {line}: constant {old} -> {node.value}"
    if site.kind == "compare":
        assert isinstance(node, ast.Compare)
        old_op = type(node.ops[0])
        node.ops[0] = _SWAPPED_COMPARISONS[old_op]()
        return f"line {line}: {old_op.__name__} -> {type(node.ops[0]).__name__}"
    if site.kind == "operator":
        assert isinstance(node, ast.BinOp)
        old_op = type(node.op)
        node.op = _SWAPPED_OPERATORS[old_op]()
        return f"line {line}: {old_op.__name__} -> {type(node.op).__name__}"
    assert isinstance(node, ast.If)
    node.body, node.orelse = node.orelse, node.body
    node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
    return f"line {line}: if/else branches swapped (condition negated)"


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

    name = "mutate"

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
            original = ast.unparse(ast.parse(parent))
        except SyntaxError:
            return Proposal(None, "mutation", "the parent does not parse; nothing to mutate")
        for _ in range(self.attempts):
            tree = ast.parse(parent)
            sites = _sites(tree)
            if not sites:
                return Proposal(None, "mutation", "the parent has nothing the mutator can change")
            weights = [3.0 if site.kind == "number" else 1.0 for site in sites]
            edits = [
                _mutate_site(site, rng, n_actions)
                for site in rng.choices(sites, weights=weights, k=_edit_count(rng))
            ]
            candidate = ast.unparse(ast.fix_missing_locations(tree))
            # (unparse drops comments: compare code with code, not with the commented parent)
            if candidate != original and self.check(candidate + "\n"):
                return Proposal(candidate + "\n", "mutation", "; ".join(dict.fromkeys(edits)))
        return Proposal(None, "mutation", f"no valid mutant in {self.attempts} attempts")
