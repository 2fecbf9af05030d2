"""Jobs: create, read, update, archive, pause, resume, run now (tenant-scoped)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cronicorn.domain.governor import live_hint, next_run_decision
from cronicorn.domain.models import JobSnapshot, JobStatus
from cronicorn.errors import NotFoundError
from cronicorn.service.ai_schemas import HintCreate, HintOut, JobCost
from cronicorn.service.common import load_job, merge_secret_map, page, refuse_archived, visible
from cronicorn.service.errors import FieldErrors, StateConflict
from cronicorn.service.keys import Principal
from cronicorn.service.quotas import Quotas
from cronicorn.service.schemas import JobCreate, JobOut, JobUpdate, LastSchedule
from cronicorn.store.locks import lock_row
from cronicorn.store.mapping import hint_of
from cronicorn.store.notify import notify_jobs_changed
from cronicorn.store.secrets import SecretBox, masked
from cronicorn.store.tables import Job, Tenant, utcnow


class Jobs:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        clock: Callable[[], datetime] = utcnow,
        quotas: Quotas = Quotas(),
    ) -> None:
        self._sessions = sessions
        self._box = box
        self._now = clock
        self._quotas = quotas

    async def create(self, principal: Principal, data: JobCreate) -> JobOut:
        """A new job in the caller's tenant; due at once unless `next_run_at` is given."""
        now = self._now()
        job = Job(
            id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            **data.model_dump(exclude={"default_headers", "next_run_at"}),
            next_run_at=data.next_run_at or now,
            default_headers=self._box.encrypt_map(data.default_headers),
            created_at=now,
            updated_at=now,
        )
        async with self._sessions() as session, session.begin():
            await self._check_job_quota(session, principal.tenant_id)
            session.add(job)
            await notify_jobs_changed(session)
        return job_out(job, now)

    async def _check_job_quota(self, session: AsyncSession, tenant_id: str) -> None:
        """Under the tenant's row lock, so concurrent creates cannot overshoot."""
        await lock_row(session, Tenant.id, tenant_id)
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Job)
            .where(Job.tenant_id == tenant_id, Job.status != JobStatus.ARCHIVED.value)
        )
        limit = self._quotas.jobs_per_tenant
        if (count or 0) >= limit:
            raise StateConflict(
                f"quota exceeded: the tenant already has {limit} jobs (the limit); "
                "archive one first"
            )

    async def list(
        self,
        principal: Principal,
        *,
        status: JobStatus | None = None,
        limit: int = 100,
        before: str | None = None,
    ) -> list[JobOut]:
        """Newest first. Archived jobs are listed only when asked for by `status`."""
        async with self._sessions() as session:
            stmt = visible(principal, sa.select(Job))
            if status is None:
                stmt = stmt.where(Job.status != JobStatus.ARCHIVED.value)
            else:
                stmt = stmt.where(Job.status == status.value)
            cursor = None
            if before is not None:
                try:
                    ref = await load_job(session, principal, before)
                except NotFoundError:
                    raise FieldErrors([("before", "unknown job id")], "query") from None
                cursor = (ref.created_at, ref.id)
            rows = await session.scalars(page(stmt, Job.created_at, Job.id, cursor, limit))
            now = self._now()
            return [job_out(job, now) for job in rows]

    async def get(self, principal: Principal, job_id: str) -> JobOut:
        async with self._sessions() as session:
            return job_out(await load_job(session, principal, job_id), self._now())

    async def update(self, principal: Principal, job_id: str, data: JobUpdate) -> JobOut:
        given = data.model_fields_set
        async with self._sessions() as session, session.begin():
            job = await load_job(session, principal, job_id, for_update=True)
            refuse_archived(job)
            _check_against_stored(job, data)
            for name in given - {"default_headers"}:
                setattr(job, name, getattr(data, name))
            if data.default_headers is not None:
                job.default_headers = merge_secret_map(
                    "default_headers", data.default_headers, job.default_headers, self._box
                )
            job.updated_at = self._now()
            if "next_run_at" in given:
                await notify_jobs_changed(session)
        return job_out(job, self._now())

    async def archive(self, principal: Principal, job_id: str) -> JobOut:
        """DELETE archives: history is kept, the job is never claimed again."""
        return await self._set_status(principal, job_id, JobStatus.ARCHIVED)

    async def pause(self, principal: Principal, job_id: str) -> JobOut:
        return await self._set_status(principal, job_id, JobStatus.PAUSED)

    async def resume(self, principal: Principal, job_id: str) -> JobOut:
        """Active again; a job whose next run passed while paused is due at once."""
        return await self._set_status(principal, job_id, JobStatus.ACTIVE)

    async def run_now(self, principal: Principal, job_id: str, *, replan: bool = False) -> JobOut:
        """Due now; with `replan`, the run asks the model instead of reusing its last
        decision (`ai_trigger` `replan_requested`)."""
        async with self._sessions() as session, session.begin():
            job = await load_job(session, principal, job_id, for_update=True)
            if job.status != JobStatus.ACTIVE.value:
                raise StateConflict(f"job {job_id} is {job.status}: resume it first")
            now = self._now()
            job.next_run_at = now
            job.updated_at = now
            if replan:
                job.replan_requested_at = now
            await notify_jobs_changed(session)
        return job_out(job, self._now())

    async def set_hint(self, principal: Principal, job_id: str, data: HintCreate) -> JobOut:
        """Store the hint (replacing any other) and move the job's next run to what the
        governor now decides with it (unless the job is paused or running)."""
        now = self._now()
        if data.next_run_at is not None and data.next_run_at <= now:
            raise FieldErrors([("next_run_at", "must be in the future")])
        async with self._sessions() as session, session.begin():
            job = await load_job(session, principal, job_id, for_update=True)
            refuse_archived(job)
            job.hint_interval_ms = data.interval_ms
            job.hint_next_run_at = data.next_run_at
            job.hint_expires_at = now + timedelta(milliseconds=data.ttl_ms)
            job.hint_reason = data.reason
            job.hint_set_at = now
            job.updated_at = now
            if _reschedulable(job, now):
                job.next_run_at = _hinted_next_run(job, now)
                await notify_jobs_changed(session)
        return job_out(job, self._now())

    async def clear_hint(self, principal: Principal, job_id: str) -> JobOut:
        """Remove the hint; the job's next run is left as it is (the next run's end decides
        again without it)."""
        async with self._sessions() as session, session.begin():
            job = await load_job(session, principal, job_id, for_update=True)
            refuse_archived(job)
            job.hint_interval_ms = None
            job.hint_next_run_at = None
            job.hint_expires_at = None
            job.hint_reason = None
            job.hint_set_at = None
            job.updated_at = self._now()
        return job_out(job, self._now())

    async def _set_status(self, principal: Principal, job_id: str, status: JobStatus) -> JobOut:
        async with self._sessions() as session, session.begin():
            job = await load_job(session, principal, job_id, for_update=True)
            if job.status == status.value:
                return job_out(job, self._now())
            if status is not JobStatus.ARCHIVED:
                refuse_archived(job)
            now = self._now()
            job.status = status.value
            if status is JobStatus.ACTIVE:
                job.paused_until = None
                if job.next_run_at is None:
                    job.next_run_at = now
            job.updated_at = now
            if status is JobStatus.ACTIVE:
                await notify_jobs_changed(session)
        return job_out(job, self._now())


