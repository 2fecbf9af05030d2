"""retention: per-job overrides and an index to find old runs by age

Revision ID: 0010
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("run_retention_days", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_runs_per_job", sa.Integer(), nullable=True))
    op.create_index("ix_runs_started", "runs", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_started", table_name="runs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("max_runs_per_job")
        batch.drop_column("run_retention_days")
