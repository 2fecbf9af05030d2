"""The rows a finished run writes, computed without touching the database.

`complete_run` executes these in one fenced transaction; computing them first keeps the
transaction short (no Python work while PostgreSQL row locks / the SQLite write lock are held).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa

from cronicorn.domain.models import (
    JobErrorRecord,
    Lease,
    MessageRole,
    MessageSource,
    RunCompletion,
    TokenUsage,
)
from cronicorn.store import mapping
from cronicorn.store.tables import EndpointResult, Job, JobError, Message

jobs_t = cast(sa.Table, Job.__table__)
results_t = cast(sa.Table, EndpointResult.__table__)
messages_t = cast(sa.Table, Message.__table__)
errors_t = cast(sa.Table, JobError.__table__)

RELEASE_VALUES: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


def ms_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() * 1000.0)


def token_values(usage: TokenUsage, today: str) -> dict[str, Any]:
    """Atomic `x = x + delta` increments; the daily counter rolls over at UTC midnight."""
    c = jobs_t.c
    return {
        "input_tokens": c.input_tokens + usage.input,
        "output_tokens": c.output_tokens + usage.output,
        "reasoning_tokens": c.reasoning_tokens + usage.reasoning,
        "cached_input_tokens": c.cached_input_tokens + usage.cached,
        "tokens_today": sa.case(
            (c.tokens_day == today, c.tokens_today + usage.total), else_=usage.total
        ),
        "tokens_day": today,
    }


def run_token_values(usage: TokenUsage, ai_calls: int) -> dict[str, Any]:
    return {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "reasoning_tokens": usage.reasoning,
        "cached_input_tokens": usage.cached,
        "ai_calls": ai_calls,
    }


def error_row(lease: Lease, error: JobErrorRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "job_id": lease.job_id,
        "run_id": lease.run_id,
        "phase": error.phase.value,
        "code": error.code[:64],
        "message": mapping.scrub(error.message),
        "created_at": now,
    }


def summary_row(lease: Lease, summary: str, now: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "job_id": lease.job_id,
        "role": MessageRole.ASSISTANT.value,
        "content": mapping.scrub(summary),
        "source": MessageSource.ENGINE.value,
        "created_at": now,
    }


def result_rows(lease: Lease, completion: RunCompletion) -> list[dict[str, Any]]:
    return [
        {
            "run_id": lease.run_id,
            "job_id": lease.job_id,
            "endpoint_id": r.endpoint_id,
            "position": position,
            "status": r.status.value,
            "status_code": r.status_code,
            "attempts": r.attempts,
            "started_at": r.started_at,
            "duration_ms": r.duration_ms,
            "request_bytes": r.request_bytes,
            "response_bytes": r.response_bytes,
            "truncated": r.truncated,
            "content_type": r.content_type,
            "response_body": mapping.scrub(r.response_body),
            "error": mapping.scrub(r.error),
            "error_category": r.error_category.value if r.error_category else None,
        }
        for position, r in enumerate(completion.results)
    ]


@dataclass(slots=True)
class CompletionWrites:
    job_values: dict[str, Any]
    run_values: dict[str, Any]
    inserts: Sequence[tuple[sa.Table, list[dict[str, Any]]]] = field(default_factory=list)


def completion_writes(lease: Lease, completion: RunCompletion, now: datetime) -> CompletionWrites:
    """Job update (schedule, counters, tokens, lease release), run update and inserts."""
    c = completion
    schedule = mapping.schedule_to_json(
        c.next_run, c.schedule_reasoning, c.schedule_confidence, c.recommended_actions
    )
    job_values: dict[str, Any] = {
        "next_run_at": c.next_run.at,
        "last_run_at": c.finished_at,
        "consecutive_failures": c.consecutive_failures,
        "last_schedule": mapping.last_schedule_json(schedule),
        "updated_at": now,
        **RELEASE_VALUES,
        **token_values(c.usage, now.date().isoformat()),
    }
    if c.pause:
        job_values["status"] = sa.case(
            (jobs_t.c.status == "active", "paused"), else_=jobs_t.c.status
        )
    run_values: dict[str, Any] = {
        "status": c.status.value,
        "started_at": c.started_at,
        "finished_at": c.finished_at,
        "duration_ms": ms_between(c.started_at, c.finished_at),
        "plan": mapping.plan_to_json(c.plan) if c.plan is not None else None,
        "plan_source": c.plan_source.value if c.plan_source else None,
        "strategy": c.plan.strategy.value if c.plan is not None else None,
        "success_count": sum(r.status == "success" for r in c.results),
        "failure_count": sum(r.status == "failed" for r in c.results),
        "skipped_count": sum(r.status == "skipped" for r in c.results),
        "aborted_count": sum(r.status == "aborted" for r in c.results),
        "escalation_level": c.escalation.value,
        "schedule": schedule,
        "error": mapping.scrub(c.error),
        **run_token_values(c.usage, c.ai_calls),
    }
    inserts: list[tuple[sa.Table, list[dict[str, Any]]]] = [
        (results_t, result_rows(lease, c)),
        (errors_t, [error_row(lease, e, now) for e in c.errors]),
    ]
    if c.summary:
        inserts.append((messages_t, [summary_row(lease, c.summary, now)]))
    return CompletionWrites(job_values, run_values, inserts)
