"""Prompts stored once (llm_prompt), a reply size cap's record, and the run lease table.

Every retry resent, and stored, the same ~8 KB prompt. Prompts move to `llm_prompt`, keyed by
the SHA-256 of their UTF-8 text; `llm_call.prompt_sha256` refers to them and `llm_call.prompt`
goes (`LlmCall.prompt` still reads the text, through the relationship). Existing prompts are
moved in batches of calls, each distinct text once. `llm_call.response_truncated_bytes`
records how much of a reply storage cut (existing rows: 0, nothing was cut). `run_lease`
holds who drives each run (storage.leases).

Revision ID: 0004_llm_prompt_run_lease
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004_llm_prompt_run_lease"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(32)
DIGEST = sa.String(64)
TIMESTAMP = sa.DateTime(timezone=True)
BATCH = 500

_calls = sa.table(
    "llm_call",
    sa.column("id", ID),
    sa.column("prompt", sa.Text()),
    sa.column("prompt_sha256", DIGEST),
)
_prompts = sa.table(
    "llm_prompt",
    sa.column("sha256", DIGEST),
    sa.column("text", sa.Text()),
    sa.column("created_at", TIMESTAMP),
)


def upgrade() -> None:
    op.create_table(
        "llm_prompt",
        sa.Column("sha256", DIGEST, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_llm_prompt")),
    )
    op.add_column("llm_call", sa.Column("prompt_sha256", DIGEST, nullable=True))
    op.add_column(
        "llm_call",
        sa.Column("response_truncated_bytes", sa.Integer(), server_default="0", nullable=False),
    )
    _move_prompts_out()
    # SQLite can neither add NOT NULL or a foreign key to a column nor drop one in place: batch
    # mode rebuilds the table there (storage.db.upgrade turns foreign keys off meanwhile and
    # checks them all before commit); other databases get plain ALTER TABLE statements.
    with op.batch_alter_table("llm_call") as batch:
        batch.alter_column("prompt_sha256", existing_type=DIGEST, nullable=False)
        batch.create_foreign_key(
            op.f("fk_llm_call_prompt_sha256_llm_prompt"),
            "llm_prompt",
            ["prompt_sha256"],
            ["sha256"],
        )
        batch.drop_column("prompt")

    op.create_table(
        "run_lease",
        sa.Column("run_id", ID, nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.Column("released_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["run.id"], name=op.f("fk_run_lease_run_id_run")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_lease")),
    )


def _move_prompts_out() -> None:
    """Each call's prompt into llm_prompt (once per distinct text), in batches of calls."""
    bind = op.get_bind()
    stored: set[str] = set()
    now = datetime.now(UTC)
    last_id = ""
    while True:
        rows = bind.execute(
            sa.select(_calls.c.id, _calls.c.prompt)
            .where(_calls.c.id > last_id)
            .order_by(_calls.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        new_prompts = []
        links = []
        for call_id, prompt in rows:
            digest = hashlib.sha256(prompt.encode("utf-8", errors="surrogatepass")).hexdigest()
            if digest not in stored:
                stored.add(digest)
                new_prompts.append({"sha256": digest, "text": prompt, "created_at": now})
            links.append({"call_id": call_id, "digest": digest})
        if new_prompts:
            bind.execute(_prompts.insert(), new_prompts)
        bind.execute(
            _calls.update()
            .where(_calls.c.id == sa.bindparam("call_id"))
            .values(prompt_sha256=sa.bindparam("digest")),
            links,
        )
        last_id = rows[-1][0]


def downgrade() -> None:
    op.drop_table("run_lease")
    op.add_column("llm_call", sa.Column("prompt", sa.Text(), nullable=True))
    op.execute(
        "UPDATE llm_call SET prompt = "
        "(SELECT llm_prompt.text FROM llm_prompt WHERE llm_prompt.sha256 = llm_call.prompt_sha256)"
    )
    with op.batch_alter_table("llm_call") as batch:
        batch.alter_column("prompt", existing_type=sa.Text(), nullable=False)
        batch.drop_constraint(op.f("fk_llm_call_prompt_sha256_llm_prompt"), type_="foreignkey")
        batch.drop_column("prompt_sha256")
        batch.drop_column("response_truncated_bytes")
    op.drop_table("llm_prompt")
