"""Prometheus metrics with domain-level methods (SPEC §10).

Each process component owns a `CollectorRegistry` (never the global one), so tests and
embedded engines can create as many as they like. Label values are bounded: outcomes and
categories come from enums and anything unexpected is counted as `other`; job and endpoint ids
appear in labels only with `per_job_labels=True` (unbounded cardinality, opt-in).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from cronicorn.domain.models import (
    AITrigger,
    CircuitState,
    EndpointResult,
    EndpointStatus,
    ErrorCategory,
    RunStatus,
    TokenUsage,
)

NAMESPACE = "cronicorn"
OTHER = "other"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
AI_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class AIPhase(StrEnum):
    PLAN = "plan"
    SCHEDULE = "schedule"


class AIOutcome(StrEnum):
    SUCCESS = "success"
    INVALID_OUTPUT = "invalid_output"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


class RepairOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"


class FallbackReason(StrEnum):
    NOT_CONFIGURED = "not_configured"
    BUDGET_EXCEEDED = "budget_exceeded"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    INVALID_OUTPUT = "invalid_output"
    ERROR = "error"


TOKEN_KINDS = ("input", "output", "reasoning", "cached")
AVOIDED_REASONS = ("reused", "budget")

_FALLBACK_RULES: tuple[tuple[re.Pattern[str], FallbackReason], ...] = (
    (re.compile(r"budget", re.I), FallbackReason.BUDGET_EXCEEDED),
    (
        re.compile(r"api[ _-]?key|not configured|no ai|disabled", re.I),
        FallbackReason.NOT_CONFIGURED,
    ),
    (re.compile(r"time ?out|timed out", re.I), FallbackReason.TIMEOUT),
    (re.compile(r"rate|429|quota", re.I), FallbackReason.RATE_LIMITED),
    (re.compile(r"invalid|malformed|schema|repair|pars", re.I), FallbackReason.INVALID_OUTPUT),
)


def bounded(value: object, allowed: Iterable[str]) -> str:
    """`value` as a label if it is one of `allowed`, else `other` (keeps cardinality fixed)."""
    text = str(value.value if isinstance(value, StrEnum) else value).lower()
    return text if text in (allowed if isinstance(allowed, frozenset) else set(allowed)) else OTHER


def classify_fallback_reason(reason: str | None) -> FallbackReason:
    """Map a planner's free-text fallback reason to a bounded class."""
    if isinstance(reason, FallbackReason):
        return reason
    for pattern, cls in _FALLBACK_RULES:
        if reason and pattern.search(reason):
            return cls
    if reason in {r.value for r in FallbackReason}:
        return FallbackReason(reason)
    return FallbackReason.ERROR


@functools.cache
def _values(enum: type[StrEnum]) -> frozenset[str]:
    """The label values of `enum` (built once: several lookups per finished run)."""
    return frozenset(member.value for member in enum)


_Labelled = Counter | Histogram


