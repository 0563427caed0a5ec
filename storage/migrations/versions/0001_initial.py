"""Initial schema: runs, programs, evaluations, traces, LLM calls, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # run.head_program_id and program.run_id point at each other. SQLite accepts a foreign key
    # to a table that does not exist yet (and cannot add one later without a rebuild); other
    # databases get it with ALTER TABLE once both tables exist.
    inline = op.get_bind().dialect.name == "sqlite"
    head_fk = sa.ForeignKeyConstraint(
        ["head_program_id"], ["program.id"], name=op.f("fk_run_head_program_id_program")
    )
    op.create_table(
        "run",
        sa.Column("id", ID, nullable=False),
        sa.Column("game", sa.String(64), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("head_program_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'stopped', 'finished', 'failed')", name=op.f("ck_run_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run")),
        *([head_fk] if inline else []),
    )
    op.create_table(
        "program",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("second_parent_id", ID, nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("check_report", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "origin IN ('seed', 'llm', 'mutation', 'manual', 'revert')",
            name=op.f("ck_program_origin"),
        ),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_program_run_id_run")),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["program.id"], name=op.f("fk_program_parent_id_program")
        ),
        sa.ForeignKeyConstraint(
            ["second_parent_id"], ["program.id"], name=op.f("fk_program_second_parent_id_program")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program")),
        sa.UniqueConstraint("run_id", "sha256", name=op.f("uq_program_run_id_sha256")),
    )
    op.create_index(op.f("ix_program_parent_id"), "program", ["parent_id"])
    op.create_index(op.f("ix_program_run_id_created_at"), "program", ["run_id", "created_at"])
    if not inline:
        op.create_foreign_key(
            op.f("fk_run_head_program_id_program"), "run", "program", ["head_program_id"], ["id"]
        )

    op.create_table(
        "evaluation",
        sa.Column("id", ID, nullable=False),
        sa.Column("program_id", ID, nullable=False),
        sa.Column("game", sa.String(64), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("env_key", sa.String(512), nullable=False),
        sa.Column("seeds", sa.JSON(), nullable=False),
        sa.Column("seeds_key", sa.String(1024), nullable=False),
        sa.Column("episodes", sa.JSON(), nullable=False),
        sa.Column("mean_return", sa.Float(), nullable=True),
        sa.Column("total_steps", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("checked", sa.Boolean(), nullable=False),
        sa.Column("check_report", sa.JSON(), nullable=True),
        sa.Column("limits", sa.JSON(), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("peak_memory_mb", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'rejected', 'error', 'timeout', 'memory', 'invalid_action', "
            "'crashed')",
            name=op.f("ck_evaluation_status"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["program.id"], name=op.f("fk_evaluation_program_id_program")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation")),
    )
    op.create_index(op.f("ix_evaluation_program_id"), "evaluation", ["program_id"])

    op.create_table(
        "trace",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evaluation_id", ID, nullable=False),
        sa.Column("episode", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("raw_bytes", sa.Integer(), nullable=False),
        sa.Column("stored_bytes", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["evaluation_id"], ["evaluation.id"], name=op.f("fk_trace_evaluation_id_evaluation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trace")),
        sa.UniqueConstraint(
            "evaluation_id", "episode", name=op.f("uq_trace_evaluation_id_episode")
        ),
    )

    op.create_table(
        "llm_call",
        sa.Column("id", ID, nullable=False),
        sa.Column("run_id", ID, nullable=False),
        sa.Column("parent_program_id", ID, nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column("latency_seconds", sa.Float(), nullable=True),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("produced_program_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_llm_call_run_id_run")),
        sa.ForeignKeyConstraint(
            ["parent_program_id"],
            ["program.id"],
            name=op.f("fk_llm_call_parent_program_id_program"),
        ),
        sa.ForeignKeyConstraint(
            ["produced_program_id"],
            ["program.id"],
            name=op.f("fk_llm_call_produced_program_id_program"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_call")),
    )
    op.create_index(op.f("ix_llm_call_run_id"), "llm_call", ["run_id"])

    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", ID, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_event_run_id_run")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
    )
    op.create_index(op.f("ix_event_run_id"), "event", ["run_id"])


def downgrade() -> None:
    op.drop_table("event")
    op.drop_table("llm_call")
    op.drop_table("trace")
    op.drop_table("evaluation")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("fk_run_head_program_id_program"), "run", type_="foreignkey")
    op.drop_table("program")
    op.drop_table("run")
