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
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from storage import queries
from storage.backup import BackupReport, backup_sqlite, postgres_hint
from storage.db import (
    Location,
    create_db_engine,
    create_read_only_engine,
    head_revision,
    make_sessionmaker,
    probe_engine,
    probe_sqlite_file,
    resolve,
    translate_errors,
    upgrade,
    writer,
)
from storage.encode import (
    RESPONSE_CAP_BYTES,
    TRACE_CAP_BYTES,
    cap_text,
    decode_trace,
    encode_trace,
    evaluation_row,
    seeds_key,
    storable_text,
)
from storage.errors import AppendOnlyError, InvalidInputError, NotFoundError, StorageError
from storage.leases import (
    Lease,
    LeaseHeldError,
    LeaseLostError,
    PidAlive,
    held_message,
    lost_message,
    may_acquire,
    pid_alive,
)
from storage.models import (
    PROGRAM_ORIGINS,
    RUN_STATUSES,
    Evaluation,
    Event,
    LlmCall,
    LlmPrompt,
    Program,
    Run,
    RunLease,
    Trace,
    short_id,
    utcnow,
)
from storage.usage import RunUsage, run_usage

_EVENT_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_CALL_ID = re.compile(r"[0-9a-f]{32}")
_HOLDER = re.compile(r"[\w.:@-]{1,64}")
_STATUS_EVENTS = {
    "running": "run_resumed",
    "stopped": "run_stopped",
    "finished": "run_finished",
    "failed": "run_failed",
}


@dataclass(frozen=True)
class StoredTrace:
    """One episode's trace, decompressed."""

    evaluation_id: str
    episode: int
    seed: int
    steps: int
    raw_bytes: int
    stored_bytes: int
    truncated: bool  # cut down by storage to fit the cap
    data: dict[str, Any]


