"""The rows a finished run writes, and the prebuilt statements that write them in bulk.

Rows are computed without touching the database (no Python work while PostgreSQL row locks
or the SQLite write lock are held), collected into one `Writes` per transaction, and
executed with one `executemany` per statement: a batch of 50 completions costs the same
six statements as one. Every statement is built once, at import (or once per column set),
with bind parameters — constructing SQLAlchemy expressions per call used to cost more CPU
than the database work itself. Token counters are atomic increments (`x = x + :delta`), so
writes for the same job from elsewhere are added to, never overwritten.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cronicorn.domain.alerts import RunFacts, worth_queuing
from cronicorn.domain.models import (
    AIDecision,
    EndpointStatus,
    JobErrorRecord,
    Lease,
    MessageRole,
    MessageSource,
    PlanDecision,
    RunCompletion,
    RunStatus,
    TokenUsage,
)
from cronicorn.store import mapping
from cronicorn.store.tables import ai_sessions_t as sessions_t
from cronicorn.store.tables import (
    alert_events_t,
    errors_t,
    jobs_t,
    messages_t,
    results_t,
    runs_t,
    tenants_t,
)

Row = dict[str, Any]


def _param(table: sa.Table, column: str) -> sa.BindParameter[Any]:
    return sa.bindparam(f"p_{column}", type_=table.c[column].type)


@functools.cache
def update_by_id(table: sa.Table, columns: tuple[str, ...]) -> sa.Update:
    """`UPDATE table SET col = :p_col, … WHERE id = :p_id`, built once per column set."""
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("p_id"))
        .values({name: _param(table, name) for name in columns})
    )


def by_id(row_id: str, values: Mapping[str, Any]) -> Row:
    """Parameters for `update_by_id(table, tuple(values))`."""
    row = {f"p_{name}": value for name, value in values.items()}
    row["p_id"] = row_id
    return row


TOKEN_COLUMNS = ("input_tokens", "output_tokens", "reasoning_tokens", "cached_input_tokens")


def _recorded_on_run(column: str) -> sa.ColumnElement[Any]:
    """What the run (`p_run_id`) already holds in a token column: 0, or the plan's tokens
    if the plan was recorded early. Statements that use this run BEFORE the run's row is
    updated, so the job's totals grow by exactly what the run's own totals grow by."""
    recorded = sa.select(runs_t.c[column]).where(runs_t.c.id == sa.bindparam("p_run_id"))
    return sa.func.coalesce(recorded.scalar_subquery(), 0)


def _token_increments() -> dict[str, Any]:
    """Atomic `x = x + (new run total - already recorded)` for the job's token counters,
    with the daily counter rolling over at UTC midnight."""
    c = jobs_t.c
    today = sa.bindparam("p_today", type_=sa.String())
    delta = {name: _param(jobs_t, name) - _recorded_on_run(name) for name in TOKEN_COLUMNS}
    total = delta["input_tokens"] + delta["output_tokens"]
    return {
        **{name: c[name] + delta[name] for name in TOKEN_COLUMNS},
        "tokens_today": sa.case((c.tokens_day == today, c.tokens_today + total), else_=total),
        "tokens_day": today,
    }


def _cost_increments(table: sa.Table, *, daily: bool) -> dict[str, Any]:
    """`cost += :p_cost` in total, this month and (jobs) today; a new month or day starts
    its counter from this run's cost."""
    c = table.c
    cost = sa.bindparam("p_cost", type_=sa.Float())
    month = sa.bindparam("p_month", type_=sa.String())
    values: dict[str, Any] = {
        "cost_usd_total": c.cost_usd_total + cost,
        "cost_usd_month": sa.case((c.cost_month == month, c.cost_usd_month + cost), else_=cost),
        "cost_month": month,
    }
    if daily:
        today = sa.bindparam("p_today", type_=sa.String())
        values["cost_usd_today"] = sa.case(
            (c.cost_day == today, c.cost_usd_today + cost), else_=cost
        )
        values["cost_day"] = today
    return values


