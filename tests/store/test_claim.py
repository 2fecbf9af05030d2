"""Contract tests for claiming: the same functions run on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.domain.models import ClaimedJob, MessageRole, RunStatus
from cronicorn.store.scheduler_repo import SchedulerRepository
from cronicorn.store.secrets import SecretBox
from cronicorn.store.signing_keys import new_key_row
from cronicorn.store.tables import Run, SigningKey
from tests.fakes.clock import T0
from tests.fakes.rows import job
from tests.fakes.seed import add_endpoint, add_job, add_message, add_result, add_tenant, at

LEASE_MS = 60_000


async def test_claims_oldest_due_first_up_to_limit(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    newest = await add_job(engine, tenant, next_run_at=at(-10))
    oldest = await add_job(engine, tenant, next_run_at=at(-300))
    middle = await add_job(engine, tenant, next_run_at=at(-100))

    first = await repo.claim_due_jobs("w1", limit=2, lease_ms=LEASE_MS, now=T0)
    rest = await repo.claim_due_jobs("w1", limit=10, lease_ms=LEASE_MS, now=T0)

    assert [c.lease.job_id for c in first] == [oldest, middle]
    assert [c.lease.job_id for c in rest] == [newest]
    assert [c.due_at for c in first] == [at(-300), at(-100)]


@pytest.mark.parametrize(
    ("fields", "claimable"),
    [
        ({}, True),
        ({"next_run_at": at(30)}, False),
        ({"next_run_at": T0}, True),
        ({"next_run_at": None}, False),
        ({"status": "paused"}, False),
        ({"status": "archived"}, False),
        ({"paused_until": at(30)}, False),
        ({"paused_until": at(-1)}, True),
        ({"lease_owner": "other", "lease_token": 3, "lease_expires_at": at(30)}, False),
        ({"lease_owner": "other", "lease_token": 3, "lease_expires_at": at(-1)}, True),
    ],
)
async def test_due_rules(
    repo: SchedulerRepository, engine: AsyncEngine, fields: dict[str, Any], claimable: bool
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant, **fields)

    claimed = await repo.claim_due_jobs("w1", limit=5, lease_ms=LEASE_MS, now=T0)

    assert [c.lease.job_id for c in claimed] == ([job_id] if claimable else [])


async def test_claim_sets_lease_and_starts_run(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant, lease_token=7, next_run_at=at(-5))

    [claimed] = await repo.claim_due_jobs("w1", limit=1, lease_ms=LEASE_MS, now=T0)

    lease = claimed.lease
    assert (lease.worker_id, lease.token, lease.expires_at) == ("w1", 8, at(60))
    row = await job(engine, job_id)
    assert (row["lease_owner"], row["lease_token"], row["lease_expires_at"]) == ("w1", 8, at(60))
    async with engine.connect() as conn:
        runs = (await conn.execute(sa.select(Run.__table__))).mappings().all()
    assert len(runs) == 1
    assert runs[0]["id"] == lease.run_id
    assert (runs[0]["status"], runs[0]["worker_id"], runs[0]["lease_token"]) == (
        "running",
        "w1",
        8,
    )
    assert runs[0]["due_at"] == at(-5)
    assert runs[0]["started_at"] == T0


async def test_reclaim_after_expiry_aborts_previous_run(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    await add_job(engine, tenant)
    [first] = await repo.claim_due_jobs("w1", limit=1, lease_ms=1_000, now=T0)
    [second] = await repo.claim_due_jobs("w2", limit=1, lease_ms=1_000, now=at(2))

    assert second.lease.token == first.lease.token + 1
    async with engine.connect() as conn:
        statuses = dict(
            (await conn.execute(sa.select(Run.__table__.c.id, Run.__table__.c.status))).all()
        )
    assert statuses == {first.lease.run_id: RunStatus.ABORTED, second.lease.run_id: "running"}


async def test_context_has_decrypted_secrets_history_and_results(
    repo: SchedulerRepository, engine: AsyncEngine, box: SecretBox
) -> None:
    tenant = await add_tenant(engine)
    job_id = await add_job(
        engine, tenant, default_headers=box.encrypt_map({"X-Team": "t-secret"}), cron="*/5 * * * *"
    )
    other_job = await add_job(engine, tenant)
    ep = await add_endpoint(
        engine, box, job_id, headers={"X-Api-Key": "k-secret"}, bearer_token="b-secret"
    )
    for i in range(5):
        await add_message(engine, job_id, f"m{i}", at(-100 + i))
    await add_message(engine, other_job, "other", at(-50))
    run_id = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(Run).values(
                id=run_id, job_id=job_id, worker_id="old", lease_token=0, status="completed"
            )
        )
    for i in range(7):
        await add_result(engine, run_id, job_id, ep, at(-1000 + i), {"n": i})

    small = SchedulerRepository(engine, box, history_limit=3, results_per_endpoint=2)
    claimed = {c.lease.job_id: c for c in await small.claim_due_jobs("w", 10, LEASE_MS, now=T0)}

    ctx = claimed[job_id].context
    assert ctx.job.default_headers == {"X-Team": "t-secret"}
    assert ctx.job.cron == "*/5 * * * *"
    [spec] = ctx.endpoints
    assert (spec.id, dict(spec.headers), spec.bearer_token) == (
        ep,
        {"X-Api-Key": "k-secret"},
        "b-secret",
    )
    assert [m.content for m in ctx.messages] == ["m2", "m3", "m4"]
    assert all(m.role == MessageRole.USER for m in ctx.messages)
    assert [r.response_excerpt for r in ctx.recent_results] == ['{"n":5}', '{"n":6}']
    assert claimed[other_job].context.endpoints == ()
    assert [m.content for m in claimed[other_job].context.messages] == ["other"]


async def test_undecryptable_job_fails_once_and_backs_off(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    tenant = await add_tenant(engine)
    foreign = SecretBox(SecretBox.generate_key())
    job_id = await add_job(engine, tenant, default_headers=foreign.encrypt_map({"A": "b"}))
    good = await add_job(engine, tenant)

    claimed = await repo.claim_due_jobs("w", 10, LEASE_MS, now=T0)

    assert [c.lease.job_id for c in claimed] == [good]
    row = await job(engine, job_id)
    assert row["lease_owner"] is None
    assert row["next_run_at"] > T0
    assert row["consecutive_failures"] == 1
    assert await repo.claim_due_jobs("w", 10, LEASE_MS, now=at(1)) == []


@pytest.mark.parametrize(
    ("fields", "next_run_at", "source"),
    [
        # interval x2 per consecutive failure: the third failure in a row is 8 min away
        ({"interval_ms": 60_000, "consecutive_failures": 2}, at(8 * 60), "backoff"),
        # a cron keeps its times after failures (the same rule as any failed run)
        ({"cron": "30 12 * * *", "consecutive_failures": 4}, at(30 * 60), "baseline_cron"),
    ],
)
async def test_undecryptable_job_gets_the_governors_fallback(
    repo: SchedulerRepository,
    engine: AsyncEngine,
    fields: dict[str, Any],
    next_run_at: datetime,
    source: str,
) -> None:
    """The claim-phase failure has no rule of its own: the governor's `fallback_next_run`
    decides, as for a run that failed in any other phase."""
    tenant = await add_tenant(engine)
    foreign = SecretBox(SecretBox.generate_key())
    secrets = foreign.encrypt_map({"A": "b"})
    job_id = await add_job(engine, tenant, default_headers=secrets, **fields)

    assert await repo.claim_due_jobs("w", 10, LEASE_MS, now=T0) == []

    row = await job(engine, job_id)
    assert (row["next_run_at"], row["last_schedule"]["source"]) == (next_run_at, source)
    assert row["consecutive_failures"] == fields["consecutive_failures"] + 1
    [failed] = await runs(engine, job_id)
    assert (failed["status"], failed["schedule"]["source"]) == ("failed", source)


async def _interrupted(
    engine: AsyncEngine,
    event: str,
    hook: Callable[..., None],
    claim: asyncio.Future[list[ClaimedJob]],
    interrupt: str,
) -> None:
    """Await `claim` while `hook` listens on the engine's `event`; the hook interrupts it:
    `cancel`, or `raise` (a RuntimeError standing for a broken connection)."""
    sa.event.listen(engine.sync_engine, event, hook)
    try:
        with pytest.raises(asyncio.CancelledError if interrupt == "cancel" else RuntimeError):
            await claim
    finally:
        sa.event.remove(engine.sync_engine, event, hook)


@pytest.mark.parametrize(
    ("interrupt", "reason"),
    [
        ("cancel", "not started: the engine stopped or disconnected during the claim"),
        ("raise", "not started: the job's context could not be loaded (RuntimeError)"),
    ],
)
async def test_claim_interrupted_while_loading_contexts_gives_the_jobs_back(
    repo: SchedulerRepository, engine: AsyncEngine, interrupt: str, reason: str
) -> None:
    """The leases are committed before the contexts are read. An engine that stops during
    its claim cancels it there (in-process; over the API the server does when the engine
    hangs up): the run it started is recorded as aborted because the engine stopped — not
    as a context that could not be loaded — and the job is due again at once."""
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    claim = asyncio.ensure_future(repo.claim_due_jobs("w", 10, LEASE_MS, now=T0))

    def interrupt_first_context_read(*args: Any) -> None:
        if "FROM endpoints" in str(args[2]):
            if interrupt == "raise":
                raise RuntimeError("database went away")
            claim.cancel()

    await _interrupted(
        engine, "before_cursor_execute", interrupt_first_context_read, claim, interrupt
    )

    row = await job(engine, job_id)
    assert (row["lease_owner"], row["next_run_at"]) == (None, at(-60))
    [aborted] = await runs(engine, job_id)
    assert (aborted["status"], aborted["error"]) == ("aborted", reason)
    [again] = await repo.claim_due_jobs("w2", 10, LEASE_MS, now=at(1))
    assert again.lease.job_id == job_id


@pytest.mark.parametrize("interrupt", ["cancel", "raise"])
async def test_claim_interrupted_as_its_lease_commits_gives_the_jobs_back(
    repo: SchedulerRepository, engine: AsyncEngine, interrupt: str
) -> None:
    """The lease has run in the database but its answer never reaches the claimer (the
    engine stopped just then, or the connection broke): on PostgreSQL the one-statement
    lease is committed by then. The claim finds what it took and gives it back, so the
    job does not wait for its lease to expire; on SQLite nothing was committed."""
    tenant = await add_tenant(engine)
    job_id = await add_job(engine, tenant)
    claim = asyncio.ensure_future(repo.claim_due_jobs("w", 10, LEASE_MS, now=T0))
    interrupted: list[str] = []

    def lose_the_answer(*args: Any) -> None:
        statement = " ".join(str(args[2]).split())
        if not interrupted and "UPDATE jobs SET lease_owner" in statement:
            interrupted.append(statement)
            raise asyncio.CancelledError() if interrupt == "cancel" else RuntimeError("gone")

    await _interrupted(engine, "after_cursor_execute", lose_the_answer, claim, interrupt)

    assert interrupted
    row = await job(engine, job_id)
    assert (row["lease_owner"], row["next_run_at"]) == (None, at(-60))
    left = await runs(engine, job_id)
    assert [r["status"] for r in left if r["status"] == "running"] == []
    if engine.dialect.name == "postgresql":
        [aborted] = left
        assert aborted["status"] == "aborted"
        assert aborted["error"].startswith("not started: ")
    [again] = await repo.claim_due_jobs("w2", 10, LEASE_MS, now=at(1))
    assert again.lease.job_id == job_id


async def runs(engine: AsyncEngine, job_id: str) -> list[sa.RowMapping]:
    async with engine.connect() as conn:
        query = sa.select(Run.__table__).where(Run.__table__.c.job_id == job_id)
        return list((await conn.execute(query)).mappings())


async def test_claim_leases_with_one_statement(
    repo: SchedulerRepository, engine: AsyncEngine
) -> None:
    """The lease is taken by a single UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING;
    on PostgreSQL the subquery locks with FOR UPDATE SKIP LOCKED, and the same statement
    (its data-modifying CTEs) aborts previous runs and starts the new ones."""
    tenant = await add_tenant(engine)
    for i in range(3):
        await add_job(engine, tenant, next_run_at=at(-i))
    statements: list[str] = []

    def capture(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        claimed = await repo.claim_due_jobs("w", 3, LEASE_MS, now=T0)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)

    assert len(claimed) == 3
    if engine.dialect.name == "postgresql":
        # (The tenant's first claim also creates its signing key: not a claim write.)
        writes = [s for s in statements if "UPDATE" in s or "INSERT INTO runs" in s]
        assert len(writes) == 1
        [claim] = writes
        assert claim.startswith("WITH leased AS (UPDATE jobs")
        assert "FOR UPDATE SKIP LOCKED" in claim
        assert "INSERT INTO runs" in claim
    else:
        job_writes = [s for s in statements if s.startswith("UPDATE jobs")]
        assert len(job_writes) == 1
        [claim] = job_writes
    assert "RETURNING" in claim
    assert "LIMIT" in claim


async def test_context_loading_is_batched(
    repo: SchedulerRepository, engine: AsyncEngine, box: SecretBox
) -> None:
    """A batch of 30 jobs costs the same few queries as one job (no N+1)."""
    tenant = await add_tenant(engine)
    async with engine.begin() as conn:  # its signing key exists (the first claim creates it)
        await conn.execute(sa.insert(SigningKey), [new_key_row(tenant, box, T0)])
    for i in range(30):
        job_id = await add_job(engine, tenant, next_run_at=at(-i))
        await add_endpoint(engine, box, job_id)
        await add_message(engine, job_id, f"hello {i}", at(-100))
    statements: list[str] = []

    def capture(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        claimed = await repo.claim_due_jobs("w", 30, LEASE_MS, now=T0)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", capture)

    assert len(claimed) == 30
    assert all(len(c.context.endpoints) == 1 for c in claimed)
    assert all(len(c.context.messages) == 1 for c in claimed)
    assert all(c.context.job.signing_secret for c in claimed)
    assert len(statements) <= 7
