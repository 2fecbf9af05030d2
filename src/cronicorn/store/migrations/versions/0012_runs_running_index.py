"""indexes for the hot path and retention: running runs by job (the claim's abort of a
previous holder's run), messages and job errors by age (the pruner)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNNING = sa.text("status = 'running'")


def upgrade() -> None:
    op.create_index(
        "ix_runs_running_job",
        "runs",
        ["job_id"],
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )
    op.create_index("ix_messages_created", "messages", ["created_at"])
    op.create_index("ix_job_errors_created", "job_errors", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_job_errors_created", table_name="job_errors")
    op.drop_index("ix_messages_created", table_name="messages")
    op.drop_index("ix_runs_running_job", table_name="runs")
