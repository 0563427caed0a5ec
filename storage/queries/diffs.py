"""Two programs' sources as a unified diff."""

from __future__ import annotations

import difflib

from sqlalchemy.orm import Session

from storage.errors import NotFoundError
from storage.models import Program, short_id


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
