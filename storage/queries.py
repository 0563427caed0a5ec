"""Read-only questions about runs and programs, in portable SQL (SQLite, PostgreSQL, ...).

Every function takes an open `Session` and returns plain dataclasses, not ORM objects: they stay
valid after the session closes, and large answers (a 10,000-deep lineage) skip the cost of ORM
identity tracking (the row types use slots and no `frozen`, which would triple their build time).

How a program is scored (used by lineage, history, best-of and runs listing alike): its
*representative* evaluation is its best one, where an evaluation under the run's own env
setting (`run.env`, e.g. full-length episodes) beats one under any other (e.g. the engine's
short smoke episode, whose score says little), then status `ok` beats any other, then a higher
`mean_return` wins, then fewer total steps (same score, reached faster), then the older
evaluation. A program without evaluations, or only with ones that have no mean (rejected ones),
has no score.

The best program of a run follows the same order across the run's programs, with "older
program" as the last tie-break, and only evaluations that have a mean return count. An `ok`
evaluation is preferred to any failed one: a policy that scores +5 and then raises is worse to
ship than one that scores -21 cleanly. A failed evaluation can only win when the run has no
`ok` evaluation at all.
"""

from __future__ import annotations

import difflib
import functools
import gc
import string
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    ColumnElement,
    Row,
    and_,
    case,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from storage.encode import env_key
from storage.errors import AmbiguousIdError, NotFoundError
from storage.models import ID_LENGTH, Evaluation, Event, Program, Run, short_id

_P = ParamSpec("_P")
_T = TypeVar("_T")

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


def _evaluation_order(run_key: str | None) -> tuple[ColumnElement[Any], ...]:
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


_SCORE_COLUMNS = (
    Evaluation.mean_return,
    Evaluation.total_steps,
    Evaluation.status,
    Evaluation.id,
)
_NO_SCORE = (None, None, None, None, None)  # shaped like a `_run_scores` row
_PROGRAM_COLUMNS = (
    Program.id,
    Program.run_id,
    Program.parent_id,
    Program.generation,
    Program.origin,
    Program.created_at,
)
_RUN_PROGRAM_COLUMNS = (
    Program.id,
    Program.parent_id,
    Program.generation,
    Program.origin,
    Program.created_at,
)


def _gc_paused(build: Callable[_P, _T]) -> Callable[_P, _T]:
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


def _run_programs(session: Session, run_id: str, *, ordered: bool) -> Sequence[Row[Any]]:
    """The run's programs as `_RUN_PROGRAM_COLUMNS` rows, in creation order if `ordered`."""
    query = select(*_RUN_PROGRAM_COLUMNS).where(Program.run_id == run_id)
    if ordered:
        query = query.order_by(Program.created_at, Program.id)
    return session.connection().execute(query).all()


def _run_scores(session: Session, run_id: str) -> dict[str, Row[Any]]:
    """Program id -> (program id, *`_SCORE_COLUMNS`) of its representative evaluation.

    One range of the `ix_evaluation_run_scores` index, which holds the columns read here; a
    program never evaluated is absent. A program evaluated once needs no ranking, so only
    those evaluated more than once are ranked, in SQL by `_evaluation_order` (which also reads
    `created_at` from the table): ranking them all reads the range ~1.7x as slowly when, as
    usual, most have one (SQLite, measured).
    """
    columns = (Evaluation.program_id, *_SCORE_COLUMNS)
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
                .order_by(Evaluation.program_id, *_evaluation_order(run_key(session, run_id)))
            )
            .all()
        )
        # Written last to first, each program keeps its first row: the best one.
        scores.update({row[0]: row for row in reversed(ranked)})
    return scores


# -- ids -------------------------------------------------------------------------------------


def resolve_id(
    session: Session, model: type[Run] | type[Program] | type[Evaluation], prefix: str
) -> str:
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
    count = session.scalar(select(func.count()).select_from(model).where(condition)) or 0
    shown = ", ".join(_candidates(session, model, condition))
    more = f", and {count - AMBIGUOUS_SHOWN} more" if count > AMBIGUOUS_SHOWN else ""
    raise AmbiguousIdError(
        f"ambiguous {noun} id {prefix!r}: matches {count} {noun}s: {shown}{more}; "
        "type more of the id"
    )


