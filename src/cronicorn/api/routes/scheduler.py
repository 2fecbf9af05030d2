"""`/api/scheduler/*`: the engine's routes (scope `engine`; force-unlock needs `admin`).

Thin: each route delegates to the store's `LocalSchedulerBackend` (claim/lease SQL lives in
the store). A write with a lost or expired lease raises `LeaseLostError` → 409, nothing
changed. A claim may long-poll; if the engine hangs up while waiting, nothing is claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from cronicorn.api.deps import AdminKey, EngineKey
from cronicorn.api.errors import error_responses
from cronicorn.domain.models import ClaimedJob, Lease
from cronicorn.errors import LeaseLostError
from cronicorn.service.stats import scheduler_counts
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.tables import utcnow
from cronicorn.wire.scheduler import (
    ClaimRequest,
    ClaimResponse,
    CompleteBatchRequest,
    CompleteBatchResponse,
    CompleteOutcome,
    CompleteRequest,
    ExtendRequest,
    FailRequest,
    ForceUnlockRequest,
    ForceUnlockResponse,
    HeartbeatRequest,
    NextDueResponse,
    PlanRequest,
    ReleaseRequest,
    SchedulerStats,
    WorkerOut,
)

log = logging.getLogger(__name__)
router = APIRouter(
    prefix="/api/scheduler", tags=["scheduler"], responses=error_responses(401, 403, 413, 422)
)
FENCED = error_responses(409)


PathWorkerId = Annotated[str, Path(max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


def backend(request: Request) -> LocalSchedulerBackend:
    scheduler: LocalSchedulerBackend = request.app.state.scheduler
    return scheduler


@router.post("/claim", response_model=ClaimResponse)
async def claim(body: ClaimRequest, request: Request, _: EngineKey) -> ClaimResponse:
    """Lease up to `limit` due jobs (oldest due first), start a run for each and return them
    with their context. With `ahead_ms` > 0, jobs due within that long count as due (the
    engine starts each at its `due_at`). With `wait_ms` > 0 and nothing due, wait (bounded
    by the server's limit) until a job becomes due; an empty list means "nothing due yet"."""
    wait_ms = min(body.wait_ms, request.app.state.settings.max_claim_wait_ms)
    store = backend(request)
    if wait_ms == 0:
        jobs = await store.claim(
            body.worker_id,
            body.limit,
            body.lease_ms,
            0,
            ahead_ms=body.ahead_ms,
            history=body.history,
        )
        return ClaimResponse(jobs=jobs)
    return ClaimResponse(jobs=await _claim_unless_gone(request, store, body, wait_ms))


async def _claim_unless_gone(
    request: Request, store: LocalSchedulerBackend, body: ClaimRequest, wait_ms: int
) -> list[ClaimedJob]:
    """Long-poll, but stop (claiming nothing) as soon as the client disconnects."""
    claiming = asyncio.ensure_future(
        store.claim(
            body.worker_id,
            body.limit,
            body.lease_ms,
            wait_ms,
            ahead_ms=body.ahead_ms,
            history=body.history,
        )
    )
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({claiming, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not claiming.done():
        claiming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await claiming
        return []
    jobs = claiming.result()
    if jobs and gone.done() and not gone.cancelled():
        await _give_back(store, [job.lease for job in jobs])
        return []
    return jobs


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _give_back(store: LocalSchedulerBackend, leases: list[Lease]) -> None:
    for lease in leases:
        try:
            await store.release(lease, reason="engine disconnected during claim")
        except Exception:
            log.warning("could not release job %s after a disconnect", lease.job_id)


@router.post("/extend", response_model=Lease, responses=FENCED)
async def extend(body: ExtendRequest, request: Request, _: EngineKey) -> Lease:
    """Renew a lease to now + `lease_ms`; 409 if it was lost or expired."""
    return await backend(request).extend(body.lease, body.lease_ms)


@router.post("/plan", status_code=204, responses=FENCED)
async def record_plan(body: PlanRequest, request: Request, _: EngineKey) -> Response:
    """Store the run's phase-1 plan and its token cost so far."""
    await backend(request).record_plan(body.lease, body.decision)
    return Response(status_code=204)


@router.post("/complete", status_code=204, responses=FENCED)
async def complete(body: CompleteRequest, request: Request, _: EngineKey) -> Response:
    """Write results, summary, schedule, tokens and errors and release the lease, in one
    transaction; 409 and nothing written if the lease was lost."""
    await backend(request).complete(body.lease, body.completion)
    return Response(status_code=204)


@router.post("/runs/complete-batch", response_model=CompleteBatchResponse)
async def complete_batch(
    body: CompleteBatchRequest, request: Request, _: EngineKey
) -> CompleteBatchResponse:
    """Complete several runs in one request (and, with concurrent completions, one
    transaction). Each item has its own outcome: a lost lease or an unstorable item writes
    nothing for that item and does not affect the others."""
    items = [(item.lease, item.completion) for item in body.items]
    outcomes = await backend(request).complete_many(items)
    pairs = zip(body.items, outcomes, strict=True)
    return CompleteBatchResponse(results=[_outcome(item.lease, outcome) for item, outcome in pairs])


def _outcome(lease: Lease, outcome: BaseException | None) -> CompleteOutcome:
    if outcome is None:
        return CompleteOutcome(job_id=lease.job_id, status="completed")
    status: Literal["lease_lost", "failed"] = (
        "lease_lost" if isinstance(outcome, LeaseLostError) else "failed"
    )
    if status == "failed":
        log.warning("job %s: completion could not be stored: %s", lease.job_id, outcome)
    return CompleteOutcome(job_id=lease.job_id, status=status, detail=str(outcome)[:500])


@router.post("/fail", status_code=204, responses=FENCED)
async def fail(body: FailRequest, request: Request, _: EngineKey) -> Response:
    """Last-resort write: run failed, error recorded once, fallback next run, lease released."""
    await backend(request).fail(
        body.lease,
        body.error,
        body.next_run,
        body.consecutive_failures,
        usage=body.usage,
        ai_calls=body.ai_calls,
    )
    return Response(status_code=204)


@router.post("/release", status_code=204, responses=FENCED)
async def release(body: ReleaseRequest, request: Request, _: EngineKey) -> Response:
    """Give the job back without completing it (its run is marked aborted)."""
    await backend(request).release(body.lease, reason=body.reason)
    return Response(status_code=204)


@router.post("/force-unlock", response_model=ForceUnlockResponse)
async def force_unlock(
    body: ForceUnlockRequest, request: Request, _: AdminKey
) -> ForceUnlockResponse:
    """Admin: release stale (or, with `stale_only=false`, all) leases, optionally only of
    `job_ids`. Their holders are fenced out; their running runs become aborted."""
    released = await backend(request).force_unlock(body.job_ids, body.stale_only)
    return ForceUnlockResponse(released=released)


@router.get("/next-due", response_model=NextDueResponse)
async def next_due(request: Request, _: EngineKey) -> NextDueResponse:
    """When the earliest active job becomes claimable (may be in the past)."""
    return NextDueResponse(next_due_at=await backend(request).next_due_at())


@router.post("/heartbeat", status_code=204)
async def heartbeat(body: HeartbeatRequest, request: Request, _: EngineKey) -> Response:
    await backend(request).heartbeat(body.worker_id, body.info)
    return Response(status_code=204)


@router.post("/workers/{worker_id}/stopped", status_code=204)
async def worker_stopped(worker_id: PathWorkerId, request: Request, _: EngineKey) -> Response:
    """A worker shut down cleanly (it stops counting as live)."""
    await backend(request).mark_worker_stopped(worker_id)
    return Response(status_code=204)


@router.get("/workers", response_model=list[WorkerOut])
async def workers(
    request: Request,
    _: EngineKey,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many.")] = 1000,
) -> list[WorkerOut]:
    """Known workers, most recent heartbeat first."""
    rows = await backend(request).list_workers(limit)
    return [WorkerOut.model_validate(row, from_attributes=True) for row in rows]


@router.get("/stats", response_model=SchedulerStats)
async def stats(request: Request, _: EngineKey) -> SchedulerStats:
    """Jobs by state, running runs, live workers and the next due time (all tenants)."""
    store = backend(request)
    counts = await scheduler_counts(store.repository.engine, utcnow())
    return SchedulerStats(**counts, next_due_at=await store.next_due_at())
