"""Issue 15: an endpoint created without `timeout_ms` uses the engine's default timeout
(`execution.default_timeout_ms` / CRONICORN_DEFAULT_TIMEOUT_MS) at run time; null is stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from cronicorn import create_scheduling_engine
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Endpoint
from tests.api.conftest import JOB, SECRET_KEY, Api


@pytest.fixture
async def slow_url() -> AsyncIterator[str]:
    """Answers after 2 s."""

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/slow"
    await runner.cleanup()


async def _run_once(api: Api, config: dict[str, Any]) -> None:
    backend = LocalSchedulerBackend(api.app.state.db, SecretBox(SECRET_KEY))
    engine = create_scheduling_engine(config, backend=backend)
    try:
        result = await engine.process_cycle()
    finally:
        await engine.stop()
        await backend.close()
    assert result.jobs_processed == 1


async def test_endpoint_without_timeout_uses_the_engines_default(api: Api, slow_url: str) -> None:
    job = (
        await api.call(
            "POST",
            "/api/jobs",
            json={**JOB, "interval_ms": 60_000, "next_run_at": "2020-01-01T00:00:00Z"},
        )
    ).json()
    r = await api.call(
        "POST", f"/api/jobs/{job['id']}/endpoints", json={"name": "slow", "url": slow_url}
    )
    assert r.status_code == 201, r.text
    endpoint = r.json()
    assert endpoint["timeout_ms"] is None  # not 30000: the engine decides at run time
    assert await api.scalar(sa.select(Endpoint.timeout_ms)) is None

    execution = {"allow_private_networks": True, "max_endpoint_retries": 0}
    await _run_once(api, {"execution": {**execution, "default_timeout_ms": 300}})

    runs = (await api.call("GET", f"/api/jobs/{job['id']}/runs")).json()
    detail = (await api.call("GET", f"/api/runs/{runs[0]['id']}")).json()
    [result] = detail["results"]
    assert result["error_category"] == "timeout", result  # 300 ms, not 30 s: the call takes 2 s

    # PATCH null resets an explicit timeout to the engine default again.
    r = await api.call("PATCH", f"/api/endpoints/{endpoint['id']}", json={"timeout_ms": 5000})
    assert r.json()["timeout_ms"] == 5000
    r = await api.call("PATCH", f"/api/endpoints/{endpoint['id']}", json={"timeout_ms": None})
    assert r.json()["timeout_ms"] is None
