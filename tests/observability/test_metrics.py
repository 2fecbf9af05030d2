"""Engine and API metrics: counts, bounded labels, opt-in per-job labels."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from cronicorn.domain.models import EndpointResult, EndpointStatus, ErrorCategory, TokenUsage
from cronicorn.observability.metrics import (
    ApiMetrics,
    EngineMetrics,
    FallbackReason,
    classify_fallback_reason,
    render,
)


def value(m: EngineMetrics | ApiMetrics, name: str, **labels: str) -> float:
    sample = m.registry.get_sample_value(f"cronicorn_{name}", labels)
    return 0.0 if sample is None else sample


def series_count(registry: CollectorRegistry) -> int:
    return sum(len(metric.samples) for metric in registry.collect())


def ok(endpoint_id: str, ms: float = 120.0) -> EndpointResult:
    return EndpointResult(endpoint_id, EndpointStatus.SUCCESS, status_code=200, duration_ms=ms)


def failed(endpoint_id: str, category: ErrorCategory) -> EndpointResult:
    return EndpointResult(
        endpoint_id,
        EndpointStatus.FAILED,
        status_code=503,
        duration_ms=40.0,
        error_category=category,
    )


def test_observe_run_counts_runs_calls_latency_and_lag() -> None:
    m = EngineMetrics()
    m.observe_run(
        "completed",
        [
            ok("e1"),
            failed("e2", ErrorCategory.HTTP_5XX),
            EndpointResult("e3", EndpointStatus.SKIPPED),
        ],
        lag_s=1.5,
    )
    m.observe_run("failed", [failed("e2", ErrorCategory.TIMEOUT)], lag_s=None)
    assert value(m, "jobs_processed_total", outcome="completed") == 1
    assert value(m, "jobs_processed_total", outcome="failed") == 1
    assert value(m, "endpoint_calls_total", outcome="success", category="none") == 1
    assert value(m, "endpoint_calls_total", outcome="failed", category="http_5xx") == 1
    assert value(m, "endpoint_calls_total", outcome="failed", category="timeout") == 1
    assert value(m, "endpoint_calls_total", outcome="skipped", category="none") == 1
    # Skipped calls never ran: no latency sample.
    assert value(m, "endpoint_latency_seconds_count", outcome="success") == 1
    assert value(m, "endpoint_latency_seconds_sum", outcome="success") == 0.12
    assert value(m, "endpoint_latency_seconds_count", outcome="failed") == 2
    assert value(m, "endpoint_latency_seconds_count", outcome="skipped") == 0
    assert value(m, "scheduling_lag_seconds_count") == 1
    assert value(m, "scheduling_lag_seconds_bucket", le="2.0") == 1
    assert value(m, "scheduling_lag_seconds_bucket", le="1.0") == 0


def test_unknown_label_values_are_counted_as_other() -> None:
    m = EngineMetrics()
    m.observe_run("exploded", [], lag_s=None)
    m.observe_ai_call("phase-9", "weird", TokenUsage(), 0.1)
    assert value(m, "jobs_processed_total", outcome="other") == 1
    assert value(m, "ai_calls_total", phase="other", outcome="other") == 1


def test_ai_calls_tokens_latency_repairs_fallbacks() -> None:
    m = EngineMetrics()
    m.observe_ai_call(
        "plan", "success", TokenUsage(input=100, output=20, reasoning=5, cached=50), 1.2
    )
    m.observe_ai_call("plan", "invalid_output", TokenUsage(input=10, output=2), 0.3)
    m.observe_ai_call("schedule", "timeout", TokenUsage(), 60.0)
    m.observe_repair("success")
    m.observe_repair("failure")
    m.observe_repair("failure")
    m.fallback("AI call timed out after 60000 ms")
    m.fallback("daily token budget exceeded")
    m.fallback("no OPENAI_API_KEY configured")
    m.fallback(None)
    assert value(m, "ai_calls_total", phase="plan", outcome="success") == 1
    assert value(m, "ai_calls_total", phase="plan", outcome="invalid_output") == 1
    assert value(m, "ai_calls_total", phase="schedule", outcome="timeout") == 1
    assert value(m, "ai_tokens_total", phase="plan", kind="input") == 110
    assert value(m, "ai_tokens_total", phase="plan", kind="output") == 22
    assert value(m, "ai_tokens_total", phase="plan", kind="reasoning") == 5
    assert value(m, "ai_tokens_total", phase="plan", kind="cached") == 50
    assert value(m, "ai_latency_seconds_count", phase="plan") == 2
    assert value(m, "ai_latency_seconds_sum", phase="schedule") == 60.0
    assert value(m, "ai_repairs_total", outcome="success") == 1
    assert value(m, "ai_repairs_total", outcome="failure") == 2
    assert value(m, "planner_fallbacks_total", reason_class="timeout") == 1
    assert value(m, "planner_fallbacks_total", reason_class="budget_exceeded") == 1
    assert value(m, "planner_fallbacks_total", reason_class="not_configured") == 1
    assert value(m, "planner_fallbacks_total", reason_class="error") == 1


def test_token_tracking_can_be_switched_off() -> None:
    m = EngineMetrics(track_token_usage=False)
    m.observe_ai_call("plan", "success", TokenUsage(input=100), 1.0)
    assert value(m, "ai_calls_total", phase="plan", outcome="success") == 1
    assert (
        m.registry.get_sample_value("cronicorn_ai_tokens_total", {"phase": "plan", "kind": "input"})
        is None
    )


def test_classify_fallback_reason() -> None:
    assert classify_fallback_reason("HTTP 429 rate limit") is FallbackReason.RATE_LIMITED
    assert classify_fallback_reason("output failed schema validation") is (
        FallbackReason.INVALID_OUTPUT
    )
    assert classify_fallback_reason("connection reset") is FallbackReason.ERROR


def test_circuit_state_counts_endpoints_per_state() -> None:
    m = EngineMetrics()
    assert value(m, "circuit_state", state="closed") == 0
    m.circuit_changed("e1", "closed", "open")
    m.circuit_changed("e2", None, "closed")
    m.circuit_changed("e3", "closed", "open")
    assert value(m, "circuit_state", state="open") == 2
    assert value(m, "circuit_state", state="closed") == 1
    m.circuit_changed("e1", "open", "half_open")
    m.circuit_changed("e1", "open", "half_open")  # duplicate event: no drift
    assert value(m, "circuit_state", state="open") == 1
    assert value(m, "circuit_state", state="half_open") == 1
    m.circuit_changed("e1", "half_open", "closed")
    assert value(m, "circuit_state", state="half_open") == 0
    assert value(m, "circuit_state", state="closed") == 2


def test_leases_cycles_and_in_flight() -> None:
    m = EngineMetrics()
    m.lease_lost()
    m.cycle(0.25)
    m.cycle(0.75)
    with m.job_in_flight(), m.job_in_flight():
        assert value(m, "jobs_in_flight") == 2
    assert value(m, "jobs_in_flight") == 0
    assert value(m, "leases_lost_total") == 1
    assert value(m, "cycle_duration_seconds_count") == 2
    assert value(m, "cycle_duration_seconds_sum") == 1.0


def _exercise(m: EngineMetrics, jobs: int) -> None:
    categories = list(ErrorCategory)
    for i in range(jobs):
        results = [ok(f"ep-{i}-a"), failed(f"ep-{i}-b", categories[i % len(categories)])]
        m.observe_run(
            "completed" if i % 2 else "failed", results, lag_s=i * 0.01, job_id=f"job-{i}"
        )
        m.circuit_changed(f"ep-{i}-b", "closed", "open")
        m.circuit_changed(f"ep-{i}-b", "open", "half_open")
        m.observe_ai_call("plan", "success", TokenUsage(input=i), 0.5)


def test_label_cardinality_constant_from_1_to_500_jobs() -> None:
    # Warm both with every category so the only difference is the number of distinct ids.
    small, large = EngineMetrics(), EngineMetrics()
    _exercise(small, len(ErrorCategory))
    _exercise(large, 500)
    assert series_count(small.registry) == series_count(large.registry)
    assert value(large, "jobs_processed_total", outcome="failed") == 250
    assert value(large, "circuit_state", state="half_open") == 500


def test_label_cardinality_one_job_vs_500() -> None:
    one, many = EngineMetrics(), EngineMetrics()
    for m, jobs in ((one, 1), (many, 500)):
        for i in range(jobs):
            m.observe_run("completed", [ok(f"ep-{i}")], lag_s=0.1, job_id=f"job-{i}")
            m.circuit_changed(f"ep-{i}", None, "open")
    assert series_count(one.registry) == series_count(many.registry)


def test_per_job_labels_are_opt_in_and_grow_with_ids() -> None:
    small = EngineMetrics(per_job_labels=True)
    large = EngineMetrics(per_job_labels=True)
    _exercise(small, len(ErrorCategory))
    _exercise(large, 500)
    assert series_count(large.registry) > series_count(small.registry)
    assert value(large, "job_runs_total", job_id="job-7", outcome="completed") == 1
    assert value(large, "endpoint_circuit_state", endpoint_id="ep-7-b", state="half_open") == 1
    assert value(large, "endpoint_circuit_state", endpoint_id="ep-7-b", state="open") == 0


def test_api_metrics_use_route_templates_and_render() -> None:
    api = ApiMetrics()
    for _ in range(50):
        api.observe_request("get", "/api/jobs/{job_id}", 200, 0.01)
    api.observe_request("POST", "/api/jobs", 422, 0.02)
    api.observe_request("BREW", None, 404, 0.001)
    assert (
        value(api, "http_requests_total", method="GET", route="/api/jobs/{job_id}", status="200")
        == 50
    )
    assert value(api, "http_requests_total", method="other", route="<unmatched>", status="404") == 1
    assert value(api, "http_request_duration_seconds_count", method="POST", route="/api/jobs") == 1
    body, content_type = render(api.registry)
    assert content_type.startswith("text/plain")
    assert (
        b'cronicorn_http_requests_total{method="POST",route="/api/jobs",status="422"} 1.0' in body
    )


def test_fresh_registries_are_independent() -> None:
    a, b = EngineMetrics(), EngineMetrics()
    a.lease_lost()
    assert value(a, "leases_lost_total") == 1
    assert value(b, "leases_lost_total") == 0


def test_model_calls_made_and_avoided_by_trigger_and_cost() -> None:
    m = EngineMetrics()
    m.observe_model_use("no_decision", 2, {}, 0.0125)
    m.observe_model_use(None, 0, {"reused": 2}, 0.0)
    m.observe_model_use("response_changed", 1, {"reused": 1}, 0.005)
    m.observe_model_use("expired", 0, {"budget": 2, "weird": 1}, 0.0)
    m.observe_model_use("made-up", 3, {}, 0.0)
    assert value(m, "ai_model_calls_total", trigger="no_decision") == 2
    assert value(m, "ai_model_calls_total", trigger="response_changed") == 1
    assert value(m, "ai_model_calls_total", trigger="other") == 3
    assert value(m, "ai_model_calls_avoided_total", reason="reused") == 3
    assert value(m, "ai_model_calls_avoided_total", reason="budget") == 2
    assert value(m, "ai_model_calls_avoided_total", reason="other") == 1
    assert value(m, "ai_cost_usd_total") == pytest.approx(0.0175)
