"""`Store`: the one object the loop and the CLI use to record and ask.

Each public method is one short transaction: a killed process loses at most the call in
flight, never half of it (an evaluation and its traces commit together or not at all). Returned
ORM objects are detached snapshots: read their columns freely, and ask the `Store` for related
rows (`evaluations(program_id)`, `traces(evaluation_id)`...) instead of following
relationships.

Usage:
    with Store.open("evocade.db") as store:
        run = store.create_run("Pong", {"frameskip": 4, "repeat_action_probability": 0.25})
        seed = store.add_program(run.id, source, origin="seed")
        store.set_head(run.id, seed.id)
        store.record_evaluation(seed.id, result_dict)   # the sandbox's evaluation JSON
        best = store.best_program(run.id)

`Store` is `storage.store_base.StoreBase` (sessions, lookups) plus one mixin per job:
store_runs, store_programs, store_evaluations, store_llm, store_leases, store_events and
store_questions. This module adds opening, closing, checkpoints and backups.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from storage.backup import BackupReport, backup_sqlite, postgres_hint
from storage.db import (
    Location,
    create_db_engine,
    create_read_only_engine,
    head_revision,
    probe_engine,
    probe_sqlite_file,
    resolve,
    translate_errors,
    upgrade,
)
from storage.encode import RESPONSE_CAP_BYTES, TRACE_CAP_BYTES
from storage.errors import InvalidInputError, NotFoundError, StorageError
from storage.store_base import StoreBase, source_sha256
from storage.store_evaluations import EvaluationsMixin, StoredTrace
from storage.store_events import EventsMixin
from storage.store_leases import LeasesMixin
from storage.store_llm import LlmMixin
from storage.store_programs import ProgramsMixin
from storage.store_questions import QuestionsMixin
from storage.store_runs import RunsMixin

__all__ = ["Checkpoint", "Store", "StoredTrace", "source_sha256"]


@dataclass(frozen=True)
class Checkpoint:
    """What `PRAGMA wal_checkpoint` reported: WAL frames, and how many are now in the main file."""

    busy: bool  # a reader or writer kept it from finishing (PASSIVE never waits for them)
    wal_frames: int
    checkpointed_frames: int

    @property
    def complete(self) -> bool:
        return not self.busy and self.checkpointed_frames == self.wal_frames


class Store(
    RunsMixin,
    ProgramsMixin,
    EvaluationsMixin,
    LlmMixin,
    LeasesMixin,
    EventsMixin,
    QuestionsMixin,
    StoreBase,
    AbstractContextManager["Store"],
):
    """An open evocade database. Open with `Store.open`; close, or use as a context manager."""

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url_or_path: str | Path,
        *,
        create: bool = True,
        trace_cap_bytes: int = TRACE_CAP_BYTES,
        response_cap_bytes: int = RESPONSE_CAP_BYTES,
    ) -> Store:
        """Open (and if needed create or upgrade) the database at a path or SQLAlchemy URL.

        `create=False` refuses to make a new database (the CLI's read commands: a typo in
        `--db` must not leave an empty database behind). A file that is not an evocade
        database raises `CorruptDatabaseError` and is left byte-for-byte untouched.
        """
        if response_cap_bytes < 0:
            raise InvalidInputError(f"response cap must be >= 0 bytes, got {response_cap_bytes}")
        location = resolve(url_or_path)

        def upgraded(engine: Engine, revision: str | None) -> None:
            if revision != head_revision():
                upgrade(engine, location.display)

        engine, revision = _probed(location, create_db_engine, create, upgraded)
        store = cls(location, engine, trace_cap_bytes, response_cap_bytes)
        if revision != head_revision():
            try:
                store.checkpoint()  # the new schema into the main file, not only the WAL
            except BaseException:
                store.close()
                raise
        return store

    @classmethod
    def open_read_only(cls, url_or_path: str | Path) -> Store:
        """Open an existing database for reading only (viewers: `evocade serve`).

        Never creates, migrates or writes: the connection itself refuses writes
        (`storage.db.create_read_only_engine`), so a bug in a viewer cannot change a row.
        A database behind this evocade's schema is refused with a one-line error saying how
        to upgrade it, since upgrading is a write.
        """
        location = resolve(url_or_path)

        def current(_engine: Engine, revision: str | None) -> None:
            if revision != head_revision():
                raise StorageError(
                    f"{location.display} is at schema revision {revision}, behind this "
                    f"evocade's {head_revision()}; upgrade it first (any command that opens it "
                    "for writing, e.g. `evocade runs`, migrates it)"
                )

        engine, _ = _probed(location, create_read_only_engine, False, current)
        return cls(location, engine, TRACE_CAP_BYTES)

    def close(self) -> None:
        """Release every connection (SQLite then checkpoints its WAL into the main file)."""
        self._engine.dispose()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None for a server or in-memory database."""
        return self._location.path

    def revision(self) -> str | None:
        """The schema revision the database is at (after `open`, always the head)."""
        with self._read() as session:
            return (
                session.connection()
                .exec_driver_sql("SELECT version_num FROM alembic_version")
                .scalar()
            )

    def checkpoint(self, *, truncate: bool = False) -> Checkpoint | None:
        """Copy the SQLite WAL into the main file now (None on other databases).

        Cheap when little was written since the last one; the loop calls it after each
        iteration, so the `.db` file alone is never far behind. PASSIVE by default: it never
        waits for readers or writers (`busy` then says it could not finish). `truncate=True`
        waits for them (up to the busy timeout) and also shrinks the WAL file to nothing.
        """
        if not self._location.is_sqlite:
            return None
        mode = "TRUNCATE" if truncate else "PASSIVE"
        with translate_errors(self.location), self._engine.connect() as connection:
            driver = connection.connection.dbapi_connection
            assert driver is not None
            busy, frames, done = driver.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return Checkpoint(bool(busy), max(int(frames), 0), max(int(done), 0))

    def backup(self, target: str | Path, *, overwrite: bool = False) -> BackupReport:
        """A consistent copy of this SQLite database at `target` (`storage.backup`)."""
        if self._location.path is None:
            if self._location.is_sqlite:
                raise InvalidInputError("an in-memory database has no file to back up")
            raise InvalidInputError(postgres_hint(self._location.url, str(target)))
        return backup_sqlite(self._location.path, Path(target), overwrite=overwrite)


def _probed(
    location: Location,
    connect: Callable[[Location], Engine],
    create: bool,
    then: Callable[[Engine, str | None], None],
) -> tuple[Engine, str | None]:
    """An engine for `location` from `connect`, and the schema revision its database is at
    (None: no evocade database yet), after `then` (migrate, or refuse) has seen both.

    A SQLite file is probed before anything connects to it (a file that is not an evocade
    database stays untouched), a server once connected. NotFoundError where there is no
    database and `create` is False; the engine is disposed of when anything fails.
    """
    revision = probe_sqlite_file(location.path, create=create) if location.path else None
    engine = connect(location)
    try:
        if location.path is None:
            revision = probe_engine(engine, location.display)
        if revision is None and not create:
            raise NotFoundError(f"{location.display} holds no evocade database")
        then(engine, revision)
    except BaseException:
        engine.dispose()
        raise
    return engine, revision
