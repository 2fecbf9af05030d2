"""`SchedulerBackend` on the database itself, for the all-in-one process and tests.

Completions are group-committed: concurrent `complete` calls are coalesced by a
`WriteBatcher` into one `complete_runs` transaction (each caller still gets its own
`LeaseLostError`).

Claims long-poll cheaply: after an empty claim the backend sleeps until the earliest of the
caller's deadline, the next known due time, a wake-up (`wake()`, an in-process
`notify_jobs_changed`, or a PostgreSQL NOTIFY) and a short poll interval that catches
changes made by other processes on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

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
from cronicorn.errors import BackendUnavailableError, LeaseLostError
from cronicorn.runtime.batching import WriteBatcher
from cronicorn.runtime.clock import Clock
from cronicorn.store.db import create_engine
from cronicorn.store.notify import JobChangeListener, register_local_waker
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox
from cronicorn.store.workers import WorkerInfo

log = logging.getLogger(__name__)
MIN_WAIT_S = 0.002
"""Shortest sleep when the store says a job is due but the claim found none (a race)."""
DUE_TOLERANCE_S = 0.002
"""A due time this close after the caller's deadline is still waited for and claimed."""
_WHOLE_BATCH_ERRORS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    OSError,
    TimeoutError,
)


def _item_specific(exc: BaseException) -> bool:
    """Worth retrying a failed batch item by item (a constraint broken by one item), unlike
    a database that is down or locked, which would fail every item again."""
    return not isinstance(exc, _WHOLE_BATCH_ERRORS)


