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
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from storage import queries
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
from storage.encode import TRACE_CAP_BYTES, decode_trace, encode_trace, evaluation_row, seeds_key
from storage.errors import InvalidInputError, NotFoundError, StorageError
from storage.models import (
    PROGRAM_ORIGINS,
    RUN_STATUSES,
    Evaluation,
    Event,
    LlmCall,
    Program,
    Run,
    Trace,
    short_id,
    utcnow,
)

_EVENT_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
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


class Store:
    """An open evocade database. Open with `Store.open`; close, or use as a context manager."""

    def __init__(self, location: Location, engine: Engine, trace_cap_bytes: int) -> None:
        self._location = location
        self._engine = engine
        self._read_sessions = make_sessionmaker(engine)
        self._write_sessions = make_sessionmaker(writer(engine))
        self.trace_cap_bytes = trace_cap_bytes

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url_or_path: str | Path,
        *,
        create: bool = True,
        trace_cap_bytes: int = TRACE_CAP_BYTES,
    ) -> Store:
        """Open (and if needed create or upgrade) the database at a path or SQLAlchemy URL.

        `create=False` refuses to make a new database (the CLI's read commands: a typo in
        `--db` must not leave an empty database behind). A file that is not an evocade
        database raises `CorruptDatabaseError` and is left byte-for-byte untouched.
        """
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
        return cls(location, engine, trace_cap_bytes)

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
    ) -> Evaluation:
        """Record one sandbox evaluation result and its traces in one transaction.

        `result` is the sandbox's evaluation JSON as a dict. Traces come from `traces` (one per
        episode, None for none) or else from each episode's `"trace"`; each is compressed and
        capped (see `storage.encode.encode_trace`). `seeds` are the requested seeds, needed
        only for a rejected program, which has no episodes to read them from.
        """
        row = evaluation_row(result, traces, seeds)
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
    ) -> LlmCall:
        """Record one LLM request, failed ones included (`error` set, `response` maybe None).

        Record it after `add_program` so that `produced_program_id` can be filled in: rows are
        never updated later.
        """
        with self._write() as session:
            run = self._run(session, run_id)
            for pid in (parent_program_id, produced_program_id):
                if pid is not None:
                    self._check_same_run(self._program(session, pid), run)
            call = LlmCall(
                run_id=run.id,
                prompt=prompt,
                response=response,
                model=model,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_seconds=latency_seconds,
                cost=cost,
                error=error,
                parent_program_id=parent_program_id,
                produced_program_id=produced_program_id,
            )
            session.add(call)
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
