"""Read-mostly questions about due jobs, and the admin's force-unlock.

Separate from the claim path because these are called by the idle loop, `/ready`-style
probes and operators, never while holding a lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import RunStatus
from cronicorn.store.tables import UTCDateTime, jobs_t, runs_t

_NOW = sa.bindparam("now", type_=UTCDateTime())


def _earliest(column: sa.Column[datetime], *conditions: sa.ColumnElement[bool]) -> sa.Select[Any]:
    c = jobs_t.c
    return (
        sa.select(column)
        .where(c.status == "active", c.next_run_at.is_not(None), *conditions)
        .order_by(column)
        .limit(1)
    )


def _not_after(column: sa.Column[datetime], bound: sa.ColumnElement[datetime]) -> Any:
    """The column does not hold the job back beyond `bound`: unset, past, or earlier."""
    return sa.or_(column.is_(None), column <= _NOW, column <= bound)


def _next_due_statement() -> sa.Select[Any]:
    """A job becomes claimable at max(next_run_at, future paused_until, live lease expiry). One
    `ORDER BY … LIMIT 1` per column, each limited to the jobs where that column is the
    max, so each is served by its own index (`ix_jobs_due`, `ix_jobs_lease_expires`,
    `ix_jobs_paused_until`) and the min of the three is the exact answer. The three are
    scalar subqueries of one `SELECT`: one round trip."""
    c = jobs_t.c
    by_next_run = _earliest(
        c.next_run_at,
        _not_after(c.paused_until, c.next_run_at),
        _not_after(c.lease_expires_at, c.next_run_at),
    )
    by_lease = _earliest(
        c.lease_expires_at,
        c.lease_expires_at > _NOW,
        c.next_run_at <= c.lease_expires_at,
        _not_after(c.paused_until, c.lease_expires_at),
    )
    by_pause = _earliest(
        c.paused_until,
        c.paused_until > _NOW,
        c.next_run_at <= c.paused_until,
        _not_after(c.lease_expires_at, c.paused_until),
    )
    return sa.select(
        by_next_run.scalar_subquery(), by_lease.scalar_subquery(), by_pause.scalar_subquery()
    )


NEXT_DUE = _next_due_statement()


async def next_due_at(engine: AsyncEngine, now: datetime) -> datetime | None:
    """When the earliest active job becomes claimable: its `next_run_at`, pushed back by a
    future `paused_until` and by an unexpired lease. May be in the past (due now).

    Three indexed `LIMIT 1` reads instead of `MIN(…)` over every active job: this runs on
    every idle wake-up and every empty long-poll claim, and must not grow with the store."""
    async with engine.connect() as conn:
        found = (await conn.execute(NEXT_DUE, {"now": now})).one()
    values: list[datetime] = [value for value in found if value is not None]
    return min(values) if values else None


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
