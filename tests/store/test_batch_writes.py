"""Batched completions: one transaction for many leases, each lease fenced on its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import (
    ErrorPhase,
    JobErrorRecord,
    Lease,
    PlanSource,
)
from cronicorn.errors import LeaseLostError
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import EndpointResult, JobError, Message, Run, jobs_t
from tests.fakes.clock import T0, FakeClock
from tests.fakes.rows import job
from tests.fakes.seed import add_jobs, add_tenant, at, job_row
from tests.store.factory import complete_run
from tests.store.test_writes import PLAN, completion

NOW = at(3)
PER_JOB_TABLES: tuple[Any, ...] = (jobs_t, Run, EndpointResult, Message, JobError)


async def claim(repo: SchedulerRepository, engine: AsyncEngine, n: int) -> list[Lease]:
    tenant = await add_tenant(engine)
    await add_jobs(engine, [job_row(tenant, next_run_at=at(-60 + i)) for i in range(n)])
    return [c.lease for c in await repo.claim_due_jobs("w1", n, 60_000, now=T0)]


async def rows_of(engine: AsyncEngine, job_id: str) -> list[list[tuple[Any, ...]]]:
    """Every row belonging to one job, in every table a completion writes."""
    out = []
    async with engine.connect() as conn:
        for entity in PER_JOB_TABLES:
            table = entity if isinstance(entity, sa.Table) else entity.__table__
            key = table.c.id if table is jobs_t else table.c.job_id
            result = await conn.execute(sa.select(table).where(key == job_id).order_by(table.c.id))
            out.append([tuple(r) for r in result])
    return out


async def count(engine: AsyncEngine, entity: Any, job_id: str) -> int:
    table = entity.__table__
    async with engine.connect() as conn:
        n = await conn.scalar(
            sa.select(sa.func.count()).select_from(table).where(table.c.job_id == job_id)
        )
    return int(n or 0)


async def test_batch_writes_every_held_lease_and_nothing_for_a_lost_one(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    a, b, c = await claim(repo, engine, 3)
    assert await repo.force_unlock([b.job_id], stale_only=False, now=at(1)) == [b.job_id]
    [b_new] = await repo.claim_due_jobs("w2", 1, 60_000, now=at(2))
    before = await rows_of(engine, b.job_id)

    outcome = await repo.complete_runs(
        [(a, completion()), (b, completion()), (c, completion())], NOW
    )

    assert (outcome[0], outcome[2]) == (None, None)
    assert isinstance(outcome[1], LeaseLostError)
    assert outcome[1].job_id == b.job_id
    assert await rows_of(engine, b.job_id) == before
    for lease in (a, c):
        j = await job(engine, lease.job_id)
        assert (j["lease_owner"], j["next_run_at"], j["input_tokens"]) == (None, at(600), 100)
        assert await count(engine, EndpointResult, lease.job_id) == 3
        assert await count(engine, Message, lease.job_id) == 1
        assert await count(engine, JobError, lease.job_id) == 1
    # The new holder of b is unaffected.
    assert await repo.complete_runs([(b_new.lease, completion())], NOW) == [None]


async def test_the_same_lease_twice_in_a_batch_writes_once(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    [lease] = await claim(repo, engine, 1)

    first, second = await repo.complete_runs([(lease, completion()), (lease, completion())], NOW)

    assert first is None
    assert isinstance(second, LeaseLostError)
    assert (await job(engine, lease.job_id))["input_tokens"] == 100
    assert await count(engine, Message, lease.job_id) == 1
    assert await count(engine, EndpointResult, lease.job_id) == 3


async def test_batch_runs_keep_their_own_values(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    a, b = await claim(repo, engine, 2)
    paused = completion(pause=True, consecutive_failures=4, plan_source=PlanSource.RULES)

    assert await repo.complete_runs([(a, completion()), (b, paused)], NOW) == [None, None]

    ja, jb = await job(engine, a.job_id), await job(engine, b.job_id)
    assert (ja["status"], ja["consecutive_failures"]) == ("active", 0)
    assert (jb["status"], jb["consecutive_failures"]) == ("paused", 4)
    async with engine.connect() as conn:
        runs = {r.job_id: r for r in await conn.execute(sa.select(Run.__table__))}
    assert (runs[a.job_id].plan_source, runs[b.job_id].plan_source) == ("ai", "rules")


async def test_complete_without_record_plan_stores_the_plan(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    """The engine skips `record_plan` for rules plans: `complete` alone must keep it."""
    [lease] = await claim(repo, engine, 1)

    await complete_run(repo, lease, completion(plan_source=PlanSource.RULES), now=NOW)

    async with engine.connect() as conn:
        run = (await conn.execute(sa.select(Run.__table__))).mappings().one()
    assert (run["plan_source"], run["strategy"]) == ("rules", PLAN.strategy.value)
    assert run["plan"]["reasoning"] == PLAN.reasoning


async def test_an_empty_batch_writes_nothing(repo: SchedulerRepository) -> None:
    assert await repo.complete_runs([], NOW) == []


# -- through the backend: concurrent completes are coalesced --------------------------------


@pytest.fixture
async def backend(engine: AsyncEngine, box: SecretBox) -> AsyncIterator[LocalSchedulerBackend]:
    b = LocalSchedulerBackend(engine, box, clock=FakeClock(T0), poll_interval_ms=60_000)
    yield b
    await b.close()


async def claim_via(backend: LocalSchedulerBackend, engine: AsyncEngine, n: int) -> list[Lease]:
    tenant = await add_tenant(engine)
    await add_jobs(engine, [job_row(tenant, next_run_at=at(-60 + i)) for i in range(n)])
    return [c.lease for c in await backend.claim("w1", n, 600_000)]


async def test_concurrent_completes_share_one_transaction(
    backend: LocalSchedulerBackend, engine: AsyncEngine
) -> None:
    leases = await claim_via(backend, engine, 6)
    await backend.repository.force_unlock([leases[2].job_id], stale_only=False)

    outcomes = await asyncio.gather(
        *(backend.complete(lease, completion()) for lease in leases), return_exceptions=True
    )

    assert backend.completion_batches == 1
    assert isinstance(outcomes[2], LeaseLostError)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [None] * 5
    for i, lease in enumerate(leases):
        expected = 0 if i == 2 else 1
        assert await count(engine, Message, lease.job_id) == expected


async def test_one_broken_completion_fails_alone(
    backend: LocalSchedulerBackend, engine: AsyncEngine
) -> None:
    """A constraint violated by one item rolls the batch back; the items are then written
    one by one so that only the culprit's caller gets the error."""
    leases = await claim_via(backend, engine, 3)
    bad = completion(errors=(JobErrorRecord(ErrorPhase.PERSIST, "x", None),))  # type: ignore[arg-type]
    items = [completion(), bad, completion()]

    outcomes = await asyncio.gather(
        *(backend.complete(lease, item) for lease, item in zip(leases, items, strict=True)),
        return_exceptions=True,
    )

    assert (outcomes[0], outcomes[2]) == (None, None)
    assert isinstance(outcomes[1], sa.exc.IntegrityError)
    assert backend.completion_batches == 4  # the batch, then each item alone
    assert (await job(engine, leases[1].job_id))["lease_owner"] == "w1"
    assert await count(engine, Message, leases[0].job_id) == 1


