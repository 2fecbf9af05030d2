"""ApiSchedulerBackend against the real API served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from cronicorn.client import ApiError, ApiSchedulerBackend, UserApiClient
from cronicorn.domain.models import (
    AIDecision,
    AITrigger,
    EndpointResult,
    EndpointStatus,
    ErrorPhase,
    Escalation,
    ExecutionStrategy,
    Heartbeat,
    JobErrorRecord,
    NextRun,
    Plan,
    PlanDecision,
    PlannedCall,
    PlanSource,
    RunCompletion,
    RunStatus,
    ScheduleSource,
    TokenUsage,
)
from cronicorn.domain.signature import response_signature
from cronicorn.errors import BackendUnavailableError, ConfigError, LeaseLostError
from cronicorn.store.tables import Job
from tests.api.conftest import ENDPOINT, JOB, LiveServer, live_server


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as srv:
        yield srv


@pytest.fixture
async def backend(server: LiveServer) -> AsyncIterator[ApiSchedulerBackend]:
    client = ApiSchedulerBackend(server.url, server.keys["engine"], retry_base_delay_s=0.01)
    yield client
    await client.close()


async def user_call(server: LiveServer, method: str, path: str, body: object = None) -> dict:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {server.keys['alice']}"}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, server.url + path, json=body, headers=headers) as r,
    ):
        assert r.status < 300, await r.text()
        data: dict = await r.json()  # type: ignore[type-arg]
        return data


async def make_job(server: LiveServer, **extra: object) -> str:
    job = await user_call(server, "POST", "/api/jobs", {**JOB, **extra})
    body = {**ENDPOINT, "headers": {"X-Key": "s3cret"}, "bearer_token": "tok"}
    await user_call(server, "POST", f"/api/jobs/{job['id']}/endpoints", body)
    return str(job["id"])


def completion(endpoint_id: str, now: datetime) -> RunCompletion:
    return RunCompletion(
        status=RunStatus.COMPLETED,
        started_at=now,
        finished_at=now + timedelta(milliseconds=120),
        plan=Plan(calls=(PlannedCall(endpoint_id),), strategy=ExecutionStrategy.SEQUENTIAL),
        plan_source=PlanSource.RULES,
        results=(
            EndpointResult(
                endpoint_id,
                EndpointStatus.SUCCESS,
                status_code=200,
                attempts=1,
                started_at=now,
                duration_ms=12.5,
                response_body={"backlog": 3},
                content_type="application/json",
            ),
        ),
        escalation=Escalation.NONE,
        next_run=NextRun(now + timedelta(minutes=5), ScheduleSource.BASELINE_INTERVAL),
        schedule_reasoning="steady",
        schedule_confidence=0.9,
        recommended_actions=(),
        usage=TokenUsage(input=10, output=5),
        ai_calls=0,
        summary="1/1 endpoints succeeded",
    )


async def test_claim_extend_plan_complete_round_trip(
    server: LiveServer, backend: ApiSchedulerBackend
) -> None:
    job_id = await make_job(server)
    [claimed] = await backend.claim("w1", 10, 60_000)
    assert claimed.lease.job_id == job_id
    [spec] = claimed.context.endpoints
    assert (spec.headers["X-Key"], spec.bearer_token) == ("s3cret", "tok")
    assert await backend.claim("w2", 10, 60_000) == []
    extended = await backend.extend(claimed.lease, 120_000)
    assert extended.expires_at > claimed.lease.expires_at
    plan = PlanDecision(Plan(calls=(PlannedCall(spec.id),)), PlanSource.RULES)
    await backend.record_plan(extended, plan)
    now = datetime.now(UTC)
    await backend.complete(extended, completion(spec.id, now))

    job = await user_call(server, "GET", f"/api/jobs/{job_id}")
    assert job["locked"] is False
    assert (job["input_tokens"], job["output_tokens"], job["total_tokens"]) == (10, 5, 15)
    [run] = await user_call(server, "GET", f"/api/jobs/{job_id}/runs")  # type: ignore[misc]
    detail = await user_call(server, "GET", f"/api/runs/{run['id']}")
    assert detail["status"] == "completed"
    assert detail["results"][0]["response_body"] == {"backlog": 3}
    assert detail["tokens"] == {"input": 10, "output": 5, "reasoning": 0, "cached": 0}


async def test_fenced_writes_get_409_and_change_nothing(
    server: LiveServer, backend: ApiSchedulerBackend
) -> None:
    await make_job(server)
    [first] = await backend.claim("w1", 1, 60_000)
    async with server.app.state.db.begin() as conn:  # the lease expires
        past = datetime.now(UTC) - timedelta(seconds=1)
        await conn.execute(sa.update(Job).values(lease_expires_at=past))
    [second] = await backend.claim("w2", 1, 60_000)
    assert second.lease.token > first.lease.token

    async def snapshot() -> list[object]:
        async with server.app.state.db.connect() as conn:
            return [tuple(r) for r in await conn.execute(sa.select(Job))]

    before = await snapshot()
    now = datetime.now(UTC)
    spec_id = first.context.endpoints[0].id
    with pytest.raises(LeaseLostError):
        await backend.complete(first.lease, completion(spec_id, now))
    with pytest.raises(LeaseLostError):
        await backend.extend(first.lease, 60_000)
    with pytest.raises(LeaseLostError):
        await backend.fail(
            first.lease,
            JobErrorRecord(ErrorPhase.EXECUTE, "boom", "failed"),
            NextRun(now, ScheduleSource.BACKOFF),
            1,
        )
    with pytest.raises(LeaseLostError):
        await backend.release(first.lease)
    assert await snapshot() == before
    await backend.release(second.lease)


async def test_late_completion_with_the_newest_token_is_accepted_over_http(
    server: LiveServer, backend: ApiSchedulerBackend
) -> None:
    """The lease ran out while the API was down; nobody claimed the job since: 204, the
    run is stored. Sent again (its response lost), it is answered as written."""
    job_id = await make_job(server)
    [claimed] = await backend.claim("w1", 1, 60_000)
    async with server.app.state.db.begin() as conn:  # the lease expires
        past = datetime.now(UTC) - timedelta(seconds=30)
        await conn.execute(sa.update(Job).values(lease_expires_at=past))
    done = completion(claimed.context.endpoints[0].id, datetime.now(UTC))

    await backend.complete(claimed.lease, done)
    await backend.complete(claimed.lease, done)  # a replay: still a success

    job = await user_call(server, "GET", f"/api/jobs/{job_id}")
    assert job["locked"] is False
    assert job["input_tokens"] == 10  # written once
    runs = await user_call(server, "GET", f"/api/jobs/{job_id}/runs")
    assert [r["status"] for r in runs] == ["completed"]  # type: ignore[index]
    with pytest.raises(LeaseLostError):
        await backend.extend(claimed.lease, 60_000)


async def test_long_poll_wakes_on_new_job(server: LiveServer, backend: ApiSchedulerBackend) -> None:
    started = time.monotonic()
    waiting = asyncio.create_task(backend.claim("w1", 5, 60_000, wait_ms=10_000))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    job_id = await make_job(server)
    jobs = await asyncio.wait_for(waiting, 5)
    assert [j.lease.job_id for j in jobs] == [job_id]
    assert time.monotonic() - started < 5


async def test_long_poll_returns_empty_when_nothing_becomes_due(
    backend: ApiSchedulerBackend,
) -> None:
    started = time.monotonic()
    assert await backend.claim("w1", 5, 60_000, wait_ms=300) == []
    assert 0.25 <= time.monotonic() - started < 5


async def test_heartbeat_workers_stats_next_due_and_force_unlock(
    server: LiveServer, backend: ApiSchedulerBackend
) -> None:
    """The engine's heartbeat and shutdown mark, as the operator's client reads them back."""
    job_id = await make_job(server)
    assert await backend.next_due_at() is not None
    await backend.heartbeat("w1", Heartbeat(host="h", pid=42, stats={"total_cycles": 3}))
    async with UserApiClient(server.url, server.keys["engine"]) as operator:
        [worker] = await operator.workers()
        assert (worker.id, worker.pid, worker.stats["total_cycles"]) == ("w1", 42, 3)
        await backend.claim("w1", 1, 60_000)
        stats = await operator.scheduler_stats()
        assert (stats.jobs_active, stats.jobs_locked, stats.runs_running) == (1, 1, 1)
        assert stats.workers_live == 1
        with pytest.raises(ApiError) as refused:  # engine scope may not force-unlock
            await operator.force_unlock([job_id], stale_only=False)
        assert refused.value.status == 403
        async with UserApiClient(server.url, server.keys["admin"]) as admin:
            assert await admin.force_unlock([job_id], stale_only=False) == [job_id]
        await backend.mark_worker_stopped("w1")
        assert (await operator.scheduler_stats()).workers_live == 0


async def test_bad_key_is_a_config_error(server: LiveServer) -> None:
    client = ApiSchedulerBackend(server.url, "ck_wrong")
    try:
        with pytest.raises(ConfigError):
            await client.next_due_at()
    finally:
        await client.close()


@pytest.mark.parametrize("database_url", ["unused"], indirect=False)
async def test_retries_transient_statuses_then_succeeds(database_url: str) -> None:
    calls = 0

    async def flaky(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return web.Response(status=503 if calls == 1 else 502)
        return web.json_response({"next_due_at": None})

    app = web.Application()
    app.router.add_get("/api/scheduler/next-due", flaky)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = ApiSchedulerBackend(f"http://127.0.0.1:{port}", "k", retry_base_delay_s=0.001)
    try:
        assert await client.next_due_at() is None
        assert calls == 3
    finally:
        await client.close()
        await runner.cleanup()


@pytest.mark.parametrize("database_url", ["unused"], indirect=False)
async def test_connection_refused_gives_up_with_backend_unavailable(database_url: str) -> None:
    client = ApiSchedulerBackend(
        "http://127.0.0.1:9", "k", max_retries=2, retry_base_delay_s=0.001, timeout_s=2
    )
    try:
        with pytest.raises(BackendUnavailableError, match="3 attempts"):
            await client.next_due_at()
    finally:
        await client.close()


async def test_large_integers_inside_json_and_the_ai_decision_travel(
    server: LiveServer, backend: ApiSchedulerBackend
) -> None:
    """Integers in JSON columns (a response's epoch-ms timestamp, a 30-day AI cadence) are
    not limited to 32 bits; the stored decision comes back with the next claim."""
    job_id = await make_job(server)
    [claimed] = await backend.claim("w1", 10, 60_000)
    assert claimed.context.ai_decision is None
    [spec] = claimed.context.endpoints
    now = datetime.now(UTC)
    base = completion(spec.id, now)
    result = replace(base.results[0], response_body={"ts": 1_796_004_034_025})
    decision = AIDecision(
        plan=base.plan,  # type: ignore[arg-type]
        plan_source=PlanSource.AI,
        made_at=now,
        valid_until=now + timedelta(hours=1),
        fingerprint="f" * 32,
        signatures={spec.id: response_signature(result)},
        interval_ms=30 * 86_400_000,
        reasoning="monthly",
    )
    done = replace(
        base,
        results=(result,),
        ai_decision=decision,
        ai_trigger=AITrigger.NO_DECISION,
        next_run=NextRun(now - timedelta(seconds=1), ScheduleSource.AI),
    )
    await backend.complete(claimed.lease, done)
    [run] = await user_call(server, "GET", f"/api/jobs/{job_id}/runs")  # type: ignore[misc]
    assert run["ai_trigger"] == "no_decision"
    [again] = await backend.claim("w1", 10, 60_000)
    assert again.context.ai_decision == decision
