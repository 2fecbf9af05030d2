"""Read models the dashboard needs beyond the REST resources: the job overview (last outcome,
24 h success rate, search), a job's run timeline and the tenant-visible worker report.

Every query is bounded (`LIMIT`) or served by an index alone (`ix_runs_job_started`; the 24 h
counts by status from the covering `ix_runs_job_started_status`), so a job with a long history
opens about as fast as a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.domain.models import JobStatus
from cronicorn.observability.status import FailingJob, JobSummary, StatusReport, build_status_report
from cronicorn.service.common import load_job, visible
from cronicorn.service.jobs import job_out
from cronicorn.service.keys import Principal
from cronicorn.service.schemas import JobOut
from cronicorn.store.scheduler_repo import due_condition
from cronicorn.store.tables import Job, Run, Worker, utcnow

DAY = timedelta(hours=24)
MAX_OVERVIEW = 500
MAX_TIMELINE = 500


@dataclass(frozen=True, slots=True)
class RunCounts:
    """Finished runs in a window: how many, and how many completed."""

    finished: int = 0
    completed: int = 0

    @property
    def success_rate(self) -> float | None:
        return self.completed / self.finished if self.finished else None


@dataclass(frozen=True, slots=True)
class JobOverview:
    job: JobOut
    last_outcome: str | None
    last_run_id: str | None
    day: RunCounts


@dataclass(frozen=True, slots=True)
class TimelineRun:
    id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    source: str | None
    next_run_at: datetime | None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class Dashboard:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._now = clock

    async def overview(
        self,
        principal: Principal,
        *,
        search: str = "",
        status: JobStatus | None = None,
        limit: int = 200,
    ) -> list[JobOverview]:
        """Newest jobs first, with their last run's outcome and 24 h counts."""
        last = (
            sa.select(Run.id, Run.status)
            .where(Run.job_id == Job.id)
            .order_by(Run.started_at.desc(), Run.id.desc())
            .limit(1)
        )
        stmt = visible(
            principal,
            sa.select(
                Job,
                last.with_only_columns(Run.status).scalar_subquery(),
                last.with_only_columns(Run.id).scalar_subquery(),
            ),
        )
        if status is None:
            stmt = stmt.where(Job.status != JobStatus.ARCHIVED.value)
        else:
            stmt = stmt.where(Job.status == status.value)
        if search.strip():
            stmt = stmt.where(Job.name.ilike(_like(search.strip()), escape="\\"))
        stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(
            min(max(limit, 1), MAX_OVERVIEW)
        )
        now = self._now()
        async with self._sessions() as session:
            rows = (await session.execute(stmt)).all()
            counts = await _day_counts(session, [row[0].id for row in rows], now)
        return [
            JobOverview(
                job=job_out(job, now),
                last_outcome=outcome,
                last_run_id=run_id,
                day=counts.get(job.id, RunCounts()),
            )
            for job, outcome, run_id in rows
        ]

    async def day_counts(self, principal: Principal, job_id: str) -> RunCounts:
        async with self._sessions() as session:
            await load_job(session, principal, job_id)
            counts = await _day_counts(session, [job_id], self._now())
        return counts.get(job_id, RunCounts())

    async def timeline(
        self, principal: Principal, job_id: str, limit: int = 200
    ) -> list[TimelineRun]:
        """The job's last `limit` runs, oldest first (only the columns a chart needs)."""
        async with self._sessions() as session:
            await load_job(session, principal, job_id)
            rows = await session.execute(
                sa.select(Run.id, Run.started_at, Run.finished_at, Run.status, Run.schedule)
                .where(Run.job_id == job_id)
                .order_by(Run.started_at.desc(), Run.id.desc())
                .limit(min(max(limit, 1), MAX_TIMELINE))
            )
            out = [_timeline_run(*row) for row in rows]
        out.reverse()
        return out

    async def worker_report(
        self, principal: Principal, heartbeat_interval_s: float, top_failing: int = 20
    ) -> StatusReport:
        """Workers (every one: they are shared) and the principal's jobs due, locked, failing."""
        now = self._now()
        counts = visible(
            principal,
            sa.select(
                sa.func.count().filter(due_condition(now)),
                sa.func.count().filter(Job.lease_owner.is_not(None), Job.lease_expires_at > now),
                sa.func.count().filter(Job.lease_owner.is_not(None), Job.lease_expires_at <= now),
                sa.func.count().filter(
                    Job.status == JobStatus.ACTIVE.value, Job.consecutive_failures > 0
                ),
            ).select_from(Job),
        )
        failing = visible(
            principal,
            sa.select(Job.id, Job.name, Job.consecutive_failures)
            .where(Job.status == JobStatus.ACTIVE.value, Job.consecutive_failures > 0)
            .order_by(Job.consecutive_failures.desc(), Job.name, Job.id)
            .limit(top_failing),
        )
        async with self._sessions() as session:
            due, locked, stale, failing_total = (await session.execute(counts)).one()
            failing_rows = (await session.execute(failing)).all()
            workers = list(
                await session.scalars(
                    sa.select(Worker).order_by(Worker.last_heartbeat_at.desc()).limit(200)
                )
            )
        summary = JobSummary(
            jobs_due_now=due,
            jobs_locked=locked,
            stale_locks=stale,
            failing_jobs=[
                FailingJob(id=i, name=n, consecutive_failures=c) for i, n, c in failing_rows
            ],
            failing_jobs_total=failing_total,
        )
        return build_status_report(
            workers,
            summary,
            now=now,
            heartbeat_interval_s=heartbeat_interval_s,
            top_failing=top_failing,
            include_dead=True,
        )


async def _day_counts(
    session: AsyncSession, job_ids: list[str], now: datetime
) -> dict[str, RunCounts]:
    if not job_ids:
        return {}
    rows = await session.execute(
        sa.select(
            Run.job_id,
            sa.func.count().filter(Run.status != "running"),
            sa.func.count().filter(Run.status == "completed"),
        )
        .where(Run.job_id.in_(job_ids), Run.started_at >= now - DAY)
        .group_by(Run.job_id)
    )
    return {job_id: RunCounts(finished, completed) for job_id, finished, completed in rows}


def _timeline_run(
    run_id: str,
    started_at: datetime,
    finished_at: datetime | None,
    status: str,
    schedule: dict[str, Any] | None,
) -> TimelineRun:
    schedule = schedule or {}
    next_run = schedule.get("next_run_at")
    return TimelineRun(
        id=run_id,
        started_at=started_at,
        finished_at=finished_at,
        status=status,
        source=schedule.get("source"),
        next_run_at=_parse_time(next_run),
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
