"""hints, cost in money with tenant budgets, stored AI sessions

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _money(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.Float(), nullable=False, server_default="0")


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("monthly_budget_usd", sa.Float(), nullable=True))
        batch.add_column(_money("cost_usd_month"))
        batch.add_column(sa.Column("cost_month", sa.String(length=7), nullable=True))
        batch.add_column(_money("cost_usd_total"))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("hint_interval_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("hint_next_run_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("hint_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("hint_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("hint_set_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(_money("cost_usd_total"))
        batch.add_column(_money("cost_usd_today"))
        batch.add_column(sa.Column("cost_day", sa.String(length=10), nullable=True))
        batch.add_column(_money("cost_usd_month"))
        batch.add_column(sa.Column("cost_month", sa.String(length=7), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(_money("cost_usd"))
    op.create_table(
        "ai_sessions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("repair_attempts", sa.Integer(), nullable=False),
        sa.Column("messages", _json(), nullable=False),
        sa.Column("attempts", _json(), nullable=False),
        sa.Column("decision", _json(), nullable=True),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ai_sessions_run_id", "ai_sessions", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ai_sessions_run_id", table_name="ai_sessions")
    op.drop_table("ai_sessions")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cost_usd")
    with op.batch_alter_table("jobs") as batch:
        for name in (
            "cost_month",
            "cost_usd_month",
            "cost_day",
            "cost_usd_today",
            "cost_usd_total",
            "hint_set_at",
            "hint_reason",
            "hint_expires_at",
            "hint_next_run_at",
            "hint_interval_ms",
        ):
            batch.drop_column(name)
    with op.batch_alter_table("tenants") as batch:
        for name in ("cost_usd_total", "cost_month", "cost_usd_month", "monthly_budget_usd"):
            batch.drop_column(name)
