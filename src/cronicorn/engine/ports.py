"""The engine's ports. Adapters implement these structurally (typing.Protocol).

The ports an adapter itself has to name live next to what they speak, so that adapters never
import the engine: `Planner` in `cronicorn.ai.planner`, `ExecutorEvents` (the callbacks an
executor raises, implemented by the engine) in `cronicorn.executor.events`, `Clock` in
`cronicorn.runtime.clock`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from cronicorn.domain.idempotency import DueRun
from cronicorn.domain.models import (
    ClaimedJob,
    EndpointResult,
    EndpointSpec,
    Heartbeat,
    JobErrorRecord,
    Lease,
    NextRun,
    Plan,
    PlanDecision,
    RunCompletion,
    TokenUsage,
)
from cronicorn.executor.events import ExecutorEvents


class Executor(Protocol):
    async def execute(
        self,
        plan: Plan,
        endpoints: Mapping[str, EndpointSpec],
        *,
        default_headers: Mapping[str, str] | None = None,
        abort: asyncio.Event | None = None,
        events: ExecutorEvents | None = None,
        signing_secret: str | None = None,
        due_run: DueRun | None = None,
    ) -> list[EndpointResult]:
        """Run the plan. Returns one result per planned call, never raises for endpoint
        failures (blocked, timed out, refused and aborted calls are results). With
        `signing_secret`, every request carries the signature headers. Every call carries an
        `Idempotency-Key` derived from `due_run` (job id + due time)."""
        ...

    async def close(self) -> None: ...


class SchedulerBackend(Protocol):
    """What the engine needs from the store, in-process or over the API."""

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
        """Atomically lease up to `limit` due jobs (oldest due first), start a run for each,
        and return them with their context. With `ahead_ms` > 0 a job due within that long
        counts as due (a claim ahead: the engine starts it at its `due_at`; pause and lease
        are still judged now). With `history` False the contexts may leave out past
        messages and results (the planner reads neither). With `wait_ms` > 0 and nothing
        due, wait up to
        that long for a job to become due (a new or run-now job, or an existing job whose
        `next_run_at` arrives). Returning early and empty when jobs changed is allowed: the
        engine then re-reads `next_due_at()` and polls again. The wait must be
        cancel-safe (the engine cancels an idle long-poll on shutdown): wait first, then
        claim in one short transaction."""
        ...

    async def extend(self, lease: Lease, lease_ms: int) -> Lease:
        """Renew a lease; raises LeaseLostError if it was lost or expired."""
        ...

    async def record_plan(self, lease: Lease, decision: PlanDecision) -> None: ...

    async def complete(self, lease: Lease, completion: RunCompletion) -> None:
        """Write the run, results, summary message, schedule, tokens and errors and release
        the lease, in one transaction. LeaseLostError (nothing written) if fenced out."""
        ...

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
        """Last-resort write when `complete` itself failed: mark the run failed, record
        `error` once, set the fallback `next_run` and `consecutive_failures`, add the tokens
        already spent, and release the lease, in one transaction. LeaseLostError (nothing
        written) if fenced out."""
        ...

    async def release(self, lease: Lease, reason: str = "released") -> None:
        """Give the job back without completing it (the run is marked aborted, with
        `reason` as its error; `next_run_at` is unchanged)."""
        ...

    async def next_due_at(self) -> datetime | None:
        """Earliest due time among claimable jobs, for the idle sleep."""
        ...

    async def heartbeat(self, worker_id: str, info: Heartbeat) -> None: ...

    async def close(self) -> None: ...
