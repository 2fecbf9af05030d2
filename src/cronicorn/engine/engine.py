"""`SchedulingEngine`: the worker's lifecycle around the dispatcher and the loop.

The engine composes the parts (the per-job pipeline, the dispatcher that claims into free run
slots, the idle loop, the worker's presence) and owns start, stop and `process_cycle`.
Claiming, the jobs' tasks and draining live in `cronicorn.engine.dispatcher`; waiting
between claims in `cronicorn.engine.loop`; heartbeats and /metrics in
`cronicorn.engine.worker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

from cronicorn.ai.planner import Planner, uses_history
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.delivery import DeliveryGate
from cronicorn.engine.dispatcher import Dispatch, Dispatcher
from cronicorn.engine.events import EventBus
from cronicorn.engine.heap import freeze_startup_heap
from cronicorn.engine.loop import IdleWaiter, run_loop
from cronicorn.engine.pipeline import JobPipeline
from cronicorn.engine.ports import Executor, SchedulerBackend
from cronicorn.engine.signals import SHUTDOWN_SIGNALS, signals_set
from cronicorn.engine.stats import CycleResult, EngineState, EngineStatus, StatsRecorder
from cronicorn.engine.worker import WorkerPresence, close_resources
from cronicorn.observability.logging import log_context
from cronicorn.runtime.clock import Clock, SystemClock

if TYPE_CHECKING:
    from cronicorn.observability.metrics import EngineMetrics

logger = logging.getLogger("cronicorn.engine")


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
        self._stopping = asyncio.Event()
        self._dispatcher = Dispatcher(
            scheduler=config.scheduler,
            worker_id=self.worker_id,
            backend=backend,
            run_job=self._pipeline.run,
            clock=self.clock,
            events=self.events,
            stats=self._stats,
            deliveries=self.deliveries,
            stopping=self._stopping,
            history=uses_history(planner),
        )
        self.idle = IdleWaiter(
            dispatcher=self._dispatcher,
            next_due_at=backend.next_due_at,
            clock=self.clock,
            scheduler=config.scheduler,
            stopping=self._stopping,
        )
        self._presence = WorkerPresence(
            worker_id=self.worker_id,
            backend=backend,
            state=self.get_state,
            clock=self.clock,
            stopping=self._stopping,
            heartbeat_interval_ms=config.scheduler.heartbeat_interval_ms,
            metrics=self.metrics,
            metrics_port=config.metrics.port,
        )
        self._loop_task: asyncio.Task[None] | None = None
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
        await self._dispatcher.drain()
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
        dispatch = await self._dispatcher.dispatch(wait_ms=0, count_empty=True, ahead=False)
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
            last_processing_time=self._dispatcher.last_cycle_at,
            stats=self._stats.snapshot(),
            worker_id=self.worker_id,
            running_jobs=self._dispatcher.running,
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

    # -- the stop signal, and the dispatcher's view (for observers) -------------------

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
        return self._dispatcher.free_slots

    def claim_limit(self) -> int:
        """How many jobs the next claim asks for (see `Dispatcher.claim_limit`)."""
        return self._dispatcher.claim_limit()

    async def wait_for_slot(self) -> int:
        """Block until at least one job slot is free (or the engine stops: returns 0)."""
        return await self._dispatcher.wait_for_slot()

    async def dispatch(self, *, wait_ms: int, count_empty: bool) -> Dispatch:
        """One claim and its jobs started (see `Dispatcher.dispatch`)."""
        return await self._dispatcher.dispatch(wait_ms=wait_ms, count_empty=count_empty)

    # -- background tasks ---------------------------------------------------------------

    async def _run_loop(self) -> None:
        try:
            await run_loop(self._dispatcher, self.idle, self._stopping)
        except Exception:
            logger.exception("engine loop crashed")
            self._status = "error"
            self._stopping.set()
