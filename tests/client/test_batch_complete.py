"""Batched completions over the API: concurrent `complete` calls share one request
(`POST /api/scheduler/runs/complete-batch`), each caller with its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from cronicorn.client import ApiSchedulerBackend
from cronicorn.domain.models import AIAttempt, AISession, AITrigger, Lease, TokenUsage
from cronicorn.errors import LeaseLostError
from tests.api.conftest import LiveServer, live_server
from tests.client.test_api_backend import completion, make_job, user_call


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as srv:
        yield srv


class Proxy:
    """Forwards to the API and records the paths the client requested."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.paths: list[str] = []
        self.refuse_batch = False

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if self.refuse_batch and request.path.endswith("/complete-batch"):
            return web.Response(status=404, text="not found")
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.target + request.path_qs,
                data=await request.read(),
                headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            ) as resp,
        ):
            body = await resp.read()
            return web.Response(status=resp.status, body=body, content_type=resp.content_type)


@pytest.fixture
async def proxied(server: LiveServer) -> AsyncIterator[tuple[ApiSchedulerBackend, Proxy]]:
    proxy = Proxy(server.url)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = ApiSchedulerBackend(f"http://127.0.0.1:{port}", server.keys["engine"])
    yield client, proxy
    await client.close()
    await runner.cleanup()


async def claim_jobs(server: LiveServer, client: ApiSchedulerBackend, n: int) -> list[Lease]:
    for _ in range(n):
        await make_job(server)
    return [c.lease for c in await client.claim("w1", n, 600_000)]


async def endpoint_of(server: LiveServer, job_id: str) -> str:
    [endpoint] = await user_call(server, "GET", f"/api/jobs/{job_id}/endpoints")  # type: ignore[misc]
    return str(endpoint["id"])


async def test_concurrent_completes_go_in_one_request_with_own_outcomes(
    server: LiveServer, proxied: tuple[ApiSchedulerBackend, Proxy]
) -> None:
    client, proxy = proxied
    leases = await claim_jobs(server, client, 4)
    lost = replace(leases[1], token=leases[1].token + 7)
    items = [(lease if i != 1 else lost) for i, lease in enumerate(leases)]
    now = datetime.now(UTC)
    completions = [completion(await endpoint_of(server, lease.job_id), now) for lease in leases]
    proxy.paths.clear()

    outcomes = await asyncio.gather(
        *(client.complete(lease, c) for lease, c in zip(items, completions, strict=True)),
        return_exceptions=True,
    )

    assert proxy.paths == ["/api/scheduler/runs/complete-batch"]
    assert isinstance(outcomes[1], LeaseLostError)
    assert [o for i, o in enumerate(outcomes) if i != 1] == [None, None, None]
    for i, lease in enumerate(leases):
        job = await user_call(server, "GET", f"/api/jobs/{lease.job_id}")
        assert job["locked"] is (i == 1)


async def test_a_lone_complete_uses_the_single_route(
    server: LiveServer, proxied: tuple[ApiSchedulerBackend, Proxy]
) -> None:
    client, proxy = proxied
    [lease] = await claim_jobs(server, client, 1)
    proxy.paths.clear()

    await client.complete(
        lease, completion(await endpoint_of(server, lease.job_id), datetime.now(UTC))
    )

    assert proxy.paths == ["/api/scheduler/complete"]


async def test_a_server_without_the_batch_route_gets_single_completes(
    server: LiveServer, proxied: tuple[ApiSchedulerBackend, Proxy]
) -> None:
    """A refused batch (here: 404 from an older server) is resent item by item."""
    client, proxy = proxied
    leases = await claim_jobs(server, client, 3)
    now = datetime.now(UTC)
    completions = [completion(await endpoint_of(server, lease.job_id), now) for lease in leases]
    proxy.refuse_batch = True
    proxy.paths.clear()

    outcomes = await asyncio.gather(
        *(client.complete(lease, c) for lease, c in zip(leases, completions, strict=True)),
        return_exceptions=True,
    )

    assert outcomes == [None, None, None]
    assert proxy.paths[0] == "/api/scheduler/runs/complete-batch"
    assert sorted(proxy.paths[1:]) == ["/api/scheduler/complete"] * 3
    for lease in leases:
        assert (await user_call(server, "GET", f"/api/jobs/{lease.job_id}"))["locked"] is False


async def test_completions_with_large_ai_sessions_are_sent_in_smaller_batches(
    server: LiveServer, proxied: tuple[ApiSchedulerBackend, Proxy]
) -> None:
    """Stored AI sessions travel with the completion; a batch stays under the body limit."""
    client, proxy = proxied
    leases = await claim_jobs(server, client, 4)
    now = datetime.now(UTC)
    text = "x" * 100_000
    session = AISession(
        phase="plan",
        model="gpt-4o",
        started_at=now,
        messages=({"role": "user", "content": text},),
        attempts=(AIAttempt(outcome="success", raw_reply="{}", usage=TokenUsage(input=7)),),
        usage=TokenUsage(input=7),
        cost_usd=0.25,
        trigger=AITrigger.NO_DECISION,
    )
    completions = [
        replace(
            completion(await endpoint_of(server, lease.job_id), now),
            ai_sessions=(session,),
            cost_usd=0.25,
        )
        for lease in leases
    ]
    proxy.paths.clear()

    outcomes = await asyncio.gather(
        *(client.complete(lease, c) for lease, c in zip(leases, completions, strict=True))
    )

    assert outcomes == [None] * 4
    assert proxy.paths == ["/api/scheduler/runs/complete-batch"] * 2
    for lease in leases:
        [stored] = await user_call(server, "GET", f"/api/runs/{lease.run_id}/ai")  # type: ignore[misc]
        assert stored["messages"][0]["content"] == text
        assert (stored["trigger"], stored["cost_usd"]) == ("no_decision", 0.25)
        job = await user_call(server, "GET", f"/api/jobs/{lease.job_id}")
        assert job["cost"]["total_usd"] == 0.25
    cost = await user_call(server, "GET", "/api/cost")
    assert cost["month_usd"] == 1.0  # type: ignore[index]