AMBIGUOUS_SHOWN = 5
"""How many candidates an ambiguous-prefix error lists."""


def _candidates(
    session: Session,
    model: type[Run] | type[Program] | type[Evaluation],
    condition: ColumnElement[bool],
) -> list[str]:
    """The first few ids a prefix matches, each with what it is (a program's origin and
    generation, a run's game and status, an evaluation's game and status), so the user can
    tell which one they meant."""
    if model is Program:
        program_rows = session.execute(
            select(Program.id, Program.origin, Program.generation)
            .where(condition)
            .order_by(Program.id)
            .limit(AMBIGUOUS_SHOWN)
        ).all()
        return [f"{short_id(i)} ({origin} program, gen {gen})" for i, origin, gen in program_rows]
    if model is Evaluation:
        evaluation_rows = session.execute(
            select(Evaluation.id, Evaluation.game, Evaluation.status)
            .where(condition)
            .order_by(Evaluation.id)
            .limit(AMBIGUOUS_SHOWN)
        ).all()
        return [
            f"{short_id(i)} ({game} evaluation, {status})" for i, game, status in evaluation_rows
        ]
    run_rows = session.execute(
        select(Run.id, Run.game, Run.status)
        .where(condition)
        .order_by(Run.id)
        .limit(AMBIGUOUS_SHOWN)
    ).all()
    return [f"{short_id(i)} ({game} run, {status})" for i, game, status in run_rows]


# -- lineage ---------------------------------------------------------------------------------

SCAN_MIN_PROGRAMS = 1_000
"""Runs smaller than this are always walked in SQL (a few milliseconds at most)."""


@_gc_paused
def _walk(session: Session, program_id: str, *, up: bool) -> list[LineageNode]:
    """The program (depth 0), then its ancestors or descendants along `parent_id`.

    Sorted by depth, then creation time, then id. Two plans, one answer:

    - in SQL, a recursive CTE: one index probe per program walked;
    - in Python, over the whole run read in two index ranges: on SQLite about 60% of the
      cost per program (10,000-deep chain: ~35 vs ~50 ms, measured), so it is taken when the
      walk reaches a third of the run. It relies on a program's parents being in its run,
      which `Store.add_program` enforces; an ancestor found outside the run anyway sends the
      walk back to SQL.
    """
    program = session.get(Program, program_id)
    if program is None:
        return []
    run_id = program.run_id
    run_size = session.scalar(select(func.count()).where(Program.run_id == run_id)) or 0
    if run_size >= SCAN_MIN_PROGRAMS and _walk_reaches(
        session, program_id, up=up, nodes=run_size // 3
    ):
        nodes = _walk_run(session, run_id, program_id, up=up)
        if nodes is not None:
            return nodes
    return _walk_sql(session, program_id, up=up)


def _walk_cte(program_id: str, columns: Sequence[Any], *, up: bool) -> Any:
    """A recursive CTE of `columns` and depth for the programs reached from `program_id`."""
    start = (
        select(*columns, literal(0).label("depth"))
        .where(Program.id == program_id)
        .cte("walk", recursive=True)
    )
    link = Program.id == start.c.parent_id if up else Program.parent_id == start.c.id
    return start.union_all(select(*columns, (start.c.depth + 1).label("depth")).where(link))


def _walk_reaches(session: Session, program_id: str, *, up: bool, nodes: int) -> bool:
    """Whether the walk from `program_id` (itself included) reaches `nodes` programs.

    Counting stops there: SQLite and PostgreSQL both evaluate a recursive CTE only as far as
    a LIMIT asks, so this costs at most `nodes` index probes.
    """
    walk = _walk_cte(program_id, (Program.id, Program.parent_id), up=up)
    reached = select(walk.c.id).limit(nodes).subquery()
    return (session.scalar(select(func.count()).select_from(reached)) or 0) >= nodes


