"""Conversions between table rows / JSON columns and the domain types.

Kept apart from the SQL so the repository reads as "which rows change, under which fence",
and so the API layer can reuse the same JSON shapes (plan, schedule) for its responses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import RowMapping

from cronicorn.domain.compaction import compact_json
from cronicorn.domain.jmes import evaluate_view
from cronicorn.domain.models import (
    AIAttempt,
    AIDecision,
    AIMode,
    EndpointSpec,
    EndpointStatus,
    Hint,
    JobSnapshot,
    JobStatus,
    Message,
    MessageRole,
    MessageSource,
    NextRun,
    PastResult,
    Plan,
    RecommendedAction,
)
from cronicorn.observability.redaction import join_url_secrets
from cronicorn.store.secrets import SecretBox

EXCERPT_CHARS = 300
"""Characters of a past response body kept in the AI's context (structure-aware compaction,
see `domain.compaction`)."""
logger = logging.getLogger("cronicorn.store")
_decision_adapter: TypeAdapter[AIDecision] = TypeAdapter(AIDecision)


def decision_to_json(decision: AIDecision | None) -> dict[str, Any] | None:
    """The job's `ai_decision` column."""
    if decision is None:
        return None
    out: dict[str, Any] = scrub(_decision_adapter.dump_python(decision, mode="json"))
    return out


def decision_from_json(value: Any) -> AIDecision | None:
    """The stored decision, or None when there is none or it cannot be read (an older or
    damaged shape only costs one model call)."""
    if not value:
        return None
    try:
        return _decision_adapter.validate_python(value)
    except ValidationError as exc:
        logger.warning("ignoring an unreadable stored AI decision: %s", exc.errors()[:1])
        return None


def attempt_json(attempt: AIAttempt) -> dict[str, Any]:
    """One request of an AI session, as stored in `ai_sessions.attempts`."""
    return {
        "outcome": attempt.outcome,
        "kind": attempt.kind,
        "raw_reply": attempt.raw_reply,
        "errors": list(attempt.errors),
        "tokens": {
            "input": attempt.usage.input,
            "output": attempt.usage.output,
            "reasoning": attempt.usage.reasoning,
            "cached": attempt.usage.cached,
        },
        "latency_ms": attempt.latency_ms,
    }


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def scrub(value: Any) -> Any:
    """Remove NUL characters, which PostgreSQL text/JSONB cannot store."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan in the AI's own field names (SPEC §6), as stored on the run."""
    out: dict[str, Any] = scrub(
        {
            "endpoints_to_call": [
                {
                    "endpoint_id": call.endpoint_id,
                    "parameters": dict(call.parameters),
                    "headers": dict(call.headers),
                    "priority": call.priority,
                    "depends_on": list(call.depends_on),
                    "critical": call.critical,
                    **({"condition": call.condition} if call.condition else {}),
                }
                for call in plan.calls
            ],
            "execution_strategy": plan.strategy.value,
            "concurrency_limit": plan.concurrency_limit,
            "preliminary_next_run_at": iso(plan.preliminary_next_run_at),
            "reasoning": plan.reasoning,
            "confidence": plan.confidence,
        }
    )
    return out


def actions_to_json(actions: tuple[RecommendedAction, ...]) -> list[dict[str, Any]]:
    return [
        {"type": a.type.value, "details": a.details, "priority": a.priority.value} for a in actions
    ]


def schedule_to_json(
    next_run: NextRun,
    reasoning: str,
    confidence: float | None,
    actions: tuple[RecommendedAction, ...] = (),
) -> dict[str, Any]:
    """The run's `schedule` column (SPEC §2 Run.schedule)."""
    out: dict[str, Any] = scrub(
        {
            "proposed_next_run_at": iso(next_run.proposed_at),
            "next_run_at": iso(next_run.at),
            "source": next_run.source.value,
            "reasoning": reasoning,
            "confidence": confidence,
            "recommended_actions": actions_to_json(actions),
        }
    )
    return out


