"""Contract tests for the fenced writes of a claimed job (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import (
    ActionPriority,
    ActionType,
    EndpointResult,
    EndpointStatus,
    ErrorCategory,
    ErrorPhase,
    Escalation,
    ExecutionStrategy,
    JobErrorRecord,
    Lease,
    NextRun,
    Plan,
    PlanDecision,
    PlannedCall,
    PlanSource,
    RecommendedAction,
    RunCompletion,
    RunStatus,
    ScheduleSource,
    TokenUsage,
)
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.tables import EndpointResult as ResultRow
from cronicorn.store.tables import JobError, Message, Run, jobs_t
from tests.fakes.clock import T0
from tests.fakes.rows import dump, job
from tests.fakes.seed import add_job, add_tenant, at
from tests.store.factory import complete_run

LEASE_MS = 60_000
PLAN = Plan(
    calls=(PlannedCall("ep-1", {"q": 1}, priority=1, critical=True),),
    strategy=ExecutionStrategy.PARALLEL,
    reasoning="check orders",
    confidence=0.9,
)


def completion(**changes: object) -> RunCompletion:
    base = RunCompletion(
        status=RunStatus.COMPLETED,
        started_at=at(1),
        finished_at=at(3),
        plan=PLAN,
        plan_source=PlanSource.AI,
        results=(
            EndpointResult(
                "ep-1",
                EndpointStatus.SUCCESS,
                status_code=200,
                attempts=1,
                started_at=at(1),
                duration_ms=12.5,
                response_body={"backlog": 3},
            ),
            EndpointResult(
                "ep-2",
                EndpointStatus.FAILED,
                status_code=503,
                error="unavailable",
                error_category=ErrorCategory.HTTP_5XX,
                response_body="oops\x00",
            ),
            EndpointResult("ep-3", EndpointStatus.SKIPPED),
        ),
        escalation=Escalation.CRITICAL,
        next_run=NextRun(at(600), ScheduleSource.AI, proposed_at=at(600)),
        schedule_reasoning="backlog is low",
        schedule_confidence=0.7,
        recommended_actions=(
            RecommendedAction(ActionType.NOTIFY_USER, "tell ops", ActionPriority.HIGH),
        ),
        usage=TokenUsage(input=100, output=20, reasoning=5, cached=10),
        ai_calls=2,
        summary="1 ok, 1 failed; next run in 10 min",
        errors=(JobErrorRecord(ErrorPhase.EXECUTE, "endpoint_failed", "ep-2 returned 503"),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def claim_one(repo: SchedulerRepository, engine: AsyncEngine, **fields: object) -> Lease:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant, **fields)
    [claimed] = await repo.claim_due_jobs("w1", 1, LEASE_MS, now=T0)
    return claimed.lease


async def rows(engine: AsyncEngine, table: sa.FromClause) -> list[sa.RowMapping]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.select(table))).mappings())


async def test_complete_writes_everything_and_releases(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    lease = await claim_one(
        repo, engine, input_tokens=1000, tokens_today=50, tokens_day=T0.date().isoformat()
    )
    decision = PlanDecision(PLAN, PlanSource.AI, TokenUsage(40, 5), 1)
    await repo.record_plan(lease, decision, now=at(1))
    await complete_run(repo, lease, completion(), now=at(3))

    j = await job(engine, lease.job_id)
    assert (j["lease_owner"], j["lease_expires_at"]) == (None, None)
    assert (j["next_run_at"], j["last_run_at"], j["status"]) == (at(600), at(3), "active")
    assert (j["input_tokens"], j["output_tokens"], j["reasoning_tokens"]) == (1100, 20, 5)
    assert (j["cached_input_tokens"], j["tokens_today"]) == (10, 170)
    assert j["last_schedule"] == {
        "next_run_at": at(600).isoformat(),
        "source": "ai",
        "reasoning": "backlog is low",
        "confidence": 0.7,
    }
    [run] = await rows(engine, Run.__table__)
    assert (run["status"], run["finished_at"], run["duration_ms"]) == ("completed", at(3), 2000.0)
    assert (run["success_count"], run["failure_count"], run["skipped_count"]) == (1, 1, 1)
    assert (run["escalation_level"], run["plan_source"], run["strategy"]) == (
        "critical",
        "ai",
        "parallel",
    )
    assert run["plan"]["endpoints_to_call"][0]["parameters"] == {"q": 1}
    assert run["schedule"]["recommended_actions"] == [
        {"type": "notify_user", "details": "tell ops", "priority": "high"}
    ]
    assert run["schedule"]["proposed_next_run_at"] == at(600).isoformat()
    assert (run["input_tokens"], run["ai_calls"]) == (100, 2)
    results = sorted(await rows(engine, ResultRow.__table__), key=lambda r: r["position"])
    assert [r["endpoint_id"] for r in results] == ["ep-1", "ep-2", "ep-3"]
    assert results[0]["response_body"] == {"backlog": 3}
    assert results[1]["response_body"] == "oops"
    assert results[1]["error_category"] == "http_5xx"
    [msg] = await rows(engine, Message.__table__)
    assert (msg["role"], msg["source"], msg["content"]) == (
        "assistant",
        "engine",
        "1 ok, 1 failed; next run in 10 min",
    )
    [err] = await rows(engine, JobError.__table__)
    assert (err["run_id"], err["phase"]) == (lease.run_id, "execute")
    assert err["code"] == "endpoint_failed"


async def test_complete_can_pause_and_rolls_token_day(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    lease = await claim_one(repo, engine, tokens_today=999, tokens_day="2029-12-31")
    await complete_run(repo, lease, completion(pause=True, consecutive_failures=2), now=at(3))

    j = await job(engine, lease.job_id)
    assert (j["status"], j["consecutive_failures"]) == ("paused", 2)
    assert (j["tokens_today"], j["tokens_day"]) == (120, "2030-01-01")


async def test_token_counters_add_to_concurrent_changes(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    """`x = x + delta`: a change made after the claim is kept, not overwritten."""
    lease = await claim_one(repo, engine, output_tokens=5)
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(jobs_t).where(jobs_t.c.id == lease.job_id).values(output_tokens=500)
        )
    await complete_run(repo, lease, completion(), now=at(3))

    assert (await job(engine, lease.job_id))["output_tokens"] == 520


async def test_plan_tokens_count_on_the_job_even_if_the_run_never_completes(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    """Tokens spent on a recorded plan belong to the job at once (a crash or a lost lease
    must not hide them from the totals and the daily budget); completing the run then adds
    only the remainder, so job totals always equal the sum over its runs."""
    lease = await claim_one(repo, engine)
    plan_usage = TokenUsage(input=60, output=8, reasoning=2, cached=4)
    decision = PlanDecision(PLAN, PlanSource.AI, usage=plan_usage, ai_calls=1)
    await repo.record_plan(lease, decision, now=at(1))

    j = await job(engine, lease.job_id)
    assert (j["input_tokens"], j["output_tokens"], j["reasoning_tokens"]) == (60, 8, 2)
    assert (j["cached_input_tokens"], j["tokens_today"]) == (4, 68)

    await complete_run(repo, lease, completion(), now=at(3))  # run total: 100/20/5/10
    j = await job(engine, lease.job_id)
    assert (j["input_tokens"], j["output_tokens"], j["reasoning_tokens"]) == (100, 20, 5)
    assert (j["cached_input_tokens"], j["tokens_today"]) == (10, 120)
    [run] = await rows(engine, Run.__table__)
    assert (run["input_tokens"], run["output_tokens"]) == (100, 20)


async def test_plan_tokens_of_a_fenced_out_run_stay_counted_once(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    lease = await claim_one(repo, engine)
    await repo.record_plan(
        lease, PlanDecision(PLAN, PlanSource.AI, usage=TokenUsage(input=50, output=5)), now=at(1)
    )
    # The lease expires; another worker claims and completes the job.
    [second] = await repo.claim_due_jobs("w2", 1, LEASE_MS, now=at(120))
    await complete_run(repo, second.lease, completion(), now=at(121))

    j = await job(engine, lease.job_id)
    runs = await rows(engine, Run.__table__)
    assert j["input_tokens"] == sum(r["input_tokens"] for r in runs) == 150
    assert j["output_tokens"] == sum(r["output_tokens"] for r in runs) == 25


async def test_complete_is_all_or_nothing(repo: SchedulerRepository, engine: AsyncEngine) -> None:
    """A failing insert (NOT NULL violated) rolls back the job update and lease release."""
    lease = await claim_one(repo, engine)
    before = await dump(engine)
    bad = completion(errors=(JobErrorRecord(ErrorPhase.PERSIST, "x", None),))  # type: ignore[arg-type]
    try:
        await complete_run(repo, lease, bad, now=at(3))
    except sa.exc.IntegrityError:
        pass
    else:
        raise AssertionError("expected an integrity error")
    assert await dump(engine) == before


async def test_fail_run_records_error_once_and_releases(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    lease = await claim_one(repo, engine)
    error = JobErrorRecord(ErrorPhase.PLAN, "planner_crashed", "boom")
    await repo.fail_run(
        lease,
        error,
        NextRun(at(120), ScheduleSource.BACKOFF),
        3,
        now=at(2),
        usage=TokenUsage(input=7, output=3),
        ai_calls=1,
    )

    j = await job(engine, lease.job_id)
    assert (j["lease_owner"], j["next_run_at"], j["consecutive_failures"]) == (None, at(120), 3)
    assert (j["input_tokens"], j["output_tokens"], j["tokens_today"]) == (7, 3, 10)
    assert j["last_schedule"]["source"] == "backoff"
    [run] = await rows(engine, Run.__table__)
    assert (run["status"], run["error"], run["duration_ms"]) == ("failed", "boom", 2000.0)
    assert run["schedule"]["next_run_at"] == at(120).isoformat()
    [err] = await rows(engine, JobError.__table__)
    assert (err["phase"], err["code"], err["message"], err["run_id"]) == (
        "plan",
        "planner_crashed",
        "boom",
        lease.run_id,
    )


async def test_release_aborts_run_and_keeps_next_run(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    lease = await claim_one(repo, engine, next_run_at=at(-30))
    await repo.release(lease, now=at(1), reason="shutdown")

    j = await job(engine, lease.job_id)
    assert (j["lease_owner"], j["lease_expires_at"], j["next_run_at"]) == (None, None, at(-30))
    [run] = await rows(engine, Run.__table__)
    assert (run["status"], run["error"]) == (RunStatus.ABORTED, "shutdown")
    [again] = await repo.claim_due_jobs("w2", 1, LEASE_MS, now=at(2))
    assert again.lease.job_id == lease.job_id


async def test_extend_lease_moves_expiry(repo: SchedulerRepository, engine: AsyncEngine) -> None:
    lease = await claim_one(repo, engine)
    extended = await repo.extend_lease(lease, 120_000, now=at(50))

    assert extended.expires_at == at(170)
    assert (await job(engine, lease.job_id))["lease_expires_at"] == at(170)
    assert await repo.claim_due_jobs("w2", 1, LEASE_MS, now=at(100)) == []
    await complete_run(repo, extended, completion(), now=at(160))
