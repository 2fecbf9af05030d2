"""The per-job pipeline through `process_cycle`: real SQLite store, real HttpExecutor against
a local server, fake planner and fake clock. Each test checks what ends up in the database."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.idempotency import DueRun
from cronicorn.domain.models import (
    ActionPriority,
    ActionType,
    EndpointResult,
    EndpointSpec,
    JobErrorRecord,
    Lease,
    NextRun,
    Plan,
    RecommendedAction,
    RunCompletion,
    TokenUsage,
)
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.events import EVENT_NAMES, EngineEvent
from cronicorn.executor import HttpExecutor
from cronicorn.executor.events import ExecutorEvents
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.engine.conftest import BackendFactory, Target, engine_config, eventually
from tests.fakes import rows, seed
from tests.fakes.clock import FakeClock
from tests.fakes.planners import ScriptedPlanner


class Recorder:
    """A hook for every event; `names` lists what fired, in order."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def __call__(self, event: EngineEvent) -> None:
        self.events.append(event)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.events]

    def of(self, name: str) -> list[EngineEvent]:
        return [e for e in self.events if e.name == name]

    def hooks(self) -> dict[str, Any]:
        return dict.fromkeys(EVENT_NAMES, self)


async def setup_job(
    db: AsyncEngine, box: SecretBox, clock: FakeClock, urls: Sequence[str], **fields: Any
) -> str:
    tenant = await seed.add_tenant(db)
    job_id = await seed.add_job(
        db, tenant, next_run_at=clock.now() - timedelta(seconds=5), **fields
    )
    for i, url in enumerate(urls):
        await seed.add_endpoint(db, box, job_id, url, name=f"ep{i}")
    return job_id


def make_engine(
    backend: Any,
    planner: Any,
    executor: Any,
    clock: FakeClock,
    recorder: Recorder | None = None,
    **sections: dict[str, Any],
) -> SchedulingEngine:
    if recorder is not None:
        sections["events"] = recorder.hooks()
    return SchedulingEngine(
        engine_config(**sections), backend=backend, planner=planner, executor=executor, clock=clock
    )


