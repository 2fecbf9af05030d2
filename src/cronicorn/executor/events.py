"""The callbacks the executor raises (`ExecutorEvents`, a port the engine implements), and
their delivery isolated from the executor's control flow.

Hooks are user code. A hook that raises must not fail an endpoint call, skip a retry or leave
a circuit half-updated, so every delivery is wrapped: the error is logged and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from cronicorn.domain.models import CircuitState

log = logging.getLogger("cronicorn.executor.events")


class ExecutorEvents(Protocol):
    """Callbacks the executor raises; implementations must not raise back."""

    def on_endpoint_progress(
        self, endpoint_id: str, stage: str, data: Mapping[str, Any]
    ) -> None: ...

    def on_retry_attempt(
        self, endpoint_id: str, attempt: int, delay_s: float, reason: str
    ) -> None: ...

    def on_retry_exhausted(self, endpoint_id: str, attempts: int, reason: str) -> None: ...

    def on_circuit_state_change(
        self, endpoint_id: str, old: CircuitState, new: CircuitState
    ) -> None: ...


class SafeEvents:
    """Wraps an optional ExecutorEvents; with None every method is a cheap no-op."""

    __slots__ = ("_target",)

    def __init__(self, target: ExecutorEvents | None) -> None:
        self._target = target

    @property
    def active(self) -> bool:
        return self._target is not None

    def _fail(self, hook: str) -> None:
        log.warning("executor event hook %s raised; ignored", hook, exc_info=True)

    def on_endpoint_progress(self, endpoint_id: str, stage: str, data: Mapping[str, Any]) -> None:
        if self._target is not None:
            try:
                self._target.on_endpoint_progress(endpoint_id, stage, data)
            except Exception:
                self._fail("on_endpoint_progress")

    def on_retry_attempt(self, endpoint_id: str, attempt: int, delay_s: float, reason: str) -> None:
        if self._target is not None:
            try:
                self._target.on_retry_attempt(endpoint_id, attempt, delay_s, reason)
            except Exception:
                self._fail("on_retry_attempt")

    def on_retry_exhausted(self, endpoint_id: str, attempts: int, reason: str) -> None:
        if self._target is not None:
            try:
                self._target.on_retry_exhausted(endpoint_id, attempts, reason)
            except Exception:
                self._fail("on_retry_exhausted")

    def on_circuit_state_change(
        self, endpoint_id: str, old: CircuitState, new: CircuitState
    ) -> None:
        if self._target is not None:
            try:
                self._target.on_circuit_state_change(endpoint_id, old, new)
            except Exception:
                self._fail("on_circuit_state_change")
