"""`SchedulingEngine`: claims due jobs and runs them through the pipeline, concurrently.

One worker runs up to `scheduler.job_concurrency` jobs at once; the loop claims only as
many jobs as there are free slots (at most `max_batch_size` per claim) and claims again as
soon as a slot frees up, so a slow job never blocks the others. The loop never overlaps
itself (claims are serialised); waiting between claims lives in `cronicorn.engine.loop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cronicorn.ai.planner import Planner
from cronicorn.domain.models import ClaimedJob, RunStatus
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.delivery import DeliveryGate
from cronicorn.engine.events import EventBus
from cronicorn.engine.heap import freeze_startup_heap
from cronicorn.engine.lease import LeaseKeeper
from cronicorn.engine.logs import log_cycle_end, log_cycle_start
from cronicorn.engine.loop import Dispatch, IdleWaiter, run_loop
from cronicorn.engine.pipeline import JobPipeline
from cronicorn.engine.ports import Executor, SchedulerBackend
from cronicorn.engine.signals import SHUTDOWN_SIGNALS, signals_set
from cronicorn.observability.logging import log_context
from cronicorn.runtime.clock import Clock, SystemClock

if TYPE_CHECKING:
    from cronicorn.observability.metrics import EngineMetrics
from cronicorn.engine.stats import (
    CycleResult,
    EngineState,
    EngineStatus,
    JobOutcome,
    StatsRecorder,
)
from cronicorn.engine.worker import WorkerPresence, close_resources

logger = logging.getLogger("cronicorn.engine")
CLAIM_CANCEL_ATTEMPTS = 40
ABORT_RECORD_TIMEOUT_S = 10.0
"""After the grace period: how long aborted jobs get to record themselves before their
tasks are cancelled (which releases their leases)."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _engine_metrics(config: EngineConfig) -> EngineMetrics:
    from cronicorn.observability.metrics import EngineMetrics

    return EngineMetrics(
        per_job_labels=config.metrics.per_job_labels,
        track_token_usage=config.metrics.track_token_usage,
    )


