"""the due index carries the claim's whole order: (status, next_run_at, id)

The claim takes the oldest due jobs `ORDER BY next_run_at, id LIMIT n`. With the index on
(status, next_run_at) alone, jobs due at the same instant (a cron burst: every hourly job at
the top of the hour) had to be read and sorted in full by every claim — 20,000 rows for a
claim of 50 — so a burst's claims cost O(n) each. With `id` in the index the scan stops after
n rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.create_index("ix_jobs_due", "jobs", ["status", "next_run_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.create_index("ix_jobs_due", "jobs", ["status", "next_run_at"])
