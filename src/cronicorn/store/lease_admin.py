"""Read-mostly questions about due jobs, and the admin's force-unlock.

Separate from the claim path because these are called by the idle loop, `/ready`-style
probes and operators, never while holding a lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import RunStatus
from cronicorn.store.tables import Job, Run, UTCDateTime

jobs_t = cast(sa.Table, Job.__table__)
runs_t = cast(sa.Table, Run.__table__)


async def has_due_jobs(engine: AsyncEngine, due: sa.ColumnElement[bool]) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(sa.select(jobs_t.c.id).where(due).limit(1))
    return found is not None


def _later(a: sa.ColumnElement[datetime], b: sa.ColumnElement[datetime]) -> sa.Case[datetime]:
    """max(a, b) where b may be NULL (portable: SQLite has no GREATEST)."""
    return sa.case((b > a, b), else_=a)


async def next_due_at(engine: AsyncEngine, now: datetime) -> datetime | None:
    """When the earliest active job becomes claimable: its `next_run_at`, pushed back by a
    future `paused_until` and by an unexpired lease. May be in the past (due now)."""
    c = jobs_t.c
    live_lease = sa.case((c.lease_expires_at > now, c.lease_expires_at), else_=None)
    effective = _later(_later(c.next_run_at, c.paused_until), live_lease)
    stmt = sa.select(sa.type_coerce(sa.func.min(effective), UTCDateTime())).where(
        c.status == "active", c.next_run_at.is_not(None)
    )
    async with engine.connect() as conn:
        value: datetime | None = await conn.scalar(stmt)
    return value


async def force_unlock(
    engine: AsyncEngine, job_ids: Sequence[str] | None, stale_only: bool, now: datetime
) -> list[str]:
    """Release leases (only expired ones if `stale_only`; only `job_ids` if given), bump the
    fencing token so a still-running holder is fenced out, and mark their runs aborted."""
    c = jobs_t.c
    conditions: list[sa.ColumnElement[bool]] = [c.lease_owner.is_not(None)]
    if stale_only:
        conditions.append(sa.or_(c.lease_expires_at.is_(None), c.lease_expires_at <= now))
    if job_ids is not None:
        if not job_ids:
            return []
        conditions.append(c.id.in_(list(job_ids)))
    async with engine.begin() as conn:
        released = list(
            (
                await conn.execute(
                    sa.update(jobs_t)
                    .where(*conditions)
                    .values(
                        lease_owner=None,
                        lease_expires_at=None,
                        lease_token=c.lease_token + 1,
                        updated_at=now,
                    )
                    .returning(c.id)
                )
            ).scalars()
        )
        if released:
            await conn.execute(
                sa.update(runs_t)
                .where(runs_t.c.job_id.in_(released), runs_t.c.status == RunStatus.RUNNING.value)
                .values(status=RunStatus.ABORTED.value, finished_at=now, error="force-unlocked")
            )
    return sorted(released)
