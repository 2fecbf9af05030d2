"""Operator reads and actions behind `status` and `unlock-jobs`, from the database or the API.

On the database they are the service's (`cronicorn.service.scheduler_admin`); through the API
they use the operator's scheduler routes (`UserApiClient`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.cli.common import CliError
from cronicorn.cli.compose import ApiTarget
from cronicorn.client.errors import ApiError
from cronicorn.client.user_api import UserApiClient
from cronicorn.observability.status import (
    JobSummary,
    StatusReport,
    build_status_report,
    summarize_jobs,
)
from cronicorn.service import scheduler_admin
from cronicorn.service.scheduler_admin import UnlockReport
from cronicorn.settings import Settings
from cronicorn.store.db import create_engine
from cronicorn.store.migrate import prepare_schema


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The database, its schema prepared (SQLite: migrated; PostgreSQL: checked)."""
    await prepare_schema(settings.database_url)
    db = create_engine(settings.database_url)
    try:
        yield db
    finally:
        await db.dispose()


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
    if target is None:
        async with _database(settings) as db:
            return await scheduler_admin.status_report(db, heartbeat_interval_s)
    now = datetime.now(UTC)
    async with UserApiClient(target.url, target.key) as api:
        workers = await api.workers()
        summary = await _api_job_summary(api, now)
    return build_status_report(workers, summary, now=now, heartbeat_interval_s=heartbeat_interval_s)


async def unlock_jobs(
    target: ApiTarget | None, settings: Settings, job_ids: Sequence[str] | None, stale_only: bool
) -> UnlockReport:
    """Release stale locks (`stale_only`) and/or the named jobs' locks; report what was
    released. An unknown job id (database only) releases nothing and is an error."""
    if target is not None:
        async with UserApiClient(target.url, target.key) as api:
            released = await api.force_unlock(job_ids, stale_only)
        return UnlockReport(released, {})
    async with _database(settings) as db:
        report = await scheduler_admin.unlock_jobs(db, job_ids, stale_only)
    if report.unknown:
        raise CliError(f"unknown job id(s): {', '.join(report.unknown)}; nothing released")
    return report
