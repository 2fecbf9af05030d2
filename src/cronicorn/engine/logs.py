"""What the engine writes to the log, in one place: one INFO line per cycle start/end, job
start/end and plan, WARNING for escalations and failed runs, sampled DEBUG per endpoint
attempt and retry.

Correlation fields are not passed here: `worker_id`, `cycle_id`, `job_id` and `run_id` come
from the `log_context` the engine and the pipeline set (see docs/observability.md), so lines
written by the store, the planner and the executor carry them too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cronicorn.domain.models import (
    CircuitState,
    ClaimedJob,
    EndpointStatus,
    PlanDecision,
    RunStatus,
)
from cronicorn.engine.run_state import RunState
from cronicorn.engine.stats import CycleResult, JobOutcome
from cronicorn.observability.logging import sampled
from cronicorn.observability.redaction import job_secrets, register_secret

cycle_log = logging.getLogger("cronicorn.engine")
job_log = logging.getLogger("cronicorn.engine.pipeline")
endpoint_log = logging.getLogger("cronicorn.engine.endpoints")
_noisy = sampled(endpoint_log)


def register_context_secrets(claimed: ClaimedJob) -> None:
    """Mask the run's secrets in every log line, whichever backend decrypted them (the
    store registers what it decrypts; contexts fetched from the API arrive in clear)."""
    for value in job_secrets(claimed.context):
        register_secret(value)


def log_cycle_start(claimed: int, limit: int) -> None:
    """INFO when jobs were claimed; an idle poll is DEBUG (one per interval)."""
    cycle_log.log(
        logging.INFO if claimed else logging.DEBUG,
        "cycle started: claimed %d job(s) of %d free slot(s)",
        claimed,
        limit,
        extra={"claimed": claimed, "limit": limit},
    )


def log_cycle_end(result: CycleResult, claim_errors: int) -> None:
    cycle_log.log(
        logging.INFO if result.jobs_processed or claim_errors else logging.DEBUG,
        "cycle done in %.0f ms: %d job(s), %d ok, %d failed, %d aborted",
        result.duration_ms,
        result.jobs_processed,
        result.successful_jobs,
        result.failed_jobs,
        result.aborted_jobs,
        extra={
            "jobs_processed": result.jobs_processed,
            "successful_jobs": result.successful_jobs,
            "failed_jobs": result.failed_jobs,
            "aborted_jobs": result.aborted_jobs,
            "duration_ms": round(result.duration_ms, 1),
        },
    )


def log_job_start(claimed: ClaimedJob, lag_ms: float) -> None:
    if not job_log.isEnabledFor(logging.INFO):  # per job: skip building the fields
        return
    job_log.info(
        "job %r started, %.0f ms after its due time",
        claimed.context.job.name,
        lag_ms,
        extra={"due_at": claimed.due_at.isoformat(), "lag_ms": round(lag_ms, 1)},
    )


def log_plan(decision: PlanDecision) -> None:
    if not job_log.isEnabledFor(logging.INFO):
        return
    plan = decision.plan
    job_log.info(
        "plan from %s: %d call(s), %s%s",
        decision.source.value,
        len(plan.calls),
        plan.strategy.value,
        f" (fallback: {decision.fallback_reason})" if decision.fallback_reason else "",
        extra={
            "plan_source": decision.source.value,
            "strategy": plan.strategy.value,
            "calls": len(plan.calls),
            "ai_calls": decision.ai_calls,
            **({"fallback_reason": decision.fallback_reason} if decision.fallback_reason else {}),
        },
    )


def log_fallback(phase: str, reason: str) -> None:
    job_log.info("%s fell back to rules: %s", phase, reason, extra={"phase": phase})


def log_job_end(state: RunState, outcome: JobOutcome, duration_ms: float) -> None:
    """One line per run: outcome, endpoint counts, and the next run with its source."""
    level = logging.INFO if outcome.status is RunStatus.COMPLETED else logging.WARNING
    if not job_log.isEnabledFor(level):
        return
    counts = {s.value: 0 for s in EndpointStatus}
    for result in state.results:
        counts[result.status.value] += 1
    extra: dict[str, Any] = {
        "outcome": outcome.status.value,
        "written": outcome.written,
        "duration_ms": round(duration_ms, 1),
        "endpoints": counts,
        "ai_calls": outcome.ai_calls,
        "tokens": outcome.usage.total,
    }
    where = ""
    if state.next_run is not None:
        at, source = state.next_run.at.isoformat(), state.next_run.source.value
        extra.update(next_run_at=at, next_run_source=source)
        where = f"; next run {at} ({source})"
    job_log.log(
        level,
        "job %s in %.0f ms: %d ok, %d failed, %d skipped, %d aborted%s%s",
        outcome.status.value,
        duration_ms,
        counts["success"],
        counts["failed"],
        counts["skipped"],
        counts["aborted"],
        where,
        "" if outcome.written else " (not recorded)",
        extra=extra,
    )


def log_endpoint_finished(endpoint_id: str, data: Mapping[str, Any]) -> None:
    """Sampled DEBUG: one endpoint call's final status, code, attempts and duration."""
    if not endpoint_log.isEnabledFor(logging.DEBUG):
        return
    _noisy.debug(
        "endpoint %s: %s (HTTP %s, %s attempt(s), %.0f ms)",
        endpoint_id,
        data.get("status"),
        data.get("status_code"),
        data.get("attempts"),
        float(data.get("duration_ms") or 0.0),
        extra={"endpoint_id": endpoint_id, "error_category": _text(data.get("error_category"))},
    )


def log_retry(endpoint_id: str, attempt: int, delay_s: float, reason: str) -> None:
    _noisy.debug(
        "endpoint %s: attempt %d in %.2f s after: %s",
        endpoint_id,
        attempt,
        delay_s,
        reason,
        extra={"endpoint_id": endpoint_id, "attempt": attempt},
    )


def log_retry_exhausted(endpoint_id: str, attempts: int, reason: str) -> None:
    endpoint_log.info(
        "endpoint %s: retries exhausted after %d attempt(s): %s",
        endpoint_id,
        attempts,
        reason,
        extra={"endpoint_id": endpoint_id, "attempts": attempts},
    )


def log_circuit_change(endpoint_id: str, old: CircuitState, new: CircuitState) -> None:
    endpoint_log.log(
        logging.WARNING if new is CircuitState.OPEN else logging.INFO,
        "endpoint %s: circuit %s -> %s",
        endpoint_id,
        old,
        new,
        extra={"endpoint_id": endpoint_id, "circuit_state": new},
    )


def _text(value: object) -> str | None:
    return None if value is None else str(getattr(value, "value", value))
