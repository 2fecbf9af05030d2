"""What a run tells alerting: the engine's completion carries the AI's notify/pause and a
spent token budget, and the store queues them with the completion (real SQLite/PostgreSQL,
real executor against a local server)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import ActionPriority, ActionType, RecommendedAction
from cronicorn.executor import HttpExecutor
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import AlertEvent
from tests.engine.conftest import BackendFactory, Target
from tests.engine.test_pipeline import make_engine, setup_job
from tests.fakes.clock import FakeClock
from tests.fakes.planners import ScriptedPlanner


async def _facts(db: AsyncEngine) -> list[dict[str, object]]:
    async with db.connect() as conn:
        return [dict(r[0]) for r in await conn.execute(sa.select(AlertEvent.facts))]


async def test_budget_notify_and_pause_reach_the_alert_queue(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    await setup_job(db, box, clock, [target.url("/ok")])
    actions = (
        RecommendedAction(
            ActionType.NOTIFY_USER, "orders backlog keeps growing", ActionPriority.HIGH
        ),
        RecommendedAction(ActionType.PAUSE_JOB, "nothing to do until Monday"),
    )
    planner = ScriptedPlanner(
        confidence=0.95,
        actions=actions,
        plan_fallback_reason="budget: daily token budget exhausted (10 of 10 used)",
    )
    engine = make_engine(make_backend(clock=clock), planner, executor, clock)

    await engine.process_cycle()

    [facts] = await _facts(db)
    assert facts["status"] == "completed"
    assert facts["budget_exhausted"] is True
    assert facts["paused_by_ai"] is True
    assert facts["notify"] == ["orders backlog keeps growing"]


async def test_a_healthy_run_queues_nothing(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    await setup_job(db, box, clock, [target.url("/ok")])
    engine = make_engine(make_backend(clock=clock), ScriptedPlanner(), executor, clock)
    await engine.process_cycle()
    assert await _facts(db) == []
