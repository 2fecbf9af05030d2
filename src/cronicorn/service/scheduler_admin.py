"""The operator's reads and actions over every tenant: the status report and force-unlock.

Behind `cronicorn-engine status` and `unlock-jobs` on the database (through the API they use
`/api/scheduler/*`). Both read persisted state only (worker heartbeat rows, job rows), never
an engine's memory, so they give the same answer from any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.observability.status import StatusReport, build_status_report, summarize_jobs
from cronicorn.store import lease_admin, workers
from cronicorn.store.tables import jobs_t

STATUS_JOB_COLUMNS = (
    "id",
    "name",
    "status",
    "next_run_at",
    "paused_until",
    "lease_owner",
    "lease_expires_at",
    "consecutive_failures",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cached_input_tokens",
)


@dataclass(frozen=True, slots=True)
class UnlockReport:
    released: list[str]
    names: dict[str, str]
    """Job id → name of each released job."""
    unknown: list[str] = field(default_factory=list)
    """Named job ids the store does not know; when there are any, nothing was released."""


async def status_report(
    db: AsyncEngine, heartbeat_interval_s: float, now: datetime | None = None
) -> StatusReport:
    """Every worker's heartbeat row and the non-archived jobs, as the `status` report."""
    now = now or datetime.now(UTC)
    worker_rows = await workers.list_workers(db)
    columns = [jobs_t.c[name] for name in STATUS_JOB_COLUMNS]
    stmt = sa.select(*columns).where(jobs_t.c.status != "archived")
    async with db.connect() as conn:
        job_rows: list[dict[str, Any]] = [
            dict(row) for row in (await conn.execute(stmt)).mappings()
        ]
    return build_status_report(
        worker_rows,
        summarize_jobs(job_rows, now),
        now=now,
        heartbeat_interval_s=heartbeat_interval_s,
    )


async def unlock_jobs(
    db: AsyncEngine, job_ids: Sequence[str] | None, stale_only: bool
) -> UnlockReport:
    """Release stale locks (`stale_only`) and/or the named jobs' locks. Released leases get a
    new fencing token, so a still-running holder is refused. An unknown id releases nothing."""
    if job_ids:
        known = await _names(db, job_ids)
        unknown = [job_id for job_id in job_ids if job_id not in known]
        if unknown:
            return UnlockReport([], {}, unknown)
    released = await lease_admin.force_unlock(db, job_ids, stale_only, datetime.now(UTC))
    return UnlockReport(released, await _names(db, released))


async def _names(db: AsyncEngine, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    stmt = sa.select(jobs_t.c.id, jobs_t.c.name).where(jobs_t.c.id.in_(list(ids)))
    async with db.connect() as conn:
        return {row.id: row.name for row in await conn.execute(stmt)}
