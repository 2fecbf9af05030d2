"""Concurrent claimers on separate engines (separate connections): every due job is claimed
exactly once and none is lost — 8 claimers on PostgreSQL, 4 on SQLite, 2,000 jobs."""

from __future__ import annotations

import asyncio
from collections import Counter

import sqlalchemy as sa

from cronicorn.store.db import create_engine, is_sqlite
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Run, jobs_t
from tests.fakes.clock import T0
from tests.fakes.seed import add_jobs, add_tenant, at, job_row

JOBS = 2_000
BATCH = 25


async def _claimer(url: str, box: SecretBox, worker: str) -> list[str]:
    engine = create_engine(url)
    repo = SchedulerRepository(engine, box)
    claimed: list[str] = []
    try:
        while batch := await repo.claim_due_jobs(worker, BATCH, 600_000, now=T0):
            claimed.extend(c.lease.job_id for c in batch)
    finally:
        await engine.dispose()
    return claimed


async def test_each_due_job_is_claimed_exactly_once(database_url: str, box: SecretBox) -> None:
    workers = 4 if is_sqlite(database_url) else 8
    setup = create_engine(database_url)
    tenant = await add_tenant(setup)
    ids = await add_jobs(
        setup, [job_row(tenant, next_run_at=at(-(i % 500) - 1)) for i in range(JOBS)]
    )

    results = await asyncio.gather(*(_claimer(database_url, box, f"w{i}") for i in range(workers)))

    claims = Counter(job_id for worker_claims in results for job_id in worker_claims)
    assert set(claims) == set(ids)
    assert max(claims.values()) == 1
    assert sum(1 for r in results if r) > 1, "claims were not actually concurrent"
    async with setup.connect() as conn:
        owners = dict((await conn.execute(sa.select(jobs_t.c.id, jobs_t.c.lease_owner))).all())
        runs = (
            await conn.execute(
                sa.select(Run.__table__.c.job_id, sa.func.count()).group_by(Run.__table__.c.job_id)
            )
        ).all()
    await setup.dispose()
    for i, worker_claims in enumerate(results):
        assert all(owners[job_id] == f"w{i}" for job_id in worker_claims)
    assert len(runs) == JOBS
    assert all(count == 1 for _, count in runs)
