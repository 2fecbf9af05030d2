"""Per-endpoint circuit breaker.

A failing endpoint should not be hammered by every run of every job that uses it, nor slow
those runs down with timeouts. Failures that say "the server is unhealthy or unreachable"
(network errors, timeouts, 5xx, 429) are counted in a sliding time window; at the threshold the
circuit opens and calls are refused without a request. After the cooldown the next call
half-opens it and at most `half_open_max_calls` trial calls are admitted (counted at admission,
so concurrent callers cannot overshoot); a trial success closes it, a trial failure re-opens it.
Other 4xx answers prove the server is up, so they count as successes for the breaker.

State lives in memory, per executor instance (one per worker), across runs. Only circuits
that hold state are kept: a closed circuit with no failure left in the window is the same as
none, so it is dropped. A worker that calls a million healthy endpoints keeps no table of
them (it did, and the garbage collector's full passes over it grew into 100 ms pauses).
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

SWEEP_MIN_CIRCUITS = 1024
"""The table is swept for circuits whose failures have expired once it reaches this size
(and again each time it has doubled since)."""

TransitionHook = Callable[[str, CircuitState, CircuitState], None]
"""(endpoint_id, old_state, new_state)."""


@dataclass(frozen=True, slots=True)
class Ticket:
    """Proof of admission; `trial` marks a half-open trial call."""

    endpoint_id: str
    trial: bool


@dataclass(slots=True)
class _Circuit:
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
        """Circuits holding state: failures in the window, open, or half-open."""
        self._sweep_at = SWEEP_MIN_CIRCUITS

    @property
    def tracked(self) -> int:
        """How many circuits hold state (the others are closed and clean)."""
        return len(self._circuits)

    def state(self, endpoint_id: str) -> CircuitState:
        circuit = self._circuits.get(endpoint_id)
        return circuit.state if circuit is not None else CLOSED

    def admit(self, endpoint_id: str, on_change: TransitionHook) -> Ticket | None:
        """A ticket if a request may be sent now, None if the circuit refuses it."""
        circuit = self._circuits.get(endpoint_id) if self._config.enabled else None
        if circuit is None or circuit.state == CLOSED:
            return Ticket(endpoint_id, trial=False)
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
        endpoint_id = ticket.endpoint_id
        circuit = self._circuits.get(endpoint_id)
        if circuit is None:
            if not failure:
                return  # closed and clean: nothing to remember
            circuit = self._circuits[endpoint_id] = _Circuit()
            self._sweep_if_grown()
        if ticket.trial:
            circuit.trials_in_flight -= 1
        if ticket.trial and circuit.state == HALF_OPEN:
            if failure:
                self._open(endpoint_id, circuit, on_change)
            else:
                circuit.failures.clear()
                self._move(endpoint_id, circuit, CLOSED, on_change)
                self._forget_if_clean(endpoint_id, circuit)
            return
        if circuit.state != CLOSED:
            return
        now = self._monotonic()
        if failure:
            circuit.failures.append(now)
        self._expire(circuit, now)
        if len(circuit.failures) >= self._config.failure_threshold:
            self._open(endpoint_id, circuit, on_change)
        else:
            self._forget_if_clean(endpoint_id, circuit)

    def release(self, ticket: Ticket) -> None:
        """Give back an admission whose call never reached a verdict (aborted, blocked)."""
        if not (self._config.enabled and ticket.trial):
            return
        circuit = self._circuits.get(ticket.endpoint_id)
        if circuit is not None:
            circuit.trials_in_flight -= 1

    def _expire(self, circuit: _Circuit, now: float) -> None:
        """Drop the failures that have left the window."""
        window = self._config.window_ms / 1000
        failures = circuit.failures
        while failures and now - failures[0] > window:
            failures.popleft()

    def _forget_if_clean(self, endpoint_id: str, circuit: _Circuit) -> None:
        if circuit.state == CLOSED and not circuit.failures and not circuit.trials_in_flight:
            del self._circuits[endpoint_id]

    def _sweep_if_grown(self) -> None:
        """Endpoints that failed once and were never called again would stay: when the
        table has doubled since the last sweep, drop the closed circuits whose failures have
        all left the window (amortised O(1) per new circuit)."""
        if len(self._circuits) < self._sweep_at:
            return
        now = self._monotonic()
        for endpoint_id, circuit in list(self._circuits.items()):
            if circuit.state == CLOSED:
                self._expire(circuit, now)
                self._forget_if_clean(endpoint_id, circuit)
        self._sweep_at = max(SWEEP_MIN_CIRCUITS, 2 * len(self._circuits))

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