def _walk_sql(session: Session, program_id: str, *, up: bool) -> list[LineageNode]:
    """The walk in SQL: a recursive CTE that carries the columns shown, joined to scores.

    All evaluations of the walked programs come back, best first within each program, and
    the first row of each program is kept. Most programs have one evaluation: one row each.
    A correlated "best evaluation" subquery per program cost about 1.5x as much on a
    10,000-program walk, ranking with a window function more (SQLite, measured).
    """
    walk = _walk_cte(program_id, _PROGRAM_COLUMNS, up=up)
    program = session.get(Program, program_id)
    key = run_key(session, program.run_id) if program is not None else None
    query = (
        select(
            *(walk.c[column.key] for column in _PROGRAM_COLUMNS),
            *_SCORE_COLUMNS,
            walk.c.depth,
        )
        .select_from(walk)
        .outerjoin(Evaluation, Evaluation.program_id == walk.c.id)
        .order_by(walk.c.depth, walk.c.created_at, walk.c.id, *_evaluation_order(key))
    )
    nodes: list[LineageNode] = []
    previous = None
    for row in session.connection().execute(query).all():
        if row[0] != previous:
            nodes.append(LineageNode(*row))
            previous = row[0]
    return nodes


def _walk_run(
    session: Session, run_id: str, program_id: str, *, up: bool
) -> list[LineageNode] | None:
    """The walk in Python over all of the run's programs; None if it leads out of the run."""
    programs = _run_programs(session, run_id, ordered=False)
    levels = _chain_up(programs, program_id) if up else _tree_down(programs, program_id)
    if levels is None:
        return None
    scores = _run_scores(session, run_id)
    nodes: list[LineageNode] = []
    for depth, level in enumerate(levels):
        for node_id, parent_id, generation, origin, created_at in level:
            _, mean_return, total_steps, status, evaluation_id = scores.get(node_id, _NO_SCORE)
            nodes.append(
                LineageNode(
                    node_id,
                    run_id,
                    parent_id,
                    generation,
                    origin,
                    created_at,
                    mean_return,
                    total_steps,
                    status,
                    evaluation_id,
                    depth,
                )
            )
    return nodes


_Level = Sequence[Row[Any]]  # `_RUN_PROGRAM_COLUMNS` rows at one depth, in creation order


def _chain_up(programs: Sequence[Row[Any]], program_id: str) -> list[_Level] | None:
    """The program, its parent, ... its root, one per level; None if a parent is elsewhere."""
    by_id = {row[0]: row for row in programs}
    row = by_id[program_id]
    levels: list[_Level] = [(row,)]
    while row[1] is not None:
        parent = by_id.get(row[1])
        if parent is None:
            return None
        row = parent
        levels.append((row,))
    return levels


def _tree_down(programs: Sequence[Row[Any]], program_id: str) -> list[_Level]:
    """The program, its children, its grandchildren, ... one level per generation."""
    children: defaultdict[str | None, list[Row[Any]]] = defaultdict(list)
    level: list[Row[Any]] = []
    for row in programs:
        children[row[1]].append(row)
        if row[0] == program_id:
            level.append(row)
    levels: list[_Level] = []
    while level:
        if len(level) > 1:
            level.sort(key=_creation_order)
        levels.append(level)
        below: list[Row[Any]] = []
        for row in level:
            below.extend(children.get(row[0], ()))
        level = below
    return levels


def _creation_order(row: Row[Any]) -> tuple[datetime, str]:
    return row[4], row[0]


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
    order = _evaluation_order(run_key(session, run_id))
    query = query.order_by(*order[:5], Program.created_at, Program.id, *order[5:]).limit(1)
    row = session.execute(query).first()
    return ScoredProgram(*row) if row is not None else None


@_gc_paused
def history(session: Session, run_id: str) -> list[HistoryRow]:
    """Every program of the run in creation order, with its score and the best `ok` so far."""
    programs = _run_programs(session, run_id, ordered=True)
    scores = _run_scores(session, run_id)
    result: list[HistoryRow] = []
    best: float | None = None
    for program_id, parent_id, generation, origin, created_at in programs:
        _, mean_return, total_steps, status, evaluation_id = scores.get(program_id, _NO_SCORE)
        if status == "ok" and mean_return is not None and (best is None or mean_return > best):
            best = mean_return
        result.append(
            HistoryRow(
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
                best,
            )
        )
    return result


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


