"""Add program.note and an index for "was this program already evaluated like this?".

`note` is a free-text remark given when a program is added (e.g. why it was entered by hand);
the composite index makes `find_evaluation` one index probe instead of a scan of every
evaluation of the program.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("program", sa.Column("note", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_evaluation_program_id_env_key_seeds_key"),
        "evaluation",
        ["program_id", "env_key", "seeds_key"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_evaluation_program_id_env_key_seeds_key"), table_name="evaluation")
    with op.batch_alter_table("program") as batch:
        batch.drop_column("note")
