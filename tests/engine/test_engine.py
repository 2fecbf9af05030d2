"""The engine loop with the real clock: first cycle, wake-ups, concurrency, no overlap,
graceful stop, heartbeats, stats switches. Real SQLite store, real executor, local server."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn import EngineConfig, create_scheduling_engine
from cronicorn.domain.models import ClaimedJob
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.events import EngineEvent
from cronicorn.executor import HttpExecutor
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.notify import wake_local_waiters
from cronicorn.store.secrets import SecretBox
from tests.engine.conftest import BackendFactory, Target, engine_config, eventually
from tests.fakes import rows, seed
from tests.fakes.planners import ScriptedPlanner

IDLE = {"processing_interval_ms": 60_000}


def now() -> datetime:
    return datetime.now(UTC)


class Timeline:
    """Records job starts/ends (wall clock) and the peak number of jobs running at once."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.running = 0
        self.peak = 0
        self.cycles = 0
        self.aborts: list[EngineEvent] = []
        self.claim_errors: list[EngineEvent] = []

    def hooks(self) -> dict[str, Any]:
        return {
            "on_job_start": self._start,
            "on_job_end": self._end,
            "on_cycle_start": self._cycle,
            "on_abort": self.aborts.append,
            "on_error": self.claim_errors.append,
        }

    def _start(self, event: EngineEvent) -> None:
        assert event.job_id is not None
        self.started[event.job_id] = time.time()
        self.running += 1
        self.peak = max(self.peak, self.running)

    def _end(self, event: EngineEvent) -> None:
        assert event.job_id is not None
        self.ended[event.job_id] = time.time()
        self.running -= 1

    def _cycle(self, event: EngineEvent) -> None:
        self.cycles += 1


async def new_job(db: AsyncEngine, box: SecretBox, url: str, due: datetime, **fields: Any) -> str:
    tenant = await seed.add_tenant(db)
    job_id = await seed.add_job(db, tenant, next_run_at=due, **fields)
    await seed.add_endpoint(db, box, job_id, url)
    return job_id


def build(
    backend: Any,
    executor: HttpExecutor,
    timeline: Timeline | None = None,
    planner: Any = None,
    **sections: dict[str, Any],
) -> SchedulingEngine:
    if timeline is not None:
        sections["events"] = timeline.hooks()
    return SchedulingEngine(
        engine_config(**sections),
        backend=backend,
        planner=planner or ScriptedPlanner(),
        executor=executor,
        worker_id="w1",
    )