def _job_finish_statement() -> sa.Update:
    c = jobs_t.c
    pause = sa.bindparam("p_pause", type_=sa.Boolean())
    return (
        sa.update(jobs_t)
        .where(c.id == sa.bindparam("p_id"))
        .values(
            {
                **{
                    name: _param(jobs_t, name)
                    for name in (
                        "next_run_at",
                        "last_run_at",
                        "consecutive_failures",
                        "last_schedule",
                        "updated_at",
                    )
                },
                **_token_increments(),
                **_cost_increments(jobs_t, daily=True),
                "ai_decision": sa.case(
                    (sa.bindparam("p_keep_decision", type_=sa.Boolean()), c.ai_decision),
                    else_=_param(jobs_t, "ai_decision"),
                ),
                "status": sa.case((sa.and_(pause, c.status == "active"), "paused"), else_=c.status),
                "lease_owner": None,
                "lease_expires_at": None,
            }
        )
    )


JOB_FINISH = _job_finish_statement()
"""Schedule, counters, atomic token increments (the daily counter rolls over at UTC
midnight), the last AI decision (kept as stored when `p_keep_decision`), optional pause of
an active job, lease release. Runs before the run update."""
JOB_PLAN_TOKENS = (
    sa.update(jobs_t).where(jobs_t.c.id == sa.bindparam("p_id")).values(_token_increments())
)
"""The plan's tokens onto the job's totals when the plan is recorded early, so tokens of a
run that never completes (crash, lost lease) still count against the job and its budget."""
JOB_RELEASE = update_by_id(jobs_t, ("lease_owner", "lease_expires_at", "updated_at"))
RUN_PLAN = (
    sa.update(runs_t)
    .where(
        runs_t.c.id == sa.bindparam("f_run"),
        runs_t.c.job_id == sa.bindparam("f_job"),
        runs_t.c.lease_token == sa.bindparam("f_token"),
        runs_t.c.status == RunStatus.RUNNING.value,
    )
    .values(
        {
            name: _param(runs_t, name)
            for name in (
                "plan",
                "plan_source",
                "strategy",
                "input_tokens",
                "output_tokens",
                "reasoning_tokens",
                "cached_input_tokens",
                "ai_calls",
            )
        }
    )
)
"""The phase-1 plan on the lease's own run, which must still be running (row count 1)."""
TENANT_COST = (
    sa.update(tenants_t)
    .where(tenants_t.c.id == sa.bindparam("p_id"))
    .values(_cost_increments(tenants_t, daily=False))
)
"""A tenant's spend (only for runs that cost something: most runs never touch the row)."""
TENANTS_OF_JOBS = sa.select(jobs_t.c.id, jobs_t.c.tenant_id).where(
    jobs_t.c.id.in_(sa.bindparam("job_ids", expanding=True))
)
INSERT_SESSIONS = sa.insert(sessions_t)
INSERT_RESULTS = sa.insert(results_t)
INSERT_ERRORS = sa.insert(errors_t)
INSERT_MESSAGES = sa.insert(messages_t)
INSERT_ALERT_EVENTS = sa.insert(alert_events_t)


def ms_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() * 1000.0)


def job_finish_row(
    job_id: str,
    run_id: str,
    *,
    next_run_at: datetime,
    last_run_at: datetime,
    consecutive_failures: int,
    schedule: Mapping[str, Any],
    usage: TokenUsage,
    now: datetime,
    pause: bool = False,
    ai_decision: AIDecision | None = None,
    keep_decision: bool = True,
    cost_usd: float = 0.0,
) -> Row:
    """`keep_decision` leaves the stored AI decision as it is; otherwise it becomes
    `ai_decision`."""
    return {
        "p_id": job_id,
        "p_run_id": run_id,
        "p_next_run_at": next_run_at,
        "p_last_run_at": last_run_at,
        "p_consecutive_failures": consecutive_failures,
        "p_last_schedule": mapping.last_schedule_json(schedule),
        "p_updated_at": now,
        **job_token_params(usage, now),
        "p_pause": pause,
        "p_keep_decision": keep_decision,
        "p_ai_decision": None if keep_decision else mapping.decision_to_json(ai_decision),
        "p_cost": cost_usd,
        "p_month": now.date().isoformat()[:7],
    }


def job_token_params(usage: TokenUsage, now: datetime) -> Row:
    """The run's token totals for `_token_increments` (which subtracts what is recorded)."""
    return {
        "p_input_tokens": usage.input,
        "p_output_tokens": usage.output,
        "p_reasoning_tokens": usage.reasoning,
        "p_cached_input_tokens": usage.cached,
        "p_today": now.date().isoformat(),
    }


