"""MetricsMiddleware on a real FastAPI app served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import uvicorn
from fastapi import FastAPI, Response

from cronicorn.observability.asgi import MetricsMiddleware
from cronicorn.observability.metrics import ApiMetrics, render


def build_app(metrics: ApiMetrics) -> FastAPI:
    app = FastAPI()
    sub = FastAPI()

    @app.get("/api/jobs/{job_id}")
    async def get_job(job_id: str) -> dict[str, str]:
        return {"id": job_id}

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("boom")

    @app.get("/metrics")
    async def metrics_route() -> Response:
        body, content_type = render(metrics.registry)
        return Response(body, media_type=content_type)

    @sub.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    app.mount("/v1", sub)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, ApiMetrics]]:
    metrics = ApiMetrics()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(build_app(metrics), log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}", metrics
    server.should_exit = True
    await asyncio.wait_for(task, 5)
    sock.close()


async def test_requests_are_counted_by_route_template(served: tuple[str, ApiMetrics]) -> None:
    base, metrics = served
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        for i in range(20):
            async with session.get(f"{base}/api/jobs/job-{i}") as resp:
                assert resp.status == 200
        async with session.get(f"{base}/v1/items/7") as resp:
            assert resp.status == 200
        for i in range(5):
            async with session.get(f"{base}/random/{i}") as resp:
                assert resp.status == 404
        async with session.get(f"{base}/boom") as resp:
            assert resp.status == 500
        async with session.get(f"{base}/metrics") as resp:
            body = await resp.text()

    def count(route: str, status: str) -> float | None:
        return metrics.registry.get_sample_value(
            "cronicorn_http_requests_total", {"method": "GET", "route": route, "status": status}
        )

    assert count("/api/jobs/{job_id}", "200") == 20
    assert count("/v1/items/{item_id}", "200") == 1
    assert count("<unmatched>", "404") == 5
    assert count("/boom", "500") == 1
    assert 'route="/api/jobs/{job_id}",status="200"} 20.0' in body
    assert "job-3" not in body
