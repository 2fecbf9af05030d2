"""Operator reads and actions behind `status` and `unlock-jobs`, from the database or the API.

Both read persisted state only (worker heartbeat rows, job rows), never an engine's memory,
so they give the same answer from any machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from cronicorn.cli.common import CliError
from cronicorn.cli.compose import ApiTarget, open_local_backend
from cronicorn.client.errors import ApiError
from cronicorn.client.user_api import UserApiClient
from cronicorn.observability import JobSummary, StatusReport, build_status_report, summarize_jobs
from cronicorn.settings import Settings
from cronicorn.store.local_backend import LocalSchedulerBackend
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
    """Job id → name, for the printed report (ids unknown to the store map to "")."""


async def _local_job_rows(backend: LocalSchedulerBackend) -> list[dict[str, Any]]:
    """Every non-archived job with the columns the status builder reads."""
    columns = [jobs_t.c[name] for name in STATUS_JOB_COLUMNS]
    stmt = sa.select(*columns).where(jobs_t.c.status != "archived")
    async with backend.repository.engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(stmt)).mappings()]


async def _local_names(backend: LocalSchedulerBackend, ids: Sequence[str]) -> dict[str, str]:
    if not ids:
        return {}
    stmt = sa.select(jobs_t.c.id, jobs_t.c.name).where(jobs_t.c.id.in_(list(ids)))
    async with backend.repository.engine.connect() as conn:
        return {row.id: row.name for row in await conn.execute(stmt)}


async def _api_job_summary(api: UserApiClient, now: datetime) -> JobSummary:
    """Counts from `/api/scheduler/stats`; with an admin key also the failing jobs and token
    spend from the job list (an engine key cannot list jobs, so those stay empty)."""
    stats = await api.scheduler_stats()
    try:
        jobs = await api.list_jobs(limit=1000)
    except ApiError as exc:
        if exc.status != 403:
            raise
        jobs = []
    summary = summarize_jobs([job.model_dump() for job in jobs], now)
    summary.jobs_due_now = stats.jobs_due
    summary.jobs_locked = stats.jobs_locked
    if not jobs:
        summary.failing_jobs_total = stats.jobs_failing
    return summary


async def status_report(
    target: ApiTarget | None, settings: Settings, heartbeat_interval_s: float
) -> StatusReport:
    """The status report from the API (admin/engine key) or straight from the database."""
    now = datetime.now(UTC)
    if target is not None:
        async with UserApiClient(target.url, target.key) as api:
            workers = await api.workers()
            summary = await _api_job_summary(api, now)
        return build_status_report(
            workers, summary, now=now, heartbeat_interval_s=heartbeat_interval_s
        )
    backend = await open_local_backend(settings)
    try:
        local_workers = await backend.list_workers()
        rows = await _local_job_rows(backend)
    finally:
        await backend.close()
    return build_status_report(
        local_workers, summarize_jobs(rows, now), now=now, heartbeat_interval_s=heartbeat_interval_s
    )


async def unlock_jobs(
    target: ApiTarget | None, settings: Settings, job_ids: Sequence[str] | None, stale_only: bool
) -> UnlockReport:
    """Release stale locks (`stale_only`) and/or the named jobs' locks; report what was
    released. Released leases get a new fencing token, so a still-running holder is refused."""
    if target is not None:
        async with UserApiClient(target.url, target.key) as api:
            released = await api.force_unlock(job_ids, stale_only)
        return UnlockReport(released, {})
    backend = await open_local_backend(settings)
    try:
        if job_ids:
            known = await _local_names(backend, job_ids)
            unknown = [job_id for job_id in job_ids if job_id not in known]
            if unknown:
                raise CliError(f"unknown job id(s): {', '.join(unknown)}; nothing released")
        released = await backend.force_unlock(job_ids, stale_only)
        names = await _local_names(backend, released)
    finally:
        await backend.close()
    return UnlockReport(released, names)