async def test_close_waits_for_queued_completions(engine: AsyncEngine, box: SecretBox) -> None:
    backend = LocalSchedulerBackend(engine, box, clock=FakeClock(T0), poll_interval_ms=60_000)
    leases = await claim_via(backend, engine, 3)
    writes = [asyncio.ensure_future(backend.complete(lease, completion())) for lease in leases]
    await asyncio.sleep(0)

    await backend.close()

    assert all(w.done() and w.exception() is None for w in writes)
    for lease in leases:
        assert (await job(engine, lease.job_id))["lease_owner"] is None


async def test_complete_many_reports_an_outcome_per_item(
    backend: LocalSchedulerBackend, engine: AsyncEngine
) -> None:
    """What the API's batch route returns: written, fenced out, or not storable."""
    leases = await claim_via(backend, engine, 3)
    bad = completion(errors=(JobErrorRecord(ErrorPhase.PERSIST, "x", None),))  # type: ignore[arg-type]
    lost = replace(leases[2], token=leases[2].token + 1)

    outcomes = await backend.complete_many(
        [(leases[0], completion()), (leases[1], bad), (lost, completion())]
    )

    assert outcomes[0] is None
    assert isinstance(outcomes[1], sa.exc.IntegrityError)
    assert isinstance(outcomes[2], LeaseLostError)
    assert (await job(engine, leases[0].job_id))["lease_owner"] is None
    assert (await job(engine, leases[2].job_id))["lease_owner"] == "w1"
