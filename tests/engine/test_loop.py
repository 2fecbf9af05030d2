"""The idle loop spends no claims that cannot find anything: every claim is a write
transaction, competing with the runs' own writes (SQLite has a single writer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import ClaimedJob
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.loop import SHORT_WAIT_S
from cronicorn.executor import HttpExecutor
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.notify import wake_local_waiters
from cronicorn.store.secrets import SecretBox
from tests.engine.conftest import Target, engine_config, eventually
from tests.fakes import seed
from tests.fakes.planners import ScriptedPlanner


@dataclass(frozen=True)
class Claim:
    wait_ms: int
    job_ids: tuple[str, ...]


class RecordingBackend(LocalSchedulerBackend):
    """The real store; records every claim the engine makes and what it returned."""

    claims: list[Claim]

    async def claim(
        self, worker_id: str, limit: int, lease_ms: int, wait_ms: int = 0
    ) -> list[ClaimedJob]:
        jobs = await super().claim(worker_id, limit, lease_ms, wait_ms)
        self.claims.append(Claim(wait_ms, tuple(j.lease.job_id for j in jobs)))
        return jobs


@pytest.fixture
async def backend(db: AsyncEngine, box: SecretBox) -> AsyncIterator[RecordingBackend]:
    made = RecordingBackend(db, box)
    made.claims = []
    yield made
    await made.close()


async def test_jobs_due_close_together_are_claimed_without_empty_claims(
    db: AsyncEngine,
    box: SecretBox,
    target: Target,
    executor: HttpExecutor,
    backend: RecordingBackend,
) -> None:
    """Two jobs due a little apart (closer than SHORT_WAIT_S) while the engine idles in a
    long-poll: the long-poll claims the first; the second is waited for with a sleep and
    claimed by the very next claim — no immediate re-claim after the long-poll, no
    long-poll whose first claim finds nothing."""
    engine = SchedulingEngine(
        engine_config(scheduler={"processing_interval_ms": 60_000}),
        backend=backend,
        planner=ScriptedPlanner(),
        executor=executor,
        worker_id="w1",
    )
    async with engine:
        await eventually(lambda: len(backend.claims) >= 1)  # the first cycle found nothing
        tenant = await seed.add_tenant(db)
        due = datetime.now(UTC) + timedelta(seconds=0.5)
        spacing = timedelta(seconds=SHORT_WAIT_S * 0.6)
        first = await seed.add_job(db, tenant, next_run_at=due)
        second = await seed.add_job(db, tenant, next_run_at=due + spacing)
        for job_id in (first, second):
            await seed.add_endpoint(db, box, job_id, target.url("/ok"))
        wake_local_waiters()
        await eventually(lambda: target.calls["/ok"] == 2)

    claimed = [c for c in backend.claims if c.job_ids]
    start = backend.claims.index(claimed[0])
    after_first = backend.claims[start : backend.claims.index(claimed[-1]) + 1]
    assert {j for c in claimed for j in c.job_ids} == {first, second}
    assert claimed[0].wait_ms > 0, "the idle engine waited inside a long-poll"
    assert all(c.job_ids for c in after_first), backend.claims
