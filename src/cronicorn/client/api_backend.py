"""`ApiSchedulerBackend`: the engine's `SchedulerBackend` over the REST API (`ApiTransport`).

Transient failures (connection errors, timeouts, 502/503/504) are retried with capped
exponential backoff and full jitter; then `BackendUnavailableError`. A 429 (the engine key's
request budget, if the server sets one) is retried after its `Retry-After` (at most 60 s).
A 409 is a fenced-out write: `LeaseLostError`, never retried.

A retried `complete` whose first attempt did reach the server (response lost, API killed
mid-answer) is recognised by the store and answered as written. Other retried writes whose
first attempt landed come back as 409: the write happened, but the engine is told the lease
is gone, which is the safe reading. The engine itself keeps a completion through longer
outages (`cronicorn.engine.delivery`): these retries only bridge short blips.

The connection, timeouts and retries are `ApiTransport`'s; the operator's scheduler routes
(workers, stats, force-unlock) are `UserApiClient`'s.
"""

from __future__ import annotations

from datetime import datetime

import aiohttp
from pydantic import TypeAdapter

from cronicorn.client.transport import ApiTransport, Body, RetryPolicy
from cronicorn.domain.models import (
    ClaimedJob,
    Heartbeat,
    JobErrorRecord,
    Lease,
    NextRun,
    PlanDecision,
    RunCompletion,
    TokenUsage,
)
from cronicorn.errors import (
    BackendUnavailableError,
    ConfigError,
    CronicornError,
    LeaseLostError,
    ValidationFailed,
)
from cronicorn.runtime.batching import WriteBatcher
from cronicorn.wire.scheduler import (
    ClaimRequest,
    ClaimResponse,
    CompleteBatchRequest,
    CompleteBatchResponse,
    CompleteOutcome,
    CompleteRequest,
    ExtendRequest,
    FailRequest,
    HeartbeatRequest,
    NextDueResponse,
    PlanRequest,
    ReleaseRequest,
)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
_lease_adapter = TypeAdapter(Lease)


