"""Widen trace.seed to 64 bits on PostgreSQL: seeds beyond 2**31 could not be recorded there.

Gymnasium takes any non-negative seed, and `evocade evaluate --seed` accepts one past 2**31;
an evaluation on such seeds failed to record on PostgreSQL (INTEGER is 32 bits there) while
SQLite, whose INTEGER is already 64 bits, kept it. SQLite is left as it is (nothing to widen,
and rebuilding a large trace table would buy nothing).

Revision ID: 0006_trace_seed_bigint
Revises: 0005_program_island_iteration
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_trace_seed_bigint"
down_revision: str | None = "0005_program_island_iteration"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("trace", "seed", type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("trace", "seed", type_=sa.Integer(), existing_type=sa.BigInteger())
