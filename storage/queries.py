"""Read-only questions about runs and programs, in portable SQL (SQLite, PostgreSQL, ...).

Every function takes an open `Session` and returns plain dataclasses, not ORM objects: they stay
valid after the session closes, and large answers (a 10,000-deep lineage) skip the cost of ORM
identity tracking (the row types use slots and no `frozen`, which would triple their build time).

How a program is scored (used by lineage, history, best-of and runs listing alike): its
*representative* evaluation is its best one, where an evaluation with status `ok` beats any
other, then a higher `mean_return` wins, then fewer total steps (same score, reached faster),
then the older evaluation. A program without evaluations, or only with ones that have no mean
(rejected ones), has no score.

The best program of a run follows the same order across the run's programs, with "older
program" as the last tie-break, and only evaluations that have a mean return count. An `ok`
evaluation is preferred to any failed one: a policy that scores +5 and then raises is worse to
ship than one that scores -21 cleanly. A failed evaluation can only win when the run has no
`ok` evaluation at all.
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from storage.errors import AmbiguousIdError, NotFoundError
from storage.models import ID_LENGTH, Evaluation, Program, Run, short_id

# -- scored programs -------------------------------------------------------------------------


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


def _evaluation_order() -> tuple[ColumnElement[Any], ...]:
    """Best first: ok before anything else, has a mean, higher mean, fewer steps, older."""
    return (
        case((Evaluation.status == "ok", 0), else_=1),
        case((Evaluation.mean_return.is_(None), 1), else_=0),
        Evaluation.mean_return.desc(),
        Evaluation.total_steps,
        Evaluation.created_at,
        Evaluation.id,
    )


_NODE_COLUMNS = ("id", "run_id", "parent_id", "generation", "origin", "created_at")


def _scored(
    nodes: Any, *, where: ColumnElement[bool] | None = None, extra: Sequence[str] = ()
) -> Select[Any]:
    """The programs in `nodes`, each with its representative evaluation (NULLs when none).

    `nodes` is the program table or a CTE over it, with at least `_NODE_COLUMNS` (+ `extra`).
    Per program, a correlated subquery picks the best evaluation's id (an index probe on
    `evaluation.program_id` and a sort of that program's few evaluations), then the row is
    joined by primary key. Measured ~15% faster on SQLite than ranking all joined rows with a
    window function, and plain SQL on any backend.
    """
    best = (
        select(Evaluation.id)
        .where(Evaluation.program_id == nodes.c.id)
        .order_by(*_evaluation_order())
        .limit(1)
        .correlate(nodes)
        .scalar_subquery()
    )
    query = (
        select(
            *(nodes.c[name] for name in _NODE_COLUMNS),
            Evaluation.mean_return,
            Evaluation.total_steps,
            Evaluation.status,
            Evaluation.id.label("evaluation_id"),
            *(nodes.c[name] for name in extra),
        )
        .select_from(nodes)
        .outerjoin(Evaluation, Evaluation.id == best)
    )
    return query if where is None else query.where(where)


_PROGRAM_COLUMNS = (
    Program.id,
    Program.run_id,
    Program.parent_id,
    Program.generation,
    Program.origin,
    Program.created_at,
)


# -- ids -------------------------------------------------------------------------------------


def resolve_id(session: Session, model: type[Run] | type[Program], prefix: str) -> str:
    """The full id that `prefix` starts; unique or an error that says what to type.

    Ids are lowercase hex, so "starts with p" is the index range [p, p + "g"): portable and
    fast, unlike LIKE, which SQLite cannot serve from a case-sensitive index.
    """
    noun = model.__tablename__
    text = prefix.strip().lower()
    if not text or len(text) > ID_LENGTH or any(c not in string.hexdigits for c in text):
        raise NotFoundError(f"no {noun} matches {prefix!r}")
    if len(text) == ID_LENGTH:
        condition = model.id == text
    else:
        condition = and_(model.id >= text, model.id < text + "g")
    found = session.scalars(select(model.id).where(condition).limit(2)).all()
    if not found:
        raise NotFoundError(f"no {noun} matches {prefix!r}")
    if len(found) == 1:
        return found[0]
    count = session.scalar(select(func.count()).select_from(model).where(condition))
    raise AmbiguousIdError(f"ambiguous {noun} id {prefix!r}: matches {count} {noun}s")


# -- lineage ---------------------------------------------------------------------------------


def _walk(session: Session, program_id: str, *, up: bool) -> list[LineageNode]:
    """Follow `parent_id` up (ancestors) or down (descendants) with a recursive CTE.

    The CTE carries the columns shown, so each step is the only lookup of its program.
    """
    start = (
        select(*_PROGRAM_COLUMNS, literal(0).label("depth"))
        .where(Program.id == program_id)
        .cte("walk", recursive=True)
    )
    link = Program.id == start.c.parent_id if up else Program.parent_id == start.c.id
    walk = start.union_all(
        select(*_PROGRAM_COLUMNS, (start.c.depth + 1).label("depth")).where(link)
    )
    query = _scored(walk, extra=("depth",)).order_by(walk.c.depth, walk.c.created_at, walk.c.id)
    rows = session.connection().execute(query).all()
    return [LineageNode(*row) for row in rows]


def ancestors(session: Session, program_id: str) -> list[LineageNode]:
    """Parent, grandparent, ... root (following `parent_id` only; depth 1 is the parent)."""
    return _walk(session, program_id, up=True)[1:]


def descendants(session: Session, program_id: str) -> list[LineageNode]:
    """Children, grandchildren, ... nearest generation first (following `parent_id` only)."""
    return _walk(session, program_id, up=False)[1:]


def lineage(session: Session, program_id: str) -> Lineage:
    chain = _walk(session, program_id, up=True)
    if not chain:
        raise NotFoundError(f"no program matches {program_id!r}")
    return Lineage(chain[0], chain[1:], descendants(session, program_id))


# -- scores ----------------------------------------------------------------------------------


def best_program(session: Session, run_id: str, env_key: str | None = None) -> ScoredProgram | None:
    """The run's best program by the rule in this module's docstring; None if none scored.

    `env_key` limits the contest to one env setting (scores under different settings do not
    compare).
    """
    query = (
        select(
            *_PROGRAM_COLUMNS,
            Evaluation.mean_return,
            Evaluation.total_steps,
            Evaluation.status,
            Evaluation.id,
        )
        .join(Evaluation, Evaluation.program_id == Program.id)
        .where(Program.run_id == run_id, Evaluation.mean_return.is_not(None))
    )
    if env_key is not None:
        query = query.where(Evaluation.env_key == env_key)
    order = _evaluation_order()
    query = query.order_by(*order[:4], Program.created_at, Program.id, *order[4:]).limit(1)
    row = session.execute(query).first()
    return ScoredProgram(*row) if row is not None else None


def history(session: Session, run_id: str) -> list[HistoryRow]:
    """Every program of the run in creation order, with its score and the best `ok` so far."""
    query = _scored(Program.__table__, where=Program.run_id == run_id)
    rows = session.connection().execute(query.order_by(Program.created_at, Program.id)).all()
    result: list[HistoryRow] = []
    best: float | None = None
    for row in rows:
        scored = ScoredProgram(*row)
        if scored.status == "ok" and scored.mean_return is not None:
            best = scored.mean_return if best is None else max(best, scored.mean_return)
        result.append(HistoryRow(*row, best_so_far=best))
    return result


def runs(session: Session) -> list[RunSummary]:
    """Every run, oldest first, with its program and evaluation counts and best score."""
    programs = (
        select(Program.run_id, func.count().label("programs"))
        .group_by(Program.run_id)
        .subquery("programs")
    )
    evaluations = (
        select(
            Program.run_id,
            func.count(Evaluation.id).label("evaluations"),
            func.max(case((Evaluation.status == "ok", Evaluation.mean_return))).label("best_ok"),
            func.max(Evaluation.mean_return).label("best_any"),
        )
        .join(Evaluation, Evaluation.program_id == Program.id)
        .group_by(Program.run_id)
        .subquery("evaluations")
    )
    rows = session.execute(
        select(
            Run.id,
            Run.game,
            Run.status,
            Run.created_at,
            Run.updated_at,
            Run.head_program_id,
            func.coalesce(programs.c.programs, 0),
            func.coalesce(evaluations.c.evaluations, 0),
            func.coalesce(evaluations.c.best_ok, evaluations.c.best_any),
        )
        .outerjoin(programs, programs.c.run_id == Run.id)
        .outerjoin(evaluations, evaluations.c.run_id == Run.id)
        .order_by(Run.created_at, Run.id)
    ).all()
    return [RunSummary(*row) for row in rows]


# -- diff ------------------------------------------------------------------------------------


def diff_sources(a_id: str, a_source: str, b_id: str, b_source: str) -> str:
    """A unified diff (empty when equal); files are named a/<short id> and b/<short id>."""

    def lines(source: str) -> list[str]:
        return [line if line.endswith("\n") else line + "\n" for line in source.splitlines()]

    return "".join(
        difflib.unified_diff(
            lines(a_source),
            lines(b_source),
            fromfile=f"a/{short_id(a_id)}",
            tofile=f"b/{short_id(b_id)}",
        )
    )


def diff(session: Session, a_id: str, b_id: str) -> str:
    a, b = session.get(Program, a_id), session.get(Program, b_id)
    for program_id, program in ((a_id, a), (b_id, b)):
        if program is None:
            raise NotFoundError(f"no program matches {program_id!r}")
    assert a is not None and b is not None
    return diff_sources(a.id, a.source, b.id, b.source)