class SchedulingEngine:
    def __init__(
        self,
        config: EngineConfig,
        *,
        backend: SchedulerBackend,
        planner: Planner,
        executor: Executor,
        clock: Clock | None = None,
        worker_id: str | None = None,
        owned: Iterable[object] = (),
        metrics: EngineMetrics | None = None,
    ) -> None:
        """`owned`: adapters this engine created and must close on `stop()`. `metrics`:
        Prometheus metrics to feed (created from `config.metrics` when not given)."""
        self.config = config
        self.worker_id = worker_id or config.scheduler.worker_id or default_worker_id()
        self.backend = backend
        self.planner = planner
        self.executor = executor
        self.clock: Clock = clock or SystemClock()
        self.events = EventBus(config.events, self.clock)
        if metrics is None and config.metrics.enabled:
            metrics = _engine_metrics(config)
        self._stats = StatsRecorder(config.metrics, planner, metrics)
        self.metrics = self._stats.metrics
        observe = getattr(planner, "set_observer", None)
        if self.metrics is not None and callable(observe):
            observe(self.metrics)  # AI calls, tokens, latency and repairs
        self.deliveries = DeliveryGate()
        self._pipeline = JobPipeline(
            config,
            backend=backend,
            planner=planner,
            executor=executor,
            clock=self.clock,
            events=self.events,
            stats=self._stats,
            deliveries=self.deliveries,
        )
        self._owned = list(owned)
        self._status: EngineStatus = "stopped"
        self._start_time: datetime | None = None
        self._stop_time: datetime | None = None
        self._last_processing_time: datetime | None = None
        self._running: dict[asyncio.Task[JobOutcome], asyncio.Event] = {}
        self._cycles: set[asyncio.Task[CycleResult]] = set()
        self._cleanup: set[asyncio.Future[None]] = set()
        self._claim_lock = asyncio.Lock()
        self._slot_freed = asyncio.Event()
        self._run_slots = asyncio.Semaphore(config.scheduler.job_concurrency)
        """At most `job_concurrency` jobs run; a cycle may claim more (up to
        `max_batch_size`), which wait here for a slot with their leases kept."""
        self._stopping = asyncio.Event()
        self.idle = IdleWaiter(self)
        self._loop_task: asyncio.Task[None] | None = None
        self._presence = WorkerPresence(self)
        self._stopped = asyncio.Event()
        self._backend_prepared = False

    # -- public API ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the loop in a background task; the first cycle runs at once."""
        if self._status in ("running", "stopping"):
            return
        await self._prepare_backend()
        freeze_startup_heap()
        self._stopping.clear()
        self._stopped.clear()
        self._status = "running"
        self._start_time = self.clock.now()
        self._stop_time = None
        with log_context(worker_id=self.worker_id):  # inherited by the loop and its tasks
            self._loop_task = asyncio.create_task(self._run_loop(), name="cronicorn-engine-loop")
            await self._presence.start()
            logger.info("engine %s started", self.worker_id)
            if not self.config.metrics.track_token_usage:
                logger.warning(
                    "metrics.track_token_usage is off: token usage is not recorded (stats, "
                    "metrics, runs, job totals), so daily_token_budget limits are not enforced"
                )

    async def stop(self) -> None:
        """Graceful: stop claiming, let running jobs finish within `shutdown_grace_ms`,
        abort the rest (recorded as aborted), release every lease, close owned adapters."""
        if self._status == "stopped" and self._loop_task is None:
            await close_resources(self._owned)
            self._owned = []
            return
        self._status = "stopping"
        self._stopping.set()
        self.idle.wake()
        if self._loop_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        await self._drain_jobs()
        if self._cycles:
            await asyncio.wait(set(self._cycles), timeout=ABORT_RECORD_TIMEOUT_S)
        await self._presence.stop()
        await self.events.drain()
        await close_resources(self._owned)
        self._owned = []
        self._loop_task = None
        self._status = "stopped"
        self._stop_time = self.clock.now()
        self._stopped.set()
        logger.info("engine %s stopped", self.worker_id)

    async def process_cycle(self) -> CycleResult:
        """Claim what is due now (up to the free slots) and wait for those jobs."""
        await self._prepare_backend()
        started = self.clock.monotonic()
        dispatch = await self.dispatch(wait_ms=0, count_empty=True)
        if dispatch.cycle is None:
            return CycleResult(0, 0, 0, [], (self.clock.monotonic() - started) * 1000)
        return await dispatch.cycle

    async def _prepare_backend(self) -> None:
        """A backend that needs it gets ready before the first claim (the local backend made
        by `create_scheduling_engine` brings an embedded SQLite schema up to date)."""
        if self._backend_prepared:
            return
        prepare = getattr(self.backend, "prepare", None)
        if callable(prepare):
            await prepare()
        self._backend_prepared = True

    def get_state(self) -> EngineState:
        return EngineState(
            status=self._status,
            start_time=self._start_time,
            stop_time=self._stop_time,
            last_processing_time=self._last_processing_time,
            stats=self._stats.snapshot(),
            worker_id=self.worker_id,
            running_jobs=len(self._running),
        )

    @property
    def metrics_url(self) -> str | None:
        """Where /metrics and /health are served (`metrics.port`), once started."""
        return self._presence.metrics_url

    def wake(self) -> None:
        """Something may be due now (e.g. a job created in-process): stop idling."""
        self.idle.wake()

    async def run_until_signal(self, signals: Iterable[signal.Signals] = SHUTDOWN_SIGNALS) -> None:
        """Start, run until one of `signals` arrives, then stop gracefully. For the CLI:
        the handlers exist only while this coroutine runs."""
        received = asyncio.Event()
        with signals_set(received, signals):
            try:
                await self.start()
                waiter = asyncio.ensure_future(received.wait())
                stopped = asyncio.ensure_future(self._stopped.wait())
                await asyncio.wait({waiter, stopped}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopped.cancel()
            finally:
                await self.stop()

    async def __aenter__(self) -> SchedulingEngine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- claiming and dispatch ----------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def stopping_event(self) -> asyncio.Event:
        """Set as soon as stop() is called (waits race against it); not when stopped."""
        return self._stopping

    @property
    def free_slots(self) -> int:
        """Run slots not taken by a claimed job (running or waiting to run)."""
        return max(0, self.config.scheduler.job_concurrency - len(self._running))

    def claim_limit(self) -> int:
        """How many jobs the next claim asks for: a cycle that starts idle takes up to
        `max_batch_size` (those beyond `job_concurrency` wait for a run slot); while jobs are
        in flight the loop only refills free run slots, so a busy worker does not hoard."""
        batch = self.config.scheduler.max_batch_size
        return batch if not self._running else min(batch, self.free_slots)

    async def wait_for_slot(self) -> int:
        """Block until at least one job slot is free (or the engine stops: returns 0)."""
        while not self.stopping and self.free_slots == 0:
            self._slot_freed.clear()
            stop = asyncio.ensure_future(self._stopping.wait())
            freed = asyncio.ensure_future(self._slot_freed.wait())
            await asyncio.wait({stop, freed}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            freed.cancel()
        return 0 if self.stopping else self.free_slots

    async def dispatch(self, *, wait_ms: int, count_empty: bool) -> Dispatch:
        """One claim (serialised: the loop never overlaps itself) and its jobs started.

        The returned `cycle` task completes with the cycle's result once all its jobs end;
        it is None when nothing was claimed and `count_empty` is False (an idle long-poll
        that found nothing is not a cycle)."""
        async with self._claim_lock:
            cycle_id = uuid.uuid4().hex[:12]
            with log_context(worker_id=self.worker_id, cycle_id=cycle_id):
                return await self._dispatch(cycle_id, wait_ms, count_empty)

    async def _dispatch(self, cycle_id: str, wait_ms: int, count_empty: bool) -> Dispatch:
        """`dispatch` under its log context: the claim, the jobs and the cycle task all log
        this cycle's id."""
        started = self.clock.monotonic()
        limit = self.claim_limit()
        errors: list[str] = []
        claimed: list[ClaimedJob] = []
        if limit > 0 and not self.stopping:
            try:
                claimed = await self._claim(limit, wait_ms)
            except Exception as exc:
                errors.append(self._claim_failed(cycle_id, exc))
            if wait_ms > 0:
                # Time spent idle inside a long-poll is not part of the cycle.
                started = self.clock.monotonic()
        if not claimed and not errors and not count_empty:
            return Dispatch(0, limit)
        if claimed:
            self.idle.claimed()
        self._last_processing_time = self.clock.now()
        log_cycle_start(len(claimed), limit)
        self.events.emit("on_cycle_start", cycle_id=cycle_id, claimed=len(claimed))
        tasks = [self._spawn(job, cycle_id) for job in claimed]
        cycle = asyncio.create_task(self._finish_cycle(cycle_id, started, tasks, errors))
        self._cycles.add(cycle)
        cycle.add_done_callback(self._cycles.discard)
        return Dispatch(len(claimed), limit, failed=bool(errors), cycle=cycle)

    def _claim_failed(self, cycle_id: str, exc: Exception) -> str:
        logger.warning("claim failed: %s", exc)
        self.events.emit(
            "on_error", cycle_id=cycle_id, phase="claim", code=type(exc).__name__, message=str(exc)
        )
        self.idle.claim_failed()
        return f"claim: {type(exc).__name__}: {exc}"

    async def _claim(self, limit: int, wait_ms: int) -> list[ClaimedJob]:
        lease_ms = self.config.scheduler.stale_lock_threshold_ms
        if self.deliveries.waiting:
            await self._await_deliveries()
            if self.stopping:
                return []
        if wait_ms <= 0:
            return await self.backend.claim(self.worker_id, limit, lease_ms, 0)
        # A long-poll must not delay shutdown: cancel it when stop() is called; anything it
        # claimed anyway is given straight back.
        claim = asyncio.ensure_future(self.backend.claim(self.worker_id, limit, lease_ms, wait_ms))
        stop = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({claim, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not claim.done():
            await self._cancel_claim(claim)
        if claim.cancelled():
            return []
        jobs = claim.result()
        if self.stopping:
            await self._release_all(jobs)
            return []
        return jobs

    async def _await_deliveries(self) -> None:
        """Completions are waiting for the backend (it was unreachable): deliver them before
        claiming more. Once the API is back, a claim landing first could take over one of
        their jobs — its lease may have run out during the outage — and run it again. Not
        bounded by time: a delivery ends as soon as the API answers at all, and a claim
        could not get through before that either. stop() ends the wait."""
        idle = asyncio.ensure_future(self.deliveries.wait_idle())
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
                else self._background(self._release_all(done.result()))
            )
        )

    async def _release_all(self, jobs: list[ClaimedJob]) -> None:
        for job in jobs:
            try:
                await self.backend.release(job.lease)
            except Exception as exc:
                logger.warning("releasing job %s failed: %s", job.lease.job_id, exc)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    def _spawn(self, job: ClaimedJob, cycle_id: str) -> asyncio.Task[JobOutcome]:
        abort = asyncio.Event()
        task = asyncio.create_task(
            self._run_in_slot(job, abort, cycle_id), name=f"job-{job.lease.job_id}"
        )
        self._running[task] = abort
        task.add_done_callback(self._job_done)
        return task

    async def _run_in_slot(
        self, job: ClaimedJob, abort: asyncio.Event, cycle_id: str
    ) -> JobOutcome:
        """Run the job once a run slot is free; until then its lease is kept alive. A job
        still waiting when the engine stops (or whose lease is lost) is given back unrun."""
        if self._run_slots.locked():
            lease_ms = self.config.scheduler.stale_lock_threshold_ms
            keeper = LeaseKeeper(self.backend, job.lease, lease_ms, self.clock, abort.set)
            async with keeper:
                started = await self._wait_for_run_slot(abort)
            job = replace(job, lease=keeper.lease)
            if not started:
                if not keeper.lost:
                    await self._release_all([job])
                return JobOutcome(
                    job.lease.job_id,
                    job.lease.run_id,
                    RunStatus.ABORTED,
                    written=False,
                    error="not started: the engine stopped or the lease was lost",
                )
        else:
            await self._run_slots.acquire()
        try:
            return await self._pipeline.run(job, abort, cycle_id)
        finally:
            self._run_slots.release()

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
        if held and (self.stopping or abort.is_set()):
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
        duration_ms = (self.clock.monotonic() - started) * 1000
        result = CycleResult.from_outcomes(cycle_id, outcomes, errors, duration_ms)
        self._stats.record_cycle(duration_ms)
        log_cycle_end(result, len(errors))
        self.events.emit(
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

    # -- background tasks ---------------------------------------------------------------

    async def _run_loop(self) -> None:
        try:
            await run_loop(self)
        except Exception:
            logger.exception("engine loop crashed")
            self._status = "error"
            self._stopping.set()

    async def _drain_jobs(self) -> None:
        if not self._running:
            return
        grace_s = self.config.scheduler.shutdown_grace_ms / 1000
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
