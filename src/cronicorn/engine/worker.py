"""How the outside world sees a worker: heartbeats to the backend (for `status` from any
machine) and, with `metrics.port`, a Prometheus /metrics + /health endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cronicorn.domain.models import Heartbeat

if TYPE_CHECKING:
    from cronicorn.engine.ports import Clock, SchedulerBackend
    from cronicorn.engine.stats import EngineState
    from cronicorn.observability.metrics import EngineMetrics
    from cronicorn.observability.server import MetricsServer

logger = logging.getLogger("cronicorn.engine.worker")


class WorkerPresence:
    """Heartbeats `state()` to the backend every `heartbeat_interval_ms` until `stopping`
    is set, and serves `metrics` on `metrics_port` (if both are given)."""

    def __init__(
        self,
        *,
        worker_id: str,
        backend: SchedulerBackend,
        state: Callable[[], EngineState],
        clock: Clock,
        stopping: asyncio.Event,
        heartbeat_interval_ms: int,
        metrics: EngineMetrics | None = None,
        metrics_port: int | None = None,
    ) -> None:
        self._worker_id = worker_id
        self._backend = backend
        self._state = state
        self._clock = clock
        self._stopping = stopping
        self._interval_s = heartbeat_interval_ms / 1000
        self._metrics = metrics
        self._metrics_port = metrics_port
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._server: MetricsServer | None = None

    @property
    def metrics_url(self) -> str | None:
        return self._server.url if self._server is not None else None

    async def start(self) -> None:
        self._heartbeat_task = asyncio.create_task(self._heartbeats(), name="cronicorn-heartbeat")
        port, metrics = self._metrics_port, self._metrics
        if port is not None and metrics is not None and self._server is None:
            from cronicorn.observability.server import start_metrics_server

            self._server = await start_metrics_server(
                metrics.registry, port=port, health=self._health
            )

    async def stop(self) -> None:
        """Last heartbeat (marked stopped), then the metrics endpoint goes away."""
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
            self._heartbeat_task = None
        await self.send_heartbeat(stopped=True)
        await self._mark_stopped()
        if self._server is not None:
            await self._server.stop()
            self._server = None

    async def _heartbeats(self) -> None:
        while not self._stopping.is_set():
            await self.send_heartbeat()
            sleeper = asyncio.ensure_future(self._clock.sleep(self._interval_s))
            stop = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({sleeper, stop}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stop.cancel()

    async def send_heartbeat(self, *, stopped: bool = False) -> None:
        state = self._state()
        info = Heartbeat(
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=state.start_time,
            last_cycle_at=state.last_processing_time,
            running_jobs=state.running_jobs,
            stopped=stopped,
            stats=state.stats.as_dict(),
        )
        try:
            await self._backend.heartbeat(self._worker_id, info)
        except Exception as exc:
            logger.warning("heartbeat failed: %s", exc)

    async def _mark_stopped(self) -> None:
        """Optional backend capability: show this worker as stopped in `status` at once."""
        mark = getattr(self._backend, "mark_worker_stopped", None)
        if mark is None:
            return
        try:
            await mark(self._worker_id)
        except Exception as exc:
            logger.warning("marking worker %s stopped failed: %s", self._worker_id, exc)

    def _health(self) -> dict[str, Any]:
        state = self._state()
        status = "ok" if state.status == "running" else state.status
        return {"status": status, "worker_id": state.worker_id, "running_jobs": state.running_jobs}


async def close_resources(resources: Iterable[object]) -> None:
    """`aclose()` or `close()` (sync or async) each resource; failures are logged."""
    for resource in resources:
        for name in ("aclose", "close"):
            closer = getattr(resource, name, None)
            if closer is None:
                continue
            try:
                outcome = closer()
                if asyncio.iscoroutine(outcome):
                    await outcome
            except Exception as exc:
                logger.warning("closing %r failed: %s", resource, exc)
            break
