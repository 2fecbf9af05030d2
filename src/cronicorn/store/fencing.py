"""Fences: which of a batch of leases may still write, decided under the row locks.

`lock_leases` starts every multi-row engine write (complete, fail, release). It takes the
locks before anything is read or written — one `SELECT jobs ⟕ runs … FOR UPDATE OF jobs`
on PostgreSQL; on SQLite a no-op `UPDATE` first (its driver opens the transaction, and so
takes the database write lock, only at the first data-changing statement), then the same
read — and checks every lease in Python: the job's token and owner, and the lease's own run
still `running`. Writes that follow touch only the leases that passed, so a lost lease
changes nothing while the others in the same transaction go through.

The fencing token decides, not the clock. Every claim (and every force-unlock) bumps the
job's token, so a lease whose token is still the job's newest has not been taken over, even
when its expiry has passed: its holder's late write (a completion retried through an API
restart) is accepted. Expiry only makes a job *claimable*; once another worker claimed it,
the old holder's writes get `LeaseLostError` (HTTP 409).

A lease whose run is already finished, with the token unchanged, is reported as
`FinishedRun`: the caller may recognise a replay of its own write (a completion whose
response was lost) instead of calling the lease lost.

Single-lease writes that change only the job row and the run (`record_plan`, `extend`)
keep the cheaper form: one fenced `UPDATE … WHERE token/owner` whose row count is the
check. Both kinds of statement are built once, at import, with bind parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.models import Lease, RunStatus
from cronicorn.errors import LeaseLostError
from cronicorn.store.tables import alert_events_t, alerts_t, jobs_t, runs_t

_j = jobs_t.c
_r = runs_t.c

_JOB_IDS: sa.BindParameter[list[str]] = sa.bindparam("job_ids", expanding=True)
_RUN_IDS: sa.BindParameter[list[str]] = sa.bindparam("run_ids", expanding=True)
_FENCE_COLUMNS = (
    _j.id,
    _j.lease_token,
    _j.lease_owner,
    _j.lease_expires_at,
    _r.id.label("run_id"),
    _r.job_id.label("run_job_id"),
    _r.lease_token.label("run_token"),
    _r.status.label("run_status"),
    _r.started_at.label("run_started_at"),
    # Alerts: may this run resolve something (an open incident, or facts still queued)?
    # Two index probes in the same statement, so a healthy run of a job without
    # incidents costs no extra statement (see `cronicorn.domain.alerts.worth_queuing`).
    sa.or_(
        sa.exists().where(alerts_t.c.job_id == _j.id, alerts_t.c.status == "open"),
        sa.exists().where(alert_events_t.c.job_id == _j.id),
    ).label("alert_open"),
    _r.finished_at.label("run_finished_at"),
)
READ_FENCES = (
    sa.select(*_FENCE_COLUMNS)
    .select_from(jobs_t.outerjoin(runs_t, sa.and_(_r.job_id == _j.id, _r.id.in_(_RUN_IDS))))
    .where(_j.id.in_(_JOB_IDS))
    .order_by(_j.id)
)
LOCK_FENCES_PG = READ_FENCES.with_for_update(of=jobs_t)
"""PostgreSQL: lock the job rows (in id order: concurrent batches cannot deadlock) and
read every fence in one statement."""
LOCK_JOBS_SQLITE = (
    sa.update(jobs_t)
    .where(_j.id.in_(_JOB_IDS))
    .values(lease_token=_j.lease_token, updated_at=_j.updated_at)
)
"""SQLite: a no-op write that takes the database write lock before the fences are read."""


def _fenced_update(values: dict[str, Any]) -> sa.Update:
    return (
        sa.update(jobs_t)
        .where(
            _j.id == sa.bindparam("f_job"),
            _j.lease_token == sa.bindparam("f_token"),
            _j.lease_owner == sa.bindparam("f_owner"),
        )
        .values(values)
    )


TOUCH_FENCE = _fenced_update({"lease_token": _j.lease_token, "updated_at": _j.updated_at})
"""Checks the fence and locks the row without changing it (record_plan)."""
EXTEND_FENCE = _fenced_update(
    {
        "lease_expires_at": sa.bindparam("f_expires", type_=_j.lease_expires_at.type),
        "updated_at": _j.updated_at,
    }
)


def fence_params(lease: Lease, now: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "f_job": lease.job_id,
        "f_token": lease.token,
        "f_owner": lease.worker_id,
        **extra,
    }


async def fenced_update(
    conn: AsyncConnection, stmt: sa.Update, lease: Lease, now: datetime, **extra: Any
) -> None:
    """One lease, one fenced job update (`TOUCH_FENCE`, `EXTEND_FENCE`)."""
    if (await conn.execute(stmt, fence_params(lease, now, **extra))).rowcount != 1:
        raise LeaseLostError(lease.job_id, lease.token)


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A lease that passed its fence; `started_at` is its run's start (for durations);
    `alert_open`: the job has an open alert incident or queued alert facts."""

    lease: Lease
    started_at: datetime
    alert_open: bool = False


