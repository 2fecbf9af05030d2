"""The claim's SQL, built once with bind parameters.

A claim runs on every engine cycle and every long-poll attempt; building these statements
per call (and SQLAlchemy's cache-key work for fresh statement objects) used to cost more CPU
than the database work. The queries themselves are unchanged: see
`SchedulerRepository.claim_due_jobs`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from cronicorn.domain.models import RunStatus
from cronicorn.store.tables import UTCDateTime, jobs_t, runs_t, tenants_t

NOW: sa.BindParameter[datetime] = sa.bindparam("now", type_=UTCDateTime())
HORIZON: sa.BindParameter[datetime] = sa.bindparam("horizon", type_=UTCDateTime())


def due_condition(
    now: datetime | sa.ColumnElement[datetime],
    due_by: datetime | sa.ColumnElement[datetime] | None = None,
) -> sa.ColumnElement[bool]:
    """SPEC §3: active, next_run_at <= now, not paused (until), lease free or expired.

    `due_by` (a claim ahead of time, see `SchedulerRepository.claim_due_jobs`) moves only
    the due-time bound; the pause and the lease are still judged at `now`."""
    return sa.and_(
        jobs_t.c.status == "active",
        jobs_t.c.next_run_at.is_not(None),
        jobs_t.c.next_run_at <= (now if due_by is None else due_by),
        sa.or_(jobs_t.c.paused_until.is_(None), jobs_t.c.paused_until <= now),
        sa.or_(jobs_t.c.lease_expires_at.is_(None), jobs_t.c.lease_expires_at <= now),
    )


def _lease_due() -> sa.Update:
    due_ids = (
        sa.select(jobs_t.c.id)
        .where(due_condition(NOW, HORIZON))
        .order_by(jobs_t.c.next_run_at, jobs_t.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .with_for_update(skip_locked=True)
    )
    return (
        sa.update(jobs_t)
        .where(jobs_t.c.id.in_(due_ids.scalar_subquery()))
        .values(
            lease_owner=sa.bindparam("worker"),
            lease_token=jobs_t.c.lease_token + 1,
            lease_expires_at=sa.bindparam("expires", type_=UTCDateTime()),
            updated_at=jobs_t.c.updated_at,
        )
        .returning(*jobs_t.c, *_tenant_spend())
    )


def _tenant_spend() -> list[sa.Label[Any]]:
    """The job's tenant's spend and budget, as scalar subqueries in the claim's RETURNING
    (the planner's monthly budget check) — no extra round trip."""

    def of_tenant(column: str) -> sa.ScalarSelect[Any]:
        return (
            sa.select(tenants_t.c[column])
            .where(tenants_t.c.id == jobs_t.c.tenant_id)
            .scalar_subquery()
        )

    return [
        of_tenant("cost_usd_month").label("tenant_cost_usd_month"),
        of_tenant("cost_month").label("tenant_cost_month"),
        of_tenant("monthly_budget_usd").label("tenant_monthly_budget_usd"),
    ]


LEASE_DUE = _lease_due()
"""Params: now, horizon (the latest due time claimed: now, or later for a claim ahead),
limit, worker, expires. One atomic `UPDATE … WHERE id IN (SELECT … ORDER BY
next_run_at LIMIT n FOR UPDATE SKIP LOCKED) RETURNING *`."""

ABORT_PREVIOUS_RUNS = (
    sa.update(runs_t)
    .where(
        runs_t.c.job_id.in_(sa.bindparam("job_ids", expanding=True)),
        runs_t.c.status == RunStatus.RUNNING.value,
    )
    .values(
        status=RunStatus.ABORTED.value,
        finished_at=sa.bindparam("now", type_=UTCDateTime()),
        error="lease expired before the run finished",
    )
)
"""Params: job_ids, now. A previous holder's still-running run is over once re-claimed."""

INSERT_RUNS = sa.insert(runs_t)

CLAIM_LEASES = (
    sa.select(runs_t.c.job_id.label("id"), runs_t.c.lease_token, runs_t.c.id.label("run_id"))
    .join(jobs_t, jobs_t.c.id == runs_t.c.job_id)
    .where(
        jobs_t.c.lease_owner == sa.bindparam("worker", type_=sa.String()),
        jobs_t.c.lease_expires_at == sa.bindparam("expires", type_=UTCDateTime()),
        runs_t.c.lease_token == jobs_t.c.lease_token,
        runs_t.c.status == RunStatus.RUNNING.value,
    )
)
"""Params: worker, expires. The leases and runs one claim took: its worker and lease expiry
(the claim's own instant plus the lease) identify them. For a claim whose answer was lost.
Rows: `id` (the job's), `lease_token`, `run_id`, as the claim's own rows."""


def _lease_and_start_pg() -> sa.Select[Any]:
    """PostgreSQL: `LEASE_DUE`, the abort of previous holders' runs and the new runs' INSERT
    as one statement (data-modifying CTEs; atomic on its own, so it needs no transaction
    of its own: one round trip per claim instead of five). Every CTE sees the snapshot
    from before the statement, so the abort never touches the runs it inserts."""
    leased = LEASE_DUE.cte("leased")
    aborted = (
        sa.update(runs_t)
        .where(
            runs_t.c.job_id.in_(sa.select(leased.c.id)),
            runs_t.c.status == RunStatus.RUNNING.value,
        )
        .values(
            status=RunStatus.ABORTED.value,
            finished_at=NOW,
            error="lease expired before the run finished",
        )
        .cte("aborted")
    )
    started = (
        sa.insert(runs_t)
        .from_select(
            ["id", "job_id", "worker_id", "lease_token", "status", "due_at", "started_at"],
            sa.select(
                sa.cast(sa.func.gen_random_uuid(), sa.String()),
                leased.c.id,
                sa.bindparam("worker", type_=sa.String()),
                leased.c.lease_token,
                sa.literal(RunStatus.RUNNING.value),
                leased.c.next_run_at,
                NOW,
            ),
        )
        .returning(runs_t.c.id.label("run_id"), runs_t.c.job_id.label("run_job_id"))
        .cte("started")
    )
    return (
        sa.select(leased, started.c.run_id)
        .join_from(leased, started, started.c.run_job_id == leased.c.id)
        .add_cte(aborted)
    )


LEASE_AND_START_PG = _lease_and_start_pg()
"""Params: as `LEASE_DUE`. Rows: `LEASE_DUE`'s plus `run_id` (the run it started)."""


def run_row(row: Any, run_id: str, worker_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": run_id,
        "job_id": row["id"],
        "worker_id": worker_id,
        "lease_token": row["lease_token"],
        "status": RunStatus.RUNNING.value,
        "due_at": row["next_run_at"],
        "started_at": now,
    }
