"""Engine events: the hooks of `EventsConfig`, each isolated.

A hook is any callable (sync or async) taking one `EngineEvent`. A hook that raises is
logged and ignored: user code must never break a run or leave a lease behind. Async hooks
run as background tasks so that a slow hook does not stall the pipeline; `drain()` waits
for them (the engine calls it on stop).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cronicorn.domain.models import CircuitState
from cronicorn.engine.config import EventsConfig
from cronicorn.engine.logs import (
    log_circuit_change,
    log_endpoint_finished,
    log_retry,
    log_retry_exhausted,
)
from cronicorn.runtime.clock import Clock

logger = logging.getLogger("cronicorn.engine.events")

EVENT_NAMES = tuple(EventsConfig.model_fields)


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """What a hook receives. `data` keys per event are documented in docs/engine.md."""

    name: str
    at: datetime
    job_id: str | None = None
    run_id: str | None = None
    cycle_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


class EventBus:
    """Dispatches events to the configured hooks without ever raising."""

    def __init__(self, config: EventsConfig, clock: Clock | None = None) -> None:
        self._config = config
        self._clock = clock
        self._pending: set[asyncio.Task[None]] = set()

    def wants(self, name: str) -> bool:
        """A hook is set for `name`: callers with costly event data build it only then."""
        return getattr(self._config, name, None) is not None

    def emit(
        self,
        name: str,
        *,
        job_id: str | None = None,
        run_id: str | None = None,
        cycle_id: str | None = None,
        **data: Any,
    ) -> None:
        """Fire `name` if a hook is set. Never raises, never blocks on an async hook."""
        if name not in EVENT_NAMES:
            raise ValueError(f"unknown engine event {name!r}")
        hook = getattr(self._config, name, None)
        if hook is None:
            return
        at = self._clock.now() if self._clock else datetime.now(UTC)
        event = EngineEvent(name, at, job_id, run_id, cycle_id, data)
        try:
            outcome = hook(event)
        except Exception:
            logger.exception("event hook %s raised; ignored", name)
            return
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(self._await_hook(name, outcome))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _await_hook(name: str, outcome: Any) -> None:
        try:
            await outcome
        except Exception:
            logger.exception("async event hook %s raised; ignored", name)

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) for async hooks still running."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout_s)


class JobExecutorEvents:
    """Routes the executor's callbacks (`ExecutorEvents` port) to the engine's hooks,
    tagged with the job and run they belong to."""

    def __init__(
        self,
        bus: EventBus,
        job_id: str,
        run_id: str,
        on_circuit: Callable[[str, CircuitState, CircuitState], None] | None = None,
    ) -> None:
        self._bus = bus
        self._ids = {"job_id": job_id, "run_id": run_id}
        self._on_circuit = on_circuit

    def on_endpoint_progress(self, endpoint_id: str, stage: str, data: Mapping[str, Any]) -> None:
        if stage == "finished":
            log_endpoint_finished(endpoint_id, data)
        self._bus.emit(
            "on_endpoint_progress",
            **self._ids,
            endpoint_id=endpoint_id,
            stage=stage,
            details=dict(data),
        )

    def on_retry_attempt(self, endpoint_id: str, attempt: int, delay_s: float, reason: str) -> None:
        log_retry(endpoint_id, attempt, delay_s, reason)
        self._bus.emit(
            "on_retry_attempt",
            **self._ids,
            endpoint_id=endpoint_id,
            attempt=attempt,
            delay_s=delay_s,
            reason=reason,
        )

    def on_retry_exhausted(self, endpoint_id: str, attempts: int, reason: str) -> None:
        log_retry_exhausted(endpoint_id, attempts, reason)
        self._bus.emit(
            "on_retry_exhausted",
            **self._ids,
            endpoint_id=endpoint_id,
            attempts=attempts,
            reason=reason,
        )

    def on_circuit_state_change(
        self, endpoint_id: str, old: CircuitState, new: CircuitState
    ) -> None:
        log_circuit_change(endpoint_id, old, new)
        if self._on_circuit is not None:
            try:
                self._on_circuit(endpoint_id, old, new)
            except Exception:
                logger.exception("recording a circuit change failed; ignored")
        self._bus.emit(
            "on_circuit_state_change", **self._ids, endpoint_id=endpoint_id, old=old, new=new
        )
