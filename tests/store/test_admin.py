"""Force-unlock, due-time queries, worker heartbeats and secrets at rest."""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import Heartbeat
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Run, jobs_t
from tests.fakes.clock import T0
from tests.fakes.rows import job
from tests.fakes.seed import add_endpoint, add_job, add_tenant, at


async def _run_statuses(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(Run.__table__.c.job_id, Run.__table__.c.status))
        return {job_id: status for job_id, status in rows}


async def test_force_unlock_stale_only_releases_expired_leases(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    short = await add_job(engine, tenant, next_run_at=at(-20))
    await repo.claim_due_jobs("w1", 1, 1_000, now=T0)
    long = await add_job(engine, tenant, next_run_at=at(-10))
    await repo.claim_due_jobs("w2", 1, 600_000, now=T0)

    assert await repo.force_unlock(now=at(5)) == [short]

    assert (await job(engine, short))["lease_owner"] is None
    assert (await job(engine, long))["lease_owner"] == "w2"
    assert await _run_statuses(engine) == {short: "aborted", long: "running"}
    assert await repo.force_unlock(now=at(5)) == []


async def test_force_unlock_named_jobs_even_if_live(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    a = await add_job(engine, tenant, next_run_at=at(-20))
    b = await add_job(engine, tenant, next_run_at=at(-10))
    free = await add_job(engine, tenant, next_run_at=at(30))
    await repo.claim_due_jobs("w1", 2, 600_000, now=T0)

    assert await repo.force_unlock([a, free], stale_only=True, now=at(1)) == []
    assert await repo.force_unlock([a, free], stale_only=False, now=at(1)) == [a]
    assert await repo.force_unlock([], stale_only=False, now=at(1)) == []

    assert (await job(engine, b))["lease_owner"] == "w1"
    [reclaimed] = await repo.claim_due_jobs("w2", 5, 600_000, now=at(2))
    assert reclaimed.lease.job_id == a


async def test_next_due_at_respects_pause_and_live_leases(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    assert await repo.next_due_at(now=T0) is None
    tenant = await add_tenant(engine)
    await add_job(engine, tenant, next_run_at=at(300))
    await add_job(engine, tenant, next_run_at=at(10), paused_until=at(200))
    await add_job(engine, tenant, next_run_at=at(5), status="paused")
    await add_job(engine, tenant, next_run_at=at(-5), lease_owner="w", lease_expires_at=at(100))
    assert await repo.next_due_at(now=T0) == at(100)

    await add_job(engine, tenant, next_run_at=at(-3), lease_owner="w", lease_expires_at=at(-1))
    assert await repo.next_due_at(now=T0) == at(-3)


async def test_worker_heartbeats(repo: SchedulerRepository) -> None:
    await repo.record_heartbeat(
        "w1", Heartbeat(host="h1", pid=42, started_at=at(-60), stats={"cycles": 1}), now=T0
    )
    await repo.record_heartbeat("w2", Heartbeat(host="h2", pid=7, running_jobs=3), now=at(1))
    await repo.record_heartbeat(
        "w1", Heartbeat(stats={"cycles": 2}, last_cycle_at=at(4)), now=at(5)
    )
    await repo.mark_worker_stopped("w2", now=at(6))

    w1, w2 = await repo.list_workers()
    assert (w1.id, w1.host, w1.pid, w1.started_at) == ("w1", "h1", 42, at(-60))
    assert (w1.last_heartbeat_at, w1.last_cycle_at) == (at(5), at(4))
    assert w1.stats == {"cycles": 2, "running_jobs": 0, "stopped": False}
    assert w1.stopped_at is None
    assert (w2.id, w2.stats["running_jobs"], w2.stopped_at, w2.started_at) == (
        "w2",
        3,
        at(6),
        at(1),
    )

    await repo.record_heartbeat("w2", Heartbeat(), now=at(7))
    hosts = {w.id: w.host for w in await repo.list_workers()}
    assert hosts == {"w1": "h1", "w2": "h2"}  # not reported: kept
    assert [w.stopped_at for w in await repo.list_workers()] == [None, None]


async def test_secrets_are_encrypted_at_rest(
    repo: SchedulerRepository, engine: AsyncEngine, box: SecretBox
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    await add_endpoint(
        engine, box, job_id, headers={"X-Api-Key": "plain-key-123"}, bearer_token="tok-456"
    )

    async with engine.connect() as conn:
        raw = await conn.execute(
            sa.text("SELECT CAST(headers AS TEXT), bearer_token FROM endpoints")
        )
        headers_text, token_text = raw.one()
    assert "X-Api-Key" in headers_text
    assert "plain-key-123" not in headers_text
    assert "tok-456" not in token_text

    [claimed] = await repo.claim_due_jobs("w", 1, 60_000, now=T0)
    [spec] = claimed.context.endpoints
    assert (dict(spec.headers), spec.bearer_token) == ({"X-Api-Key": "plain-key-123"}, "tok-456")


async def test_next_due_at_is_the_latest_of_due_pause_and_live_lease_for_every_mix(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    """The indexed `LIMIT 1` reads give exactly max(next_run_at, future paused_until,
    live lease expiry), whichever of the three is the latest."""
    tenant = await add_tenant(engine)
    for next_run, pause, lease in itertools.product(
        (-5, 10, 50), (None, -2, 20, 60), (None, -1, 30, 70)
    ):
        fields: dict[str, Any] = {"next_run_at": at(next_run)}
        if pause is not None:
            fields["paused_until"] = at(pause)
        if lease is not None:
            fields.update(lease_owner="w", lease_expires_at=at(lease))
        job_id = await add_job(engine, tenant, **fields)
        candidates = [next_run] + [t for t in (pause, lease) if t is not None and t > 0]
        assert await repo.next_due_at(now=T0) == at(max(candidates)), fields
        async with engine.begin() as conn:
            await conn.execute(sa.delete(jobs_t).where(jobs_t.c.id == job_id))
