"""Retry policy against real servers: classification, backoff, Retry-After, method rules."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from cronicorn.domain.models import EndpointStatus, ErrorCategory
from cronicorn.executor import HttpExecutor
from cronicorn.executor.config import ExecutionConfig
from cronicorn.executor.retry import AttemptOutcome, RetryPolicy, parse_retry_after

from .conftest import RawServe, RecordingEvents, Serve, by_id, call, endpoint, local_config, plan


class Scripted:
    """/s/{name}: answers the scripted statuses in turn (the last one repeats)."""

    def __init__(self, scripts: dict[str, list[tuple[int, dict[str, str]]]]) -> None:
        self.scripts = scripts
        self.hits: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/s/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        n = self.hits.get(name, 0)
        self.hits[name] = n + 1
        script = self.scripts[name]
        status, headers = script[min(n, len(script) - 1)]
        return web.Response(status=status, headers=headers, text=f"{name}:{n}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_headers_then_stall_times_out_is_retried_and_recorded_as_timeout(
    executors: list[HttpExecutor], raw_serve: RawServe
) -> None:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(3)  # the body never comes

    url = await raw_serve(handle)
    ex = HttpExecutor(local_config(max_endpoint_retries=2))
    executors.append(ex)
    events = RecordingEvents()
    started = time.monotonic()
    [result] = await ex.execute(
        plan(call("e")), by_id(endpoint("e", url, timeout_ms=200)), events=events
    )
    assert result.status == EndpointStatus.FAILED
    assert result.error_category == ErrorCategory.TIMEOUT
    assert result.status_code == 200  # headers arrived; the body read timed out
    assert result.attempts == 3
    assert connections == 3
    assert 0.55 < time.monotonic() - started < 2.5
    assert [c[2] for c in events.of("retry")] == [2, 3]
    assert events.of("exhausted") == [("exhausted", "e", 3, result.error)]


async def test_503_with_retry_after_waits_before_retrying(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    server = Scripted({"r": [(503, {"Retry-After": "1"}), (200, {})]})
    base = await serve(server.app())
    ex = HttpExecutor(local_config(max_endpoint_retries=2))  # real clock and sleep
    executors.append(ex)
    events = RecordingEvents()
    started = time.monotonic()
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r")), events=events)
    elapsed = time.monotonic() - started
    assert result.status == EndpointStatus.SUCCESS
    assert result.attempts == 2
    assert 0.95 <= elapsed < 2.0
    assert events.of("retry")[0][3] == pytest.approx(1.0)


async def test_retry_after_is_capped(serve: Serve, executors: list[HttpExecutor]) -> None:
    server = Scripted({"r": [(429, {"Retry-After": "3600"}), (200, {})]})
    base = await serve(server.app())
    ex = HttpExecutor(local_config(retry_after_cap_ms=50))
    executors.append(ex)
    started = time.monotonic()
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r")))
    assert result.status == EndpointStatus.SUCCESS
    assert result.attempts == 2
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("status", "category", "attempts"),
    [
        (500, ErrorCategory.HTTP_5XX, 3),
        (502, ErrorCategory.HTTP_5XX, 3),
        (429, ErrorCategory.HTTP_4XX, 3),
        (408, ErrorCategory.HTTP_4XX, 3),
        (404, ErrorCategory.HTTP_4XX, 1),
        (400, ErrorCategory.HTTP_4XX, 1),
    ],
)
async def test_status_classification_and_retryability(
    serve: Serve, executors: list[HttpExecutor], status: int, category: ErrorCategory, attempts: int
) -> None:
    server = Scripted({"r": [(status, {})]})
    base = await serve(server.app())
    ex = HttpExecutor(local_config(max_endpoint_retries=2))
    executors.append(ex)
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r")))
    assert result.status == EndpointStatus.FAILED
    assert result.status_code == status
    assert result.error_category == category
    assert result.attempts == attempts
    assert server.hits["r"] == attempts
    assert result.response_body == f"r:{attempts - 1}"  # the last attempt's body


async def test_connection_refused_is_network_and_retried(executors: list[HttpExecutor]) -> None:
    ex = HttpExecutor(local_config(max_endpoint_retries=2))
    executors.append(ex)
    ep = endpoint("e", f"http://127.0.0.1:{free_port()}/", method="POST")
    [result] = await ex.execute(plan(call("e")), by_id(ep))
    assert result.status == EndpointStatus.FAILED
    assert result.error_category == ErrorCategory.NETWORK
    assert result.attempts == 3  # POST too: the request was never sent


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_not_retried_after_500_by_default(
    serve: Serve, executors: list[HttpExecutor], method: str
) -> None:
    server = Scripted({"r": [(500, {}), (200, {})]})
    base = await serve(server.app())
    ex = HttpExecutor(local_config(max_endpoint_retries=3))
    executors.append(ex)
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r", method=method)))
    assert result.status == EndpointStatus.FAILED
    assert result.attempts == 1
    assert server.hits["r"] == 1


@pytest.mark.parametrize("status", [503, 429])
async def test_post_retried_on_503_and_429(
    serve: Serve, executors: list[HttpExecutor], status: int
) -> None:
    server = Scripted({"r": [(status, {}), (201, {})]})
    base = await serve(server.app())
    ex = HttpExecutor(local_config())
    executors.append(ex)
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r", method="POST")))
    assert result.status == EndpointStatus.SUCCESS
    assert result.status_code == 201
    assert result.attempts == 2


async def test_retry_non_idempotent_switch_retries_post_after_500(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    server = Scripted({"r": [(500, {}), (200, {})]})
    base = await serve(server.app())
    ex = HttpExecutor(local_config(retry_non_idempotent=True))
    executors.append(ex)
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r", method="POST")))
    assert result.status == EndpointStatus.SUCCESS
    assert result.attempts == 2


async def test_put_is_retried_after_500(serve: Serve, executors: list[HttpExecutor]) -> None:
    server = Scripted({"r": [(500, {}), (200, {})]})
    base = await serve(server.app())
    ex = HttpExecutor(local_config())
    executors.append(ex)
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r", method="PUT")))
    assert result.status == EndpointStatus.SUCCESS
    assert result.attempts == 2


async def test_backoff_sleeps_go_through_the_injected_sleep(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    server = Scripted({"r": [(500, {})]})
    base = await serve(server.app())
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    config = local_config(max_endpoint_retries=4, retry_base_delay_ms=100, retry_max_delay_ms=300)
    ex = HttpExecutor(config, sleep=fake_sleep, rng=random.Random(7))
    executors.append(ex)
    [result] = await ex.execute(plan(call("r")), by_id(endpoint("r", f"{base}/s/r")))
    assert result.attempts == 5
    assert len(slept) == 4
    for n, delay in enumerate(slept):
        assert 0 <= delay <= min(0.3, 0.1 * 2**n)


def test_full_jitter_backoff_is_bounded_and_grows() -> None:
    policy = RetryPolicy(
        ExecutionConfig(retry_base_delay_ms=100, retry_max_delay_ms=1000), random.Random(1)
    )
    outcome = AttemptOutcome(ErrorCategory.NETWORK, retryable=True)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        samples = [policy.delay_s(attempt, outcome) for _ in range(300)]
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # full jitter spans the range


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    date = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30.0)
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


async def test_default_timeout_applies_when_endpoint_sets_none(
    executors: list[HttpExecutor], raw_serve: RawServe
) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(2)  # never answers in time

    url = await raw_serve(handle)
    ex = HttpExecutor(local_config(default_timeout_ms=150, max_endpoint_retries=0))
    executors.append(ex)
    started = time.monotonic()
    [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", url, timeout_ms=0)))
    assert result.error_category == ErrorCategory.TIMEOUT
    assert time.monotonic() - started < 1.0
