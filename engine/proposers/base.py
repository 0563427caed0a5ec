"""The proposer contract: given a parent and what is known about it, return new source.

A proposer never evaluates and never stores: the loop checks, plays and records whatever it
returns, including failures (no usable code, an LLM that kept erroring), so nothing it did is
lost from the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sandbox.games import Game


@dataclass(frozen=True)
class ScoredSource:
    """An earlier program shown to the proposer as an example."""

    source: str
    mean_return: float | None
    label: str  # short id, for the prompt


@dataclass(frozen=True)
class ProposalContext:
    game: Game
    parent: ScoredSource
    feedback: str  # compact evaluation feedback on the parent (engine.feedback)
    best: tuple[ScoredSource, ...] = ()  # the best few programs so far, best first
    iteration: int = 0


@dataclass(frozen=True)
class LlmExchange:
    """One request to the model, failed ones included: stored as an `llm_call` row."""

    prompt: str
    model: str
    response: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_seconds: float | None = None
    cost: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Proposal:
    source: str | None  # None: nothing usable came back (see `note`)
    origin: str  # "llm" | "mutation"
    note: str = ""  # what was changed, or why there is no source
    exchanges: tuple[LlmExchange, ...] = field(default_factory=tuple)


class Proposer(Protocol):
    name: str

    def propose(self, context: ProposalContext) -> Proposal: ...
