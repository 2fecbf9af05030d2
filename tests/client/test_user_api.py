"""UserApiClient (the CLI's, the demo's and the MCP stdio server's client) against the real API
served by uvicorn on 127.0.0.1, and against small aiohttp servers for what the API never does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from cronicorn.client import ApiError, UserApiClient
from cronicorn.errors import BackendUnavailableError
from cronicorn.service.schemas import EndpointCreate, JobCreate
from tests.api.conftest import ENDPOINT, JOB, LiveServer, live_server


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[LiveServer]:
    async with live_server(database_url) as srv:
        yield srv


@pytest.fixture
async def alice(server: LiveServer) -> AsyncIterator[UserApiClient]:
    async with UserApiClient(server.url, server.keys["alice"]) as client:
        yield client


async def test_jobs_endpoints_and_runs_round_trip(alice: UserApiClient) -> None:
    job = await alice.create_job(JobCreate.model_validate(JOB))
    endpoint = await alice.create_endpoint(job.id, EndpointCreate.model_validate(ENDPOINT))
    assert [j.id for j in await alice.list_jobs()] == [job.id]
    assert (await alice.get_job(job.id)).name == JOB["name"]
    assert [e.id for e in await alice.list_endpoints(job.id)] == [endpoint.id]
    assert await alice.runs(job.id) == []
    assert await alice.request("GET", f"/api/jobs/{job.id}/runs") == []


async def test_error_answers_carry_the_apis_own_message(
    server: LiveServer, alice: UserApiClient
) -> None:
    with pytest.raises(ApiError) as missing:
        await alice.get_job("5f0c3b8e-0000-4000-8000-000000000000")
    assert missing.value.status == 404
    assert str(missing.value) == "job 5f0c3b8e-0000-4000-8000-000000000000 not found"

    with pytest.raises(ApiError) as invalid:
        await alice.request("POST", "/api/jobs", {**JOB, "interval_ms": 5})
    assert invalid.value.status == 422
    assert (
        str(invalid.value) == "API 422: interval_ms: Input should be greater than or equal to 1000"
    )

    with pytest.raises(ApiError) as refused:  # a user key may not read the scheduler routes
        await alice.workers()
    assert refused.value.status == 403
    assert str(refused.value).startswith("API 403: ")

    async with UserApiClient(server.url, "ck_wrong") as stranger:
        with pytest.raises(ApiError) as unknown:
            await stranger.list_jobs()
    assert unknown.value.status == 401


async def serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.mark.parametrize("database_url", ["unused"], indirect=False)
async def test_a_person_is_waiting_no_retries(database_url: str) -> None:
    """A 503 (e.g. from a proxy, not JSON) is reported at once with its status."""
    calls = 0

    async def unavailable(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.Response(status=503, text="<html>busy</html>", content_type="text/html")

    runner, url = await serve(unavailable)
    try:
        async with UserApiClient(url, "k") as client:
            with pytest.raises(ApiError) as busy:
                await client.list_jobs()
        assert (busy.value.status, str(busy.value), calls) == (503, "API 503: HTTP 503", 1)
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("database_url", ["unused"], indirect=False)
async def test_an_unreachable_api_is_one_line_naming_it(database_url: str) -> None:
    async with UserApiClient("http://127.0.0.1:9", "k") as client:
        with pytest.raises(BackendUnavailableError) as down:
            await client.list_jobs()
    message = str(down.value)
    assert message.startswith("cannot reach the API at http://127.0.0.1:9 (GET /api/jobs): ")
    assert "\n" not in message
