"""Scheduler-wide counts (every tenant) for the engine's `status` command and dashboards."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.scheduler_repo import due_condition
from cronicorn.store.tables import Job, Run, Worker

LIVE_WORKER_WINDOW = timedelta(minutes=1)


async def scheduler_counts(engine: AsyncEngine, now: datetime) -> dict[str, int]:
    """Jobs by state, running runs and live workers, in one round trip per table."""
    active = Job.status == "active"
    job_counts = sa.select(
        sa.func.count().filter(active),
        sa.func.count().filter(Job.status == "paused"),
        sa.func.count().filter(due_condition(now)),
        sa.func.count().filter(Job.lease_owner.is_not(None), Job.lease_expires_at > now),
        sa.func.count().filter(active, Job.consecutive_failures > 0),
    )
    running = sa.select(sa.func.count()).select_from(Run).where(Run.status == "running")
    live = (
        sa.select(sa.func.count())
        .select_from(Worker)
        .where(Worker.stopped_at.is_(None), Worker.last_heartbeat_at > now - LIVE_WORKER_WINDOW)
    )
    async with engine.connect() as conn:
        jobs = (await conn.execute(job_counts)).one()
        runs = await conn.scalar(running)
        workers = await conn.scalar(live)
    names = ("jobs_active", "jobs_paused", "jobs_due", "jobs_locked", "jobs_failing")
    return {
        **dict(zip(names, jobs, strict=True)),
        "runs_running": runs or 0,
        "workers_live": workers or 0,
    }
