"""Short ids: the full id a typed prefix names, or an error that says what to type."""

from __future__ import annotations

import string
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from storage.errors import AmbiguousIdError, NotFoundError
from storage.models import ID_LENGTH, Evaluation, Program, Run, short_id

AMBIGUOUS_SHOWN = 5
"""How many candidates an ambiguous-prefix error lists."""


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


def _candidates(
    session: Session,
    model: type[Run] | type[Program] | type[Evaluation],
    condition: ColumnElement[bool],
) -> list[str]:
    """The first few ids a prefix matches, each with what it is (a program's origin and
    generation, a run's game and status, an evaluation's game and status), so the user can
    tell which one they meant."""
    columns: tuple[Any, Any]
    if model is Program:
        columns, kind = (Program.origin, Program.generation), "{} program, gen {}"
    elif model is Evaluation:
        columns, kind = (Evaluation.game, Evaluation.status), "{} evaluation, {}"
    else:
        columns, kind = (Run.game, Run.status), "{} run, {}"
    rows = session.execute(
        select(model.id, *columns).where(condition).order_by(model.id).limit(AMBIGUOUS_SHOWN)
    ).all()
    return [f"{short_id(i)} ({kind.format(a, b)})" for i, a, b in rows]