def last_schedule_json(schedule: Mapping[str, Any]) -> dict[str, Any]:
    """The job's `last_schedule`: the subset of the run's schedule the job shows."""
    return {k: schedule.get(k) for k in ("next_run_at", "source", "reasoning", "confidence")}


def hint_of(row: Any) -> Hint | None:
    """The job's stored hint (a row mapping or a `Job`), expired or not; None if unset."""
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
    expires = get("hint_expires_at")
    if expires is None:
        return None
    return Hint(
        expires_at=expires,
        interval_ms=get("hint_interval_ms"),
        next_run_at=get("hint_next_run_at"),
        reason=get("hint_reason") or "",
        set_at=get("hint_set_at"),
    )


def job_snapshot(
    row: RowMapping, box: SecretBox | None, today: str, signing_secret: str | None = None
) -> JobSnapshot:
    """A claimed job row as the planner sees it; `default_headers` decrypted (left out
    without a `box`: the schedule of a job whose secrets cannot be decrypted). The claim
    also returns the tenant's spend (`tenant_cost_*`) and own monthly budget."""
    used_today = row["tokens_today"] if row["tokens_day"] == today else 0
    spent = row.get("tenant_cost_usd_month") or 0.0
    if row.get("tenant_cost_month") != today[:7]:
        spent = 0.0
    return JobSnapshot(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        definition=row["definition"],
        status=JobStatus(row["status"]),
        cron=row["cron"],
        timezone=row["timezone"],
        interval_ms=row["interval_ms"],
        min_interval_ms=row["min_interval_ms"],
        max_interval_ms=row["max_interval_ms"],
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
        consecutive_failures=row["consecutive_failures"],
        paused_until=row["paused_until"],
        default_headers={} if box is None else box.decrypt_map(row["default_headers"] or {}),
        daily_token_budget=row["daily_token_budget"],
        tokens_used_today=used_today,
        signing_secret=signing_secret,
        ai_mode=AIMode(row["ai_mode"]) if row["ai_mode"] else None,
        replan_requested_at=row["replan_requested_at"],
        hint=hint_of(row),
        tenant_cost_month_usd=spent,
        tenant_monthly_budget_usd=row.get("tenant_monthly_budget_usd"),
    )


def endpoint_spec(row: RowMapping, box: SecretBox) -> EndpointSpec:
    """An endpoint row with its secrets (header values, bearer token) decrypted."""
    token = row["bearer_token"]
    url = row["url"]
    if row.get("url_secret"):
        url, _missing = join_url_secrets(url, box.decrypt_json(row["url_secret"]))
    return EndpointSpec(
        id=row["id"],
        name=row["name"],
        url=url,
        method=row["method"],
        description=row["description"],
        headers=box.decrypt_map(row["headers"] or {}),
        body=row["body"],
        request_schema=row["request_schema"],
        timeout_ms=row["timeout_ms"],
        max_response_bytes=row["max_response_bytes"],
        fire_and_forget=row["fire_and_forget"],
        bearer_token=box.decrypt(token) if token else None,
        ai_view=row["ai_view"],
        condition=row["condition"],
    )


def message(row: RowMapping) -> Message:
    return Message(
        role=MessageRole(row["role"]),
        content=row["content"],
        source=MessageSource(row["source"]),
        created_at=row["created_at"],
    )


def excerpt(body: Any, limit: int = EXCERPT_CHARS) -> str | None:
    if body is None:
        return None
    return compact_json(body, limit)


def past_result(row: RowMapping, limit: int = EXCERPT_CHARS, ai_view: Any = None) -> PastResult:
    body = row["response_body"]
    view = evaluate_view(ai_view, body) if ai_view and body is not None else None
    return PastResult(
        endpoint_id=row["endpoint_id"],
        status=EndpointStatus(row["status"]),
        status_code=row["status_code"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        response_excerpt=excerpt(body, limit),
        error=row["error"],
        view=view,
    )