def _check_against_stored(job: Job, data: JobUpdate) -> None:
    """Cross-field rules that need the stored values (PATCH may give only one side)."""
    given = data.model_fields_set
    errors: list[tuple[str, str]] = []
    low = data.min_interval_ms if "min_interval_ms" in given else job.min_interval_ms
    high = data.max_interval_ms if "max_interval_ms" in given else job.max_interval_ms
    if low is not None and high is not None and low > high:
        field = "max_interval_ms" if "max_interval_ms" in given else "min_interval_ms"
        errors.append((field, f"min_interval_ms ({low}) must be <= max_interval_ms ({high})"))
    cron = data.cron if "cron" in given else job.cron
    interval = data.interval_ms if "interval_ms" in given else job.interval_ms
    if cron is not None and interval is not None:
        field = "interval_ms" if "interval_ms" in given else "cron"
        errors.append((field, "give at most one of cron and interval_ms (set the other to null)"))
    if errors:
        raise FieldErrors(errors)


def _reschedulable(job: Job, now: datetime) -> bool:
    """Active and not running (a running job's next run is set by its run's end)."""
    running = job.lease_expires_at is not None and job.lease_expires_at > now
    return job.status == JobStatus.ACTIVE.value and not running


def _hinted_next_run(job: Job, now: datetime) -> datetime:
    """The governor's decision at `now` with the new hint (pause and min/max included)."""
    snapshot = JobSnapshot(
        id=job.id,
        tenant_id=job.tenant_id,
        name=job.name,
        definition=job.definition,
        cron=job.cron,
        timezone=job.timezone,
        interval_ms=job.interval_ms,
        min_interval_ms=job.min_interval_ms,
        max_interval_ms=job.max_interval_ms,
        paused_until=job.paused_until,
        hint=hint_of(job),
    )
    return next_run_decision(snapshot, now, consecutive_failures=job.consecutive_failures).at


def hint_out(job: Job, now: datetime) -> HintOut | None:
    hint = live_hint(hint_of(job), now)
    if hint is None:
        return None
    return HintOut(
        interval_ms=hint.interval_ms,
        next_run_at=hint.next_run_at,
        expires_at=hint.expires_at,
        reason=hint.reason,
        set_at=hint.set_at,
    )


def job_cost(job: Job, now: datetime) -> JobCost:
    today = now.date().isoformat()
    return JobCost(
        today_usd=job.cost_usd_today if job.cost_day == today else 0.0,
        month_usd=job.cost_usd_month if job.cost_month == today[:7] else 0.0,
        total_usd=job.cost_usd_total,
    )


def job_out(job: Job, now: datetime) -> JobOut:
    locked = (
        job.lease_owner is not None
        and job.lease_expires_at is not None
        and job.lease_expires_at > now
    )
    return JobOut(
        id=job.id,
        tenant_id=job.tenant_id,
        name=job.name,
        definition=job.definition,
        status=JobStatus(job.status).value,
        cron=job.cron,
        timezone=job.timezone,
        interval_ms=job.interval_ms,
        min_interval_ms=job.min_interval_ms,
        max_interval_ms=job.max_interval_ms,
        next_run_at=job.next_run_at,
        last_run_at=job.last_run_at,
        consecutive_failures=job.consecutive_failures,
        paused_until=job.paused_until,
        locked=locked,
        lease_expires_at=job.lease_expires_at if locked else None,
        input_tokens=job.input_tokens,
        output_tokens=job.output_tokens,
        reasoning_tokens=job.reasoning_tokens,
        cached_input_tokens=job.cached_input_tokens,
        total_tokens=job.input_tokens + job.output_tokens,
        last_schedule=LastSchedule.model_validate(job.last_schedule) if job.last_schedule else None,
        default_headers=masked(job.default_headers or {}),
        daily_token_budget=job.daily_token_budget,
        ai_mode=job.ai_mode,  # type: ignore[arg-type]
        run_retention_days=job.run_retention_days,
        max_runs_per_job=job.max_runs_per_job,
        hint=hint_out(job, now),
        cost=job_cost(job, now),
        created_at=job.created_at,
        updated_at=job.updated_at,
    )
