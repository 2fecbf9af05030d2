"""`cronicorn run` (AllInOne): one /metrics for the API and the in-process engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cronicorn.cli.allinone import AllInOne
from cronicorn.engine.config import EngineConfig
from cronicorn.settings import Settings
from tests.cli.conftest import Endpoints, Invoke, one_line

WAIT_S = 10.0


@pytest.fixture
async def aio(cli_env: str) -> AsyncIterator[AllInOne]:
    config = EngineConfig.model_validate({"execution": {"allowed_hosts": ["127.0.0.1"]}})
    async with AllInOne(Settings.from_env(), config, port=0) as aio:
        yield aio


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of a Prometheus text exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def _job_with_endpoint(http: aiohttp.ClientSession, base: str, url: str) -> str:
    """A job that is not due yet (so it cannot run before its endpoint exists)."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    body = {"name": "m", "definition": "call /ok", "next_run_at": later}
    async with http.post(f"{base}/api/jobs", json=body) as r:
        assert r.status == 201, await r.text()
        job_id = str((await r.json())["id"])
    async with http.post(
        f"{base}/api/jobs/{job_id}/endpoints", json={"name": "ok", "url": url}
    ) as r:
        assert r.status == 201, await r.text()
    return job_id


async def test_metrics_show_the_api_and_the_engine(
    aio: AllInOne, invoke: Invoke, endpoints: Endpoints
) -> None:
    key = one_line((await invoke("keys", "create", "--tenant", "acme")).stdout)
    base = aio.api_url
    auth = {"Authorization": f"Bearer {key}"}
    ok = (
        "cronicorn_endpoint_calls_total",
        frozenset({("outcome", "success"), ("category", "none")}),
    )
    async with aiohttp.ClientSession(headers=auth) as http:
        job_id = await _job_with_endpoint(http, base, endpoints.url("/ok"))
        async with http.post(f"{base}/api/jobs/{job_id}/run-now") as r:
            assert r.status == 200, await r.text()
        async with asyncio.timeout(WAIT_S):
            while True:
                async with http.get(f"{base}/metrics") as r:
                    scraped = samples(await r.text())
                if scraped.get(ok):
                    break
                await asyncio.sleep(0.05)

    assert endpoints.calls["/ok"] == 1
    assert scraped[ok] == 1
    completed = ("cronicorn_jobs_processed_total", frozenset({("outcome", "completed")}))
    assert scraped[completed] == 1
    created = ("cronicorn_http_requests_total", frozenset(
        {("method", "POST"), ("route", "/api/jobs"), ("status", "201")}
    ))  # fmt: skip
    assert scraped[created] == 1
