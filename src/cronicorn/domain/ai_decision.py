"""When the model is asked, and what a run reuses when it is not (`on_change` mode).

In `on_change` mode a run asks the model only when a trigger fires; otherwise it reuses the
job's last AI decision: the same plan, and the AI's cadence (still clamped by the governor).
Triggers, checked in this order before planning:

- `replan_requested`: `POST /api/jobs/{id}/run-now` with `{"replan": true}` since the
  decision;
- a `pending_trigger` left by the previous run (a change it saw after executing);
- `no_decision`: none stored yet (or the last AI call fell back to the rules);
- `job_edited`: the job or one of its endpoints changed (see `context_fingerprint`);
- `new_message`: a user message newer than the decision;
- `failure_streak_started` / `failure_streak_ended`: the job's failure state differs from the
  one the decision was made in;
- `expired`: the decision's `valid_until` passed.

After executing a reused plan, `trigger_after_run` compares the fresh results with the
responses the decision was made on (`response_changed`) and the run's failure state (the
streak triggers); a change sends that run's results to phase 2 at once and leaves a
`pending_trigger`, so the next run re-plans.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from cronicorn.domain.models import (
    AIDecision,
    AIMode,
    AITrigger,
    EndpointResult,
    EndpointSpec,
    EndpointStatus,
    JobContext,
    JobSnapshot,
    JsonValue,
    MessageSource,
    Plan,
    PlanSource,
    ResponseSignature,
)
from cronicorn.domain.signature import response_signature, signature_change

DEFAULT_DECISION_TTL_MS = 3_600_000
Trigger = tuple[AITrigger, str]
"""A trigger and a short human description of what fired it."""
COMPARED = (EndpointStatus.SUCCESS, EndpointStatus.FAILED)


def effective_mode(job: JobSnapshot, default: AIMode) -> AIMode:
    return job.ai_mode or default


def context_fingerprint(job: JobSnapshot, endpoints: Sequence[EndpointSpec]) -> str:
    """A digest of what the model planned from: the job's definition, baseline and bounds,
    and each endpoint (secrets excluded). An edit to any of these changes it."""
    doc = {
        "job": [
            job.name,
            job.definition,
            job.cron,
            job.timezone,
            job.interval_ms,
            job.min_interval_ms,
            job.max_interval_ms,
        ],
        "endpoints": [
            [
                e.id,
                e.name,
                e.url,
                e.method,
                e.description,
                e.body,
                e.request_schema,
                e.timeout_ms,
                e.fire_and_forget,
                e.ai_view,
                e.condition,
                sorted(e.headers),
            ]
            for e in endpoints
        ],
    }
    text = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def trigger_before_plan(context: JobContext, now: datetime) -> Trigger | None:
    """The first trigger that fires before planning, or None: reuse the decision."""
    decision = context.ai_decision
    job = context.job
    if decision is None:
        return AITrigger.NO_DECISION, "no AI decision yet"
    requested = job.replan_requested_at
    if requested is not None and requested != decision.replan_seen:
        return AITrigger.REPLAN_REQUESTED, "a re-plan was requested"
    if decision.pending_trigger is not None:
        return decision.pending_trigger, decision.pending_detail or "change seen in the last run"
    if decision.fingerprint != context_fingerprint(job, context.endpoints):
        return AITrigger.JOB_EDITED, "the job or its endpoints changed"
    newest = newest_user_message(context)
    if newest is not None and (decision.message_seen is None or newest > decision.message_seen):
        return AITrigger.NEW_MESSAGE, "a new user message"
    failing = job.consecutive_failures > 0
    if failing != decision.failing:
        return _streak(failing)
    if now >= decision.valid_until:
        return AITrigger.EXPIRED, "the decision's lifetime is over"
    return None


def newest_user_message(context: JobContext) -> datetime | None:
    times = [m.created_at for m in context.messages if m.source is MessageSource.USER]
    return max(times) if times else None


def trigger_after_run(
    decision: AIDecision,
    signatures: Mapping[str, ResponseSignature],
    failing: bool,
    threshold: float,
) -> Trigger | None:
    """A material change in this run against the decision: the failure state, or an
    endpoint's response (see `domain.signature`)."""
    if failing != decision.failing:
        return _streak(failing)
    for endpoint_id, new in signatures.items():
        old = decision.signatures.get(endpoint_id)
        if old is None:
            return AITrigger.RESPONSE_CHANGED, f"{endpoint_id}: first response"
        change = signature_change(old, new, threshold)
        if change is not None:
            return AITrigger.RESPONSE_CHANGED, f"{endpoint_id}: {change}"
    return None


