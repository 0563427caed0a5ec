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

One job per module: `rows` (the answers' types), `scores` (the ranking and the best program),
`ids` (short-id prefixes), `walk` (lineage), `timeline` (a run's history), `listing` (all
runs), `diffs` (two programs' sources).
"""

from storage.queries.diffs import diff, diff_sources
from storage.queries.ids import AMBIGUOUS_SHOWN, resolve_id
from storage.queries.listing import runs
from storage.queries.rows import (
    HistoryEvent,
    HistoryRow,
    Lineage,
    LineageNode,
    RunSummary,
    ScoredProgram,
)
from storage.queries.scores import best_program, run_key
from storage.queries.timeline import HEAD_EVENT_KINDS, history, history_with_events
from storage.queries.walk import SCAN_MIN_PROGRAMS, ancestors, descendants, lineage

__all__ = [
    "AMBIGUOUS_SHOWN",
    "HEAD_EVENT_KINDS",
    "SCAN_MIN_PROGRAMS",
    "HistoryEvent",
    "HistoryRow",
    "Lineage",
    "LineageNode",
    "RunSummary",
    "ScoredProgram",
    "ancestors",
    "best_program",
    "descendants",
    "diff",
    "diff_sources",
    "history",
    "history_with_events",
    "lineage",
    "resolve_id",
    "run_key",
    "runs",
]
