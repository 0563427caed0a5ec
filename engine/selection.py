"""Selection: given what is known about an island and a scored candidate, what happens next.

Pure functions over plain values: no storage, no sandbox, no clock. The loop feeds them what
the evaluations said and records what they decide, so every rule here is unit-tested on its own
(tests/engine/test_selection.py) and a resumed run decides exactly as the original would have.

The rules (after Kuang et al. 2025, and the sequential loop evocade had before islands):

- An island has a *head* (what its next proposal builds on) and a *best* (its best confirmed
  program and that program's training score).
- "follow" (the LLM's rule): every clean candidate becomes the head; a candidate *regresses*
  when it scores below best - (1 - ratio) * max(|best|, 1) on the training seeds (for positive
  scores with ratio 0.8: below 0.8 x best); after `patience` regressions in a row the head
  rolls back to the island's best.
- "greedy" (the mutator's rule): the head only moves to a candidate scoring at least the best.
- A candidate that beats the island's best on the training seeds is *promising*: with held-out
  seeds configured it is played on them, and it becomes the best only if its held-out score
  beats the best's (a lucky episode must not make a "false elite"). Without held-out seeds the
  training score decides.
- Islands: every `migrate_every` decided iterations, the island whose best is worst is reseeded
  from the island whose best is best (its head and best become that program).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SelectionRule = Literal["follow", "greedy"]


@dataclass(frozen=True)
class Champion:
    """An island's best program: its training score, and its held-out score once confirmed."""

    program_id: str
    train_mean: float
    holdout_mean: float | None = None

    @property
    def score(self) -> float:
        """What "best" is judged by: the held-out score when there is one."""
        return self.holdout_mean if self.holdout_mean is not None else self.train_mean


@dataclass(frozen=True)
class IslandState:
    """One lineage. Stored in every `iteration` and `migration` event, so a resume rebuilds it."""

    head_id: str
    best: Champion | None  # None until a program of the island ran clean (a failed seed)
    regressions: int = 0
    last_failure: str = ""  # feedback on this island's last failed candidate, for the next prompt

    def to_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> IslandState:
        best = data.get("best")
        champion = None
        if isinstance(best, dict):
            holdout = best.get("holdout_mean")
            champion = Champion(
                str(best["program_id"]),
                float(best["train_mean"]),
                None if holdout is None else float(holdout),
            )
        return cls(
            head_id=str(data["head_id"]),
            best=champion,
            regressions=int(str(data.get("regressions", 0))),
            last_failure=str(data.get("last_failure", "")),
        )


@dataclass(frozen=True)
class Policy:
    """The selection settings of a run (from `RunConfig`)."""

    rule: SelectionRule = "follow"
    regress_ratio: float = 0.8
    patience: int = 5
    holdout: bool = True  # held-out seeds are configured


@dataclass(frozen=True)
class Decision:
    island: IslandState  # the island after the candidate
    became_head: bool
    became_best: bool
    rolled_back_to: str | None = None  # the head rolled back to this program


def regressed(train_mean: float, best: Champion | None, ratio: float) -> bool:
    if best is None or train_mean >= best.train_mean:
        return False
    slack = (1 - ratio) * max(abs(best.train_mean), 1.0)
    return train_mean < best.train_mean - slack


def is_promising(train_mean: float, island: IslandState) -> bool:
    """Beats the island's best on the training seeds: worth confirming on held-out seeds."""
    return island.best is None or train_mean > island.best.train_mean


def score(island: IslandState) -> float:
    return island.best.score if island.best is not None else float("-inf")


def decide(
    island: IslandState,
    program_id: str,
    train_mean: float,
    policy: Policy,
    holdout_mean: float | None = None,
) -> Decision:
    """The island after a candidate whose training evaluation ran clean.

    `holdout_mean` is the candidate's held-out score when it was promising and held-out seeds
    are configured (the caller played them first); otherwise None.
    """
    promising = is_promising(train_mean, island)
    if not policy.holdout:
        confirmed = True
    elif holdout_mean is None:
        confirmed = False
    else:
        confirmed = island.best is None or holdout_mean > island.best.score
    became_best = promising and confirmed
    # A promising candidate whose held-out score disappointed still beat the best on the
    # training seeds, so it is no regression: it becomes the head under either rule.
    best = Champion(program_id, train_mean, holdout_mean) if became_best else island.best
    was_regression = regressed(train_mean, island.best, policy.regress_ratio)
    regressions = island.regressions + 1 if was_regression else 0
    if policy.rule == "greedy":
        moves = island.best is None or train_mean >= island.best.train_mean
        head = program_id if moves else island.head_id
        state = IslandState(head, best, regressions, "")
        return Decision(state, moves, became_best)
    if regressions >= policy.patience and best is not None:
        state = IslandState(best.program_id, best, 0, "")
        return Decision(state, True, became_best, rolled_back_to=best.program_id)
    return Decision(IslandState(program_id, best, regressions, ""), True, became_best)


def after_failure(island: IslandState, feedback: str) -> IslandState:
    """The island after a candidate that produced no program or failed its evaluation: the
    head stays; the feedback goes to the island's next proposal."""
    return dataclasses.replace(island, last_failure=feedback)


def migration(
    islands: Sequence[IslandState], decided: int, migrate_every: int
) -> tuple[int, int] | None:
    """(from, to) when `decided` iterations call for a migration, else None.

    Only with two or more islands, every `migrate_every` decided iterations, and only when the
    best island's best is strictly better than the worst island's (no churn between equals).
    Ties go to the lower island number, so the choice is deterministic.
    """
    if len(islands) < 2 or decided == 0 or decided % migrate_every:
        return None
    order = sorted(range(len(islands)), key=lambda i: (score(islands[i]), -i))
    worst, best = order[0], order[-1]
    if score(islands[best]) <= score(islands[worst]):
        return None
    return best, worst


def reseeded(source: IslandState) -> IslandState:
    """The island that receives a migration: it continues from the donor's best."""
    if source.best is None:
        return source
    return IslandState(source.best.program_id, source.best, 0, "")


def run_best(islands: Sequence[IslandState]) -> Champion | None:
    """The run's best: the best island's best (lower island number on ties)."""
    champions = [island.best for island in islands if island.best is not None]
    return max(reversed(champions), key=lambda champion: champion.score, default=None)


def next_island(islands: Sequence[IslandState], in_flight: Sequence[int], proposed: int) -> int:
    """Which island the next proposal builds on: the one with the fewest candidates in flight,
    then round robin by proposal number, so islands advance at the same pace."""
    counts = [sum(1 for i in in_flight if i == island) for island in range(len(islands))]
    fewest = min(counts)
    candidates = [island for island, count in enumerate(counts) if count == fewest]
    return candidates[proposed % len(candidates)]
