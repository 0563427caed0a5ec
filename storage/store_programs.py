"""Programs: record one (deduplicated by source within its run) and find them again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import queries
from storage.errors import InvalidInputError
from storage.models import PROGRAM_ORIGINS, Program, Run
from storage.store_base import StoreBase, source_sha256


class ProgramsMixin(StoreBase):
    """The `Store` calls about programs."""

    def get_program(self, program_id: str) -> Program:
        with self._read() as session:
            return self._program(session, program_id)

    def resolve_program(self, prefix: str) -> Program:
        """The program whose id starts with `prefix` (NotFoundError / AmbiguousIdError)."""
        with self._read() as session:
            return self._program(session, queries.resolve_id(session, Program, prefix))

    def add_program(
        self,
        run_id: str,
        source: str,
        *,
        origin: str = "llm",
        parent_id: str | None = None,
        second_parent_id: str | None = None,
        generation: int | None = None,
        check_report: Mapping[str, Any] | None = None,
        note: str | None = None,
        island: int | None = None,
        iteration: int | None = None,
    ) -> Program:
        """Record a program, or return the run's existing row with the same source.

        A duplicate keeps its first parent, origin and generation: the row records where the
        code first came from. `generation` defaults to one more than the older parent's.
        """
        _check_program(source, origin)
        digest = source_sha256(source)

        def write() -> Program:
            with self._write() as session:
                run = self._run(session, run_id)
                existing = self._by_digest(session, run.id, digest)
                if existing is not None:
                    return existing
                parents = self._parents(session, run, parent_id, second_parent_id)
                first = max((p.generation + 1 for p in parents), default=0)
                program = Program(
                    run_id=run.id,
                    source=source,
                    sha256=digest,
                    parent_id=parent_id,
                    second_parent_id=second_parent_id,
                    origin=origin,
                    generation=first if generation is None else generation,
                    check_report=dict(check_report) if check_report is not None else None,
                    note=note,
                    island=island,
                    iteration=iteration,
                )
                session.add(program)
            return program

        def find() -> Program | None:
            with self._read() as session:
                return self._by_digest(session, run_id, digest)

        return self._written_or_raced(write, find)

    def _parents(self, session: Session, run: Run, *parent_ids: str | None) -> list[Program]:
        """The given parents' rows (None skipped), each checked to belong to `run`."""
        parents = [self._program(session, pid) for pid in parent_ids if pid]
        for parent in parents:
            self._check_same_run(parent, run)
        return parents

    @staticmethod
    def _by_digest(session: Session, run_id: str, digest: str) -> Program | None:
        return session.scalars(
            select(Program).where(Program.run_id == run_id, Program.sha256 == digest)
        ).first()

    def numbered_programs(self, run_id: str) -> list[tuple[str, int | None, int, str | None]]:
        """(id, island, iteration, parent id) of the run's programs that a proposal numbered,
        oldest number first: what a resume needs to find the candidates that were in flight."""
        query = (
            select(Program.id, Program.island, Program.iteration, Program.parent_id)
            .where(Program.run_id == run_id, Program.iteration.is_not(None))
            .order_by(Program.iteration)
        )
        with self._read() as session:
            self._run(session, run_id)
            rows = session.execute(query).all()
            return [(pid, island, n or 0, parent) for pid, island, n, parent in rows]

    def find_program(self, run_id: str, source: str) -> Program | None:
        """The run's program with exactly this source, if any."""
        with self._read() as session:
            return self._by_digest(session, run_id, source_sha256(source))


def _check_program(source: str, origin: str) -> None:
    if not isinstance(source, str) or not source.strip():
        raise InvalidInputError("a program's source must be a non-empty string")
    if origin not in PROGRAM_ORIGINS:
        raise InvalidInputError(
            f"program origin {origin!r} is not one of: {', '.join(PROGRAM_ORIGINS)}"
        )
