"""`/api/jobs`: create, list, read, update, archive, pause, resume, run now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cronicorn.api.deps import Svc, UserKey
from cronicorn.api.errors import error_responses
from cronicorn.api.routes.params import Before, Limit
from cronicorn.domain.models import JobStatus
from cronicorn.service.ai_schemas import HintCreate
from cronicorn.service.schemas import JobCreate, JobOut, JobUpdate, RunNow

router = APIRouter(
    prefix="/api/jobs", tags=["jobs"], responses=error_responses(401, 403, 404, 413, 422)
)
CONFLICT = error_responses(409)


@router.post("", status_code=201, response_model=JobOut)
async def create_job(body: JobCreate, principal: UserKey, svc: Svc) -> JobOut:
    """Create a job in the caller's tenant; it is due at once unless `next_run_at` is given."""
    return await svc.jobs.create(principal, body)


@router.get("", response_model=list[JobOut])
async def list_jobs(
    principal: UserKey,
    svc: Svc,
    status: Annotated[JobStatus | None, Query(description="Default: all but archived.")] = None,
    limit: Limit = 100,
    before: Before = None,
) -> list[JobOut]:
    return await svc.jobs.list(principal, status=status, limit=limit, before=before)


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: str, principal: UserKey, svc: Svc) -> JobOut:
    return await svc.jobs.get(principal, job_id)


@router.patch("/{job_id}", response_model=JobOut, responses=CONFLICT)
async def update_job(job_id: str, body: JobUpdate, principal: UserKey, svc: Svc) -> JobOut:
    """Change the given fields. Header values `"***"` keep the stored secret."""
    return await svc.jobs.update(principal, job_id, body)


@router.delete("/{job_id}", response_model=JobOut)
async def archive_job(job_id: str, principal: UserKey, svc: Svc) -> JobOut:
    """Archive the job (history is kept; it is never claimed again)."""
    return await svc.jobs.archive(principal, job_id)


@router.post("/{job_id}/pause", response_model=JobOut, responses=CONFLICT)
async def pause_job(job_id: str, principal: UserKey, svc: Svc) -> JobOut:
    return await svc.jobs.pause(principal, job_id)


@router.post("/{job_id}/resume", response_model=JobOut, responses=CONFLICT)
async def resume_job(job_id: str, principal: UserKey, svc: Svc) -> JobOut:
    return await svc.jobs.resume(principal, job_id)


@router.post("/{job_id}/run-now", response_model=JobOut, responses=CONFLICT)
async def run_job_now(
    job_id: str, principal: UserKey, svc: Svc, body: RunNow | None = None
) -> JobOut:
    """Make the job due now and wake idle engines (409 unless the job is active). With
    `{"replan": true}` the run asks the model afresh instead of reusing its last decision."""
    replan = body.replan if body is not None else False
    return await svc.jobs.run_now(principal, job_id, replan=replan)


@router.post("/{job_id}/hints", response_model=JobOut, responses=CONFLICT)
async def set_hint(job_id: str, body: HintCreate, principal: UserKey, svc: Svc) -> JobOut:
    """Steer the job without the model: run every `interval_ms`, or once at `next_run_at`,
    for `ttl_ms` (schedule source `hint`: above the AI, below a pause, inside min/max).
    Replaces any earlier hint; an active job that is not running is rescheduled at once."""
    return await svc.jobs.set_hint(principal, job_id, body)


@router.delete("/{job_id}/hints", response_model=JobOut, responses=CONFLICT)
async def clear_hint(job_id: str, principal: UserKey, svc: Svc) -> JobOut:
    """Remove the hint (the next run's end decides without it)."""
    return await svc.jobs.clear_hint(principal, job_id)
