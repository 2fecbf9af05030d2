"""Backend outages while a job runs (issue 12): a finished run's completion is kept and sent
again until the store answers; the fencing token, not the clock, decides whether it is
still accepted; renewal stops before the completion and "lease lost" is logged only when
the lease really was lost. Real SQLite/PostgreSQL store, real HttpExecutor, fake clock."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import Lease, RunCompletion
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.lease import LeaseKeeper
from cronicorn.errors import BackendUnavailableError
from cronicorn.executor import HttpExecutor
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.engine.conftest import Target, eventually
from tests.engine.test_pipeline import make_engine, setup_job
from tests.fakes import rows
from tests.fakes.clock import FakeClock
from tests.fakes.planners import ScriptedPlanner

LEASE_MS = 3_000


class OutageBackend(LocalSchedulerBackend):
    """The real store behind a switch: while `down`, completions, renewals and failure
    records raise `BackendUnavailableError` (the API is unreachable)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.down = False
        self.calls: list[str] = []
        self.after_complete: Any = None

    def _check(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise BackendUnavailableError(f"{name}: API unreachable")

    async def complete(self, lease: Lease, completion: RunCompletion) -> None:
        self._check("complete")
        await super().complete(lease, completion)
        if self.after_complete is not None:
            await self.after_complete()

    async def extend(self, lease: Lease, lease_ms: int) -> Lease:
        self._check("extend")
        return await super().extend(lease, lease_ms)

    async def fail(self, *args: Any, **kwargs: Any) -> None:
        self._check("fail")
        await super().fail(*args, **kwargs)


@pytest.fixture
async def outage_backend(db: AsyncEngine, box: SecretBox, clock: FakeClock) -> Any:
    backend = OutageBackend(db, box, clock=clock)
    yield backend
    await backend.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def engine_for(
    backend: OutageBackend, executor: HttpExecutor, clock: FakeClock
) -> SchedulingEngine:
    return make_engine(
        backend,
        ScriptedPlanner(),
        executor,
        clock,
        scheduler={"stale_lock_threshold_ms": LEASE_MS},
    )


async def advance_while(clock: FakeClock, seconds: float, step: float = 0.5) -> None:
    """Move fake time forward in steps, letting the loop run between them."""
    for _ in range(int(seconds / step)):
        clock.advance(step)
        await asyncio.sleep(0.01)


async def test_completion_is_kept_through_an_outage_longer_than_the_lease(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    outage_backend: OutageBackend,
    clock: FakeClock,
) -> None:
    """The API goes down as the run finishes and stays down past the lease: nobody else
    claimed the job, so the late completion is stored and the endpoint is not called
    again."""
    backend = outage_backend
    job_id = await setup_job(db, box, clock, [target.url("/ok")])
    engine = engine_for(backend, executor, clock)
    backend.down = True

    cycle = asyncio.create_task(engine.process_cycle())
    await eventually(lambda: "complete" in backend.calls)
    await advance_while(clock, 3 * LEASE_MS / 1000)  # well past the lease's expiry
    assert not cycle.done()
    assert backend.calls.count("complete") > 1
    assert "fail" not in backend.calls
    backend.down = False
    await advance_while(clock, 3)
    result = await asyncio.wait_for(cycle, 5)

    assert (result.successful_jobs, result.failed_jobs) == (1, 0)
    assert target.calls["/ok"] == 1
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"
    assert len(await rows.results(db, run["id"])) == 1
    row = await rows.job(db, job_id)
    assert row["lease_owner"] is None
    assert row["next_run_at"] > clock.now()


async def test_late_completion_after_another_workers_claim_is_refused(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    outage_backend: OutageBackend,
    clock: FakeClock,
) -> None:
    backend = outage_backend
    job_id = await setup_job(db, box, clock, [target.url("/ok")])
    engine = engine_for(backend, executor, clock)
    backend.down = True

    cycle = asyncio.create_task(engine.process_cycle())
    await eventually(lambda: "complete" in backend.calls)
    await advance_while(clock, 2 * LEASE_MS / 1000)
    [stolen] = await backend.repository.claim_due_jobs("w2", 1, 60_000, now=clock.now())
    backend.down = False
    await advance_while(clock, 3)
    result = await asyncio.wait_for(cycle, 5)

    assert result.failed_jobs == 1
    assert "lease lost" in result.errors[0]
    row = await rows.job(db, job_id)
    assert (row["lease_owner"], row["lease_token"]) == ("w2", stolen.lease.token)
    assert sorted(r["status"] for r in await rows.runs(db, job_id)) == ["aborted", "running"]


async def test_renewal_failures_past_expiry_do_not_abort_the_run(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    outage_backend: OutageBackend,
    clock: FakeClock,
) -> None:
    """Unreachable is not lost: the run goes on, renews once the API is back, completes."""
    backend = outage_backend
    job_id = await setup_job(db, box, clock, [target.url("/gate")])
    engine = engine_for(backend, executor, clock)

    cycle = asyncio.create_task(engine.process_cycle())
    await eventually(lambda: target.calls["/gate"] > 0)
    backend.down = True
    await advance_while(clock, 2 * LEASE_MS / 1000)
    assert backend.calls.count("extend") >= 2
    backend.down = False
    await advance_while(clock, 1.5)
    assert (await rows.job(db, job_id))["lease_expires_at"] > clock.now()  # renewed again
    target.release.set()
    result = await asyncio.wait_for(cycle, 5)

    assert result.successful_jobs == 1
    assert engine.get_state().stats.leases_lost == 0
    [run] = await rows.runs(db, job_id)
    assert run["status"] == "completed"


async def test_no_renewal_after_the_completion_and_no_false_lease_lost(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    outage_backend: OutageBackend,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Time passes right after the completion released the lease (a slow response): a
    renewal still running then would be refused and log a false "lease lost"."""
    backend = outage_backend

    async def time_passes() -> None:
        await advance_while(clock, 2 * LEASE_MS / 1000)

    backend.after_complete = time_passes
    await setup_job(db, box, clock, [target.url("/ok")])
    engine = engine_for(backend, executor, clock)

    with caplog.at_level(logging.INFO, logger="cronicorn"):
        result = await asyncio.wait_for(engine.process_cycle(), 10)

    assert result.successful_jobs == 1
    assert backend.calls[backend.calls.index("complete") :] == ["complete"]
    assert not [r for r in caplog.records if "lease lost" in r.getMessage()]
    assert engine.get_state().stats.leases_lost == 0


async def test_no_claim_while_a_completion_waits_for_the_backend(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    outage_backend: OutageBackend,
    clock: FakeClock,
) -> None:
    """After an outage longer than the lease, the worker delivers what it holds before it
    claims again: a claim landing first could take over one of those jobs and re-run it."""
    backend = outage_backend
    first = await setup_job(db, box, clock, [target.url("/ok")])
    engine = engine_for(backend, executor, clock)
    backend.down = True
    cycle = asyncio.create_task(engine.process_cycle())
    await eventually(lambda: "complete" in backend.calls)
    await advance_while(clock, 2 * LEASE_MS / 1000)  # past the lease: `first` is claimable
    assert engine.deliveries.waiting == 1

    second_cycle = asyncio.create_task(engine.process_cycle())
    await advance_while(clock, 1)
    assert (await rows.job(db, first))["lease_token"] == 1, "claimed while its completion waited"
    assert not second_cycle.done()
    backend.down = False
    await advance_while(clock, 3)
    result = await asyncio.wait_for(cycle, 5)
    await asyncio.wait_for(second_cycle, 5)

    assert result.successful_jobs == 1
    assert engine.deliveries.waiting == 0
    assert target.calls["/ok"] == 1
    assert [r["status"] for r in await rows.runs(db, first)] == ["completed"]


async def test_stop_waits_for_a_renewal_in_flight_not_for_a_sleeping_keeper(
    db: AsyncEngine, box: SecretBox, outage_backend: OutageBackend, clock: FakeClock
) -> None:
    """`LeaseKeeper.stop` returns at once when the keeper is asleep (and it never renews
    after), but waits until a renewal already sent has ended: the completion must not race
    it."""
    backend = outage_backend
    await setup_job(db, box, clock, ["http://127.0.0.1:9/x"])
    [claimed] = await backend.claim("w1", 1, LEASE_MS)
    keeper = LeaseKeeper(backend, claimed.lease, LEASE_MS, clock, lambda: None)
    async with keeper:
        await asyncio.sleep(0)  # the keeper is asleep now
        await keeper.stop()
        await advance_while(clock, 2 * LEASE_MS / 1000)
    assert "extend" not in backend.calls

    async def slow_extend(lease: Lease, lease_ms: int) -> Lease:
        backend.calls.append("extend")
        try:
            await asyncio.Event().wait()
        finally:
            backend.calls.append("extend ended")
        return lease

    backend.extend = slow_extend  # type: ignore[method-assign]
    keeper = LeaseKeeper(backend, claimed.lease, LEASE_MS, clock, lambda: None)
    async with keeper:
        await asyncio.sleep(0)
        await advance_while(clock, LEASE_MS / 1000 / 3 + 0.5)
        assert backend.calls[-1] == "extend"  # in flight
        await keeper.stop()
        assert backend.calls[-1] == "extend ended"
