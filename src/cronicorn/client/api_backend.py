"""`ApiSchedulerBackend`: the engine's `SchedulerBackend` over the REST API (aiohttp).

Transient failures (connection errors, timeouts, 502/503/504) are retried with capped
exponential backoff and full jitter; then `BackendUnavailableError`. A 429 (the engine key's
request budget, if the server sets one) is retried after its `Retry-After` (at most 60 s).
A 409 is a fenced-out write: `LeaseLostError`, never retried.

A retried `complete` whose first attempt did reach the server (response lost, API killed
mid-answer) is recognised by the store and answered as written. Other retried writes whose
first attempt landed come back as 409: the write happened, but the engine is told the lease
is gone, which is the safe reading. The engine itself keeps a completion through longer
outages (`cronicorn.engine.delivery`): these retries only bridge short blips.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import datetime

import aiohttp
from pydantic import BaseModel, TypeAdapter

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
from cronicorn.engine.batching import WriteBatcher
from cronicorn.errors import (
    BackendUnavailableError,
    ConfigError,
    CronicornError,
    LeaseLostError,
    ValidationFailed,
)

RETRY_STATUSES = frozenset({502, 503, 504})
MAX_THROTTLE_WAIT_S = 60.0
_lease_adapter = TypeAdapter(Lease)
_workers_adapter = TypeAdapter(list[WorkerOut])


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
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._timeout_s = timeout_s
        self._max_retries = max_retries
        self._base_delay = retry_base_delay_s
        self._max_delay = retry_max_delay_s
        self._session = session
        self._owns_session = session is None
        self._completions: WriteBatcher[CompleteRequest] = WriteBatcher(
            self._send_completions, max_batch=max_batch, split_on_error=_item_specific
        )

    # -- SchedulerBackend ------------------------------------------------------------------

    async def claim(
        self, worker_id: str, limit: int, lease_ms: int, wait_ms: int = 0
    ) -> list[ClaimedJob]:
        body = ClaimRequest(worker_id=worker_id, limit=limit, lease_ms=lease_ms, wait_ms=wait_ms)
        text = await self._call("POST", "/claim", body, extra_timeout_s=wait_ms / 1000.0)
        return ClaimResponse.model_validate_json(text).jobs

    async def extend(self, lease: Lease, lease_ms: int) -> Lease:
        text = await self._call("POST", "/extend", ExtendRequest(lease=lease, lease_ms=lease_ms))
        return _lease_adapter.validate_json(text)

    async def record_plan(self, lease: Lease, decision: PlanDecision) -> None:
        await self._call("POST", "/plan", PlanRequest(lease=lease, decision=decision))

    async def complete(self, lease: Lease, completion: RunCompletion) -> None:
        """Concurrent completions are coalesced (`WriteBatcher`): one request, and on the
        server one transaction, per batch; each caller still gets its own outcome."""
        await self._completions.submit(CompleteRequest(lease=lease, completion=completion))

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
            await self._call("POST", "/complete", items[0])
            return [None]
        text = await self._call("POST", "/runs/complete-batch", CompleteBatchRequest(items=items))
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
        await self._call("POST", "/fail", body)

    async def release(self, lease: Lease, reason: str = "released") -> None:
        await self._call("POST", "/release", ReleaseRequest(lease=lease, reason=reason[:500]))

    async def next_due_at(self) -> datetime | None:
        text = await self._call("GET", "/next-due")
        return NextDueResponse.model_validate_json(text).next_due_at

    async def heartbeat(self, worker_id: str, info: Heartbeat) -> None:
        body = HeartbeatRequest(worker_id=worker_id, info=info)
        await self._call("POST", "/heartbeat", body)

    async def close(self) -> None:
        await self._completions.drain()
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    # -- operations beyond the port (CLI `status`, `unlock-jobs`) ---------------------------

    async def mark_worker_stopped(self, worker_id: str) -> None:
        await self._call("POST", f"/workers/{worker_id}/stopped")

    async def list_workers(self) -> list[WorkerOut]:
        return _workers_adapter.validate_json(await self._call("GET", "/workers"))

    async def stats(self) -> SchedulerStats:
        return SchedulerStats.model_validate_json(await self._call("GET", "/stats"))

    async def force_unlock(
        self, job_ids: Sequence[str] | None = None, stale_only: bool = True
    ) -> list[str]:
        body = ForceUnlockRequest(
            job_ids=list(job_ids) if job_ids is not None else None, stale_only=stale_only
        )
        text = await self._call("POST", "/force-unlock", body)
        return ForceUnlockResponse.model_validate_json(text).released

    # -- transport ---------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers=self._headers)
            self._owns_session = True
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        *,
        extra_timeout_s: float = 0.0,
    ) -> str:
        """One API call with retries on transient failures; returns the response text."""
        url = f"{self._base}/api/scheduler{path}"
        data = body.model_dump_json().encode() if body is not None else None
        timeout = aiohttp.ClientTimeout(total=self._timeout_s + extra_timeout_s)
        last: str = ""
        wait_s = 0.0
        for attempt in range(self._max_retries + 1):
            if attempt:
                await asyncio.sleep(max(wait_s, self._delay(attempt)))
                wait_s = 0.0
            try:
                async with self._client().request(
                    method,
                    url,
                    data=data,
                    headers={**self._headers, "Content-Type": "application/json"},
                    timeout=timeout,
                ) as resp:
                    text = await resp.text()
                    if resp.status in RETRY_STATUSES:
                        last = f"HTTP {resp.status}"
                        continue
                    if resp.status == 429:
                        last = "HTTP 429 (throttled)"
                        wait_s = _retry_after_s(resp.headers.get("Retry-After"))
                        continue
                    _raise_for_status(resp.status, text, body)
                    return text
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}"
        raise BackendUnavailableError(
            f"{method} {url} failed after {self._max_retries + 1} attempts ({last})"
        )

    def _delay(self, attempt: int) -> float:
        return random.uniform(0, min(self._max_delay, self._base_delay * 2 ** (attempt - 1)))


def _retry_after_s(value: str | None) -> float:
    try:
        return min(MAX_THROTTLE_WAIT_S, max(0.0, float(value or 1)))
    except ValueError:
        return 1.0


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


def _raise_for_status(status: int, text: str, body: BaseModel | None) -> None:
    if status < 400:
        return
    detail = text[:500]
    if status == 409:
        lease = getattr(body, "lease", None)
        if isinstance(lease, Lease):
            raise LeaseLostError(lease.job_id, lease.token, f"lease lost: {detail}")
        raise CronicornError(f"conflict: {detail}")
    if status in (401, 403):
        raise ConfigError(f"the API refused the key (HTTP {status}): {detail}")
    if status == 422:
        raise ValidationFailed([detail])
    raise CronicornError(f"scheduler API error HTTP {status}: {detail}")


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
