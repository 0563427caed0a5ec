"""The offline mutation proposer: deterministic, every site kind edited, actions kept in range."""

from __future__ import annotations

import ast
import re

from engine.proposers.base import ProposalContext, ScoredSource
from engine.proposers.mutate import MutationProposer
from sandbox.checker import check_source
from sandbox.games import get_game

PONG = get_game("Pong")

PARENT = """\
THRESHOLD = 12
SCALE = 0.5


def act(obs):
    ball = obs.get("Ball")
    player = obs.get("Player")
    if ball is None or player is None:
        return 0
    diff = (ball["y"] - player["y"]) * SCALE + 1
    if diff < -THRESHOLD:
        return 2
    else:
        return 3
"""


def propose(iteration: int, seed: int = 0, parent: str = PARENT) -> tuple[str | None, str]:
    context = ProposalContext(PONG, ScoredSource(parent, None, "p1"), "", iteration=iteration)
    proposal = MutationProposer(seed=seed).propose(context)
    assert proposal.origin == "mutation"
    return proposal.source, proposal.note


def test_mutation_proposer_is_deterministic() -> None:
    assert [propose(i) for i in range(5)] == [propose(i) for i in range(5)]
    assert propose(0, seed=0) != propose(0, seed=1) or propose(1, seed=0) != propose(1, seed=1)


def test_mutation_proposer_edits_every_site_kind() -> None:
    notes = " ".join(note for _, note in (propose(i) for i in range(60)))
    assert re.search(r"return \d -> return \d", notes)  # action
    assert re.search(r"constant [\d.]+ -> [\d.-]+", notes)  # number
    assert "Lt -> LtE" in notes  # comparison
    assert re.search(r"(Add -> Sub|Sub -> Add|Mult -> FloorDiv)", notes)  # operator
    assert "if/else branches swapped" in notes


def test_mutation_proposer_mutants_pass_the_checker_and_keep_actions_in_range() -> None:
    for iteration in range(30):
        source, _ = propose(iteration)
        assert source is not None and check_source(source).ok
        returned = [
            node.value.value
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
        ]
        assert all(value in range(len(PONG.actions)) for value in returned), returned


def test_mutation_proposer_explains_when_it_cannot_mutate() -> None:
    assert propose(0, parent="def act(obs):\n    return obs\n") == (
        None,
        "the parent has nothing the mutator can change",
    )
    assert propose(0, parent="def act(obs:\n") == (
        None,
        "the parent does not parse; nothing to mutate",
    )
