"""How programs are ranked (the rule in `storage.queries`), and the best program of a run.

Also what the other queries share to read a whole run fast: its programs and each program's
representative score, as plain rows, and `gc_paused` for the large answers built from them.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import ColumnExpressionArgument, Row, case, func, select
from sqlalchemy.orm import Session

from storage.encode import env_key
from storage.models import Evaluation, Program, Run
from storage.queries.rows import ScoredProgram

_P = ParamSpec("_P")
_T = TypeVar("_T")

SCORE_COLUMNS = (
    Evaluation.mean_return,
    Evaluation.total_steps,
    Evaluation.status,
    Evaluation.id,
)
PROGRAM_COLUMNS = (
    Program.id,
    Program.run_id,
    Program.parent_id,
    Program.generation,
    Program.origin,
    Program.created_at,
)
RUN_PROGRAM_COLUMNS = (
    Program.id,
    Program.parent_id,
    Program.generation,
    Program.origin,
    Program.created_at,
)
ProgramRow = Row[str, str | None, int, str, datetime]
"""A `RUN_PROGRAM_COLUMNS` row: id, parent id, generation, origin, created at."""
ScoreRow = Row[str, float | None, int, str, str]
"""A `run_scores` row: program id, then `SCORE_COLUMNS`."""
NO_SCORE: tuple[None, None, None, None, None] = (None, None, None, None, None)
"""Shaped like a `ScoreRow`, for a program never evaluated."""


def evaluation_order(run_key: str | None) -> tuple[ColumnExpressionArgument[Any], ...]:
    """Best first: under the run's env setting, ok before anything else, has a mean, higher
    mean, fewer steps, older."""
    return (
        case((Evaluation.env_key == (run_key or ""), 0), else_=1),
        case((Evaluation.status == "ok", 0), else_=1),
        case((Evaluation.mean_return.is_(None), 1), else_=0),
        Evaluation.mean_return.desc(),
        Evaluation.total_steps,
        Evaluation.created_at,
        Evaluation.id,
    )


def gc_paused(build: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run `build` (which makes a large answer) without the cycle collector.

    A 10,000-row answer allocates some 50,000 objects that live until it is returned, and on
    their way CPython starts about one full collection, which walks every object of the
    process: 30-40 ms of a 10,000-program lineage or history (SQLite, measured). None of them
    form cycles, so reference counting frees them all the same. The collector is back on once
    `build` has returned, so its temporaries are already gone by the next collection. The
    switch is process-wide (other threads' collections wait too, for those milliseconds); the
    previous state is restored, so nesting is harmless.
    """

    @functools.wraps(build)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return build(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


def run_key(session: Session, run_id: str) -> str | None:
    """The env key of the run's own setting: scores under it are the ones that compare."""
    row = session.execute(select(Run.game, Run.env).where(Run.id == run_id)).first()
    return env_key(row[0], row[1]) if row is not None else None


def run_programs(session: Session, run_id: str, *, ordered: bool) -> Sequence[ProgramRow]:
    """The run's programs, in creation order if `ordered`."""
    query = select(*RUN_PROGRAM_COLUMNS).where(Program.run_id == run_id)
    if ordered:
        query = query.order_by(Program.created_at, Program.id)
    return session.connection().execute(query).all()


def run_scores(session: Session, run_id: str) -> dict[str, ScoreRow]:
    """Program id -> its representative evaluation's row.

    One range of the `ix_evaluation_run_scores` index, which holds the columns read here; a
    program never evaluated is absent. A program evaluated once needs no ranking, so only
    those evaluated more than once are ranked, in SQL by `evaluation_order` (which also reads
    `created_at` from the table): ranking them all reads the range ~1.7x as slowly when, as
    usual, most have one (SQLite, measured).
    """
    columns = (Evaluation.program_id, *SCORE_COLUMNS)
    in_run = Evaluation.run_id == run_id
    rows = session.connection().execute(select(*columns).where(in_run)).all()
    scores = {row[0]: row for row in rows}
    if len(scores) < len(rows):
        repeated = (
            select(Evaluation.program_id)
            .where(in_run)
            .group_by(Evaluation.program_id)
            .having(func.count() > 1)
        )
        ranked = (
            session.connection()
            .execute(
                select(*columns)
                .where(in_run, Evaluation.program_id.in_(repeated))
                .order_by(Evaluation.program_id, *evaluation_order(run_key(session, run_id)))
            )
            .all()
        )
        # Written last to first, each program keeps its first row: the best one.
        scores.update({row[0]: row for row in reversed(ranked)})
    return scores


def best_program(session: Session, run_id: str, env_key: str | None = None) -> ScoredProgram | None:
    """The run's best program by the rule in `storage.queries`; None if none scored.

    `env_key` limits the contest to one env setting (scores under different settings do not
    compare).
    """
    query = (
        select(*PROGRAM_COLUMNS, *SCORE_COLUMNS)
        .join(Evaluation, Evaluation.program_id == Program.id)
        .where(Program.run_id == run_id, Evaluation.mean_return.is_not(None))
    )
    if env_key is not None:
        query = query.where(Evaluation.env_key == env_key)
    order = evaluation_order(run_key(session, run_id))
    query = query.order_by(*order[:5], Program.created_at, Program.id, *order[5:]).limit(1)
    row = session.execute(query).first()
    if row is None:
        return None
    # All ten columns selected: the slice only tells mypy so (SQLAlchemy types a select of
    # more columns than its overloads spell out with an open tail).
    return ScoredProgram(*row[:10])


ScoredFields = tuple[
    str, str, str | None, int, str, datetime, float | None, int | None, str | None, str | None
]
"""A `ScoredProgram`'s fields, in order."""


def scored_fields(program: ProgramRow, run_id: str, scores: dict[str, ScoreRow]) -> ScoredFields:
    """A program of the run with its representative score (`run_scores`), as the fields of a
    `ScoredProgram`: what lineage and history rows both start with."""
    program_id, parent_id, generation, origin, created_at = program
    _, mean_return, total_steps, status, evaluation_id = scores.get(program_id, NO_SCORE)
    return (
        program_id,
        run_id,
        parent_id,
        generation,
        origin,
        created_at,
        mean_return,
        total_steps,
        status,
        evaluation_id,
    )
