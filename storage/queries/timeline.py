"""A run's history: every program in creation order with its score, and the steps between."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Event, EventKind
from storage.queries.rows import HistoryEvent, HistoryRow
from storage.queries.scores import gc_paused, run_programs, run_scores, scored_fields

HEAD_EVENT_KINDS: tuple[EventKind, ...] = ("revert", "rollback", "migration")


@gc_paused
def history(session: Session, run_id: str) -> list[HistoryRow]:
    """Every program of the run in creation order, with its score and the best `ok` so far."""
    programs = run_programs(session, run_id, ordered=True)
    scores = run_scores(session, run_id)
    result: list[HistoryRow] = []
    best: float | None = None
    for program in programs:
        fields = scored_fields(program, run_id, scores)
        mean_return, status = fields[6], fields[8]
        if status == "ok" and mean_return is not None and (best is None or mean_return > best):
            best = mean_return
        result.append(HistoryRow(*fields, best))
    return result


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
        if kind != "iteration":
            entries.append(_head_move(kind, created_at, message, data))
        elif data.get("program") is None:  # else its program is a row of `history` already
            entries.append(_no_program(created_at, message, data))
    entries.sort(key=lambda entry: entry.created_at)  # stable: programs first on a tie
    return entries


def _no_program(created_at: datetime, message: str | None, data: dict[str, Any]) -> HistoryEvent:
    """An `iteration` event whose proposal had no program: the proposer's note says why."""
    status = data.get("status")
    note = data.get("note")
    return HistoryEvent(
        "no_program",
        created_at,
        note if isinstance(note, str) and note else message or "",
        _int_or_none(data.get("iteration")),
        str(status) if status is not None else "no_program",
        None,
        None,
    )


def _head_move(
    kind: str, created_at: datetime, message: str | None, data: dict[str, Any]
) -> HistoryEvent:
    """A revert or rollback: the head moved from one program back to another; a migration: an
    island's head became another island's best (`data["state"]["head_id"]`)."""
    if kind == "migration":
        state = data.get("state")
        head = state.get("head_id") if isinstance(state, dict) else None
        return HistoryEvent(kind, created_at, message or "", None, None, _str_or_none(head), None)
    return HistoryEvent(
        kind,
        created_at,
        message or "",
        _int_or_none(data.get("iteration")),
        None,
        _str_or_none(data.get("to")),
        _str_or_none(data.get("from")),
    )


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
