"""The dispatcher: claims due jobs into free run slots and keeps their tasks until they end.

One worker runs up to `scheduler.job_concurrency` jobs at once. A claim that starts with
nothing running takes up to `max_batch_size` jobs (those beyond `job_concurrency` wait for a
run slot, their leases kept alive); while jobs are in flight a claim only refills free slots.
Claims are serialised, so the loop (`cronicorn.engine.loop`) never overlaps itself. On stop,
`drain()` lets running jobs finish within `shutdown_grace_ms`, aborts the rest and waits for
their cycles to record themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cronicorn.domain.models import ClaimedJob, RunStatus
from cronicorn.engine.config import SchedulerConfig
from cronicorn.engine.delivery import DeliveryGate
from cronicorn.engine.events import EventBus
from cronicorn.engine.lease import LeaseKeeper
from cronicorn.engine.logs import log_cycle_end, log_cycle_start
from cronicorn.engine.ports import SchedulerBackend
from cronicorn.engine.stats import CycleResult, JobOutcome, StatsRecorder
from cronicorn.observability.logging import log_context
from cronicorn.runtime.abort import AbortSignal
from cronicorn.runtime.clock import Clock

logger = logging.getLogger("cronicorn.engine")
CLAIM_CANCEL_ATTEMPTS = 40
ABORT_RECORD_TIMEOUT_S = 10.0
"""After the grace period: how long aborted jobs get to record themselves before their
tasks are cancelled (which releases their leases)."""
NOT_STARTED = "not started: the engine stopped"
"""The error of a run given back unrun on shutdown (claimed, but never started)."""

RunJob = Callable[[ClaimedJob, asyncio.Event, str], Awaitable[JobOutcome]]
"""Runs one claimed job to its outcome (`JobPipeline.run`): the job, its abort event, the
cycle id."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """What one claim did: how many jobs it started out of how many slots."""

    claimed: int
    limit: int
    failed: bool = False
    cycle: asyncio.Task[CycleResult] | None = None


class Dispatcher:
    """Claims into free run slots, runs each claimed job in its own task, and drains them."""

    def __init__(
        self,
        *,
        scheduler: SchedulerConfig,
        worker_id: str,
        backend: SchedulerBackend,
        run_job: RunJob,
        clock: Clock,
        events: EventBus,
        stats: StatsRecorder,
        deliveries: DeliveryGate,
        stopping: asyncio.Event,
        history: bool = True,
    ) -> None:
        """`deliveries`: completions waiting for the backend (no claim while any wait).
        `stopping`: set when the engine stops; claims and slot waits end at once.
        `history`: claim jobs with their past messages and results (the planner reads
        them; see `cronicorn.ai.planner.uses_history`)."""
        self._scheduler = scheduler
        self._worker_id = worker_id
        self._backend = backend
        self._run_job = run_job
        self._clock = clock
        self._events = events
        self._stats = stats
        self._deliveries = deliveries
        self._stopping = stopping
        self._history = history
        self._running: dict[asyncio.Task[JobOutcome], asyncio.Event] = {}
        self._cycles: set[asyncio.Task[CycleResult]] = set()
        self._cleanup: set[asyncio.Future[None]] = set()
        self._claim_lock = asyncio.Lock()
        self._slot_freed = asyncio.Event()
        self._run_slots = asyncio.Semaphore(scheduler.job_concurrency)
        """At most `job_concurrency` jobs run; a cycle may claim more (up to
        `max_batch_size`), which wait here for a slot with their leases kept."""
        self.last_cycle_at: datetime | None = None
        """When the last cycle started (a claim that found jobs, or a counted empty one)."""

    @property
    def running(self) -> int:
        """Claimed jobs not finished yet (running or waiting for a run slot)."""
        return len(self._running)

    @property
    def free_slots(self) -> int:
        """Run slots not taken by a claimed job (running or waiting to run)."""
        return max(0, self._scheduler.job_concurrency - len(self._running))

    def claim_limit(self) -> int:
        """How many jobs the next claim asks for: a cycle that starts idle takes up to
        `max_batch_size` (those beyond `job_concurrency` wait for a run slot); while jobs are
        in flight the loop only refills free run slots, so a busy worker does not hoard."""
        batch = self._scheduler.max_batch_size
        return batch if not self._running else min(batch, self.free_slots)

    async def wait_for_slot(self) -> int:
        """Block until at least one job slot is free (or the engine stops: returns 0)."""
        while not self._stopping.is_set() and self.free_slots == 0:
            self._slot_freed.clear()
            stop = asyncio.ensure_future(self._stopping.wait())
            freed = asyncio.ensure_future(self._slot_freed.wait())
            await asyncio.wait({stop, freed}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            freed.cancel()
        return 0 if self._stopping.is_set() else self.free_slots

    async def dispatch(self, *, wait_ms: int, count_empty: bool, ahead: bool = True) -> Dispatch:
        """One claim (serialised: the loop never overlaps itself) and its jobs started.

        With `ahead`, the claim takes jobs due within `scheduler.claim_ahead_ms` too; each
        job then starts at its due time. The returned `cycle` task completes with the
        cycle's result once all its jobs end; it is None when nothing was claimed and
        `count_empty` is False (an idle long-poll that found nothing is not a cycle)."""
        async with self._claim_lock:
            cycle_id = uuid.uuid4().hex[:12]
            ahead_ms = self._scheduler.claim_ahead_ms if ahead else 0
            with log_context(worker_id=self._worker_id, cycle_id=cycle_id):
                return await self._dispatch(cycle_id, wait_ms, count_empty, ahead_ms)

    async def drain(self) -> None:
        """On stop (claims already ended): running jobs get `shutdown_grace_ms` to finish;
        the rest are aborted, and cancelled if they cannot record themselves in time. Then
        their cycles get to report."""
        await self._drain_jobs()
        if self._cycles:
            await asyncio.wait(set(self._cycles), timeout=ABORT_RECORD_TIMEOUT_S)

    # -- claiming -------------------------------------------------------------------------

    async def _dispatch(
        self, cycle_id: str, wait_ms: int, count_empty: bool, ahead_ms: int
    ) -> Dispatch:
        """`dispatch` under its log context: the claim, the jobs and the cycle task all log
        this cycle's id."""
        started = self._clock.monotonic()
        limit = self.claim_limit()
        errors: list[str] = []
        claimed: list[ClaimedJob] = []
        if limit > 0 and not self._stopping.is_set():
            try:
                claimed = await self._claim(limit, wait_ms, ahead_ms)
            except Exception as exc:
                errors.append(self._claim_failed(cycle_id, exc))
            if wait_ms > 0:
                # Time spent idle inside a long-poll is not part of the cycle.
                started = self._clock.monotonic()
        if not claimed and not errors and not count_empty:
            return Dispatch(0, limit)
        self.last_cycle_at = self._clock.now()
        log_cycle_start(len(claimed), limit)
        self._events.emit("on_cycle_start", cycle_id=cycle_id, claimed=len(claimed))
        tasks = [self._spawn(job, cycle_id) for job in claimed]
        cycle = asyncio.create_task(self._finish_cycle(cycle_id, started, tasks, errors))
        self._cycles.add(cycle)
        cycle.add_done_callback(self._cycles.discard)
        return Dispatch(len(claimed), limit, failed=bool(errors), cycle=cycle)

    def _claim_failed(self, cycle_id: str, exc: Exception) -> str:
        logger.warning("claim failed: %s", exc)
        self._events.emit(
            "on_error", cycle_id=cycle_id, phase="claim", code=type(exc).__name__, message=str(exc)
        )
        return f"claim: {type(exc).__name__}: {exc}"

    async def _claim(self, limit: int, wait_ms: int, ahead_ms: int) -> list[ClaimedJob]:
        lease_ms = self._scheduler.stale_lock_threshold_ms
        if self._deliveries.waiting:
            await self._await_deliveries()
            if self._stopping.is_set():
                return []
        if wait_ms <= 0:
            return await self._backend.claim(
                self._worker_id, limit, lease_ms, 0, ahead_ms=ahead_ms, history=self._history
            )
        # A long-poll must not delay shutdown: cancel it when stop() is called; anything it
        # claims after that is given straight back. A claim that had returned when stop()
        # came is started like any other: its jobs run within the shutdown grace period.
        claim = asyncio.ensure_future(
            self._backend.claim(
                self._worker_id,
                limit,
                lease_ms,
                wait_ms,
                ahead_ms=ahead_ms,
                history=self._history,
            )
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if claim.done():
            return claim.result()
        await self._cancel_claim(claim)
        if claim.done() and not claim.cancelled() and claim.exception() is None:
            await self._release_all(claim.result(), NOT_STARTED)
        return []  # cancelled, failed, or still running: its jobs are released when it ends

    async def _await_deliveries(self) -> None:
        """Completions are waiting for the backend (it was unreachable): deliver them before
        claiming more. Once the API is back, a claim landing first could take over one of
        their jobs — its lease may have run out during the outage — and run it again. Not
        bounded by time: a delivery ends as soon as the API answers at all, and a claim
        could not get through before that either. stop() ends the wait."""
        idle = asyncio.ensure_future(self._deliveries.wait_idle())
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({idle, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            stop.cancel()

    async def _cancel_claim(self, claim: asyncio.Future[list[ClaimedJob]]) -> None:
        """Cancel a long-poll claim and wait until it has really ended. Cancellation can be
        swallowed when it races a wake-up (asyncio.wait_for on 3.11), so insist a while; if
        the claim still runs, let it go and give back whatever it claims."""
        for _ in range(CLAIM_CANCEL_ATTEMPTS):
            claim.cancel()
            await asyncio.wait({claim}, timeout=0.05)
            if claim.done():
                return
        logger.warning("a long-poll claim ignored cancellation; its jobs will be released")
        claim.add_done_callback(
            lambda done: (
                None
                if done.cancelled() or done.exception() is not None
                else self._background(self._release_all(done.result(), NOT_STARTED))
            )
        )

    async def _release_all(self, jobs: list[ClaimedJob], reason: str) -> None:
        for job in jobs:
            try:
                await self._backend.release(job.lease, reason)
            except Exception as exc:
                logger.warning("releasing job %s failed: %s", job.lease.job_id, exc)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    # -- job tasks ------------------------------------------------------------------------

    def _spawn(self, job: ClaimedJob, cycle_id: str) -> asyncio.Task[JobOutcome]:
        abort = AbortSignal()
        task = asyncio.create_task(
            self._run_in_slot(job, abort, cycle_id), name=f"job-{job.lease.job_id}"
        )
        self._running[task] = abort
        task.add_done_callback(self._job_done)
        return task

    async def _run_in_slot(
        self, job: ClaimedJob, abort: asyncio.Event, cycle_id: str
    ) -> JobOutcome:
        """Run the job at its due time (a claim ahead leased it early) once a run slot is
        free; while it waits for a slot its lease is kept alive. A job still waiting when
        the engine stops (or whose lease is lost) is given back unrun."""
        if not await self._wait_until_due(job, abort):
            return await self._give_back_unrun(job, lost=False)
        if self._run_slots.locked():
            lease_ms = self._scheduler.stale_lock_threshold_ms
            keeper = LeaseKeeper(self._backend, job.lease, lease_ms, self._clock, abort.set)
            async with keeper:
                started = await self._wait_for_run_slot(abort)
            job = replace(job, lease=keeper.lease)
            if not started:
                return await self._give_back_unrun(job, lost=keeper.lost)
        else:
            await self._run_slots.acquire()
        try:
            return await self._run_job(job, abort, cycle_id)
        finally:
            self._run_slots.release()

    async def _give_back_unrun(self, job: ClaimedJob, *, lost: bool) -> JobOutcome:
        if not lost:
            await self._release_all([job], NOT_STARTED)
        return JobOutcome(
            job.lease.job_id,
            job.lease.run_id,
            RunStatus.ABORTED,
            written=False,
            error="not started: the engine stopped or the lease was lost",
        )

    async def _wait_until_due(self, job: ClaimedJob, abort: asyncio.Event) -> bool:
        """A job claimed ahead waits for its due time (its lease outlives the wait: the
        claim-ahead window is shorter than a lease). Never early: a timer may fire a
        fraction of a millisecond before its time, so the clock is read again after each
        sleep. Stopping does not end the wait: the job is claimed and due within the window,
        so it runs like the other claimed jobs within the shutdown grace period (given back,
        it would leave an aborted run and wait for the next engine). False if aborted first
        (the grace period ran out, or the lease was lost)."""
        while (delay := (job.due_at - self._clock.now()).total_seconds()) > 0:
            sleep = asyncio.ensure_future(self._clock.sleep(delay))
            lost = asyncio.ensure_future(abort.wait())
            try:
                await asyncio.wait({sleep, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleep.cancel()
                lost.cancel()
            if abort.is_set():
                return False
        return not abort.is_set()

    async def _wait_for_run_slot(self, abort: asyncio.Event) -> bool:
        """True once a run slot is held; False (holding none) if stopped or aborted first."""
        acquire = asyncio.ensure_future(self._run_slots.acquire())
        stop = asyncio.ensure_future(self._stopping.wait())
        lost = asyncio.ensure_future(abort.wait())
        try:
            await asyncio.wait({acquire, stop, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            lost.cancel()
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
        held = acquire.done() and not acquire.cancelled()
        if held and (self._stopping.is_set() or abort.is_set()):
            self._run_slots.release()
            return False
        return held

    def _job_done(self, task: asyncio.Task[JobOutcome]) -> None:
        self._running.pop(task, None)
        self._slot_freed.set()

    async def _finish_cycle(
        self,
        cycle_id: str,
        started: float,
        tasks: list[asyncio.Task[JobOutcome]],
        errors: list[str],
    ) -> CycleResult:
        gathered = await asyncio.gather(*tasks, return_exceptions=True)
        outcomes: list[JobOutcome] = []
        for task, item in zip(tasks, gathered, strict=True):
            if isinstance(item, JobOutcome):
                outcomes.append(item)
            else:
                outcomes.append(self._crashed(task, item))
        duration_ms = (self._clock.monotonic() - started) * 1000
        result = CycleResult.from_outcomes(cycle_id, outcomes, errors, duration_ms)
        self._stats.record_cycle(duration_ms)
        log_cycle_end(result, len(errors))
        self._events.emit(
            "on_cycle_end",
            cycle_id=cycle_id,
            jobs_processed=result.jobs_processed,
            successful_jobs=result.successful_jobs,
            failed_jobs=result.failed_jobs,
            aborted_jobs=result.aborted_jobs,
            errors=list(result.errors),
            duration_ms=duration_ms,
        )
        return result

    def _crashed(self, task: asyncio.Task[JobOutcome], exc: BaseException) -> JobOutcome:
        """A pipeline task that was cancelled (shutdown) or crashed: it released its lease."""
        name = task.get_name().removeprefix("job-")
        status = RunStatus.ABORTED if isinstance(exc, asyncio.CancelledError) else RunStatus.FAILED
        if status is RunStatus.FAILED:
            logger.error("pipeline crashed for job %s", name, exc_info=exc)
        outcome = JobOutcome(name, "", status, written=False, error=repr(exc))
        self._stats.record_job(outcome)
        return outcome

    # -- draining -------------------------------------------------------------------------

    async def _drain_jobs(self) -> None:
        if not self._running:
            return
        grace_s = self._scheduler.shutdown_grace_ms / 1000
        _, pending = await asyncio.wait(set(self._running), timeout=grace_s)
        if not pending:
            return
        logger.warning("aborting %d job(s) still running after the grace period", len(pending))
        for task in pending:
            self._running[task].set()
        _, pending = await asyncio.wait(pending, timeout=ABORT_RECORD_TIMEOUT_S)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
