"""Lineage: a program's ancestors and descendants along `parent_id`, with their scores."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from storage.errors import NotFoundError
from storage.models import Evaluation, Program
from storage.queries.rows import Lineage, LineageNode
from storage.queries.scores import (
    PROGRAM_COLUMNS,
    SCORE_COLUMNS,
    ProgramRow,
    evaluation_order,
    gc_paused,
    run_key,
    run_programs,
    run_scores,
    scored_fields,
)

SCAN_MIN_PROGRAMS = 1_000
"""Runs smaller than this are always walked in SQL (a few milliseconds at most)."""


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


@gc_paused
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
    walk = _walk_cte(program_id, PROGRAM_COLUMNS, up=up)
    program = session.get(Program, program_id)
    key = run_key(session, program.run_id) if program is not None else None
    query = (
        select(
            *(walk.c[column.key] for column in PROGRAM_COLUMNS),
            *SCORE_COLUMNS,
            walk.c.depth,
        )
        .select_from(walk)
        .outerjoin(Evaluation, Evaluation.program_id == walk.c.id)
        .order_by(walk.c.depth, walk.c.created_at, walk.c.id, *evaluation_order(key))
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
    programs = run_programs(session, run_id, ordered=False)
    levels = _chain_up(programs, program_id) if up else _tree_down(programs, program_id)
    if levels is None:
        return None
    scores = run_scores(session, run_id)
    return [
        LineageNode(*scored_fields(row, run_id, scores), depth)
        for depth, level in enumerate(levels)
        for row in level
    ]


_Level = Sequence[ProgramRow]  # the programs at one depth, in creation order


def _chain_up(programs: Sequence[ProgramRow], program_id: str) -> list[_Level] | None:
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


def _tree_down(programs: Sequence[ProgramRow], program_id: str) -> list[_Level]:
    """The program, its children, its grandchildren, ... one level per generation."""
    children: defaultdict[str | None, list[ProgramRow]] = defaultdict(list)
    level: list[ProgramRow] = []
    for row in programs:
        children[row[1]].append(row)
        if row[0] == program_id:
            level.append(row)
    levels: list[_Level] = []
    while level:
        if len(level) > 1:
            level.sort(key=_creation_order)
        levels.append(level)
        below: list[ProgramRow] = []
        for row in level:
            below.extend(children.get(row[0], ()))
        level = below
    return levels


def _creation_order(row: ProgramRow) -> tuple[datetime, str]:
    return row[4], row[0]
