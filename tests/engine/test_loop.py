"""The idle loop spends no claims that cannot find anything: every claim is a write
transaction, competing with the runs' own writes (SQLite has a single writer).

Time is a `FakeClock` shared by the engine and the store: the test moves it, so when each
job becomes due is decided by the test, not by how fast the machine is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.ai.planner import Planner
from cronicorn.ai.rules_planner import RulesPlanner
from cronicorn.domain.models import ClaimedJob
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.loop import DUE_MARGIN_S, SHORT_WAIT_S
from cronicorn.engine.ports import SchedulerBackend
from cronicorn.executor import HttpExecutor
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.notify import wake_local_waiters
from cronicorn.store.secrets import SecretBox
from tests.engine.conftest import Target, engine_config, eventually
from tests.fakes import rows, seed
from tests.fakes.clock import FakeClock
from tests.fakes.planners import ScriptedPlanner


@dataclass(frozen=True)
class Claim:
    wait_ms: int
    job_ids: tuple[str, ...]


@dataclass
class ClaimLog:
    claims: list[Claim] = field(default_factory=list)
    histories: set[bool] = field(default_factory=set)
    long_polling: asyncio.Event = field(default_factory=asyncio.Event)
    polled_found: Callable[[], Awaitable[None]] | None = None
    """Called when a long-poll claim found jobs, before it returns them."""


class RecordingBackend(LocalSchedulerBackend):
    """The real store; records every claim the engine makes and what it returned, and
    signals when the engine waits inside a long-poll."""

    log: ClaimLog

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
            self.log.long_polling.set()
        self.log.histories.add(history)
        jobs = await super().claim(
            worker_id, limit, lease_ms, wait_ms, ahead_ms=ahead_ms, history=history
        )
        self.log.claims.append(Claim(wait_ms, tuple(j.lease.job_id for j in jobs)))
        if jobs and wait_ms > 0 and self.log.polled_found is not None:
            await self.log.polled_found()
        return jobs


def loop_engine(
    backend: SchedulerBackend,
    executor: HttpExecutor,
    clock: FakeClock,
    scheduler: dict[str, object],
    planner: Planner | None = None,
) -> SchedulingEngine:
    """The engine under test: worker w1 on the shared fake clock, scripted planner."""
    return SchedulingEngine(
        engine_config(scheduler=scheduler),
        backend=backend,
        planner=planner or ScriptedPlanner(),
        executor=executor,
        clock=clock,
        worker_id="w1",
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def backend(
    db: AsyncEngine, box: SecretBox, clock: FakeClock
) -> AsyncIterator[RecordingBackend]:
    made = RecordingBackend(db, box, clock=clock)
    made.log = ClaimLog()
    yield made
    await made.close()


async def test_jobs_due_close_together_are_claimed_without_empty_claims(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    backend: RecordingBackend,
    clock: FakeClock,
) -> None:
    """Two jobs due a little apart (closer than SHORT_WAIT_S) while the engine idles in a
    long-poll: the long-poll claims the first; the second is waited for with a sleep and
    claimed by the very next claim — no immediate re-claim after the long-poll, no
    long-poll whose first claim finds nothing."""
    log = backend.log
    engine = loop_engine(
        backend, executor, clock, {"processing_interval_ms": 60_000, "claim_ahead_ms": 0}
    )
    async with engine:
        await asyncio.wait_for(log.long_polling.wait(), 10)  # the first cycle found nothing
        assert [c.job_ids for c in log.claims] == [()]
        tenant = await seed.add_tenant(db)
        due = clock.now() + timedelta(seconds=0.5)
        spacing = SHORT_WAIT_S * 0.6
        first = await seed.add_job(db, tenant, next_run_at=due)
        second = await seed.add_job(db, tenant, next_run_at=due + timedelta(seconds=spacing))
        for job_id in (first, second):
            await seed.add_endpoint(db, box, job_id, target.url("/ok"))

        clock.advance(0.5 + DUE_MARGIN_S)  # the first is due, the second not yet
        wake_local_waiters()
        await eventually(lambda: target.calls["/ok"] == 1)
        short_sleep = spacing  # due in (spacing - DUE_MARGIN_S), plus the loop's DUE_MARGIN_S
        await eventually(lambda: any(abs(s - short_sleep) < 1e-6 for s in clock.sleeps))
        clock.advance(short_sleep + DUE_MARGIN_S)
        await eventually(lambda: target.calls["/ok"] == 2)

    claimed = [c for c in log.claims if c.job_ids]
    assert [c.job_ids for c in claimed] == [(first,), (second,)]
    assert claimed[0].wait_ms > 0, "the idle engine waited inside a long-poll"
    start, end = log.claims.index(claimed[0]), log.claims.index(claimed[-1])
    assert log.claims[start : end + 1] == claimed, log.claims  # no claim found nothing


async def test_a_job_claimed_ahead_starts_at_its_due_time_not_before(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    backend: RecordingBackend,
    clock: FakeClock,
) -> None:
    """With `claim_ahead_ms`, the idle engine claims a job that far ahead of its due time
    (the claim's latency is then off the job's lag) and calls its endpoint only once the
    due time has come."""
    log = backend.log
    engine = loop_engine(
        backend, executor, clock, {"processing_interval_ms": 60_000, "claim_ahead_ms": 200}
    )
    async with engine:
        await asyncio.wait_for(log.long_polling.wait(), 10)
        tenant = await seed.add_tenant(db)
        job_id = await seed.add_job(db, tenant, next_run_at=clock.now() + timedelta(seconds=1))
        await seed.add_endpoint(db, box, job_id, target.url("/ok"))

        clock.advance(0.5)  # 300 ms before the claim-ahead window opens: nothing claimed
        wake_local_waiters()
        await asyncio.sleep(0.2)
        assert [c.job_ids for c in log.claims if c.job_ids] == []
        clock.advance(0.3 + DUE_MARGIN_S)  # inside the window (due in 199 ms): claimed
        wake_local_waiters()
        await eventually(lambda: any(c.job_ids == (job_id,) for c in log.claims))
        await asyncio.sleep(0.2)
        assert target.calls["/ok"] == 0, "claimed ahead, but not started before its due time"
        clock.advance(0.2)
        await eventually(lambda: target.calls["/ok"] == 1)


async def test_process_cycle_claims_only_what_is_due_now(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    clock: FakeClock,
) -> None:
    tenant = await seed.add_tenant(db)
    due = await seed.add_job(db, tenant, next_run_at=clock.now() - timedelta(seconds=1))
    soon = await seed.add_job(db, tenant, next_run_at=clock.now() + timedelta(milliseconds=100))
    for job_id in (due, soon):
        await seed.add_endpoint(db, box, job_id, target.url("/ok"))
    backend = LocalSchedulerBackend(db, box, clock=clock, listen=False)
    engine = loop_engine(backend, executor, clock, {"claim_ahead_ms": 1_000})
    result = await engine.process_cycle()
    await backend.close()

    assert result.jobs_processed == 1
    assert target.calls["/ok"] == 1


async def test_a_job_claimed_ahead_still_runs_at_its_due_time_when_the_engine_stops(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    backend: RecordingBackend,
    clock: FakeClock,
) -> None:
    """Claimed, but not due yet when stop() is called: the job runs at its due time within
    the shutdown grace period, like the claimed jobs already running — not given back as
    an aborted run for the next engine to pick up late."""
    log = backend.log
    engine = loop_engine(
        backend, executor, clock, {"processing_interval_ms": 60_000, "claim_ahead_ms": 500}
    )
    await engine.start()
    await asyncio.wait_for(log.long_polling.wait(), 10)
    tenant = await seed.add_tenant(db)
    job_id = await seed.add_job(db, tenant, next_run_at=clock.now() + timedelta(seconds=0.3))
    await seed.add_endpoint(db, box, job_id, target.url("/ok"))
    wake_local_waiters()
    await eventually(lambda: any(c.job_ids == (job_id,) for c in log.claims))

    stopping = asyncio.create_task(engine.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done(), "stop() waits for the claimed job"
    assert target.calls["/ok"] == 0
    clock.advance(0.3)
    await asyncio.wait_for(stopping, 10)

    assert target.calls["/ok"] == 1
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"


async def test_jobs_a_long_poll_returns_as_stop_is_called_run_before_stop_ends(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    backend: RecordingBackend,
    clock: FakeClock,
) -> None:
    """stop() comes while a long-poll's claim is on its way back: the claim has leased the
    job, so it runs within the grace period like every claimed job — it is not given back
    as an aborted run for the next engine to pick up late."""
    engine = loop_engine(backend, executor, clock, {"processing_interval_ms": 60_000})
    stopping: list[asyncio.Task[None]] = []

    async def stop_now() -> None:
        stopping.append(asyncio.create_task(engine.stop()))
        await asyncio.sleep(0)  # stop() has set `stopping` before the claim returns

    await engine.start()
    await asyncio.wait_for(backend.log.long_polling.wait(), 10)
    backend.log.polled_found = stop_now
    tenant = await seed.add_tenant(db)
    job_id = await seed.add_job(db, tenant, next_run_at=clock.now())
    await seed.add_endpoint(db, box, job_id, target.url("/ok"))
    wake_local_waiters()
    await eventually(lambda: bool(stopping))
    await asyncio.wait_for(stopping[0], 10)

    assert target.calls["/ok"] == 1
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"


@pytest.mark.parametrize(
    ("planner", "history"), [(RulesPlanner(), False), (ScriptedPlanner(), True)]
)
async def test_the_engine_claims_history_only_for_a_planner_that_reads_it(
    executor: HttpExecutor,
    backend: RecordingBackend,
    clock: FakeClock,
    planner: Planner,
    history: bool,
) -> None:
    engine = loop_engine(
        backend, executor, clock, {"processing_interval_ms": 60_000}, planner=planner
    )
    async with engine:
        await asyncio.wait_for(backend.log.long_polling.wait(), 10)
    assert backend.log.histories == {history}


async def test_a_steady_stream_is_claimed_half_a_window_at_a_time(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    backend: RecordingBackend,
    clock: FakeClock,
) -> None:
    """Jobs due every 10 ms with a 200 ms claim-ahead window: the loop claims when the next
    job is 100 ms from its due time and takes the whole window, so 30 jobs need a handful
    of claims — not one claim per job as each enters the window. (Claimed jobs waiting for
    their due time hold run slots, so there are enough slots for a window's jobs.)"""
    log = backend.log
    scheduler: dict[str, object] = {
        "processing_interval_ms": 60_000,
        "claim_ahead_ms": 200,
        "job_concurrency": 50,
        "max_batch_size": 50,
    }
    engine = loop_engine(backend, executor, clock, scheduler)
    async with engine:
        await asyncio.wait_for(log.long_polling.wait(), 10)
        tenant = await seed.add_tenant(db)
        start = clock.now() + timedelta(seconds=1)
        for i in range(30):
            job_id = await seed.add_job(
                db, tenant, next_run_at=start + timedelta(milliseconds=10 * i)
            )
            await seed.add_endpoint(db, box, job_id, target.url("/ok"))
        for _ in range(200):
            if target.calls["/ok"] == 30:
                break
            clock.advance(0.01)
            wake_local_waiters()
            await asyncio.sleep(0.01)

    assert target.calls["/ok"] == 30
    claims = [c for c in log.claims if c.job_ids]
    assert 3 <= len(claims) <= 6, [len(c.job_ids) for c in claims]


class EarlyTimerClock(FakeClock):
    """A timer that fires a little before its time (as event-loop timers may, by rounding)."""

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds * 0.99)


async def test_a_job_claimed_ahead_never_starts_before_its_due_time(
    db: AsyncEngine, box: SecretBox, target: Target, executor: HttpExecutor
) -> None:
    clock = EarlyTimerClock()
    backend = RecordingBackend(db, box, clock=clock)
    backend.log = ClaimLog()
    engine = loop_engine(
        backend, executor, clock, {"processing_interval_ms": 60_000, "claim_ahead_ms": 200}
    )
    async with engine:
        await asyncio.wait_for(backend.log.long_polling.wait(), 10)
        tenant = await seed.add_tenant(db)
        due = clock.now() + timedelta(seconds=0.15)
        job_id = await seed.add_job(db, tenant, next_run_at=due)
        await seed.add_endpoint(db, box, job_id, target.url("/ok"))
        wake_local_waiters()
        await eventually(lambda: any(c.job_ids == (job_id,) for c in backend.log.claims))
        clock.advance((due - clock.now()).total_seconds() - 0.001)  # the timer has fired
        await asyncio.sleep(0.2)
        assert target.calls["/ok"] == 0, "started before its due time"
        clock.advance(0.001)
        await eventually(lambda: target.calls["/ok"] == 1)
    await backend.close()