class ApiSchedulerBackend:
    """Talk to `/api/scheduler/*` with an `engine` (or `admin`) scope key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30.0,
        max_retries: int = 4,
        retry_base_delay_s: float = 0.2,
        retry_max_delay_s: float = 5.0,
        session: aiohttp.ClientSession | None = None,
        max_batch: int = 100,
    ) -> None:
        retry = RetryPolicy(max_retries, retry_base_delay_s, retry_max_delay_s, RETRY_STATUSES)
        self._http = ApiTransport(
            base_url,
            api_key,
            timeout_s=timeout_s,
            retry=retry,
            errors=_scheduler_error,
            session=session,
        )
        self._completions: WriteBatcher[CompleteRequest] = WriteBatcher(
            self._send_completions, max_batch=max_batch, split_on_error=_item_specific
        )

    # -- SchedulerBackend ------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        limit: int,
        lease_ms: int,
        wait_ms: int = 0,
        *,
        ahead_ms: int = 0,
        history: bool = True,
    ) -> list[ClaimedJob]:
        body = ClaimRequest(
            worker_id=worker_id,
            limit=limit,
            lease_ms=lease_ms,
            wait_ms=wait_ms,
            ahead_ms=ahead_ms,
            history=history,
        )
        text = await self._http.request(
            "POST", "/api/scheduler/claim", body, extra_timeout_s=wait_ms / 1000.0
        )
        return ClaimResponse.model_validate_json(text).jobs

    async def extend(self, lease: Lease, lease_ms: int) -> Lease:
        body = ExtendRequest(lease=lease, lease_ms=lease_ms)
        text = await self._http.request("POST", "/api/scheduler/extend", body)
        return _lease_adapter.validate_json(text)

    async def record_plan(self, lease: Lease, decision: PlanDecision) -> None:
        body = PlanRequest(lease=lease, decision=decision)
        await self._http.request("POST", "/api/scheduler/plan", body)

    async def complete(self, lease: Lease, completion: RunCompletion) -> None:
        """Concurrent completions are coalesced (`WriteBatcher`): one request, and on the
        server one transaction, per batch; each caller still gets its own outcome."""
        # Built without validation: both values are already typed domain objects, and the
        # API validates (and checks storability of) every item it receives — validating
        # here too cost the worker about as much CPU as the rest of the request.
        request = CompleteRequest.model_construct(lease=lease, completion=completion)
        await self._completions.submit(request)

    async def _send_completions(self, items: list[CompleteRequest]) -> list[Exception | None]:
        if len(items) > 1 and any(item.completion.ai_sessions for item in items):
            # Stored AI sessions make completions large: keep each request well under the
            # API's body limit (1 MiB by default) by sending them in smaller batches.
            out: list[Exception | None] = []
            for chunk in _chunks_by_size(items, SESSION_BATCH_BYTES):
                out += await self._send_batch(chunk)
            return out
        return await self._send_batch(items)

    async def _send_batch(self, items: list[CompleteRequest]) -> list[Exception | None]:
        if len(items) == 1:
            await self._http.request("POST", "/api/scheduler/complete", items[0])
            return [None]
        body = CompleteBatchRequest.model_construct(items=items)
        text = await self._http.request("POST", "/api/scheduler/runs/complete-batch", body)
        results = CompleteBatchResponse.model_validate_json(text).results
        return [_completion_error(item.lease, r) for item, r in zip(items, results, strict=True)]

    async def fail(
        self,
        lease: Lease,
        error: JobErrorRecord,
        next_run: NextRun,
        consecutive_failures: int,
        *,
        usage: TokenUsage | None = None,
        ai_calls: int = 0,
    ) -> None:
        body = FailRequest(
            lease=lease,
            error=error,
            next_run=next_run,
            consecutive_failures=consecutive_failures,
            usage=usage,
            ai_calls=ai_calls,
        )
        await self._http.request("POST", "/api/scheduler/fail", body)

    async def release(self, lease: Lease, reason: str = "released") -> None:
        body = ReleaseRequest(lease=lease, reason=reason[:500])
        await self._http.request("POST", "/api/scheduler/release", body)

    async def next_due_at(self) -> datetime | None:
        text = await self._http.request("GET", "/api/scheduler/next-due")
        return NextDueResponse.model_validate_json(text).next_due_at

    async def heartbeat(self, worker_id: str, info: Heartbeat) -> None:
        body = HeartbeatRequest(worker_id=worker_id, info=info)
        await self._http.request("POST", "/api/scheduler/heartbeat", body)

    async def close(self) -> None:
        await self._completions.drain()
        await self._http.close()

    async def mark_worker_stopped(self, worker_id: str) -> None:
        """Beyond the port: the engine marks its heartbeat row stopped on shutdown."""
        await self._http.request("POST", f"/api/scheduler/workers/{worker_id}/stopped")


SESSION_BATCH_BYTES = 256 * 1024


def _chunks_by_size(items: list[CompleteRequest], limit: int) -> list[list[CompleteRequest]]:
    chunks: list[list[CompleteRequest]] = [[]]
    size = 0
    for item in items:
        item_size = len(item.model_dump_json())
        if chunks[-1] and size + item_size > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return chunks


def _scheduler_error(status: int, text: str, body: Body) -> Exception:
    """The engine's exception for an error answer of a scheduler route."""
    detail = text[:500]
    if status == 409:
        lease = getattr(body, "lease", None)
        if isinstance(lease, Lease):
            return LeaseLostError(lease.job_id, lease.token, f"lease lost: {detail}")
        return CronicornError(f"conflict: {detail}")
    if status in (401, 403):
        return ConfigError(f"the API refused the key (HTTP {status}): {detail}")
    if status == 422:
        return ValidationFailed([detail])
    return CronicornError(f"scheduler API error HTTP {status}: {detail}")


def _item_specific(exc: BaseException) -> bool:
    """A refused batch is worth resending item by item (a 422 caused by one item, a server
    without the batch route); not when the API is down or refuses the key."""
    return not isinstance(exc, BackendUnavailableError | ConfigError)


def _completion_error(lease: Lease, result: CompleteOutcome) -> Exception | None:
    if result.status == "completed":
        return None
    if result.status == "lease_lost":
        return LeaseLostError(lease.job_id, lease.token, f"lease lost: {result.detail}")
    return CronicornError(f"completion of job {lease.job_id} not stored: {result.detail}")
