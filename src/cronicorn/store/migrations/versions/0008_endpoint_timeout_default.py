"""endpoints.timeout_ms nullable: null means the engine's execution.default_timeout_ms

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows keep their stored value: 30000 may have been chosen on purpose.
    with op.batch_alter_table("endpoints") as batch:
        batch.alter_column("timeout_ms", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE endpoints SET timeout_ms = 30000 WHERE timeout_ms IS NULL")
    with op.batch_alter_table("endpoints") as batch:
        batch.alter_column("timeout_ms", existing_type=sa.Integer(), nullable=False)