class EngineMetrics:
    """The engine's metrics. Create one per engine; `registry` is what `/metrics` serves."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        per_job_labels: bool = False,
        track_token_usage: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.per_job_labels = per_job_labels
        self.track_token_usage = track_token_usage
        self._circuits: dict[str, str] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._declare(self.registry)

    def _declare(self, r: CollectorRegistry) -> None:
        ns = NAMESPACE
        self.jobs_processed = Counter(
            "jobs_processed_total",
            "Finished runs by outcome.",
            ["outcome"],
            namespace=ns,
            registry=r,
        )
        self.endpoint_calls = Counter(
            "endpoint_calls_total",
            "Endpoint calls by outcome and error category.",
            ["outcome", "category"],
            namespace=ns,
            registry=r,
        )
        self.endpoint_latency = Histogram(
            "endpoint_latency_seconds",
            "Endpoint call duration (all attempts).",
            ["outcome"],
            namespace=ns,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.scheduling_lag = Histogram(
            "scheduling_lag_seconds",
            "Due time to start of the run.",
            namespace=ns,
            registry=r,
            buckets=LAG_BUCKETS,
        )
        self.cycle_duration = Histogram(
            "cycle_duration_seconds",
            "Duration of one engine cycle.",
            namespace=ns,
            registry=r,
            buckets=LATENCY_BUCKETS,
        )
        self.ai_calls = Counter(
            "ai_calls_total",
            "AI calls by phase and outcome.",
            ["phase", "outcome"],
            namespace=ns,
            registry=r,
        )
        self.ai_tokens = Counter(
            "ai_tokens_total",
            "AI tokens by phase and kind.",
            ["phase", "kind"],
            namespace=ns,
            registry=r,
        )
        self.ai_latency = Histogram(
            "ai_latency_seconds",
            "AI call duration by phase.",
            ["phase"],
            namespace=ns,
            registry=r,
            buckets=AI_BUCKETS,
        )
        self.ai_repairs = Counter(
            "ai_repairs_total",
            "Repair attempts of invalid AI output by outcome.",
            ["outcome"],
            namespace=ns,
            registry=r,
        )
        self.model_calls = Counter(
            "ai_model_calls_total",
            "Requests sent to the model, by why the run asked (`ai_trigger`; none: no trigger).",
            ["trigger"],
            namespace=ns,
            registry=r,
        )
        self.model_calls_avoided = Counter(
            "ai_model_calls_avoided_total",
            "AI phases not sent to the model: `reused` (on_change kept the last decision) "
            "or `budget` (a token or money budget was spent).",
            ["reason"],
            namespace=ns,
            registry=r,
        )
        self.ai_cost = Counter(
            "ai_cost_usd_total",
            "What the model calls cost, in US dollars (docs/ai.md, prices).",
            namespace=ns,
            registry=r,
        )
        self.planner_fallbacks = Counter(
            "planner_fallbacks_total",
            "Switches to the rules planner by reason class.",
            ["reason_class"],
            namespace=ns,
            registry=r,
        )
        self.circuit_state = Gauge(
            "circuit_state",
            "Endpoints whose circuit breaker is in each state.",
            ["state"],
            namespace=ns,
            registry=r,
        )
        self.leases_lost = Counter(
            "leases_lost_total",
            "Leases lost while a job was running.",
            namespace=ns,
            registry=r,
        )
        self.jobs_in_flight = Gauge(
            "jobs_in_flight",
            "Jobs running now in this worker.",
            namespace=ns,
            registry=r,
        )
        for state in (member.value for member in CircuitState):  # in declaration order
            self.circuit_state.labels(state=state).set(0)
        self.job_runs: Counter | None = None
        self.endpoint_circuit: Gauge | None = None
        if self.per_job_labels:
            self.job_runs = Counter(
                "job_runs_total",
                "Finished runs per job (opt-in).",
                ["job_id", "outcome"],
                namespace=ns,
                registry=r,
            )
            self.endpoint_circuit = Gauge(
                "endpoint_circuit_state",
                "1 for the current circuit state of an endpoint.",
                ["endpoint_id", "state"],
                namespace=ns,
                registry=r,
            )

    def observe_run(
        self,
        outcome: RunStatus | str,
        results: Sequence[EndpointResult],
        lag_s: float | None,
        job_id: str | None = None,
    ) -> None:
        """A finished run: its outcome, every endpoint result, and how late it started."""
        label = bounded(outcome, _values(RunStatus))
        self._child(self.jobs_processed, label).inc()
        if self.job_runs is not None and job_id is not None:
            self.job_runs.labels(job_id=job_id, outcome=label).inc()
        for result in results:
            status = bounded(result.status, _values(EndpointStatus))
            category = (
                "none"
                if result.error_category is None
                else bounded(result.error_category, _values(ErrorCategory))
            )
            self._child(self.endpoint_calls, status, category).inc()
            if result.status is not EndpointStatus.SKIPPED:
                self._child(self.endpoint_latency, status).observe(result.duration_ms / 1000)
        if lag_s is not None:
            self.scheduling_lag.observe(max(0.0, lag_s))

    def _child(self, metric: _Labelled, *values: str) -> Any:
        """`metric.labels(*values)` (values in label-name order), kept: a run looks up the
        same few bounded label sets every time, and `labels()` costs more than the count."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_ai_call(
        self, phase: AIPhase | str, outcome: AIOutcome | str, usage: TokenUsage, latency_s: float
    ) -> None:
        """One AI request (repairs included): outcome, tokens, latency."""
        phase_label = bounded(phase, _values(AIPhase))
        self.ai_calls.labels(phase=phase_label, outcome=bounded(outcome, _values(AIOutcome))).inc()
        self.ai_latency.labels(phase=phase_label).observe(max(0.0, latency_s))
        if self.track_token_usage:
            for kind in TOKEN_KINDS:
                self.ai_tokens.labels(phase=phase_label, kind=kind).inc(
                    max(0, getattr(usage, kind))
                )

    def observe_model_use(
        self,
        trigger: AITrigger | str | None,
        calls: int,
        avoided: Mapping[str, int],
        cost_usd: float,
    ) -> None:
        """One run's use of the model: requests made (by trigger), phases avoided, cost."""
        if calls > 0:
            label = "none" if trigger is None else bounded(trigger, _values(AITrigger))
            self.model_calls.labels(trigger=label).inc(calls)
        for reason, count in avoided.items():
            if count > 0:
                label = bounded(reason, AVOIDED_REASONS)
                self.model_calls_avoided.labels(reason=label).inc(count)
        if cost_usd > 0:
            self.ai_cost.inc(cost_usd)

    def observe_repair(self, outcome: RepairOutcome | str) -> None:
        self.ai_repairs.labels(outcome=bounded(outcome, _values(RepairOutcome))).inc()

    def fallback(self, reason: str | None) -> None:
        """The planner fell back to rules; `reason` is free text, classified here."""
        self.planner_fallbacks.labels(reason_class=classify_fallback_reason(reason).value).inc()

    def circuit_changed(
        self, endpoint_id: str, old: CircuitState | str | None, new: CircuitState | str
    ) -> None:
        """An endpoint's breaker moved from `old` to `new`.

        The gauge counts endpoints the breaker has reported on, in their latest state; the
        previous state is taken from that record (not from `old`) so a missed or duplicated
        event can never drive a count negative.
        """
        new_label = bounded(new, _values(CircuitState))
        previous = self._circuits.get(endpoint_id)
        if previous is not None:
            self.circuit_state.labels(state=previous).dec()
        self._circuits[endpoint_id] = new_label
        self.circuit_state.labels(state=new_label).inc()
        if self.endpoint_circuit is not None:
            if previous is not None and previous != new_label:
                self.endpoint_circuit.labels(endpoint_id=endpoint_id, state=previous).set(0)
            self.endpoint_circuit.labels(endpoint_id=endpoint_id, state=new_label).set(1)

    def lease_lost(self) -> None:
        self.leases_lost.inc()

    def cycle(self, duration_s: float) -> None:
        self.cycle_duration.observe(max(0.0, duration_s))

    @contextmanager
    def job_in_flight(self) -> Iterator[None]:
        """Counts the block as one running job (exceptions included)."""
        self.jobs_in_flight.inc()
        try:
            yield
        finally:
            self.jobs_in_flight.dec()


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
UNMATCHED_ROUTE = "<unmatched>"


class ApiMetrics:
    """The API's metrics: requests by method, route *template* and status, and latency.

    Pass the route template (`/api/jobs/{job_id}`), never the raw path, or cardinality grows
    with every id; requests that matched no route are counted as `<unmatched>`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "API requests by method, route template and status.",
            ["method", "route", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "http_request_duration_seconds",
            "API request duration by method and route.",
            ["method", "route"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )

    def observe_request(
        self, method: str, route: str | None, status: int, latency_s: float
    ) -> None:
        method_label = method.upper() if method.upper() in HTTP_METHODS else OTHER
        route_label = route or UNMATCHED_ROUTE
        self.requests.labels(method=method_label, route=route_label, status=str(status)).inc()
        self.request_latency.labels(method=method_label, route=route_label).observe(
            max(0.0, latency_s)
        )


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text exposition of `registry` and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
