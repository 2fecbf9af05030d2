"""index on jobs.paused_until, so `next_due_at` never scans every job

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_jobs_paused_until", "jobs", ["paused_until"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_jobs_paused_until", table_name="jobs")
