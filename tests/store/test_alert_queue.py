"""Alert facts on the completion's hot path (queued only when a rule could fire, or an open
incident could resolve) and the dispatcher turning them into incidents — SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.alerting.config import AlertSettings
from cronicorn.alerting.dispatcher import AlertDispatcher
from cronicorn.domain.models import (
    ActionPriority,
    ActionType,
    EndpointResult,
    EndpointStatus,
    ErrorPhase,
    Escalation,
    JobErrorRecord,
    NextRun,
    RecommendedAction,
    RunCompletion,
    RunStatus,
    ScheduleSource,
)
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Alert, AlertChannel, AlertDelivery, AlertEvent, Job
from tests.fakes.seed import add_job, add_tenant, at
from tests.store.factory import complete_run
from tests.store.test_writes import completion

HEALTHY = completion(
    status=RunStatus.COMPLETED,
    escalation=Escalation.NONE,
    recommended_actions=(),
    errors=(),
    results=(EndpointResult("ep-1", EndpointStatus.SUCCESS, status_code=200, attempts=1),),
)


async def _run(repo: SchedulerRepository, done: RunCompletion, now: datetime) -> None:
    [claimed] = await repo.claim_due_jobs("w1", 1, 60_000, now=now)
    done = replace(done, next_run=NextRun(now, ScheduleSource.AI))  # due again at once
    await complete_run(repo, claimed.lease, done, now)


async def _count(engine: AsyncEngine, table: type) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def _incidents(engine: AsyncEngine) -> dict[str, tuple[str, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(Alert.kind, Alert.status, Alert.details))
        return {r.kind: (r.status, r.details) for r in rows}


async def _channel(engine: AsyncEngine, tenant: str, box: SecretBox) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(AlertChannel).values(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                name="ops",
                kind="webhook",
                url=box.encrypt("https://hooks.example.com/x"),
                url_display="https://hooks.example.com/***",
            )
        )


async def test_only_runs_that_could_alert_are_queued(
    engine: AsyncEngine, repo: SchedulerRepository
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    for i in range(3):
        await _run(repo, HEALTHY, at(i))
    assert await _count(engine, AlertEvent) == 0  # quiet job: no extra row

    await _run(repo, replace(HEALTHY, escalation=Escalation.WARN), at(10))
    assert await _count(engine, AlertEvent) == 0  # warn raises nothing

    failed = replace(HEALTHY, status=RunStatus.FAILED, consecutive_failures=1)
    await _run(repo, failed, at(20))
    assert await _count(engine, AlertEvent) == 1
    await _run(repo, HEALTHY, at(30))  # facts still queued: this run may resolve them
    assert await _count(engine, AlertEvent) == 2

    [claimed] = await repo.claim_due_jobs("w1", 1, 60_000, now=at(40))
    error = JobErrorRecord(ErrorPhase.PERSIST, "db", "database unavailable")
    await repo.fail_run(
        claimed.lease, error, NextRun(at(40), ScheduleSource.BACKOFF), 1, now=at(40)
    )
    async with engine.connect() as conn:
        facts = (await conn.execute(sa.select(AlertEvent.facts).order_by(AlertEvent.id))).all()
    assert [f[0]["status"] for f in facts] == ["failed", "completed", "failed"]
    assert facts[2][0]["error"] == "persist: database unavailable"


async def test_ai_kinds_open_with_details_and_resolve_on_their_own_terms(
    engine: AsyncEngine, repo: SchedulerRepository, box: SecretBox
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant, name="orders")
    await _channel(engine, tenant, box)
    dispatcher = AlertDispatcher(engine, box, AlertSettings(public_url="https://c.example"))
    notify = RecommendedAction(ActionType.NOTIFY_USER, "disk almost full", ActionPriority.HIGH)
    ai_run = replace(HEALTHY, recommended_actions=(notify,), pause=True, budget_exhausted=True)

    await _run(repo, ai_run, at(0))
    assert await dispatcher.process_events() == 1
    assert await _incidents(engine) == {
        "notify_user": ("open", "disk almost full"),
        "ai_paused": ("open", None),
        "budget_spent": ("open", None),
    }
    async with engine.connect() as conn:
        texts = [r[0] for r in await conn.execute(sa.select(AlertDelivery.text))]
    assert len(texts) == 3
    assert any("Details: disk almost full" in t for t in texts)
    assert all("https://c.example/jobs/" in t for t in texts)
    assert await _count(engine, AlertEvent) == 0  # processed facts are removed

    async with engine.begin() as conn:  # the user resumes the job the AI paused
        await conn.execute(sa.update(Job).values(status="active"))
    # Still budget-limited but otherwise healthy: the AI kinds close, the budget stays open.
    await _run(repo, replace(HEALTHY, budget_exhausted=True), at(10))
    assert await dispatcher.process_events() == 1
    assert await _incidents(engine) == {
        "notify_user": ("resolved", "disk almost full"),
        "ai_paused": ("resolved", None),
        "budget_spent": ("open", None),
    }
    await _run(repo, HEALTHY, at(20))
    await dispatcher.process_events()
    assert {s for s, _ in (await _incidents(engine)).values()} == {"resolved"}
    assert await _count(engine, AlertDelivery) == 3  # these kinds close silently
    await _run(repo, HEALTHY, at(30))
    assert await _count(engine, AlertEvent) == 0  # nothing open any more: nothing queued


async def test_a_second_dispatcher_finds_no_work_twice(
    engine: AsyncEngine, repo: SchedulerRepository, box: SecretBox
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    await _channel(engine, tenant, box)
    failed = replace(HEALTHY, status=RunStatus.FAILED, consecutive_failures=3)
    await _run(repo, failed, at(0))
    first = AlertDispatcher(engine, box, AlertSettings())
    second = AlertDispatcher(engine, box, AlertSettings())
    assert await first.process_events() + await second.process_events() == 1
    assert await _count(engine, Alert) == 1
    assert await _count(engine, AlertDelivery) == 1
