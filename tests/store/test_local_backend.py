"""LocalSchedulerBackend's long-poll claims and wake-ups (the port's contract, shared with
the API client, is in tests/contract)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.notify import asyncpg_dsn, notify_jobs_changed
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import jobs_t
from tests.fakes.seed import add_job, add_tenant, job_row

LONG_POLL_MS = 20_000
EARLY_S = 10.0  # a woken claim returns long before its deadline


@pytest.fixture
async def backend(engine: AsyncEngine, box: SecretBox) -> AsyncIterator[LocalSchedulerBackend]:
    b = LocalSchedulerBackend(engine, box, poll_interval_ms=60_000)
    yield b
    await b.close()


async def test_claim_without_wait_returns_at_once(backend: LocalSchedulerBackend) -> None:
    assert await backend.claim("w", 5, 60_000) == []
    assert await backend.claim("w", 5, 60_000, wait_ms=50) == []


async def test_wake_ends_a_long_poll(backend: LocalSchedulerBackend, engine: AsyncEngine) -> None:
    tenant = await add_tenant(engine)
    waiting = asyncio.create_task(backend.claim("w", 5, 60_000, wait_ms=LONG_POLL_MS))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    job_id = await add_job(engine, tenant, next_run_at=datetime.now(UTC))
    started = time.monotonic()
    backend.wake()

    claimed = await asyncio.wait_for(waiting, timeout=EARLY_S)
    assert [c.lease.job_id for c in claimed] == [job_id]
    assert time.monotonic() - started < EARLY_S


async def test_long_poll_wakes_when_a_known_job_becomes_due(
    backend: LocalSchedulerBackend, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(
        engine, tenant, next_run_at=datetime.now(UTC) + timedelta(milliseconds=300)
    )

    claimed = await asyncio.wait_for(
        backend.claim("w", 5, 60_000, wait_ms=LONG_POLL_MS), timeout=EARLY_S
    )
    assert [c.lease.job_id for c in claimed] == [job_id]


async def test_notify_jobs_changed_wakes_waiting_claims(database_url: str, box: SecretBox) -> None:
    """The API's service layer: write a job, call notify_jobs_changed, commit."""
    engine = create_engine(database_url)
    backend = LocalSchedulerBackend(database_url, box, poll_interval_ms=60_000)
    tenant = await add_tenant(engine)
    waiting = asyncio.create_task(backend.claim("w", 5, 60_000, wait_ms=LONG_POLL_MS))
    await asyncio.sleep(0.3)
    row = job_row(tenant, next_run_at=datetime.now(UTC))
    async with session_factory(engine)() as session, session.begin():
        await session.execute(jobs_t.insert().values(row))
        await notify_jobs_changed(session)

    claimed = await asyncio.wait_for(waiting, timeout=EARLY_S)
    assert [c.lease.job_id for c in claimed] == [row["id"]]
    await backend.close()
    await engine.dispose()


@pytest.mark.postgres
async def test_postgres_notify_from_another_process_wakes_claims(
    postgres_url: str, box: SecretBox
) -> None:
    """A NOTIFY from a separate connection (another API replica) reaches the LISTENer."""
    import asyncpg

    engine = create_engine(postgres_url)
    backend = LocalSchedulerBackend(engine, box, poll_interval_ms=60_000)
    tenant = await add_tenant(engine)
    waiting = asyncio.create_task(backend.claim("w", 5, 60_000, wait_ms=LONG_POLL_MS))
    await asyncio.sleep(0.5)  # the listener connects during the first empty claim
    job_id = await add_job(engine, tenant, next_run_at=datetime.now(UTC))
    other = await asyncpg.connect(asyncpg_dsn(postgres_url))
    await other.execute("NOTIFY cronicorn_jobs")
    await other.close()

    claimed = await asyncio.wait_for(waiting, timeout=EARLY_S)
    assert [c.lease.job_id for c in claimed] == [job_id]
    await backend.close()
    await engine.dispose()