def job_release_row(job_id: str, now: datetime) -> Row:
    return by_id(job_id, {"lease_owner": None, "lease_expires_at": None, "updated_at": now})


def run_token_values(usage: TokenUsage, ai_calls: int) -> Row:
    return {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "reasoning_tokens": usage.reasoning,
        "cached_input_tokens": usage.cached,
        "ai_calls": ai_calls,
    }


def error_row(lease: Lease, error: JobErrorRecord, now: datetime) -> Row:
    return {
        "id": str(uuid.uuid4()),
        "job_id": lease.job_id,
        "run_id": lease.run_id,
        "phase": error.phase.value,
        "code": error.code[:64],
        "message": mapping.scrub(error.message),
        "created_at": now,
    }


def summary_row(lease: Lease, summary: str, now: datetime) -> Row:
    return {
        "id": str(uuid.uuid4()),
        "job_id": lease.job_id,
        "role": MessageRole.ASSISTANT.value,
        "content": mapping.scrub(summary),
        "source": MessageSource.ENGINE.value,
        "created_at": now,
    }


def result_rows(lease: Lease, completion: RunCompletion) -> list[Row]:
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
class Writes:
    """The writes of one transaction, grouped by statement for `executemany`."""

    finished_jobs: list[Row] = field(default_factory=list)
    released_jobs: list[Row] = field(default_factory=list)
    runs: dict[tuple[str, ...], list[Row]] = field(default_factory=dict)
    results: list[Row] = field(default_factory=list)
    errors: list[Row] = field(default_factory=list)
    messages: list[Row] = field(default_factory=list)
    alert_events: list[Row] = field(default_factory=list)
    sessions: list[Row] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)
    """Job id → what its run cost (added to the job's tenant)."""
    month: str = ""

    def update_run(self, run_id: str, values: Mapping[str, Any]) -> None:
        self.runs.setdefault(tuple(values), []).append(by_id(run_id, values))

    def merge(self, other: Writes) -> None:
        self.finished_jobs += other.finished_jobs
        self.released_jobs += other.released_jobs
        for columns, rows in other.runs.items():
            self.runs.setdefault(columns, []).extend(rows)
        self.results += other.results
        self.errors += other.errors
        self.messages += other.messages
        self.alert_events += other.alert_events
        self.sessions += other.sessions
        for job_id, cost in other.costs.items():
            self.costs[job_id] = self.costs.get(job_id, 0.0) + cost
        self.month = self.month or other.month

    async def execute(self, conn: AsyncConnection) -> None:
        """Job rows first (their token increments read the runs' recorded tokens), then
        the runs, then inserts."""
        if self.finished_jobs:
            await conn.execute(JOB_FINISH, self.finished_jobs)
        for columns, rows in self.runs.items():
            await conn.execute(update_by_id(runs_t, columns), rows)
        if self.costs:
            await self._add_tenant_costs(conn)
        for stmt, rows in (
            (INSERT_SESSIONS, self.sessions),
            (INSERT_RESULTS, self.results),
            (INSERT_ERRORS, self.errors),
            (INSERT_MESSAGES, self.messages),
            (INSERT_ALERT_EVENTS, self.alert_events),
            (JOB_RELEASE, self.released_jobs),
        ):
            if rows:
                await conn.execute(stmt, rows)

    async def _add_tenant_costs(self, conn: AsyncConnection) -> None:
        """One increment per tenant, in tenant id order (concurrent transactions lock the
        tenant rows in the same order, so they queue rather than deadlock)."""
        rows = await conn.execute(TENANTS_OF_JOBS, {"job_ids": sorted(self.costs)})
        per_tenant: dict[str, float] = {}
        for job_id, tenant_id in rows:
            per_tenant[tenant_id] = per_tenant.get(tenant_id, 0.0) + self.costs[job_id]
        params = [
            {"p_id": tenant_id, "p_cost": cost, "p_month": self.month}
            for tenant_id, cost in sorted(per_tenant.items())
        ]
        if params:
            await conn.execute(TENANT_COST, params)


def _count(completion: RunCompletion, status: EndpointStatus) -> int:
    return sum(r.status == status for r in completion.results)


