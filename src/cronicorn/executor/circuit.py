"""Per-endpoint circuit breaker.

A failing endpoint should not be hammered by every run of every job that uses it, nor slow
those runs down with timeouts. Failures that say "the server is unhealthy or unreachable"
(network errors, timeouts, 5xx, 429) are counted in a sliding time window; at the threshold the
circuit opens and calls are refused without a request. After the cooldown the next call
half-opens it and at most `half_open_max_calls` trial calls are admitted (counted at admission,
so concurrent callers cannot overshoot); a trial success closes it, a trial failure re-opens it.
Other 4xx answers prove the server is up, so they count as successes for the breaker.

State lives in memory, per executor instance (one per worker), across runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from cronicorn.domain.models import CircuitState
from cronicorn.executor.config import CircuitBreakerConfig

CLOSED = CircuitState.CLOSED
OPEN = CircuitState.OPEN
HALF_OPEN = CircuitState.HALF_OPEN

TransitionHook = Callable[[str, CircuitState, CircuitState], None]
"""(endpoint_id, old_state, new_state)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof of admission; `trial` marks a half-open trial call."""

    endpoint_id: str
    trial: bool


@dataclass(slots=True)
class _Circuit:
    closed_ticket: Ticket
    state: CircuitState = CLOSED
    failures: deque[float] = field(default_factory=deque)
    opened_at: float = 0.0
    trials_in_flight: int = 0


class CircuitBreakers:
    """All circuits of one executor. Not thread-safe; used from one event loop."""

    def __init__(self, config: CircuitBreakerConfig, monotonic: Callable[[], float]) -> None:
        self._config = config
        self._monotonic = monotonic
        self._circuits: dict[str, _Circuit] = {}

    def state(self, endpoint_id: str) -> CircuitState:
        circuit = self._circuits.get(endpoint_id)
        return circuit.state if circuit is not None else CLOSED

    def admit(self, endpoint_id: str, on_change: TransitionHook) -> Ticket | None:
        """A ticket if a request may be sent now, None if the circuit refuses it."""
        if not self._config.enabled:
            return Ticket(endpoint_id, trial=False)
        circuit = self._circuits.get(endpoint_id)
        if circuit is None:
            circuit = self._circuits[endpoint_id] = _Circuit(Ticket(endpoint_id, trial=False))
        if circuit.state == CLOSED:
            return circuit.closed_ticket
        if circuit.state == OPEN:
            if self._monotonic() - circuit.opened_at < self._config.cooldown_ms / 1000:
                return None
            self._move(endpoint_id, circuit, HALF_OPEN, on_change)
        if circuit.trials_in_flight >= self._config.half_open_max_calls:
            return None
        circuit.trials_in_flight += 1
        return Ticket(endpoint_id, trial=True)

    def record(self, ticket: Ticket, *, failure: bool, on_change: TransitionHook) -> None:
        """The outcome of an admitted call that reached (or tried to reach) the server."""
        if not self._config.enabled:
            return
        circuit = self._circuits[ticket.endpoint_id]
        if ticket.trial:
            circuit.trials_in_flight -= 1
        if ticket.trial and circuit.state == HALF_OPEN:
            if failure:
                self._open(ticket.endpoint_id, circuit, on_change)
            else:
                circuit.failures.clear()
                self._move(ticket.endpoint_id, circuit, CLOSED, on_change)
            return
        if not failure or circuit.state != CLOSED:
            return
        now = self._monotonic()
        window = self._config.window_ms / 1000
        circuit.failures.append(now)
        while circuit.failures and now - circuit.failures[0] > window:
            circuit.failures.popleft()
        if len(circuit.failures) >= self._config.failure_threshold:
            self._open(ticket.endpoint_id, circuit, on_change)

    def release(self, ticket: Ticket) -> None:
        """Give back an admission whose call never reached a verdict (aborted, blocked)."""
        if self._config.enabled and ticket.trial:
            self._circuits[ticket.endpoint_id].trials_in_flight -= 1

    def _open(self, endpoint_id: str, circuit: _Circuit, on_change: TransitionHook) -> None:
        circuit.opened_at = self._monotonic()
        circuit.failures.clear()
        self._move(endpoint_id, circuit, OPEN, on_change)

    @staticmethod
    def _move(
        endpoint_id: str, circuit: _Circuit, new: CircuitState, on_change: TransitionHook
    ) -> None:
        old, circuit.state = circuit.state, new
        if old != new:
            on_change(endpoint_id, old, new)
