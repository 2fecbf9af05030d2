"""Fencing: a worker whose lease was lost, expired or superseded changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import (
    ErrorPhase,
    JobErrorRecord,
    Lease,
    NextRun,
    PlanDecision,
    PlanSource,
    ScheduleSource,
)
from cronicorn.errors import LeaseLostError
from cronicorn.store.scheduler_repo import SchedulerRepository
from tests.fakes.clock import T0
from tests.fakes.rows import dump, job, run_of
from tests.fakes.seed import add_job, add_tenant, at
from tests.store.factory import complete_run
from tests.store.test_writes import PLAN, completion

Write = Callable[[SchedulerRepository, Lease], Awaitable[object]]
NOW = at(5)

WRITES: dict[str, Write] = {
    "complete": lambda r, lease: complete_run(r, lease, completion(), now=NOW),
    "fail": lambda r, lease: r.fail_run(
        lease,
        JobErrorRecord(ErrorPhase.EXECUTE, "x", "y"),
        NextRun(at(60), ScheduleSource.BACKOFF),
        1,
        now=NOW,
    ),
    "extend": lambda r, lease: r.extend_lease(lease, 60_000, now=NOW),
    "record_plan": lambda r, lease: r.record_plan(
        lease, PlanDecision(PLAN, PlanSource.RULES), now=NOW
    ),
    "release": lambda r, lease: r.release(lease, now=NOW),
}


async def _assert_refused(repo: SchedulerRepository, engine: AsyncEngine, lease: Lease) -> None:
    for name, write in WRITES.items():
        before = await dump(engine)
        with pytest.raises(LeaseLostError) as info:
            await write(repo, lease)
        assert info.value.job_id == lease.job_id, name
        assert await dump(engine) == before, f"{name} changed the database"


async def test_superseded_lease_is_refused_and_changes_nothing(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    [first] = await repo.claim_due_jobs("w1", 1, 1_000, now=T0)
    [second] = await repo.claim_due_jobs("w2", 1, 60_000, now=at(2))
    assert second.lease.job_id == first.lease.job_id

    await _assert_refused(repo, engine, first.lease)
    # The new holder is unaffected.
    await complete_run(repo, second.lease, completion(), now=NOW)


async def test_late_completion_with_the_newest_token_is_accepted(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    """The lease ran out (the API was down, say) but nobody claimed the job since: the
    token is still the newest, so the finished run is stored, not thrown away."""
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    [claimed] = await repo.claim_due_jobs("w1", 1, 1_000, now=T0)  # expired at at(1)

    await complete_run(repo, claimed.lease, completion(), at(30))

    row = await job(engine, job_id)
    assert (row["lease_owner"], row["next_run_at"]) == (None, at(600))
    assert (await run_of(engine, claimed.lease.run_id))["status"] == "completed"


async def test_expired_lease_nobody_claimed_is_renewed(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    [claimed] = await repo.claim_due_jobs("w1", 1, 1_000, now=T0)

    renewed = await repo.extend_lease(claimed.lease, 60_000, now=at(10))

    assert renewed.expires_at == at(70)
    assert await repo.claim_due_jobs("w2", 1, 60_000, now=at(11)) == []


async def test_late_write_after_another_workers_claim_is_refused(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    [first] = await repo.claim_due_jobs("w1", 1, 1_000, now=T0)
    [second] = await repo.claim_due_jobs("w2", 1, 60_000, now=at(2))
    assert second.lease.token > first.lease.token

    await _assert_refused(repo, engine, first.lease)


async def test_a_completion_sent_again_after_it_was_stored_is_answered_as_written(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    """The first attempt landed but its response was lost (API killed): the retry is
    recognised as the same completion and changes nothing."""
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    [claimed] = await repo.claim_due_jobs("w1", 1, 60_000, now=T0)
    await complete_run(repo, claimed.lease, completion(), NOW)
    before = await dump(engine)

    await complete_run(repo, claimed.lease, completion(), at(6))

    assert await dump(engine) == before
    other = completion(finished_at=at(4))
    with pytest.raises(LeaseLostError, match="already completed"):
        await complete_run(repo, claimed.lease, other, at(6))
    for name in ("fail", "extend", "record_plan", "release"):
        with pytest.raises(LeaseLostError):
            await WRITES[name](repo, claimed.lease)
    assert await dump(engine) == before


@pytest.mark.parametrize(
    "forge",
    [
        lambda lease: replace(lease, token=lease.token + 1),
        lambda lease: replace(lease, worker_id="impostor"),
        lambda lease: replace(lease, run_id="00000000-0000-0000-0000-000000000000"),
    ],
    ids=["token", "worker", "run"],
)
async def test_forged_lease_is_refused(
    repo: SchedulerRepository, engine: AsyncEngine, forge: Callable[[Lease], Lease]
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    [claimed] = await repo.claim_due_jobs("w1", 1, 60_000, now=T0)
    forged = forge(claimed.lease)
    for name in ("complete", "fail", "record_plan", "release"):
        before = await dump(engine)
        with pytest.raises(LeaseLostError):
            await WRITES[name](repo, forged)
        assert await dump(engine) == before, name


async def test_force_unlocked_holder_is_fenced_out(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    [claimed] = await repo.claim_due_jobs("w1", 1, 60_000, now=T0)

    assert await repo.force_unlock([job_id], stale_only=False, now=at(1)) == [job_id]

    await _assert_refused(repo, engine, claimed.lease)