async def test_first_cycle_runs_at_once(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    job_id = await new_job(db, box, target.url("/ok"), now() - timedelta(seconds=1))
    timeline = Timeline()
    engine = build(make_backend(), executor, timeline, scheduler=IDLE)

    async with engine:
        await eventually(lambda: job_id in timeline.ended, timeout_s=3)
        assert engine.get_state().status == "running"

    assert timeline.cycles >= 1
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"
    state = engine.get_state()
    assert state.status == "stopped"
    assert state.stop_time is not None
    assert state.last_processing_time is not None


@pytest.mark.parametrize("claim_wait_ms", [30_000, 0])
async def test_idle_engine_starts_a_job_on_time(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
    claim_wait_ms: int,
) -> None:
    """Long-poll claim (default) or a precise sleep until the next due time: either way a job
    created while the engine idles with a 60 s interval starts within a second of its time."""
    timeline = Timeline()
    scheduler = {**IDLE, "claim_wait_ms": claim_wait_ms}
    engine = build(make_backend(), executor, timeline, scheduler=scheduler)
    async with engine:
        await asyncio.sleep(0.2)  # idle now
        due = now() + timedelta(seconds=0.6)
        job_id = await new_job(db, box, target.url("/ok"), due)
        wake_local_waiters()  # what the service layer does after creating a job
        engine.wake()
        await eventually(lambda: job_id in timeline.started, timeout_s=5)
        lag_s = timeline.started[job_id] - due.timestamp()
        # A run-now job (due immediately) while idle is picked up at once too.
        urgent = await new_job(db, box, target.url("/ok"), now())
        created = time.time()
        wake_local_waiters()
        engine.wake()
        await eventually(lambda: urgent in timeline.started, timeout_s=5)
        urgent_lag_s = timeline.started[urgent] - created
    assert -0.01 <= lag_s < 1.0
    assert urgent_lag_s < 1.0


class CountingBackend(LocalSchedulerBackend):
    """The real store, counting overlapping claims."""

    claims_in_flight = 0
    peak_claims = 0
    claim_calls = 0

    async def claim(self, *args: Any, **options: Any) -> list[ClaimedJob]:
        self.claims_in_flight += 1
        self.claim_calls += 1
        self.peak_claims = max(self.peak_claims, self.claims_in_flight)
        try:
            return await super().claim(*args, **options)
        finally:
            self.claims_in_flight -= 1


async def test_job_concurrency_respected_and_a_slow_job_blocks_nobody(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    due = now() - timedelta(seconds=10)
    slow = await new_job(db, box, target.url("/gate"), due - timedelta(seconds=1))
    fast = [await new_job(db, box, target.url("/ok"), due) for _ in range(5)]
    backend = CountingBackend(db, box)
    timeline = Timeline()
    engine = build(
        backend, executor, timeline, scheduler={**IDLE, "job_concurrency": 2, "max_batch_size": 1}
    )

    async with engine:
        await eventually(lambda: all(j in timeline.ended for j in fast), timeout_s=10)
        assert slow not in timeline.ended  # still waiting at the gate
        target.release.set()
        await eventually(lambda: slow in timeline.ended, timeout_s=5)

    assert timeline.peak == 2
    assert target.max_in_flight <= 2
    assert backend.peak_claims == 1  # claims never overlap
    assert backend.claim_calls >= 6  # one job per claim (max_batch_size=1), as slots free up
    await backend.close()


async def test_graceful_stop_aborts_running_jobs_and_releases_leases(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    job_id = await new_job(db, box, target.url("/gate"), now() - timedelta(seconds=1))
    timeline = Timeline()
    engine = build(make_backend(), executor, timeline, scheduler={**IDLE, "shutdown_grace_ms": 200})
    await engine.start()
    await eventually(lambda: target.calls["/gate"] == 1)

    started = time.monotonic()
    await engine.stop()
    stop_s = time.monotonic() - started

    assert stop_s < 3
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "aborted"
    assert [r["status"] for r in await rows.results(db, run["id"])] == ["aborted"]
    row = await rows.job(db, job_id)
    assert row["lease_owner"] is None
    assert row["consecutive_failures"] == 0
    assert [e.data["reason"] for e in timeline.aborts] == ["shutdown"]
    state = engine.get_state()
    assert state.status == "stopped"
    assert state.stats.aborted_jobs == 1


async def test_stop_lets_a_job_finish_within_the_grace_period(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    job_id = await new_job(db, box, target.url("/slow?ms=300"), now() - timedelta(seconds=1))
    engine = build(make_backend(), executor, scheduler={**IDLE, "shutdown_grace_ms": 5_000})
    await engine.start()
    await eventually(lambda: target.calls["/slow"] == 1)
    await engine.stop()

    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"
    assert (await rows.job(db, job_id))["lease_owner"] is None


async def test_heartbeats_report_the_worker(
    db: AsyncEngine, target: Target, executor: HttpExecutor, make_backend: BackendFactory
) -> None:
    engine = build(make_backend(), executor, scheduler={**IDLE, "heartbeat_interval_ms": 100})
    async with engine:
        await asyncio.sleep(0.35)
        [worker] = await rows.workers(db)
        first_beat = worker["last_heartbeat_at"]
        await asyncio.sleep(0.25)
        [worker] = await rows.workers(db)
    assert worker["id"] == "w1"
    assert worker["last_heartbeat_at"] > first_beat
    assert "total_jobs_processed" in worker["stats"]
    [stopped] = await rows.workers(db)
    assert stopped["stopped_at"] is not None


class BrokenClaimBackend(LocalSchedulerBackend):
    broken = True

    async def claim(self, *args: Any, **options: Any) -> list[ClaimedJob]:
        if self.broken:
            raise ConnectionError("database unreachable")
        return await super().claim(*args, **options)


async def test_claim_failure_is_reported_and_the_loop_recovers(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    job_id = await new_job(db, box, target.url("/ok"), now() - timedelta(seconds=1))
    backend = BrokenClaimBackend(db, box)
    timeline = Timeline()
    engine = build(backend, executor, timeline, scheduler={**IDLE, "claim_wait_ms": 200})

    result = await engine.process_cycle()
    assert result.jobs_processed == 0
    assert "database unreachable" in result.errors[0]

    async with engine:
        await eventually(lambda: len(timeline.claim_errors) >= 2, timeout_s=3)
        backend.broken = False
        await eventually(lambda: job_id in timeline.ended, timeout_s=5)
    assert timeline.claim_errors[0].data["phase"] == "claim"
    await backend.close()


async def test_metrics_switches_control_stats(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    for _ in range(2):
        await new_job(db, box, target.url("/ok"), now() - timedelta(seconds=1))
    planner = ScriptedPlanner(plan_fallback_reason="ai timeout")
    planner.stats.repair_attempts = 3
    no_tokens = build(
        make_backend(), executor, planner=planner, metrics={"track_token_usage": False}
    )
    no_tokens.config.scheduler.max_batch_size = 1
    await no_tokens.process_cycle()
    stats = no_tokens.get_state().stats
    assert stats.total_jobs_processed == 1
    assert stats.ai_agent_calls == 2
    assert stats.total_tokens == 0
    assert stats.fallbacks == 1
    assert stats.repair_attempts == 3

    disabled = build(make_backend(), executor, planner=planner, metrics={"enabled": False})
    result = await disabled.process_cycle()
    assert result.jobs_processed == 1
    off = disabled.get_state().stats
    assert off.total_jobs_processed == 0
    assert off.total_cycles == 0
    assert off.repair_attempts == 0


async def test_create_scheduling_engine_composes_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRONICORN_API_URL", raising=False)
    # A database that does not exist yet: the engine creates and migrates it (SQLite).
    monkeypatch.setenv("CRONICORN_DATABASE_URL", f"sqlite:///{tmp_path / 'new' / 'db.sqlite'}")
    monkeypatch.setenv("CRONICORN_SECRET_KEY", SecretBox.generate_key())
    engine = create_scheduling_engine(
        {"scheduler": {"max_batch_size": 7}, "execution": {"max_concurrency": 3}}
    )
    from cronicorn.ai import RulesPlanner

    assert isinstance(engine.config, EngineConfig)
    assert engine.config.scheduler.max_batch_size == 7
    assert isinstance(engine.planner, RulesPlanner)
    assert isinstance(engine.executor, HttpExecutor)
    assert isinstance(engine.backend, LocalSchedulerBackend)
    result = await engine.process_cycle()
    assert result.jobs_processed == 0
    assert result.errors == []
    await engine.stop()  # closes what it created


def test_create_scheduling_engine_needs_an_api_key_with_an_api_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cronicorn.errors import ConfigError

    monkeypatch.setenv("CRONICORN_API_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("CRONICORN_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="CRONICORN_API_KEY"):
        create_scheduling_engine()


async def test_prometheus_metrics_served_on_the_metrics_port(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    make_backend: BackendFactory,
) -> None:
    import aiohttp

    job_id = await new_job(db, box, target.url("/fail"), now() - timedelta(seconds=1))
    timeline = Timeline()
    engine = build(make_backend(), executor, timeline, scheduler=IDLE, metrics={"port": 0})
    async with engine:
        await eventually(lambda: job_id in timeline.ended, timeout_s=3)
        assert engine.metrics_url is not None
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{engine.metrics_url}/metrics") as response:
                text = await response.text()
            async with http.get(f"{engine.metrics_url}/health") as response:
                health = await response.json()
    assert 'cronicorn_jobs_processed_total{outcome="failed"} 1.0' in text
    assert 'cronicorn_endpoint_calls_total{category="http_5xx",outcome="failed"} 1.0' in text
    assert "cronicorn_scheduling_lag_seconds_count 1.0" in text
    assert health["status"] == "ok"
    assert engine.metrics_url is None  # server stopped with the engine


async def test_run_until_signal_stops_gracefully_on_sigterm(
    executor: HttpExecutor, make_backend: BackendFactory
) -> None:
    import os
    import signal

    engine = build(make_backend(), executor, scheduler=IDLE)
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(engine.run_until_signal(), 5)
    assert engine.get_state().status == "stopped"
    assert engine.get_state().start_time is not None


async def test_api_url_selects_the_api_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from cronicorn.client import ApiSchedulerBackend

    monkeypatch.setenv("CRONICORN_API_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("CRONICORN_API_KEY", "engine-key")
    engine = create_scheduling_engine()
    assert isinstance(engine.backend, ApiSchedulerBackend)
    await engine.stop()


class StubbornBackend(LocalSchedulerBackend):
    """Its long-poll swallows the first cancellation, as asyncio.wait_for can on 3.11 when
    a cancel races a wake-up."""

    async def claim(
        self,
        worker_id: str,
        limit: int,
        lease_ms: int,
        wait_ms: int = 0,
        *,
        ahead_ms: int = 0,
        history: bool = True,
    ) -> list[ClaimedJob]:
        if wait_ms > 0:
            try:
                await asyncio.sleep(wait_ms / 1000)
            except asyncio.CancelledError:
                await asyncio.sleep(wait_ms / 1000)
        return await super().claim(
            worker_id, limit, lease_ms, 0, ahead_ms=ahead_ms, history=history
        )


async def test_stop_is_not_held_up_by_a_long_poll_that_ignores_cancellation(
    db: AsyncEngine, box: SecretBox, executor: HttpExecutor
) -> None:
    backend = StubbornBackend(db, box)
    engine = build(backend, executor, scheduler=IDLE)
    await engine.start()
    await asyncio.sleep(0.2)  # idle inside the 30 s long-poll
    started = time.monotonic()
    await engine.stop()
    assert time.monotonic() - started < 3
    assert engine.get_state().status == "stopped"
    await backend.close()


async def test_one_cycle_processes_max_batch_size_jobs_with_job_concurrency_running(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    """Issue 15: the seed's `process_cycle()` handles up to `max_batch_size` (default 20) due
    jobs, not min(max_batch_size, job_concurrency); at most `job_concurrency` (default 10)
    run at once, the rest wait for a slot."""
    due = now() - timedelta(seconds=5)
    jobs = [await new_job(db, box, target.url("/slow?ms=50"), due) for _ in range(25)]
    timeline = Timeline()
    engine = create_scheduling_engine(
        {"execution": {"allow_private_networks": True}, "events": timeline.hooks()},
        backend=LocalSchedulerBackend(db, box),
        planner=ScriptedPlanner(),
        executor=executor,
    )
    defaults = engine.config.scheduler
    assert (defaults.max_batch_size, defaults.job_concurrency) == (20, 10)

    result = await engine.process_cycle()

    assert result.jobs_processed == 20
    assert result.successful_jobs == 20
    assert timeline.peak == 10
    assert sum(j in timeline.ended for j in jobs) == 20
    second = await engine.process_cycle()
    assert second.jobs_processed == 5
    await engine.stop()
    await engine.backend.close()


async def test_jobs_waiting_for_a_run_slot_are_released_unrun_on_stop(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    due = now() - timedelta(seconds=5)
    gated = await new_job(db, box, target.url("/gate"), due - timedelta(seconds=1))
    waiting = await new_job(db, box, target.url("/ok"), due)
    backend = LocalSchedulerBackend(db, box)
    timeline = Timeline()
    engine = build(
        backend,
        executor,
        timeline,
        scheduler={**IDLE, "job_concurrency": 1, "max_batch_size": 2, "shutdown_grace_ms": 0},
    )
    async with engine:
        await eventually(lambda: gated in timeline.started)
        assert waiting not in timeline.started
    assert waiting not in timeline.started  # never ran
    row = await rows.job(db, waiting)
    assert row["lease_owner"] is None  # given back for another worker
    [run] = await rows.runs(db, waiting)
    assert (run["status"], run["error"]) == ("aborted", "not started: the engine stopped")
    target.release.set()
    await backend.close()


@pytest.mark.parametrize("track", [True, False])
async def test_track_token_usage_off_writes_no_tokens_for_runs_or_jobs(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor, track: bool
) -> None:
    """Issue 15: `metrics.track_token_usage=False` means no token tracking at all: the stats,
    and also the run rows and the job's totals (the AI planner's usage is 100+20 per call)."""
    job_id = await new_job(db, box, target.url("/ok"), now() - timedelta(seconds=1))
    engine = create_scheduling_engine(
        {"execution": {"allow_private_networks": True}, "metrics": {"track_token_usage": track}},
        backend=LocalSchedulerBackend(db, box),
        planner=ScriptedPlanner(),
        executor=executor,
    )
    result = await engine.process_cycle()
    await engine.stop()
    await engine.backend.close()
    assert result.successful_jobs == 1
    [run] = await rows.runs(db, job_id)
    job = await rows.job(db, job_id)
    tokens = (run["input_tokens"], run["output_tokens"], job["input_tokens"], job["tokens_today"])
    assert tokens == ((200, 40, 200, 240) if track else (0, 0, 0, 0))
    assert (engine.get_state().stats.total_tokens > 0) is track
