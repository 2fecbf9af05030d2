"""AI on change: per-job AI mode, the last AI decision, re-plan requests, endpoint
`ai_view`/`condition`, and each run's `ai_trigger`

Revision ID: 0005
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("ai_mode", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("ai_decision", _json(), nullable=True))
        batch.add_column(
            sa.Column("replan_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("endpoints") as batch:
        batch.add_column(sa.Column("ai_view", _json(), nullable=True))
        batch.add_column(sa.Column("condition", sa.Text(), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("ai_trigger", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("ai_trigger")
    with op.batch_alter_table("endpoints") as batch:
        batch.drop_column("condition")
        batch.drop_column("ai_view")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("replan_requested_at")
        batch.drop_column("ai_decision")
        batch.drop_column("ai_mode")