def source_sha256(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """What `PRAGMA wal_checkpoint` reported: WAL frames, and how many are now in the main file."""

    busy: bool  # a reader or writer kept it from finishing (PASSIVE never waits for them)
    wal_frames: int
    checkpointed_frames: int

    @property
    def complete(self) -> bool:
        return not self.busy and self.checkpointed_frames == self.wal_frames


class Store:
    """An open evocade database. Open with `Store.open`; close, or use as a context manager."""

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
        revision = probe_sqlite_file(location.path, create=create) if location.path else None
        engine = create_db_engine(location)
        try:
            if location.path is None:
                revision = probe_engine(engine, location.display)
            if revision is None and not create:
                raise NotFoundError(f"{location.display} holds no evocade database")
            if revision != head_revision():
                upgrade(engine, location.display)
        except BaseException:
            engine.dispose()
            raise
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
        revision = probe_sqlite_file(location.path, create=False) if location.path else None
        engine = create_read_only_engine(location)
        try:
            if location.path is None:
                revision = probe_engine(engine, location.display)
            if revision is None:
                raise NotFoundError(f"{location.display} holds no evocade database")
            if revision != head_revision():
                raise StorageError(
                    f"{location.display} is at schema revision {revision}, behind this "
                    f"evocade's {head_revision()}; upgrade it first (any command that opens it "
                    "for writing, e.g. `evocade runs`, migrates it)"
                )
        except BaseException:
            engine.dispose()
            raise
        return cls(location, engine, TRACE_CAP_BYTES)

    def close(self) -> None:
        """Release every connection (SQLite then checkpoints its WAL into the main file)."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def location(self) -> str:
        """The database as messages name it: a file path, or a URL without its password."""
        return self._location.display

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
    def _run(session: Session, run_id: str) -> Run:
        run = session.get(Run, run_id)
        if run is None:
            raise NotFoundError(f"no run matches {run_id!r}")
        return run

    @staticmethod
    def _program(session: Session, program_id: str) -> Program:
        program = session.get(Program, program_id)
        if program is None:
            raise NotFoundError(f"no program matches {program_id!r}")
        return program

    def get_run(self, run_id: str) -> Run:
        with self._read() as session:
            return self._run(session, run_id)

    def get_program(self, program_id: str) -> Program:
        with self._read() as session:
            return self._program(session, program_id)

    def resolve_run(self, prefix: str) -> Run:
        """The run whose id starts with `prefix` (NotFoundError / AmbiguousIdError)."""
        with self._read() as session:
            return self._run(session, queries.resolve_id(session, Run, prefix))

    def resolve_evaluation(self, prefix: str) -> Evaluation:
        """The evaluation whose id starts with `prefix` (NotFoundError / AmbiguousIdError)."""
        with self._read() as session:
            full = queries.resolve_id(session, Evaluation, prefix)
            evaluation = session.get(Evaluation, full)
            assert evaluation is not None
            return evaluation

    def resolve_program(self, prefix: str) -> Program:
        """The program whose id starts with `prefix` (NotFoundError / AmbiguousIdError)."""
        with self._read() as session:
            return self._program(session, queries.resolve_id(session, Program, prefix))

    # -- runs --------------------------------------------------------------------------------

    def create_run(
        self, game: str, env: Mapping[str, Any], config: Mapping[str, Any] | None = None
    ) -> Run:
        """A new run, status `running`, no head yet; logs a `run_started` event."""
        if not game:
            raise InvalidInputError("a run needs a game")
        with self._write() as session:
            run = Run(game=game, env=dict(env), config=dict(config or {}), status="running")
            session.add(run)
            session.flush()
            session.add(Event(run_id=run.id, kind="run_started", message=f"{game} run started"))
        return run

    def set_head(self, run_id: str, program_id: str) -> Run:
        """Make `program_id` the program the run's next iteration builds on."""
        with self._write() as session:
            run, program = self._run(session, run_id), self._program(session, program_id)
            self._check_same_run(program, run)
            run.head_program_id = program.id
            run.updated_at = utcnow()
        return run

    def set_status(self, run_id: str, status: str, message: str = "") -> Run:
        """Change the run's status, logging run_resumed/run_stopped/run_finished/run_failed."""
        if status not in RUN_STATUSES:
            raise InvalidInputError(
                f"run status {status!r} is not one of: {', '.join(RUN_STATUSES)}"
            )
        with self._write() as session:
            run = self._run(session, run_id)
            previous = run.status
            run.status = status
            run.updated_at = utcnow()
            session.add(
                Event(
                    run_id=run.id,
                    kind=_STATUS_EVENTS[status],
                    message=message or f"status {previous} -> {status}",
                    data={"from": previous, "to": status},
                )
            )
        return run

    def revert(self, run_id: str, program_id: str, message: str = "") -> Run:
        """Point the run's head back at an earlier program; nothing is deleted.

        The next iteration builds on that program; every later program, evaluation and LLM
        call stays, and a `revert` event records the head before and after.
        """
        with self._write() as session:
            run, program = self._run(session, run_id), self._program(session, program_id)
            self._check_same_run(program, run)
            previous = run.head_program_id
            run.head_program_id = program.id
            run.updated_at = utcnow()
            session.add(
                Event(
                    run_id=run.id,
                    kind="revert",
                    message=message or f"head {short_id(previous)} -> {short_id(program.id)}",
                    data={"from": previous, "to": program.id},
                )
            )
        return run

    # -- the run lease: one process drives a run (rules in storage.leases) ---------------------

    def acquire_lease(
        self,
        run_id: str,
        holder: str,
        ttl_seconds: float,
        *,
        pid: int | None = None,
    ) -> Lease:
        """Take the run's lease for `holder` (this host, `pid` or this process's), valid for
        `ttl_seconds` unless renewed; raise `LeaseHeldError` (one line, naming the holder) when
        another live process holds it.

        Race-free: on SQLite the write transaction holds the database's write lock; on
        PostgreSQL the run's row and the lease's row are locked first, so two acquirers take
        turns and the second sees what the first committed.
        """
        holder = self._check_holder(holder)
        ttl = self._check_ttl(ttl_seconds)
        with self._write() as session:
            run = session.scalars(
                select(Run).where(Run.id == run_id).with_for_update(key_share=True)
            ).first()
            if run is None:
                raise NotFoundError(f"no run matches {run_id!r}")
            row = self._lease_row(session, run.id)
            now = utcnow()
            current = _lease(row) if row is not None else None
            if not may_acquire(current, holder, now, self.host, self.pid_alive):
                assert current is not None
                raise LeaseHeldError(held_message(current, now))
            if row is None:
                row = RunLease(run_id=run.id)
                session.add(row)
            if current is None or current.holder != holder or current.released_at is not None:
                row.acquired_at = now
            row.holder, row.host, row.pid = holder, self.host, pid or os.getpid()
            row.heartbeat_at, row.expires_at, row.released_at = now, now + ttl, None
            session.flush()
            return _lease(row)

    def renew_lease(self, run_id: str, holder: str, ttl_seconds: float) -> Lease:
        """Heartbeat: extend `holder`'s lease to `ttl_seconds` from now. Raises `LeaseLostError`
        when the lease was released or taken over meanwhile: the caller must stop driving the
        run. (An expired lease nobody took over is simply renewed.)"""
        holder = self._check_holder(holder)
        ttl = self._check_ttl(ttl_seconds)
        with self._write() as session:
            row = self._lease_row(session, run_id)
            if row is None or row.holder != holder or row.released_at is not None:
                raise LeaseLostError(lost_message(run_id, _lease(row) if row else None))
            now = utcnow()
            row.heartbeat_at, row.expires_at = now, now + ttl
            session.flush()
            return _lease(row)

    def release_lease(self, run_id: str, holder: str) -> bool:
        """Give the lease up (a clean stop); False when `holder` no longer held it."""
        with self._write() as session:
            row = self._lease_row(session, run_id)
            if row is None or row.holder != holder or row.released_at is not None:
                return False
            row.released_at = utcnow()
            return True

    def lease(self, run_id: str) -> Lease | None:
        """The run's lease as stored (live or not: see `Lease.live`, `Lease.holder_gone`)."""
        with self._read() as session:
            row = session.get(RunLease, run_id)
            return _lease(row) if row is not None else None

    def leases(self) -> dict[str, Lease]:
        """Every run's lease, by run id (for listings: one query, not one per run)."""
        with self._read() as session:
            return {row.run_id: _lease(row) for row in session.scalars(select(RunLease))}

    @staticmethod
    def _lease_row(session: Session, run_id: str) -> RunLease | None:
        return session.scalars(
            select(RunLease)
            .where(RunLease.run_id == run_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    @staticmethod
    def _check_holder(holder: str) -> str:
        if not isinstance(holder, str) or not _HOLDER.fullmatch(holder):
            raise InvalidInputError(
                f"a lease holder is 1-64 letters, digits or . : @ _ -, not {holder!r}"
            )
        return holder

    @staticmethod
    def _check_ttl(ttl_seconds: float) -> timedelta:
        if not ttl_seconds > 0:
            raise InvalidInputError(f"a lease needs a positive ttl, got {ttl_seconds} s")
        return timedelta(seconds=ttl_seconds)

    def runs(self) -> list[queries.RunSummary]:
        with self._read() as session:
            return queries.runs(session)

    @staticmethod
    def _check_same_run(program: Program, run: Run) -> None:
        if program.run_id != run.id:
            raise InvalidInputError(
                f"program {short_id(program.id)} belongs to run {short_id(program.run_id)}, "
                f"not to run {short_id(run.id)}"
            )

    # -- programs ----------------------------------------------------------------------------

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
        if not isinstance(source, str) or not source.strip():
            raise InvalidInputError("a program's source must be a non-empty string")
        if origin not in PROGRAM_ORIGINS:
            raise InvalidInputError(
                f"program origin {origin!r} is not one of: {', '.join(PROGRAM_ORIGINS)}"
            )
        digest = source_sha256(source)
        try:
            with self._write() as session:
                run = self._run(session, run_id)
                existing = self._by_digest(session, run.id, digest)
                if existing is not None:
                    return existing
                parents = [
                    self._program(session, pid) for pid in (parent_id, second_parent_id) if pid
                ]
                for parent in parents:
                    self._check_same_run(parent, run)
                if generation is None:
                    generation = max((p.generation + 1 for p in parents), default=0)
                program = Program(
                    run_id=run.id,
                    source=source,
                    sha256=digest,
                    parent_id=parent_id,
                    second_parent_id=second_parent_id,
                    origin=origin,
                    generation=generation,
                    check_report=dict(check_report) if check_report is not None else None,
                    note=note,
                    island=island,
                    iteration=iteration,
                )
                session.add(program)
            return program
        except StorageError as error:
            # Another writer may have added the same source between our lookup and insert.
            if not isinstance(error.__cause__, sa_exc.IntegrityError):
                raise
            with self._read() as session:
                existing = self._by_digest(session, run_id, digest)
            if existing is None:
                raise
            return existing

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

    # -- evaluations -------------------------------------------------------------------------

    def record_evaluation(
        self,
        program_id: str,
        result: Mapping[str, Any],
        traces: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        seeds: Sequence[int] | None = None,
        holdout: bool = False,
    ) -> Evaluation:
        """Record one sandbox evaluation result and its traces in one transaction.

        `result` is the sandbox's evaluation JSON as a dict. Traces come from `traces` (one per
        episode, None for none) or else from each episode's `"trace"`; each is compressed and
        capped (see `storage.encode.encode_trace`). `seeds` are the requested seeds, needed
        only for a rejected program, which has no episodes to read them from. A `holdout`
        evaluation (held-out seeds) is keyed by `storage.encode.holdout_env_key`.
        """
        row = evaluation_row(result, traces, seeds, holdout=holdout)
        encoded = [
            (episode, seed, steps, encode_trace(trace, self.trace_cap_bytes))
            for episode, seed, steps, trace in row.traces
        ]
        with self._write() as session:
            program = self._program(session, program_id)
            evaluation = Evaluation(program_id=program.id, run_id=program.run_id, **row.values)
            session.add(evaluation)
            session.flush()
            for episode, seed, steps, trace in encoded:
                session.add(
                    Trace(
                        evaluation_id=evaluation.id,
                        episode=episode,
                        seed=seed,
                        steps=steps,
                        data=trace.data,
                        raw_bytes=trace.raw_bytes,
                        stored_bytes=trace.stored_bytes,
                        truncated=trace.truncated,
                    )
                )
        return evaluation

    def find_evaluation(
        self, program_id: str, env_key: str, seeds: Sequence[int]
    ) -> Evaluation | None:
        """An earlier evaluation to reuse instead of playing the program again, if any.

        Exact matches on (program, env key, seeds) first, newest first; `crashed` ones are
        skipped (the sandbox failed, not the program: worth another try). A `rejected`
        evaluation matches whatever the env and seeds, since the static check depends on
        neither. `env_key` comes from `storage.encode.env_key(game, env)`.
        """
        key = seeds_key(seeds)
        with self._read() as session:
            exact = session.scalars(
                select(Evaluation)
                .where(
                    Evaluation.program_id == program_id,
                    Evaluation.env_key == env_key,
                    Evaluation.seeds_key == key,
                    Evaluation.status != "crashed",
                )
                .order_by(Evaluation.created_at.desc(), Evaluation.id)
                .limit(1)
            ).first()
            if exact is not None:
                return exact
            return session.scalars(
                select(Evaluation)
                .where(Evaluation.program_id == program_id, Evaluation.status == "rejected")
                .order_by(Evaluation.created_at.desc(), Evaluation.id)
                .limit(1)
            ).first()

    def get_evaluation(self, evaluation_id: str) -> Evaluation:
        with self._read() as session:
            evaluation = session.get(Evaluation, evaluation_id)
            if evaluation is None:
                raise NotFoundError(f"no evaluation matches {evaluation_id!r}")
            return evaluation

    def evaluations(self, program_id: str) -> list[Evaluation]:
        """The program's evaluations, oldest first."""
        with self._read() as session:
            return list(
                session.scalars(
                    select(Evaluation)
                    .where(Evaluation.program_id == program_id)
                    .order_by(Evaluation.created_at, Evaluation.id)
                )
            )

    def run_evaluations(self, run_id: str) -> list[Evaluation]:
        """Every evaluation of the run's programs, oldest first (smoke, full and any other)."""
        with self._read() as session:
            self._run(session, run_id)
            return list(
                session.scalars(
                    select(Evaluation)
                    .where(Evaluation.run_id == run_id)
                    .order_by(Evaluation.created_at, Evaluation.id)
                )
            )

    def trace_sizes(self, evaluation_id: str) -> list[tuple[int, int, bool]]:
        """(episode, stored bytes, truncated by storage) of each trace, without decoding."""
        with self._read() as session:
            return [
                (row.episode, row.stored_bytes, row.truncated)
                for row in session.execute(
                    select(Trace.episode, Trace.stored_bytes, Trace.truncated)
                    .where(Trace.evaluation_id == evaluation_id)
                    .order_by(Trace.episode)
                )
            ]

    def traces(self, evaluation_id: str) -> list[StoredTrace]:
        """The evaluation's traces, decompressed, in episode order."""
        with self._read() as session:
            rows = session.scalars(
                select(Trace).where(Trace.evaluation_id == evaluation_id).order_by(Trace.episode)
            ).all()
        return [
            StoredTrace(
                evaluation_id=row.evaluation_id,
                episode=row.episode,
                seed=row.seed,
                steps=row.steps,
                raw_bytes=row.raw_bytes,
                stored_bytes=row.stored_bytes,
                truncated=row.truncated,
                data=decode_trace(row.data),
            )
            for row in rows
        ]

    # -- LLM calls and events ----------------------------------------------------------------

    def record_llm_call(
        self,
        run_id: str,
        *,
        prompt: str,
        model: str,
        response: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        latency_seconds: float | None = None,
        cost: float | None = None,
        error: str | None = None,
        parent_program_id: str | None = None,
        produced_program_id: str | None = None,
        call_id: str | None = None,
    ) -> LlmCall:
        """Record one LLM attempt, failed ones included (`error` set, `response` maybe None).

        Record it as soon as the attempt ends, with the client-made `call_id`
        (`LlmExchange.id`); once its answer has become a program, `link_llm_call` fills in
        `produced_program_id`. Recording the same `call_id` again returns the stored row
        unchanged, so a caller that is unsure whether a write landed can simply repeat it.
        The prompt is stored once per distinct text (`llm_prompt`); the response is cut to
        the store's `response_cap_bytes`, and the cut recorded in `response_truncated_bytes`.
        """
        if call_id is not None and not _CALL_ID.fullmatch(call_id):
            raise InvalidInputError(f"an LLM call id must be 32 lowercase hex digits: {call_id!r}")
        if call_id is not None:
            existing = self._existing_call(run_id, call_id)
            if existing is not None:
                return existing
        prompt_text = storable_text(prompt)
        digest = source_sha256(prompt_text)
        kept, cut = (None, 0)
        if response is not None:
            kept, cut = cap_text(storable_text(response), self.response_cap_bytes)
        try:
            with self._write() as session:
                run = self._run(session, run_id)
                for pid in (parent_program_id, produced_program_id):
                    if pid is not None:
                        self._check_same_run(self._program(session, pid), run)
                call = LlmCall(
                    run_id=run.id,
                    prompt_row=self._stored_prompt(session, digest, prompt_text),
                    response=kept,
                    response_truncated_bytes=cut,
                    model=storable_text(model),
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    latency_seconds=latency_seconds,
                    cost=cost,
                    error=storable_text(error) if error is not None else None,
                    parent_program_id=parent_program_id,
                    produced_program_id=produced_program_id,
                )
                if call_id is not None:
                    call.id = call_id
                session.add(call)
            return call
        except StorageError as error_:
            # Another writer may have recorded the same call id between our lookup and insert.
            if call_id is None or not isinstance(error_.__cause__, sa_exc.IntegrityError):
                raise
            existing = self._existing_call(run_id, call_id)
            if existing is None:
                raise
            return existing

    def _existing_call(self, run_id: str, call_id: str) -> LlmCall | None:
        with self._read() as session:
            existing = session.get(LlmCall, call_id)
        if existing is not None and existing.run_id != run_id:
            raise InvalidInputError(
                f"LLM call {short_id(call_id)} belongs to run {short_id(existing.run_id)}, "
                f"not to run {short_id(run_id)}"
            )
        return existing

    @staticmethod
    def _stored_prompt(session: Session, digest: str, text: str) -> LlmPrompt:
        """The `llm_prompt` row of this text, inserted unless another call stored it already
        (INSERT ... ON CONFLICT DO NOTHING: concurrent writers of one prompt both succeed)."""
        dialect = session.get_bind().dialect.name
        values = {"sha256": digest, "text": text, "created_at": utcnow()}
        if dialect in ("sqlite", "postgresql"):
            insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
            session.execute(
                insert(LlmPrompt).values(**values).on_conflict_do_nothing(index_elements=["sha256"])
            )
        elif session.get(LlmPrompt, digest) is None:
            session.add(LlmPrompt(**values))
            session.flush()
        stored = session.get(LlmPrompt, digest)
        assert stored is not None
        return stored

    def link_llm_call(self, call_id: str, program_id: str) -> LlmCall:
        """Record that this call's answer became `program_id` (set once; repeating the same link
        is a no-op, a different one is refused)."""
        with self._write() as session:
            call = session.scalars(
                select(LlmCall).where(LlmCall.id == call_id).with_for_update()
            ).first()
            if call is None:
                raise NotFoundError(f"no LLM call matches {call_id!r}")
            program = self._program(session, program_id)
            if program.run_id != call.run_id:
                raise InvalidInputError(
                    f"program {short_id(program.id)} belongs to run {short_id(program.run_id)}, "
                    f"not to the call's run {short_id(call.run_id)}"
                )
            if call.produced_program_id == program.id:
                return call
            if call.produced_program_id is not None:
                raise AppendOnlyError(
                    f"LLM call {short_id(call.id)} already produced program "
                    f"{short_id(call.produced_program_id)}; refusing to relink it to "
                    f"{short_id(program.id)}"
                )
            call.produced_program_id = program.id
        return call

    def get_llm_call(self, call_id: str) -> LlmCall:
        with self._read() as session:
            call = session.get(LlmCall, call_id)
            if call is None:
                raise NotFoundError(f"no LLM call matches {call_id!r}")
            return call

    def llm_calls(self, run_id: str) -> list[LlmCall]:
        with self._read() as session:
            return list(
                session.scalars(
                    select(LlmCall)
                    .where(LlmCall.run_id == run_id)
                    .order_by(LlmCall.created_at, LlmCall.id)
                )
            )

    def program_llm_calls(self, program_id: str) -> tuple[list[LlmCall], list[LlmCall]]:
        """(calls that produced the program, calls whose prompt built on it), oldest first.

        A prompt that built on a program carries the feedback on that program's evaluation:
        that is where the feedback sent to the proposer is stored.
        """
        with self._read() as session:
            self._program(session, program_id)
            order = (LlmCall.created_at, LlmCall.id)
            produced = session.scalars(
                select(LlmCall).where(LlmCall.produced_program_id == program_id).order_by(*order)
            ).all()
            built_on = session.scalars(
                select(LlmCall).where(LlmCall.parent_program_id == program_id).order_by(*order)
            ).all()
            return list(produced), list(built_on)

    def run_usage(self, run_id: str) -> RunUsage:
        """Tokens, cost, calls and env steps of the run, summed from its `llm_call` and
        `evaluation` rows (never from an event that may be stale): what budgets resume from."""
        with self._read() as session:
            self._run(session, run_id)
            return run_usage(session, run_id)

    def add_event(
        self,
        run_id: str | None,
        kind: str,
        message: str = "",
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        """Append to the audit log (`kind` in snake_case, e.g. `budget_hit`)."""
        if not _EVENT_KIND.fullmatch(kind):
            raise InvalidInputError(f"event kind {kind!r} must be snake_case, at most 32 chars")
        with self._write() as session:
            if run_id is not None:
                self._run(session, run_id)
            event = Event(
                run_id=run_id,
                kind=kind,
                message=message,
                data=dict(data) if data is not None else None,
            )
            session.add(event)
        return event

    def events(self, run_id: str | None = None) -> list[Event]:
        """The audit log, oldest first; of one run, or all of it."""
        with self._read() as session:
            query = select(Event).order_by(Event.id)
            if run_id is not None:
                query = query.where(Event.run_id == run_id)
            return list(session.scalars(query))

    # -- questions ---------------------------------------------------------------------------

    def best_program(self, run_id: str, env_key: str | None = None) -> queries.ScoredProgram | None:
        """The run's best program (rule in `storage.queries`), or None if nothing scored."""
        with self._read() as session:
            self._run(session, run_id)
            return queries.best_program(session, run_id, env_key)

    def lineage(self, program_id: str) -> queries.Lineage:
        with self._read() as session:
            return queries.lineage(session, program_id)

    def ancestors(self, program_id: str) -> list[queries.LineageNode]:
        with self._read() as session:
            self._program(session, program_id)
            return queries.ancestors(session, program_id)

    def descendants(self, program_id: str) -> list[queries.LineageNode]:
        with self._read() as session:
            self._program(session, program_id)
            return queries.descendants(session, program_id)

    def history(self, run_id: str) -> list[queries.HistoryRow]:
        with self._read() as session:
            self._run(session, run_id)
            return queries.history(session, run_id)

    def history_with_events(self, run_id: str) -> list[queries.HistoryRow | queries.HistoryEvent]:
        """`history` plus iterations that made no program, and reverts/rollbacks, in order."""
        with self._read() as session:
            self._run(session, run_id)
            return queries.history_with_events(session, run_id)

    def diff(self, a_id: str, b_id: str) -> str:
        with self._read() as session:
            return queries.diff(session, a_id, b_id)


def _lease(row: RunLease) -> Lease:
    return Lease(
        run_id=row.run_id,
        holder=row.holder,
        host=row.host,
        pid=row.pid,
        acquired_at=row.acquired_at,
        heartbeat_at=row.heartbeat_at,
        expires_at=row.expires_at,
        released_at=row.released_at,
    )