HEAD_EVENT_KINDS = ("revert", "rollback")


def history_with_events(session: Session, run_id: str) -> list[HistoryRow | HistoryEvent]:
    """`history` with the steps that made no program and the head's moves back, in time order.

    Rejected and crashed programs are in `history` already (their evaluation's status says
    so); what it cannot show are iterations whose proposal had no program at all (an LLM
    reply without code, a dead endpoint), recorded only as `iteration` events, and reverts
    and rollbacks. Events written by other versions of the loop may lack any field: each is
    then None.
    """
    entries: list[HistoryRow | HistoryEvent] = list(history(session, run_id))
    rows = session.execute(
        select(Event.kind, Event.created_at, Event.message, Event.data)
        .where(Event.run_id == run_id, Event.kind.in_(("iteration", *HEAD_EVENT_KINDS)))
        .order_by(Event.id)
    ).all()
    for kind, created_at, message, data in rows:
        data = data if isinstance(data, dict) else {}
        if kind == "iteration":
            if data.get("program") is not None:
                continue  # its program is a row of `history` already
            status = data.get("status")
            note = data.get("note")
            entries.append(
                HistoryEvent(
                    "no_program",
                    created_at,
                    note if isinstance(note, str) and note else message or "",
                    _int_or_none(data.get("iteration")),
                    str(status) if status is not None else "no_program",
                    None,
                    None,
                )
            )
        else:
            entries.append(
                HistoryEvent(
                    kind,
                    created_at,
                    message or "",
                    _int_or_none(data.get("iteration")),
                    None,
                    _str_or_none(data.get("to")),
                    _str_or_none(data.get("from")),
                )
            )
    entries.sort(key=lambda entry: entry.created_at)  # stable: programs first on a tie
    return entries


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def runs(session: Session) -> list[RunSummary]:
    """Every run, oldest first, with its program and evaluation counts and best score."""
    programs = (
        select(Program.run_id, func.count().label("programs"))
        .group_by(Program.run_id)
        .subquery("programs")
    )
    # evaluation.run_id (a copy of its program's, migration 0003) makes this one scan of the
    # ix_evaluation_run_scores index instead of a join of every evaluation to its program.
    # Grouped by env key too: the best score shown is the one under the run's own setting.
    scores = session.execute(
        select(
            Evaluation.run_id,
            Evaluation.env_key,
            func.count(),
            func.max(case((Evaluation.status == "ok", Evaluation.mean_return))),
            func.max(Evaluation.mean_return),
        ).group_by(Evaluation.run_id, Evaluation.env_key)
    ).all()
    by_run: dict[str, dict[str, tuple[int, float | None, float | None]]] = defaultdict(dict)
    for run_id, key, count, best_ok, best_any in scores:
        by_run[run_id][key] = (count, best_ok, best_any)
    rows = session.execute(
        select(
            Run.id,
            Run.game,
            Run.env,
            Run.status,
            Run.created_at,
            Run.updated_at,
            Run.head_program_id,
            func.coalesce(programs.c.programs, 0),
        )
        .outerjoin(programs, programs.c.run_id == Run.id)
        .order_by(Run.created_at, Run.id)
    ).all()
    summaries = []
    for run_id, game, env, status, created, updated, head, n_programs in rows:
        groups = by_run.get(run_id, {})
        own = groups.get(env_key(game, env))
        chosen = [own] if own is not None else list(groups.values())
        best_ok = max((g[1] for g in chosen if g[1] is not None), default=None)
        best_any = max((g[2] for g in chosen if g[2] is not None), default=None)
        summaries.append(
            RunSummary(
                run_id,
                game,
                status,
                created,
                updated,
                head,
                n_programs,
                sum(g[0] for g in groups.values()),
                best_ok if best_ok is not None else best_any,
            )
        )
    return summaries


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