class LocalSchedulerBackend:
    """The engine's store port, implemented in-process on a `SchedulerRepository`.

    Given a URL it owns (and disposes) its engine; given an `AsyncEngine` it does not.
    `clock` (optional) supplies "now" for due checks and lease expiry, so the engine's
    tests can drive time; waiting itself is always real time. `write_batch_size` caps the
    completions written per transaction.
    """

    def __init__(
        self,
        engine_or_url: AsyncEngine | str,
        secret_box: SecretBox,
        *,
        clock: Clock | None = None,
        poll_interval_ms: int = 1_000,
        listen: bool = True,
        history_limit: int = 50,
        results_per_endpoint: int = 5,
        write_batch_size: int = 128,
        prepare_schema: bool = False,
    ) -> None:
        """`prepare_schema` (with a URL): `prepare()` brings an embedded SQLite schema up to
        date and checks a PostgreSQL one (see `store.migrate.prepare_schema`)."""
        self._owns_engine = isinstance(engine_or_url, str)
        self._url = engine_or_url if isinstance(engine_or_url, str) else None
        self._prepare = prepare_schema and self._url is not None
        self._prepared = asyncio.Lock()
        engine = create_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
        self.repository = SchedulerRepository(
            engine,
            secret_box,
            history_limit=history_limit,
            results_per_endpoint=results_per_endpoint,
        )
        self._clock = clock
        self._poll_s = poll_interval_ms / 1000.0
        self._listen = listen and engine.dialect.name == "postgresql"
        self._wake = asyncio.Event()
        self._unregister: Callable[[], None] | None = None
        self._listener: JobChangeListener | None = None
        self._completions: WriteBatcher[tuple[Lease, RunCompletion]] = WriteBatcher(
            self._write_completions, max_batch=write_batch_size, split_on_error=_item_specific
        )

    async def prepare(self) -> None:
        """Before first use (the engine calls it): the schema check/upgrade, once."""
        async with self._prepared:
            if self._prepare and self._url is not None:
                from cronicorn.store.migrate import prepare_schema  # Alembic: only when needed

                await prepare_schema(self._url)
                self._prepare = False

    @property
    def completion_batches(self) -> int:
        """Completion transactions written so far (each holds one or more runs)."""
        return self._completions.batches

    def _now(self) -> datetime:
        return self._clock.now() if self._clock is not None else datetime.now(UTC)

    def wake(self) -> None:
        """Make a waiting `claim` look again now (e.g. after a job was created)."""
        self._wake.set()

    async def _ensure_wakeups(self) -> None:
        if self._unregister is None:
            self._unregister = register_local_waker(self.wake)
        if self._listen and (self._listener is None or not self._listener.active):
            engine = self.repository.engine
            url = self._url or engine.url.render_as_string(hide_password=False)
            listener = JobChangeListener(url, self.wake)
            try:
                await listener.start()
                self._listener = listener
            except Exception as exc:  # fall back to polling; retried on the next wait
                log.warning("LISTEN %s unavailable, polling instead: %s", "cronicorn_jobs", exc)

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
        """Claim due jobs; with `wait_ms` > 0 and none due, wait (bounded) for one. With
        `ahead_ms`, jobs due within that long count as due (a claim ahead).

        While waiting, the store is asked *when* the next job is due (an indexed read) and
        the claim (a write transaction) runs when that time (less `ahead_ms`) comes — not
        claimed in vain first and again after every wake-up."""
        deadline = time.monotonic() + max(0, wait_ms) / 1000.0
        ahead = timedelta(milliseconds=max(0, ahead_ms))
        claim_now = wait_ms <= 0
        while True:
            self._wake.clear()
            now = self._now()
            due = None if claim_now else await self.repository.next_due_at(now=now)
            if claim_now or (due is not None and due - ahead <= now):
                jobs = await self.repository.claim_due_jobs(
                    worker_id, limit, lease_ms, now=now, ahead_ms=ahead_ms, history=history
                )
                if jobs:
                    return jobs
                # Nothing after all (another worker was faster): when is the next one?
                due = await self.repository.next_due_at(now=now)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self._ensure_wakeups()
            claim_now = await self._sleep_until(None if due is None else due - ahead, remaining)

    async def _sleep_until(self, due: datetime | None, remaining: float) -> bool:
        """Sleep until `due` (bounded by `remaining` and the poll interval) or a wake-up.
        True when the sleep ended because `due` arrived: claim without asking again."""
        timeout = min(remaining, self._poll_s)
        at_due = False
        if due is not None:
            until_due = max(MIN_WAIT_S, (due - self._now()).total_seconds())
            if until_due <= timeout + DUE_TOLERANCE_S:
                timeout, at_due = until_due, True
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return at_due
        return False

    async def extend(self, lease: Lease, lease_ms: int) -> Lease:
        return await self.repository.extend_lease(lease, lease_ms, now=self._now())

    async def record_plan(self, lease: Lease, decision: PlanDecision) -> None:
        await self.repository.record_plan(lease, decision, now=self._now())

    async def complete(self, lease: Lease, completion: RunCompletion) -> None:
        """A database that is down or locked is `BackendUnavailableError` (transient: the
        engine keeps the completion and sends it again)."""
        try:
            await self._completions.submit((lease, completion))
        except _WHOLE_BATCH_ERRORS as exc:
            raise BackendUnavailableError(f"completion not stored: {exc}") from exc

    async def complete_many(
        self, items: Sequence[tuple[Lease, RunCompletion]]
    ) -> list[BaseException | None]:
        """Complete several runs; one outcome per item (None: written). They join the same
        group commit as concurrent `complete` calls. Errors that would fail any write
        (database down) are raised instead of being reported per item."""
        outcomes = await asyncio.gather(
            *(self._completions.submit(item) for item in items), return_exceptions=True
        )
        for outcome in outcomes:
            if outcome is None or isinstance(outcome, LeaseLostError):
                continue
            if isinstance(outcome, _WHOLE_BATCH_ERRORS):
                raise BackendUnavailableError(f"completions not stored: {outcome}") from outcome
            if not isinstance(outcome, Exception) or not _item_specific(outcome):
                raise outcome
        return list(outcomes)

    async def _write_completions(
        self, items: list[tuple[Lease, RunCompletion]]
    ) -> list[LeaseLostError | None]:
        return await self.repository.complete_runs(items, now=self._now())

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
        await self.repository.fail_run(
            lease,
            error,
            next_run,
            consecutive_failures,
            now=self._now(),
            usage=usage,
            ai_calls=ai_calls,
        )

    async def release(self, lease: Lease, reason: str = "released") -> None:
        await self.repository.release(lease, now=self._now(), reason=reason)

    async def next_due_at(self) -> datetime | None:
        return await self.repository.next_due_at(now=self._now())

    async def heartbeat(self, worker_id: str, info: Heartbeat) -> None:
        await self.repository.record_heartbeat(worker_id, info, now=self._now())

    async def mark_worker_stopped(self, worker_id: str) -> None:
        await self.repository.mark_worker_stopped(worker_id, now=self._now())

    async def list_workers(self, limit: int | None = None) -> list[WorkerInfo]:
        return await self.repository.list_workers(limit)

    async def force_unlock(
        self, job_ids: Sequence[str] | None = None, stale_only: bool = True
    ) -> list[str]:
        return await self.repository.force_unlock(job_ids, stale_only, now=self._now())

    async def close(self) -> None:
        await self._completions.drain()
        if self._unregister is not None:
            self._unregister()
            self._unregister = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._owns_engine:
            await self.repository.engine.dispose()
