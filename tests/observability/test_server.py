"""The engine's metrics server, as a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from cronicorn.domain.models import EndpointResult, EndpointStatus, TokenUsage
from cronicorn.observability.metrics import EngineMetrics
from cronicorn.observability.server import start_metrics_server

TIMEOUT = aiohttp.ClientTimeout(total=5)


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_metrics_endpoint_serves_the_registry() -> None:
    metrics = EngineMetrics()
    metrics.observe_run(
        "completed",
        [EndpointResult("e1", EndpointStatus.SUCCESS, status_code=200, duration_ms=30.0)],
        lag_s=0.2,
    )
    metrics.observe_ai_call("plan", "success", TokenUsage(input=12, output=3), 0.4)
    async with await start_metrics_server(metrics.registry) as server:
        assert server.port > 0
        status, content_type, body = await get(f"{server.url}/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
        assert 'cronicorn_jobs_processed_total{outcome="completed"} 1.0' in body
        assert 'cronicorn_endpoint_calls_total{category="none",outcome="success"} 1.0' in body
        assert 'cronicorn_ai_tokens_total{kind="input",phase="plan"} 12.0' in body
        assert "cronicorn_scheduling_lag_seconds_count 1.0" in body
        # Later observations show up on the next scrape.
        metrics.lease_lost()
        _, _, body = await get(f"{server.url}/metrics")
        assert "cronicorn_leases_lost_total 1.0" in body


async def test_health_merges_the_callback() -> None:
    def health() -> dict[str, Any]:
        return {"worker_id": "w1", "jobs_in_flight": 2, "api_key": "must-not-leak"}

    server = await start_metrics_server(EngineMetrics().registry, health=health)
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.get(f"{server.url}/health") as resp,
        ):
            assert resp.status == 200
            payload = await resp.json()
    finally:
        await server.stop()
    assert payload == {"status": "ok", "worker_id": "w1", "jobs_in_flight": 2, "api_key": "***"}


async def test_health_without_callback_and_async_callback() -> None:
    async def health() -> dict[str, Any]:
        return {"status": "draining"}

    async with await start_metrics_server(EngineMetrics().registry) as plain:
        status, _, body = await get(f"{plain.url}/health")
        assert (status, body) == (200, '{"status": "ok"}')
    async with await start_metrics_server(EngineMetrics().registry, health=health) as draining:
        status, _, body = await get(f"{draining.url}/health")
        assert status == 503
        assert '"draining"' in body


async def test_broken_health_check_answers_503() -> None:
    def health() -> dict[str, Any]:
        raise RuntimeError("db down")

    async with await start_metrics_server(EngineMetrics().registry, health=health) as server:
        status, _, body = await get(f"{server.url}/health")
    assert status == 503
    assert '"error"' in body


async def test_stop_closes_the_port() -> None:
    server = await start_metrics_server(EngineMetrics().registry)
    url = f"{server.url}/metrics"
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(url)
