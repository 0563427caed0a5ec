"""The tables, as SQLAlchemy 2.x typed ORM classes.

Everything here is append-only: a row, once committed, is never updated or deleted, except a
run's `head_program_id`, `status` and `updated_at`, an LLM call's `produced_program_id` (set
once, from NULL), and a run's lease (enforced in `storage.db`). That is what makes revert cheap
and safe: it moves a pointer and logs an event, and every program, evaluation and LLM call
stays available for lineage and post-mortems.

Ids that a user types (runs, programs, evaluations, LLM calls) are uuid4 hex strings (32
characters) shown by their first 8; ids nobody types (traces, events) are integers. The schema
itself is owned by the Alembic migrations in `storage/migrations/`: change a model, add a
migration (a test checks that the two agree).
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.columns import NAMING_CONVENTION, UTCDateTime

ID_LENGTH = 32
SHORT_ID_LENGTH = 8

RunStatus = Literal["running", "stopped", "finished", "failed"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
PROGRAM_ORIGINS = ("seed", "llm", "mutation", "manual", "revert")
EVALUATION_STATUSES = (  # sandbox.results.Status's values: storage does not import sandbox/
    "ok",
    "rejected",
    "error",
    "timeout",
    "memory",
    "invalid_action",
    "crashed",
)
EventKind = Literal[
    # written by storage: Store.create_run, set_status, revert
    "run_started",
    "run_resumed",
    "run_stopped",
    "run_finished",
    "run_failed",
    "revert",
    # written by the engine (engine/loop.py, engine/population/)
    "crash_recovery",
    "population",
    "iteration",
    "rollback",
    "migration",
    "budget_hit",
    # written by the engine for `--executor ray` (engine/loop.py)
    "ray_cluster",
    "ray_node_refused",
    "ray_node_lost",
]
"""Every kind of event evocade writes. The type checker holds writers to it; `add_event` itself
accepts any snake_case kind, and readers expect anything, as a database may come from another
version."""


def new_id() -> str:
    """A fresh 32-character hex id: unique without coordination across processes and DBs."""
    return uuid.uuid4().hex


def short_id(full_id: str | None) -> str:
    """How an id is shown: its first 8 characters (or "-" for none)."""
    return full_id[:SHORT_ID_LENGTH] if full_id else "-"


_clock_lock = threading.Lock()
_last_time = datetime.min.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """The current UTC time, strictly increasing within this process.

    "Creation order" (history, the "older program wins" tie-break) is read from `created_at`;
    two rows written in the same microsecond would otherwise tie.
    """
    global _last_time
    with _clock_lock:
        now = datetime.now(UTC)
        if now <= _last_time:
            now = _last_time + timedelta(microseconds=1)
        _last_time = now
        return now


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(none_as_null=True),
        list[Any]: JSON(none_as_null=True),
    }


class Run(Base):
    """One optimization run: a game, its env settings, the loop's config, and a head.

    The head is the program the next iteration builds on; `revert` moves it back.
    """

    __tablename__ = "run"
    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    game: Mapped[str] = mapped_column(String(64))
    env: Mapped[dict[str, Any]]
    config: Mapped[dict[str, Any]]
    status: Mapped[RunStatus] = mapped_column(String(16), default="running")
    head_program_id: Mapped[str | None] = mapped_column(ForeignKey("program.id", use_alter=True))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    programs: Mapped[list[Program]] = relationship(
        back_populates="run", foreign_keys="Program.run_id"
    )
    head_program: Mapped[Program | None] = relationship(
        foreign_keys=[head_program_id], post_update=True
    )
    llm_calls: Mapped[list[LlmCall]] = relationship(back_populates="run")
    events: Mapped[list[Event]] = relationship(back_populates="run")


class Program(Base):
    """The source of one policy module, with where it came from.

    One row per distinct source within a run (unique `sha256`): proposing the same code twice
    reuses the row and its evaluations instead of paying for them again.
    """

    __tablename__ = "program"
    __table_args__ = (
        UniqueConstraint("run_id", "sha256"),
        CheckConstraint(_in("origin", PROGRAM_ORIGINS), name="origin"),
        # migration 0003: a run's programs in creation order, read without the table
        Index(
            "ix_program_run_tree", "run_id", "created_at", "id", "parent_id", "generation", "origin"
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"))
    source: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("program.id"), index=True)
    second_parent_id: Mapped[str | None] = mapped_column(ForeignKey("program.id"))
    origin: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    check_report: Mapped[dict[str, Any] | None]
    note: Mapped[str | None] = mapped_column(Text)  # migration 0002
    island: Mapped[int | None] = mapped_column(Integer)  # migration 0005: lineage it grew in
    iteration: Mapped[int | None] = mapped_column(Integer)  # migration 0005: proposal number

    run: Mapped[Run] = relationship(back_populates="programs", foreign_keys=[run_id])
    parent: Mapped[Program | None] = relationship(
        back_populates="children", remote_side=[id], foreign_keys=[parent_id]
    )
    children: Mapped[list[Program]] = relationship(
        back_populates="parent", foreign_keys=[parent_id]
    )
    second_parent: Mapped[Program | None] = relationship(
        remote_side=[id], foreign_keys=[second_parent_id]
    )
    evaluations: Mapped[list[Evaluation]] = relationship(back_populates="program")


class Evaluation(Base):
    """One program x one game x one env setting x a list of seeds (DESIGN.md §3).

    `env_key` and `seeds_key` are canonical strings so that "was this already evaluated?" is an
    indexed equality lookup on any backend (JSON columns do not compare portably). `run_id` is
    a copy of the program's (set by `Store.record_evaluation`): a run's evaluations are then
    one range of one index, instead of one lookup per program.
    """

    __tablename__ = "evaluation"
    __table_args__ = (
        CheckConstraint(_in("status", EVALUATION_STATUSES), name="status"),
        Index(None, "program_id", "env_key", "seeds_key"),  # migration 0002
        # migration 0003: a run's evaluations and their scores, read without the table
        Index(
            "ix_evaluation_run_scores",
            "run_id",
            "program_id",
            "status",
            "mean_return",
            "total_steps",
            "id",
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    program_id: Mapped[str] = mapped_column(ForeignKey("program.id"), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"))  # migration 0003
    game: Mapped[str] = mapped_column(String(64))
    env: Mapped[dict[str, Any]]
    env_key: Mapped[str] = mapped_column(String(512))
    seeds: Mapped[list[Any]]
    seeds_key: Mapped[str] = mapped_column(String(1024))
    episodes: Mapped[list[Any]]
    mean_return: Mapped[float | None] = mapped_column(Float)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    backend: Mapped[str] = mapped_column(String(32))
    checked: Mapped[bool] = mapped_column(Boolean, default=True)
    check_report: Mapped[dict[str, Any] | None]
    limits: Mapped[dict[str, Any] | None]
    wall_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    peak_memory_mb: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    program: Mapped[Program] = relationship(back_populates="evaluations")
    traces: Mapped[list[Trace]] = relationship(back_populates="evaluation")


class Trace(Base):
    """One episode's trace: zlib-compressed JSON, capped in size (see `storage.encode`)."""

    __tablename__ = "trace"
    __table_args__ = (UniqueConstraint("evaluation_id", "episode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    evaluation_id: Mapped[str] = mapped_column(ForeignKey("evaluation.id"))
    episode: Mapped[int] = mapped_column(Integer)
    # 64 bits everywhere (migration 0006): SQLite INTEGER already is, PostgreSQL needs BIGINT.
    seed: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    steps: Mapped[int] = mapped_column(Integer, default=0)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    raw_bytes: Mapped[int] = mapped_column(Integer)
    stored_bytes: Mapped[int] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)

    evaluation: Mapped[Evaluation] = relationship(back_populates="traces")


class LlmPrompt(Base):
    """A prompt text, stored once however many calls sent it (migration 0004).

    Every retry of a proposal resends the same ~8 KB prompt; storing it per call multiplied the
    database by the retry count. Calls refer to it by the SHA-256 of its UTF-8 text.
    """

    __tablename__ = "llm_prompt"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LlmCall(Base):
    """One request to a language model: prompt, response, cost, and what it produced.

    The id may be made by the client (`LlmExchange.id`), so the row can be written the moment
    the attempt ends and linked to the program its answer produced later
    (`produced_program_id`, set once). `response` is capped in size; `response_truncated_bytes`
    says how much was cut (0: nothing).
    """

    __tablename__ = "llm_call"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True, default=new_id)
    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), index=True)
    parent_program_id: Mapped[str | None] = mapped_column(ForeignKey("program.id"))
    prompt_sha256: Mapped[str] = mapped_column(ForeignKey("llm_prompt.sha256"))  # 0004
    response: Mapped[str | None] = mapped_column(Text)
    response_truncated_bytes: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0"
    )  # migration 0004
    model: Mapped[str] = mapped_column(String(128))
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    latency_seconds: Mapped[float | None] = mapped_column(Float)
    cost: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    produced_program_id: Mapped[str | None] = mapped_column(ForeignKey("program.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run] = relationship(back_populates="llm_calls")
    parent_program: Mapped[Program | None] = relationship(foreign_keys=[parent_program_id])
    produced_program: Mapped[Program | None] = relationship(foreign_keys=[produced_program_id])
    prompt_row: Mapped[LlmPrompt] = relationship(lazy="joined", innerjoin=True)

    @property
    def prompt(self) -> str:
        """The prompt text, read through `llm_prompt` (loaded with the call)."""
        return self.prompt_row.text


class RunLease(Base):
    """Who drives a run right now (migration 0004): one row per run, renewed by heartbeats.

    A process takes the lease before it drives a run and renews it while it does; another
    process may take it over only once the holder is gone (no heartbeat before `expires_at`,
    or, on the same host, its pid no longer runs). Rules in `storage.leases`.
    """

    __tablename__ = "run_lease"

    run_id: Mapped[str] = mapped_column(ForeignKey("run.id"), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    released_at: Mapped[datetime | None]


class Event(Base):
    """The audit log: what happened to a run and when (started, reverted, recovered...)."""

    __tablename__ = "event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(ForeignKey("run.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run | None] = relationship(back_populates="events")


MUTABLE_COLUMNS: dict[type[Base], frozenset[str]] = {
    Run: frozenset({"head_program_id", "status", "updated_at", "head_program"}),
    LlmCall: frozenset({"produced_program_id", "produced_program"}),
    RunLease: frozenset(
        {"holder", "host", "pid", "acquired_at", "heartbeat_at", "expires_at", "released_at"}
    ),
}
"""The only attributes that may change after insert; everything else is append-only."""

SET_ONCE_COLUMNS: dict[type[Base], frozenset[str]] = {
    LlmCall: frozenset({"produced_program_id", "produced_program"}),
}
"""Mutable attributes that may change only from NULL to a value, never again afterwards
(enforced per row at flush; bulk UPDATEs of these tables are refused outright)."""