@pytest.mark.parametrize("mode", ["every_run", "on_change"])
async def test_success_persists_run_results_summary_next_run_and_tokens(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
    mode: str,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok"), target.url("/ok")])
    proposal = clock.now() + timedelta(minutes=5)
    planner = ScriptedPlanner(next_run_at=proposal)
    rec = Recorder()
    engine = make_engine(
        make_backend(clock=clock), planner, executor, clock, rec, ai_agent={"mode": mode}
    )

    result = await engine.process_cycle()

    assert (result.jobs_processed, result.successful_jobs, result.failed_jobs) == (1, 1, 0)
    assert result.errors == []
    row = await rows.job(db, job_id)
    assert row["next_run_at"] == proposal
    assert row["lease_owner"] is None
    assert row["consecutive_failures"] == 0
    assert row["input_tokens"] == 200
    assert row["output_tokens"] == 40
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"
    assert run["success_count"] == 2
    assert run["plan_source"] == "ai"
    assert run["strategy"] == "parallel"
    assert run["schedule"]["source"] == "ai"
    assert run["ai_calls"] == 2
    assert run["ai_trigger"] == ("every_run" if mode == "every_run" else "no_decision")
    assert [r["status_code"] for r in await rows.results(db, run["id"])] == [200, 200]
    [summary] = [m for m in await rows.messages(db, job_id) if m["source"] == "engine"]
    assert "Run completed" in summary["content"]
    assert "source ai" in summary["content"]
    assert "ep0 success 200" in summary["content"]
    assert target.calls["/ok"] == 2
    assert await rows.errors(db, job_id) == []
    for name in ("on_cycle_start", "on_job_start", "on_plan", "on_schedule", "on_job_end"):
        assert name in rec.names
    assert rec.names.index("on_plan") < rec.names.index("on_schedule")
    assert rec.of("on_cycle_end")[0].data["successful_jobs"] == 1
    assert "on_error" not in rec.names
    assert "on_escalation" not in rec.names
    stats = engine.get_state().stats
    assert stats.total_jobs_processed == 1
    assert stats.successful_jobs == 1
    assert stats.total_endpoint_calls == 2
    assert stats.ai_agent_calls == 2
    assert stats.input_tokens == 200
    assert stats.total_tokens == 240
    assert stats.total_cycles == 1


async def test_next_run_is_clamped_by_the_governor(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok")], min_interval_ms=60_000)
    planner = ScriptedPlanner(next_run_at=clock.now() + timedelta(seconds=1))
    engine = make_engine(make_backend(clock=clock), planner, executor, clock)

    await engine.process_cycle()

    row = await rows.job(db, job_id)
    assert row["next_run_at"] == clock.now() + timedelta(seconds=60)
    [run] = await rows.runs(db, job_id)
    assert run["schedule"]["source"] == "clamped_min"


@pytest.mark.parametrize(("confidence", "paused"), [(0.9, True), (0.5, False)])
async def test_pause_job_action_honoured_only_with_enough_confidence(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
    confidence: float,
    paused: bool,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok")])
    action = RecommendedAction(ActionType.PAUSE_JOB, "nothing left to do", ActionPriority.HIGH)
    planner = ScriptedPlanner(confidence=confidence, actions=(action,))
    rec = Recorder()
    engine = make_engine(
        make_backend(clock=clock),
        planner,
        executor,
        clock,
        rec,
        ai_agent={"action_confidence": 0.8},
    )

    await engine.process_cycle()

    assert (await rows.job(db, job_id))["status"] == ("paused" if paused else "active")
    [schedule] = rec.of("on_schedule")
    assert schedule.data["paused"] is paused
    assert schedule.data["recommended_actions"][0]["type"] == "pause_job"
    summary = next(m for m in await rows.messages(db, job_id) if m["source"] == "engine")
    assert "pause_job" in summary["content"]


async def test_retry_failed_endpoints_schedules_at_the_minimum_interval(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/fail")], min_interval_ms=15_000)
    action = RecommendedAction(ActionType.RETRY_FAILED_ENDPOINTS, "flaky")
    planner = ScriptedPlanner(next_run_at=clock.now() + timedelta(hours=1), actions=(action,))
    engine = make_engine(make_backend(clock=clock), planner, executor, clock)

    result = await engine.process_cycle()

    assert result.failed_jobs == 1  # its only endpoint failed
    row = await rows.job(db, job_id)
    assert row["next_run_at"] == clock.now() + timedelta(seconds=15)
    assert row["consecutive_failures"] == 1


async def test_escalation_event_and_level_recorded(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    urls = [target.url("/ok"), target.url("/fail")]
    job_id = await setup_job(db, box, clock, urls)
    rec = Recorder()
    engine = make_engine(make_backend(clock=clock), ScriptedPlanner(), executor, clock, rec)

    await engine.process_cycle()

    [event] = rec.of("on_escalation")
    assert event.data["level"] == "critical"
    assert event.job_id == job_id
    [run] = await rows.runs(db, job_id)
    assert run["escalation_level"] == "critical"
    assert run["status"] == "completed"  # one of two non-critical endpoints failed


@pytest.mark.parametrize("phase", ["plan", "schedule"])
async def test_planner_raising_fails_the_run_once_with_backoff_and_releases(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
    phase: str,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(
        db, box, clock, [target.url("/ok")], interval_ms=60_000, consecutive_failures=2
    )
    boom = RuntimeError("model exploded")
    planner = ScriptedPlanner()
    if phase == "plan":
        planner.plan_error = boom
    else:
        planner.schedule_error = boom
    rec = Recorder()
    engine = make_engine(make_backend(clock=clock), planner, executor, clock, rec)

    result = await engine.process_cycle()

    assert (result.jobs_processed, result.failed_jobs) == (1, 1)
    assert any("model exploded" in e for e in result.errors)
    [error] = await rows.errors(db, job_id)
    assert (error["phase"], error["code"]) == (phase, "RuntimeError")
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "failed"
    assert "model exploded" in run["error"]
    row = await rows.job(db, job_id)
    assert row["lease_owner"] is None
    assert row["consecutive_failures"] == 3
    # interval 60 s doubled per failure: 3 failures, 8 times
    assert row["next_run_at"] == clock.now() + timedelta(minutes=8)
    assert run["schedule"]["source"] == "backoff"
    assert len(rec.of("on_error")) == 1
    if phase == "schedule":
        assert run["success_count"] == 1  # results of the execute phase are kept
    else:
        assert target.calls["/ok"] == 0
    assert (await engine.process_cycle()).jobs_processed == 0  # no hot loop


class BrokenExecutor:
    async def execute(
        self,
        plan: Plan,
        endpoints: Mapping[str, EndpointSpec],
        *,
        default_headers: Mapping[str, str] | None = None,
        abort: asyncio.Event | None = None,
        events: ExecutorEvents | None = None,
        signing_secret: str | None = None,
        due_run: DueRun | None = None,
    ) -> list[EndpointResult]:
        raise OSError("executor broke")

    async def close(self) -> None:
        return None


async def test_executor_raising_is_an_execute_phase_failure(
    db: AsyncEngine, box: SecretBox, make_backend: BackendFactory
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, ["http://127.0.0.1:9/x"])
    engine = make_engine(make_backend(clock=clock), ScriptedPlanner(), BrokenExecutor(), clock)

    result = await engine.process_cycle()

    assert result.failed_jobs == 1
    [error] = await rows.errors(db, job_id)
    assert (error["phase"], error["code"]) == ("execute", "OSError")
    assert (await rows.job(db, job_id))["lease_owner"] is None


class FlakyBackend(LocalSchedulerBackend):
    """The real store with switchable failures of individual writes."""

    fail_record_plan = False
    fail_complete = False
    fail_fail = False
    fail_calls = 0

    async def record_plan(self, lease: Lease, decision: Any) -> None:
        if self.fail_record_plan:
            raise ConnectionError("store down (record_plan)")
        await super().record_plan(lease, decision)

    async def complete(self, lease: Lease, completion: RunCompletion) -> None:
        if self.fail_complete:
            raise ConnectionError("store down (complete)")
        await super().complete(lease, completion)

    async def fail(
        self,
        lease: Lease,
        error: JobErrorRecord,
        next_run: NextRun,
        consecutive_failures: int,
        *,
        usage: TokenUsage | None = None,
        ai_calls: int = 0,
    ) -> None:
        self.fail_calls += 1
        if self.fail_fail:
            raise ConnectionError("store down (fail)")
        await super().fail(
            lease, error, next_run, consecutive_failures, usage=usage, ai_calls=ai_calls
        )


async def test_record_plan_failure_is_a_persist_phase_failure(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok")])
    backend = FlakyBackend(db, box, clock=clock)
    backend.fail_record_plan = True
    engine = make_engine(backend, ScriptedPlanner(), executor, clock)

    await engine.process_cycle()

    [error] = await rows.errors(db, job_id)
    assert error["phase"] == "persist"
    assert target.calls["/ok"] == 0
    assert (await rows.job(db, job_id))["lease_owner"] is None
    await backend.close()


async def test_complete_failing_falls_back_to_fail_write(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok")])
    backend = FlakyBackend(db, box, clock=clock)
    backend.fail_complete = True
    rec = Recorder()
    engine = make_engine(backend, ScriptedPlanner(), executor, clock, rec)

    result = await engine.process_cycle()

    assert result.failed_jobs == 1
    [error] = await rows.errors(db, job_id)
    assert error["phase"] == "persist"
    assert "store down" in error["message"]
    row = await rows.job(db, job_id)
    assert row["lease_owner"] is None
    assert row["consecutive_failures"] == 1
    assert row["input_tokens"] == 200  # tokens already spent are kept
    assert [r["status"] for r in await rows.runs(db, job_id)] == ["failed"]
    assert len(rec.of("on_error")) == 1
    await backend.close()


async def test_store_down_for_every_write_leaves_nothing_half_written(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok")])
    backend = FlakyBackend(db, box, clock=clock)
    backend.fail_complete = backend.fail_fail = True
    engine = make_engine(
        backend, ScriptedPlanner(), executor, clock, scheduler={"stale_lock_threshold_ms": 5_000}
    )

    result = await engine.process_cycle()

    assert result.failed_jobs == 1
    assert backend.fail_calls == 1
    assert [r["status"] for r in await rows.runs(db, job_id)] == ["running"]
    assert await rows.errors(db, job_id) == []
    # The lease expires and the job is claimable again: re-run, nothing lost.
    backend.fail_complete = backend.fail_fail = False
    assert (await engine.process_cycle()).jobs_processed == 0
    clock.advance(6)
    again = await engine.process_cycle()
    assert again.successful_jobs == 1
    assert (await rows.job(db, job_id))["lease_owner"] is None
    await backend.close()


async def test_lease_lost_mid_run_aborts_and_writes_nothing(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok")])
    backend = make_backend(clock=clock)
    planner = ScriptedPlanner(plan_delay_s=30)  # stalls until the abort cancels it
    rec = Recorder()
    engine = make_engine(
        backend, planner, executor, clock, rec, scheduler={"stale_lock_threshold_ms": 3_000}
    )

    cycle = asyncio.create_task(engine.process_cycle())
    await eventually(lambda: planner.plan_calls > 0)
    # Another worker, whose clock is 4 s ahead, takes the expired lease over first; then the
    # first worker's renewal wakes up and finds the job claimed by someone else. (A renewal
    # that came first would keep the lease: a token nobody replaced is still valid.)
    thief = make_backend(clock=FakeClock(clock.now() + timedelta(seconds=4)))
    [stolen] = await thief.claim("other-worker", 1, 60_000)
    clock.advance(4)
    result = await asyncio.wait_for(cycle, 5)

    assert result.failed_jobs == 1
    assert "lease lost" in result.errors[0]
    [aborted] = rec.of("on_abort")
    assert aborted.data["reason"] == "lease lost"
    row = await rows.job(db, job_id)
    assert row["lease_owner"] == "other-worker"
    assert row["lease_token"] == stolen.lease.token
    # The first worker wrote nothing (the store marked its stale run aborted at re-claim).
    statuses = sorted(r["status"] for r in await rows.runs(db, job_id))
    assert statuses in (["running", "running"], ["aborted", "running"])
    assert await rows.errors(db, job_id) == []
    assert [m for m in await rows.messages(db, job_id) if m["source"] == "engine"] == []
    assert engine.get_state().stats.leases_lost == 1
    assert target.calls["/ok"] == 0


async def test_lease_renewed_while_a_job_runs(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/gate")])
    engine = make_engine(
        make_backend(clock=clock),
        ScriptedPlanner(),
        executor,
        clock,
        scheduler={"stale_lock_threshold_ms": 3_000},
    )

    cycle = asyncio.create_task(engine.process_cycle())
    await eventually(lambda: target.calls["/gate"] > 0)
    before = (await rows.job(db, job_id))["lease_expires_at"]
    for _ in range(3):  # 3 s of fake time in renewal-sized steps: the lease stays ahead
        clock.advance(1.01)
        await asyncio.sleep(0.05)
    after = (await rows.job(db, job_id))["lease_expires_at"]
    target.release.set()
    result = await asyncio.wait_for(cycle, 5)

    assert after > before
    assert after > clock.now()
    assert result.successful_jobs == 1


async def test_hooks_are_isolated(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok"), target.url("/fail")])
    calls: list[str] = []

    def bad_sync(event: EngineEvent) -> None:
        calls.append(event.name)
        raise ValueError("hook bug")

    async def bad_async(event: EngineEvent) -> None:
        calls.append(event.name)
        raise ValueError("async hook bug")

    hooks: dict[str, Any] = {name: bad_sync for name in EVENT_NAMES}
    hooks["on_schedule"] = hooks["on_escalation"] = bad_async
    engine = SchedulingEngine(
        engine_config(events=hooks),
        backend=make_backend(clock=clock),
        planner=ScriptedPlanner(),
        executor=executor,
        clock=clock,
    )

    result = await engine.process_cycle()
    await engine.events.drain()

    assert result.jobs_processed == 1
    assert result.errors == []
    assert {"on_job_start", "on_plan", "on_endpoint_progress", "on_cycle_end"} <= set(calls)
    assert {"on_schedule", "on_escalation"} <= set(calls)
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"


async def test_runs_with_the_real_rules_planner(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    from cronicorn.ai import create_planner
    from cronicorn.ai.config import AIAgentConfig

    clock = FakeClock()
    job_id = await setup_job(db, box, clock, [target.url("/ok")], interval_ms=120_000)
    planner = create_planner(AIAgentConfig(), clock=clock)
    engine = make_engine(make_backend(clock=clock), planner, executor, clock)

    result = await engine.process_cycle()

    assert result.successful_jobs == 1
    [run] = await rows.runs(db, job_id)
    assert run["plan_source"] == "rules"
    assert run["schedule"]["source"] == "baseline_interval"
    assert (await rows.job(db, job_id))["next_run_at"] == clock.now() + timedelta(minutes=2)
