"""A job's history: messages, runs (with results) and recorded errors."""

from __future__ import annotations

from fastapi import APIRouter

from cronicorn.api.deps import Svc, UserKey
from cronicorn.api.errors import error_responses
from cronicorn.api.routes.params import Before, Limit
from cronicorn.service.schemas import JobErrorOut, MessageCreate, MessageOut, RunDetail, RunOut

router = APIRouter(tags=["history"], responses=error_responses(401, 403, 404, 422))


@router.post(
    "/api/jobs/{job_id}/messages",
    status_code=201,
    response_model=MessageOut,
    responses=error_responses(409, 413),
)
async def post_message(
    job_id: str, body: MessageCreate, principal: UserKey, svc: Svc
) -> MessageOut:
    """Add a message to the job's history (source `user`); the AI sees it on the next run."""
    return await svc.history.post_message(principal, job_id, body)


@router.get("/api/jobs/{job_id}/messages", response_model=list[MessageOut])
async def list_messages(
    job_id: str, principal: UserKey, svc: Svc, limit: Limit = 100, before: Before = None
) -> list[MessageOut]:
    """Newest first."""
    return await svc.history.messages(principal, job_id, limit, before)


@router.get("/api/jobs/{job_id}/runs", response_model=list[RunOut])
async def list_runs(
    job_id: str, principal: UserKey, svc: Svc, limit: Limit = 50, before: Before = None
) -> list[RunOut]:
    """Newest first; pass the last run's id as `before` for the next page."""
    return await svc.history.runs(principal, job_id, limit, before)


@router.get("/api/runs/{run_id}", response_model=RunDetail)
async def get_run(run_id: str, principal: UserKey, svc: Svc) -> RunDetail:
    """One run with its endpoint results."""
    return await svc.history.run(principal, run_id)


@router.get("/api/jobs/{job_id}/errors", response_model=list[JobErrorOut])
async def list_errors(
    job_id: str, principal: UserKey, svc: Svc, limit: Limit = 100, before: Before = None
) -> list[JobErrorOut]:
    """Newest first."""
    return await svc.history.errors(principal, job_id, limit, before)
