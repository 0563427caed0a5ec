"""What every part of `Store` stands on: the database, its two session makers, and the
lookups that turn an id into a row or a one-line `NotFoundError`.

`Store` (storage.repository) is this base plus one mixin per job (store_runs, store_programs,
store_evaluations, store_llm, store_leases, store_events, store_questions); each mixin
inherits this class so it can open sessions and look rows up, and nothing else.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from storage.db import Location, make_sessionmaker, translate_errors, writer
from storage.encode import RESPONSE_CAP_BYTES
from storage.errors import InvalidInputError, NotFoundError, StorageError
from storage.leases import PidAlive, pid_alive
from storage.models import Base, Program, Run, short_id

Row = TypeVar("Row", bound=Base)


def source_sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


class StoreBase:
    """An open database and its sessions; `Store` adds opening, closing and the public calls."""

    def __init__(
        self,
        location: Location,
        engine: Engine,
        trace_cap_bytes: int,
        response_cap_bytes: int = RESPONSE_CAP_BYTES,
    ) -> None:
        self._location = location
        self._engine = engine
        self._read_sessions = make_sessionmaker(engine)
        self._write_sessions = make_sessionmaker(writer(engine))
        self.trace_cap_bytes = trace_cap_bytes
        self.response_cap_bytes = response_cap_bytes
        self.host = socket.gethostname()  # what leases taken through this store name
        self.pid_alive: PidAlive = pid_alive

    @property
    def location(self) -> str:
        """The database as messages name it: a file path, or a URL without its password."""
        return self._location.display

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with translate_errors(self.location), self._read_sessions() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with translate_errors(self.location), self._write_sessions.begin() as session:
            yield session

    # -- lookups -----------------------------------------------------------------------------

    @staticmethod
    def _get(session: Session, table: type[Row], row_id: str, what: str) -> Row:
        """The row of `table` with this id, or NotFoundError naming `what` it should be."""
        row = session.get(table, row_id)
        if row is None:
            raise NotFoundError(f"no {what} matches {row_id!r}")
        return row

    @staticmethod
    def _written_or_raced(write: Callable[[], Row], find: Callable[[], Row | None]) -> Row:
        """The row `write()` stores; or, when the insert failed on a unique key because another
        writer stored the same row between our lookup and our insert, that row (`find()`)."""
        try:
            return write()
        except StorageError as error:
            if not isinstance(error.__cause__, sa_exc.IntegrityError):
                raise
            raced = find()
            if raced is None:
                raise
            return raced

    @staticmethod
    def _run(session: Session, run_id: str) -> Run:
        return StoreBase._get(session, Run, run_id, "run")

    @staticmethod
    def _program(session: Session, program_id: str) -> Program:
        return StoreBase._get(session, Program, program_id, "program")

    @staticmethod
    def _check_same_run(program: Program, run: Run) -> None:
        if program.run_id != run.id:
            raise InvalidInputError(
                f"program {short_id(program.id)} belongs to run {short_id(program.run_id)}, "
                f"not to run {short_id(run.id)}"
            )
