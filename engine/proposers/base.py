"""The proposer contract: given a parent and what is known about it, return new source.

A proposer never evaluates and never stores: the loop checks, plays and records whatever it
returns, including failures (no usable code, an LLM that kept erroring), so nothing it did is
lost from the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sandbox.games import Game
from storage import LlmExchange  # one LLM attempt: what its `llm_call` row records

ProposerName = Literal["mutate", "llm"]
"""The proposers a run can be configured with (`--proposer`): the offline mutator, an LLM."""

ProposalOrigin = Literal["llm", "mutation"]
"""Where a proposed program came from: an LLM's rewrite or the offline mutator's edit (stored as
the program's `origin`, beside `seed` for a run's starting program)."""


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
    # Called with each LLM attempt as soon as it ends (success, failure, retry), before any
    # backoff: the loop records it there, so a process killed mid-retry loses no served call.
    # An exception it raises (e.g. the database is full) ends the proposal and propagates.
    on_exchange: Callable[[LlmExchange], None] | None = None


@dataclass(frozen=True)
class Proposal:
    source: str | None  # None: nothing usable came back (see `note`)
    origin: ProposalOrigin
    note: str = ""  # what was changed, or why there is no source
    exchanges: tuple[LlmExchange, ...] = field(default_factory=tuple)
    # The proposer was cancelled (shutdown) before an answer came: not an outcome of the
    # parent program, so the loop should stop rather than count it as a failed iteration.
    cancelled: bool = False


class Proposer(Protocol):
    name: ProposerName

    def propose(self, context: ProposalContext) -> Proposal: ...
