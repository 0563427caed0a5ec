"""Add program.island and program.iteration: where a program lives in a population run.

The population engine evolves several lineages (islands) at once and makes proposals
concurrently. A program records which island it was proposed on and which proposal (iteration
number) made it, so `lineage` and `history` can show islands, and a run killed with candidates
in flight can resume them (a program with an iteration number but no `iteration` event was in
flight). Both are NULL for programs of earlier runs and for seed, manual and revert programs.

Revision ID: 0005_program_island_iteration
Revises: 0004_llm_prompt_run_lease
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_program_island_iteration"
down_revision: str | None = "0004_llm_prompt_run_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("program", sa.Column("island", sa.Integer(), nullable=True))
    op.add_column("program", sa.Column("iteration", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("program") as batch:
        batch.drop_column("iteration")
        batch.drop_column("island")
