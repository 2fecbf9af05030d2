"""How the outside world sees a worker: heartbeats to the backend (for `status` from any
machine) and, with `metrics.port`, a Prometheus /metrics + /health endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from cronicorn.domain.models import Heartbeat

if TYPE_CHECKING:
    from cronicorn.engine.engine import SchedulingEngine
    from cronicorn.observability.server import MetricsServer

logger = logging.getLogger("cronicorn.engine.worker")


class WorkerPresence:
    def __init__(self, engine: SchedulingEngine) -> None:
        self._engine = engine
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._server: MetricsServer | None = None

    @property
    def metrics_url(self) -> str | None:
        return self._server.url if self._server is not None else None

    async def start(self) -> None:
        self._heartbeat_task = asyncio.create_task(self._heartbeats(), name="cronicorn-heartbeat")
        engine = self._engine
        port = engine.config.metrics.port
        if port is not None and engine.metrics is not None and self._server is None:
            from cronicorn.observability.server import start_metrics_server

            self._server = await start_metrics_server(
                engine.metrics.registry, port=port, health=self._health
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
        engine = self._engine
        interval_s = engine.config.scheduler.heartbeat_interval_ms / 1000
        while not engine.stopping:
            await self.send_heartbeat()
            sleeper = asyncio.ensure_future(engine.clock.sleep(interval_s))
            stop = asyncio.ensure_future(engine.stopping_event.wait())
            await asyncio.wait({sleeper, stop}, return_when=asyncio.FIRST_COMPLETED)
            sleeper.cancel()
            stop.cancel()

    async def send_heartbeat(self, *, stopped: bool = False) -> None:
        engine = self._engine
        state = engine.get_state()
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
            await engine.backend.heartbeat(engine.worker_id, info)
        except Exception as exc:
            logger.warning("heartbeat failed: %s", exc)

    async def _mark_stopped(self) -> None:
        """Optional backend capability: show this worker as stopped in `status` at once."""
        engine = self._engine
        mark = getattr(engine.backend, "mark_worker_stopped", None)
        if mark is None:
            return
        try:
            await mark(engine.worker_id)
        except Exception as exc:
            logger.warning("marking worker %s stopped failed: %s", engine.worker_id, exc)

    def _health(self) -> dict[str, Any]:
        state = self._engine.get_state()
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
