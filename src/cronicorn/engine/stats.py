"""What the engine reports about itself: cycle results, job outcomes, state and stats.

Counters live in memory per worker (they are also sent with every heartbeat, so `status`
can show them from anywhere). `metrics.enabled = False` turns the counters off;
`metrics.track_token_usage = False` leaves the token totals at zero.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from cronicorn.domain.models import CircuitState, EndpointResult, RunStatus, TokenUsage
from cronicorn.engine.config import MetricsConfig

if TYPE_CHECKING:
    from cronicorn.observability.metrics import EngineMetrics

EngineStatus = Literal["running", "stopped", "stopping", "error"]
PLANNER_COUNTERS = ("malformed_responses", "repair_attempts", "repair_successes")


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """How one claimed job ended. `written` is False when nothing could be persisted
    (lease lost, or the backend was down: the lease then expires and the job re-runs)."""

    job_id: str
    run_id: str
    status: RunStatus
    written: bool
    endpoint_calls: int = 0
    ai_calls: int = 0
    usage: TokenUsage = field(default_factory=TokenUsage)
    fallbacks: int = 0
    error: str | None = None
    ai_trigger: str | None = None
    cost_usd: float = 0.0
    calls_avoided: dict[str, int] = field(default_factory=dict)
    """AI phases not sent to the model, by reason (`reused`, `budget`)."""


@dataclass(frozen=True, slots=True)
class CycleResult:
    """One claim batch and how its jobs ended (SPEC §4 `process_cycle`)."""

    jobs_processed: int
    successful_jobs: int
    failed_jobs: int
    errors: list[str]
    duration_ms: float
    aborted_jobs: int = 0
    cycle_id: str = ""

    @classmethod
    def from_outcomes(
        cls, cycle_id: str, outcomes: list[JobOutcome], errors: list[str], duration_ms: float
    ) -> CycleResult:
        ok = sum(1 for o in outcomes if o.status is RunStatus.COMPLETED)
        aborted = sum(1 for o in outcomes if o.status is RunStatus.ABORTED)
        job_errors = [f"job {o.job_id}: {o.error}" for o in outcomes if o.error]
        return cls(
            jobs_processed=len(outcomes),
            successful_jobs=ok,
            failed_jobs=len(outcomes) - ok - aborted,
            errors=[*errors, *job_errors],
            duration_ms=duration_ms,
            aborted_jobs=aborted,
            cycle_id=cycle_id,
        )


@dataclass(slots=True)
class EngineStats:
    total_jobs_processed: int = 0
    successful_jobs: int = 0
    failed_jobs: int = 0
    aborted_jobs: int = 0
    total_endpoint_calls: int = 0
    ai_agent_calls: int = 0
    total_cycles: int = 0
    avg_cycle_ms: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0
    malformed_responses: int = 0
    repair_attempts: int = 0
    repair_successes: int = 0
    fallbacks: int = 0
    leases_lost: int = 0
    cost_usd: float = 0.0
    ai_calls_avoided: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class EngineState:
    status: EngineStatus
    start_time: datetime | None
    stop_time: datetime | None
    last_processing_time: datetime | None
    stats: EngineStats
    worker_id: str = ""
    running_jobs: int = 0


class StatsRecorder:
    """Accumulates outcomes into `EngineStats` and, when given, Prometheus `EngineMetrics`,
    honouring the metrics switches."""

    def __init__(
        self, config: MetricsConfig, planner: object, metrics: EngineMetrics | None = None
    ) -> None:
        self._config = config
        self._planner = planner
        self._stats = EngineStats()
        self._cycle_ms_total = 0.0
        self.metrics = metrics if config.enabled else None

    def record_job(
        self,
        outcome: JobOutcome,
        results: Sequence[EndpointResult] = (),
        lag_s: float | None = None,
    ) -> None:
        if not self._config.enabled:
            return
        if self.metrics is not None:  # it adds the job id label only if built to
            self.metrics.observe_run(outcome.status, results, lag_s, outcome.job_id)
            self.metrics.observe_model_use(
                outcome.ai_trigger, outcome.ai_calls, outcome.calls_avoided, outcome.cost_usd
            )
        s = self._stats
        s.total_jobs_processed += 1
        if outcome.status is RunStatus.COMPLETED:
            s.successful_jobs += 1
        elif outcome.status is RunStatus.ABORTED:
            s.aborted_jobs += 1
        else:
            s.failed_jobs += 1
        s.total_endpoint_calls += outcome.endpoint_calls
        s.ai_agent_calls += outcome.ai_calls
        s.fallbacks += outcome.fallbacks
        s.cost_usd = round(s.cost_usd + outcome.cost_usd, 9)
        s.ai_calls_avoided += sum(outcome.calls_avoided.values())
        if self._config.track_token_usage:
            u = outcome.usage
            s.input_tokens += u.input
            s.output_tokens += u.output
            s.reasoning_tokens += u.reasoning
            s.cached_tokens += u.cached
            s.total_tokens += u.total

    def record_cycle(self, duration_ms: float) -> None:
        if not self._config.enabled:
            return
        if self.metrics is not None:
            self.metrics.cycle(duration_ms / 1000)
        self._stats.total_cycles += 1
        self._cycle_ms_total += duration_ms
        self._stats.avg_cycle_ms = self._cycle_ms_total / self._stats.total_cycles

    def record_lease_lost(self) -> None:
        if self._config.enabled:
            self._stats.leases_lost += 1
        if self.metrics is not None:
            self.metrics.lease_lost()

    def record_fallback(self, reason: str | None) -> None:
        """Prometheus only: the stats counter counts decisions (see `JobOutcome.fallbacks`)."""
        if self.metrics is not None:
            self.metrics.fallback(reason)

    def record_circuit(self, endpoint_id: str, old: CircuitState, new: CircuitState) -> None:
        if self.metrics is not None:
            self.metrics.circuit_changed(endpoint_id, old, new)

    @contextmanager
    def job_in_flight(self) -> Iterator[None]:
        with self.metrics.job_in_flight() if self.metrics is not None else nullcontext():
            yield

    def snapshot(self) -> EngineStats:
        """A copy, with the planner's own counters (repairs, malformed output) folded in."""
        copy = EngineStats(**self._stats.as_dict())
        if self._config.enabled:
            for name in PLANNER_COUNTERS:
                setattr(copy, name, _planner_counter(self._planner, name))
        return copy


def _planner_counter(planner: object, name: str) -> int:
    """Read a counter from the planner's `stats` (object or mapping), 0 if absent."""
    stats = getattr(planner, "stats", None)
    if stats is None:
        return 0
    value = stats.get(name, 0) if isinstance(stats, dict) else getattr(stats, name, 0)
    return int(value) if isinstance(value, int | float) else 0
