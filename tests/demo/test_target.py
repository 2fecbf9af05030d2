"""The demo target service on a real 127.0.0.1 server, driven by a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest

from cronicorn.demo import (
    DemoTarget,
    DemoTargetConfig,
    demo_job_spec,
    demo_job_specs,
    split_spec,
    start_target,
)
from cronicorn.demo.target import backlog_at, health_ok_at
from cronicorn.domain.models import HTTP_METHODS
from tests.fakes.clock import FakeClock

CONFIG = DemoTargetConfig(
    wave_period_s=20, max_backlog=100, high_backlog=50, health_cycle_s=10, outage_s=3
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def target(clock: FakeClock) -> AsyncIterator[DemoTarget]:
    running = await start_target(clock=clock.monotonic, config=CONFIG)
    yield running
    await running.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


async def test_serves_on_loopback_with_free_port(target: DemoTarget) -> None:
    assert target.base_url.startswith("http://127.0.0.1:")
    assert not target.base_url.endswith(":0")


async def test_backlog_grows_then_shrinks_in_waves(
    target: DemoTarget, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    seen = []
    for _ in range(9):
        status, body = await get_json(http, target.url("/orders/backlog"))
        assert status == 200
        seen.append((body["backlog"], body["trend"], body["status"]))
        clock.advance(2.5)
    backlogs = [b for b, _, _ in seen]
    assert backlogs[0] == 0
    assert max(backlogs) == backlogs[4] == 100  # peak at half the period (10 s)
    assert backlogs[:5] == sorted(backlogs[:5])
    assert backlogs[4:] == sorted(backlogs[4:], reverse=True)
    assert seen[1][1] == "growing"
    assert seen[6][1] == "shrinking"
    assert {s for _, _, s in seen} == {"high", "normal"}
    assert target.calls["orders"] == 9


async def test_health_fails_for_outage_window_every_cycle(
    target: DemoTarget, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    statuses = []
    for _ in range(20):  # two 10 s cycles in 1 s steps
        status, body = await get_json(http, target.url("/health"))
        statuses.append(status)
        assert body["status"] == ("ok" if status == 200 else "degraded")
        clock.advance(1)
    cycle = [200] * 7 + [503] * 3
    assert statuses == cycle * 2
    assert target.calls["health"] == 20


async def test_scale_up_records_calls_and_scales_only_when_high(
    target: DemoTarget, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    async with http.post(target.url("/scale-up"), json={"backlog": 0}) as response:
        low = await response.json()
    clock.advance(10)  # peak
    async with http.post(target.url("/scale-up"), json={"reason": "backlog"}) as response:
        high = await response.json()
    async with http.post(target.url("/scale-up")) as response:
        assert response.status == 200
    assert (low["scaled"], low["replicas"]) == (False, 1)
    assert (high["scaled"], high["replicas"], high["backlog"]) == (True, 2, 100)
    assert target.calls["scale_up"] == 3
    assert target.scale_up_requests == [{"backlog": 0}, {"reason": "backlog"}, None]
    _, counts = await get_json(http, target.url("/calls"))
    assert counts == {"scale_up": 3}


async def test_stop_closes_the_port(clock: FakeClock, http: aiohttp.ClientSession) -> None:
    running = await start_target(clock=clock.monotonic)
    status, _ = await get_json(http, running.url("health"))
    assert status == 200
    await running.stop()
    await running.stop()  # idempotent
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_json(http, running.url("health"))


def test_time_functions_are_periodic() -> None:
    for t in (0.0, 3.3, 7.0, 12.9):
        assert backlog_at(t, CONFIG) == backlog_at(t + CONFIG.wave_period_s, CONFIG)
        assert health_ok_at(t, CONFIG) == health_ok_at(t + CONFIG.health_cycle_s, CONFIG)
    assert all(0 <= backlog_at(t / 10, CONFIG) <= 100 for t in range(400))


# -- demo job specs ----------------------------------------------------------------------------


def test_demo_job_spec_points_at_the_target() -> None:
    spec = demo_job_spec("http://127.0.0.1:8123/")
    job, endpoints = split_spec(spec)
    assert "endpoints" not in job
    assert job["name"]
    assert len(job["definition"]) <= 4000
    assert {e["url"] for e in endpoints} == {
        "http://127.0.0.1:8123/orders/backlog",
        "http://127.0.0.1:8123/scale-up",
    }


@pytest.mark.parametrize("spec", demo_job_specs("http://127.0.0.1:1"))
def test_demo_specs_satisfy_the_domain_rules(spec: dict[str, Any]) -> None:
    job, endpoints = split_spec(spec)
    assert 1 <= len(job["name"]) <= 200
    assert 1 <= len(job["definition"]) <= 4000
    assert job["interval_ms"] >= 1000
    assert job["min_interval_ms"] <= job["interval_ms"] <= job["max_interval_ms"]
    assert endpoints
    for endpoint in endpoints:
        assert endpoint["method"] in HTTP_METHODS
        assert 100 <= endpoint["timeout_ms"] <= 300_000
        if "request_schema" in endpoint:
            jsonschema.Draft202012Validator.check_schema(endpoint["request_schema"])
            jsonschema.validate(endpoint["body"], endpoint["request_schema"])


async def test_demo_urls_are_served_by_the_target(
    target: DemoTarget, http: aiohttp.ClientSession
) -> None:
    for spec in demo_job_specs(target.base_url):
        for endpoint in spec["endpoints"]:
            async with http.request(
                endpoint["method"], endpoint["url"], json=endpoint.get("body")
            ) as response:
                assert response.status in (200, 503)