def _streak(failing: bool) -> Trigger:
    if failing:
        return AITrigger.FAILURE_STREAK_STARTED, "the job started failing"
    return AITrigger.FAILURE_STREAK_ENDED, "the job recovered"


def result_signatures(
    results: Sequence[EndpointResult], views: Mapping[str, Mapping[str, JsonValue]]
) -> dict[str, ResponseSignature]:
    """Signatures of the results that were called (skipped and aborted calls have none)."""
    return {
        r.endpoint_id: response_signature(r, views.get(r.endpoint_id))
        for r in results
        if r.status in COMPARED
    }


def reusable_plan(decision: AIDecision, endpoints: Sequence[EndpointSpec]) -> Plan:
    """The decision's plan for this run: the stale preliminary time dropped, endpoints
    that no longer exist dropped, and each endpoint's `condition` attached (a plan made
    without the model honours conditions)."""
    known = {e.id: e for e in endpoints}
    calls = tuple(
        replace(
            call,
            depends_on=tuple(d for d in call.depends_on if d in known),
            condition=known[call.endpoint_id].condition,
        )
        for call in decision.plan.calls
        if call.endpoint_id in known
    )
    return replace(decision.plan, calls=calls, preliminary_next_run_at=None)


def new_decision(
    *,
    plan: Plan,
    plan_source: PlanSource,
    context: JobContext,
    now: datetime,
    next_run_at: datetime | None,
    valid_for_ms: int | None,
    ttl_ms: int,
    signatures: Mapping[str, ResponseSignature],
    failing: bool,
    reasoning: str,
    confidence: float | None,
) -> AIDecision:
    """A decision the model just made; valid for `valid_for_ms` if it said so, never
    longer than `ttl_ms`."""
    holds_ms = ttl_ms if valid_for_ms is None else max(0, min(valid_for_ms, ttl_ms))
    interval_ms = None
    if next_run_at is not None and next_run_at > now:
        interval_ms = int((next_run_at - now).total_seconds() * 1000)
    return AIDecision(
        plan=replace(plan, preliminary_next_run_at=None),
        plan_source=plan_source,
        made_at=now,
        valid_until=now + timedelta(milliseconds=holds_ms),
        fingerprint=context_fingerprint(context.job, context.endpoints),
        signatures=dict(signatures),
        failing=failing,
        interval_ms=interval_ms,
        reasoning=reasoning,
        confidence=confidence,
        replan_seen=context.job.replan_requested_at,
        message_seen=newest_user_message(context),
    )


def reused_next_run_at(decision: AIDecision, now: datetime) -> datetime | None:
    """The AI's cadence from `now` (None when the AI gave none: the baseline applies)."""
    if decision.interval_ms is None:
        return None
    return now + timedelta(milliseconds=decision.interval_ms)


def mark_reused(decision: AIDecision, now: datetime) -> AIDecision:
    return replace(decision, reused_runs=decision.reused_runs + 1, last_reused_at=now)


def mark_pending(decision: AIDecision, trigger: Trigger) -> AIDecision:
    return replace(decision, pending_trigger=trigger[0], pending_detail=trigger[1][:300])
