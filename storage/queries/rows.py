"""The answers' types: plain dataclasses that stay valid after the session closes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.models import short_id


@dataclass(slots=True)
class ScoredProgram:
    """A program's place in its run and the score of its representative evaluation."""

    program_id: str
    run_id: str
    parent_id: str | None
    generation: int
    origin: str
    created_at: datetime
    mean_return: float | None  # None: never evaluated, or no episode ran (rejected)
    total_steps: int | None
    status: str | None  # status of the representative evaluation; None: never evaluated
    evaluation_id: str | None

    @property
    def short_id(self) -> str:
        return short_id(self.program_id)


@dataclass(slots=True)
class LineageNode(ScoredProgram):
    depth: int  # generations away from the program asked about (0 = that program)


@dataclass(frozen=True)
class Lineage:
    """A program, its ancestors (parent first, root last) and its descendants (nearest first)."""

    program: LineageNode
    ancestors: list[LineageNode]
    descendants: list[LineageNode]


@dataclass(slots=True)
class HistoryRow(ScoredProgram):
    best_so_far: float | None  # highest `ok` mean return among this and earlier programs


@dataclass(slots=True)
class HistoryEvent:
    """A step of a run's history that is not a program: an iteration that produced none
    (`no_program`), or a move of the head back to an earlier program (`revert`, `rollback`)."""

    kind: str
    created_at: datetime
    message: str  # a failed iteration: the proposer's note (why there is no program)
    iteration: int | None  # the loop's iteration number (0-based), when the event says
    status: str | None  # a failed iteration's status
    program_id: str | None  # revert/rollback: the head after; an iteration: its program
    from_program_id: str | None  # revert/rollback: the head before


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    game: str
    status: str
    created_at: datetime
    updated_at: datetime
    head_program_id: str | None
    programs: int
    evaluations: int
    best_mean_return: float | None  # same rule as `best_program`

    @property
    def short_id(self) -> str:
        return short_id(self.run_id)