@dataclass(frozen=True, slots=True)
class FinishedRun:
    """The lease's token is still the job's newest but its run is already finished: the
    lease was given up by a write under it (completion, fail, release), not taken over."""

    lease: Lease
    status: str
    finished_at: datetime | None


async def lock_leases(
    conn: AsyncConnection, leases: Sequence[Lease], now: datetime
) -> list[HeldLease | FinishedRun | LeaseLostError]:
    """Lock the leases' job rows and check each fence; one entry per lease, in order.

    A job appearing twice passes at most once (the first valid entry): every write that
    uses this releases the lease, so a second write under it would be fenced out. `now`
    is not part of the fence (see the module docstring); it is kept for the callers'
    symmetry with the claim."""
    if not leases:
        return []
    params = {
        "job_ids": sorted({lease.job_id for lease in leases}),
        "run_ids": sorted({lease.run_id for lease in leases}),
    }
    if conn.dialect.name == "postgresql":
        rows = list(await conn.execute(LOCK_FENCES_PG, params))
    else:
        await conn.execute(LOCK_JOBS_SQLITE, params)
        rows = list(await conn.execute(READ_FENCES, params))
    jobs = {row.id: row for row in rows}
    runs = {row.run_id: row for row in rows if row.run_id is not None}
    taken: set[str] = set()
    out: list[HeldLease | FinishedRun | LeaseLostError] = []
    for lease in leases:
        job, run = jobs.get(lease.job_id), runs.get(lease.run_id)
        if run is not None and _finished_under(lease, job, run) and lease.job_id not in taken:
            out.append(FinishedRun(lease, run.run_status, run.run_finished_at))
        elif (
            job is None
            or job.lease_token != lease.token
            or job.lease_owner != lease.worker_id
            or lease.job_id in taken
        ):
            out.append(LeaseLostError(lease.job_id, lease.token))
        elif (
            run is None
            or run.run_job_id != lease.job_id
            or run.run_token != lease.token
            or run.run_status != RunStatus.RUNNING.value
        ):
            detail = f"run {lease.run_id} is not this lease's running run"
            out.append(LeaseLostError(lease.job_id, lease.token, detail))
        else:
            taken.add(lease.job_id)
            out.append(HeldLease(lease, run.run_started_at, bool(job.alert_open)))
    return out


def _finished_under(lease: Lease, job: Any, run: Any) -> bool:
    """The lease's own run is finished and nobody claimed the job since (same token)."""
    return (
        job is not None
        and run is not None
        and job.lease_token == lease.token
        and job.lease_owner is None
        and run.run_job_id == lease.job_id
        and run.run_token == lease.token
        and run.run_status != RunStatus.RUNNING.value
    )
