"""Every run at a glance: counts and best score, in two scans."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from storage.encode import env_key
from storage.models import Evaluation, Program, Run
from storage.queries.rows import RunSummary

_Group = tuple[int, float | None, float | None]  # evaluations, best ok mean, best mean


def runs(session: Session) -> list[RunSummary]:
    """Every run, oldest first, with its program and evaluation counts and best score."""
    by_run = _scores_by_run(session)
    programs = (
        select(Program.run_id, func.count().label("programs"))
        .group_by(Program.run_id)
        .subquery("programs")
    )
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
                _best(groups, env_key(game, env)),
            )
        )
    return summaries


def _scores_by_run(session: Session) -> dict[str, dict[str, _Group]]:
    """Run id -> env key -> its evaluations' count, best `ok` mean and best mean.

    evaluation.run_id (a copy of its program's, migration 0003) makes this one scan of the
    ix_evaluation_run_scores index instead of a join of every evaluation to its program.
    Grouped by env key too: the best score shown is the one under the run's own setting.
    """
    scores = session.execute(
        select(
            Evaluation.run_id,
            Evaluation.env_key,
            func.count(),
            func.max(case((Evaluation.status == "ok", Evaluation.mean_return))),
            func.max(Evaluation.mean_return),
        ).group_by(Evaluation.run_id, Evaluation.env_key)
    ).all()
    by_run: dict[str, dict[str, _Group]] = defaultdict(dict)
    for run_id, key, count, best_ok, best_any in scores:
        by_run[run_id][key] = (count, best_ok, best_any)
    return by_run


def _best(groups: dict[str, _Group], own_key: str) -> float | None:
    """The best `ok` mean under the run's own setting (under any, if it has none there),
    else the best mean of a failed evaluation: the rule of `best_program`."""
    own = groups.get(own_key)
    chosen = [own] if own is not None else list(groups.values())
    best_ok = max((g[1] for g in chosen if g[1] is not None), default=None)
    best_any = max((g[2] for g in chosen if g[2] is not None), default=None)
    return best_ok if best_ok is not None else best_any