def completion_writes(lease: Lease, completion: RunCompletion, now: datetime) -> Writes:
    """Job update (schedule, counters, tokens, lease release), run update and inserts."""
    c = completion
    schedule = mapping.schedule_to_json(
        c.next_run, c.schedule_reasoning, c.schedule_confidence, c.recommended_actions
    )
    writes = Writes()
    writes.finished_jobs.append(
        job_finish_row(
            lease.job_id,
            lease.run_id,
            next_run_at=c.next_run.at,
            last_run_at=c.finished_at,
            consecutive_failures=c.consecutive_failures,
            schedule=schedule,
            usage=c.usage,
            now=now,
            pause=c.pause,
            ai_decision=c.ai_decision,
            keep_decision=False,
            cost_usd=c.cost_usd,
        )
    )
    writes.update_run(
        lease.run_id,
        {
            "status": c.status.value,
            "started_at": c.started_at,
            "finished_at": c.finished_at,
            "duration_ms": ms_between(c.started_at, c.finished_at),
            "plan": mapping.plan_to_json(c.plan) if c.plan is not None else None,
            "plan_source": c.plan_source.value if c.plan_source else None,
            "strategy": c.plan.strategy.value if c.plan is not None else None,
            "success_count": _count(c, EndpointStatus.SUCCESS),
            "failure_count": _count(c, EndpointStatus.FAILED),
            "skipped_count": _count(c, EndpointStatus.SKIPPED),
            "aborted_count": _count(c, EndpointStatus.ABORTED),
            "escalation_level": c.escalation.value,
            "schedule": schedule,
            "error": mapping.scrub(c.error),
            "ai_trigger": c.ai_trigger.value if c.ai_trigger else None,
            "cost_usd": c.cost_usd,
            **run_token_values(c.usage, c.ai_calls),
        },
    )
    writes.results = result_rows(lease, c)
    writes.sessions = session_rows(lease, c)
    if c.cost_usd > 0:
        writes.costs[lease.job_id] = c.cost_usd
        writes.month = now.date().isoformat()[:7]
    writes.errors = [error_row(lease, e, now) for e in c.errors]
    if c.summary:
        writes.messages.append(summary_row(lease, c.summary, now))
    return writes


def alert_event_row(lease: Lease, facts: RunFacts, now: datetime) -> Row:
    """Queued run facts for the alert dispatcher (see `cronicorn.domain.alerts`)."""
    return {
        "job_id": lease.job_id,
        "run_id": lease.run_id,
        "facts": mapping.scrub(facts.to_json()),
        "created_at": now,
    }


def with_alert_event(
    writes: Writes, lease: Lease, facts: RunFacts, alert_open: bool, now: datetime
) -> Writes:
    """`writes` plus the run's alert facts when they are worth queuing: one more row in
    the transaction's batched inserts, and only when an alert condition fires."""
    if worth_queuing(facts, alert_open):
        writes.alert_events.append(alert_event_row(lease, facts, now))
    return writes


def session_rows(lease: Lease, completion: RunCompletion) -> list[Row]:
    return [
        {
            "run_id": lease.run_id,
            "job_id": lease.job_id,
            "position": position,
            "phase": s.phase[:16],
            "trigger": s.trigger.value if s.trigger else None,
            "model": s.model[:200],
            "started_at": s.started_at,
            "latency_ms": s.latency_ms,
            "outcome": s.outcome[:32],
            "failure": mapping.scrub(s.failure),
            "input_tokens": s.usage.input,
            "output_tokens": s.usage.output,
            "reasoning_tokens": s.usage.reasoning,
            "cached_input_tokens": s.usage.cached,
            "cost_usd": s.cost_usd,
            "repair_attempts": max(0, len(s.attempts) - 1),
            "messages": mapping.scrub([dict(m) for m in s.messages]),
            "attempts": mapping.scrub([mapping.attempt_json(a) for a in s.attempts]),
            "decision": mapping.scrub(s.decision),
            "truncated": s.truncated,
        }
        for position, s in enumerate(completion.ai_sessions)
    ]


def plan_params(decision: PlanDecision) -> Row:
    """Parameters for `RUN_PLAN` (plus the fence's `f_*`)."""
    values = {
        "plan": mapping.plan_to_json(decision.plan),
        "plan_source": decision.source.value,
        "strategy": decision.plan.strategy.value,
        **run_token_values(decision.usage, decision.ai_calls),
    }
    return {f"p_{name}": value for name, value in values.items()}
