"""External abort (≠ timeout), task cancellation, and isolation of raising event hooks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp import web

from cronicorn.domain.models import EndpointStatus, ErrorCategory
from cronicorn.executor import HttpExecutor
from cronicorn.runtime.abort import AbortSignal

from .conftest import (
    RecordingEvents,
    Serve,
    breaker,
    by_id,
    call,
    endpoint,
    local_config,
    plan,
)


class Gated:
    """/fast answers at once; /slow waits for `gate`; /fail answers 500 + Retry-After."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.slow_started = asyncio.Event()
        self.hits: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{kind}/{name}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        kind, name = request.match_info["kind"], request.match_info["name"]
        self.hits.append(name)
        if kind == "slow":
            self.slow_started.set()
            await self.gate.wait()
        if kind == "fail":
            return web.Response(status=503, headers={"Retry-After": "10"})
        return web.Response(text=name)


@pytest.fixture
async def gated(serve: Serve) -> tuple[Gated, str]:
    server = Gated()
    return server, await serve(server.app())


async def abort_when(event: asyncio.Event, abort: asyncio.Event) -> None:
    await event.wait()
    await asyncio.sleep(0.05)
    abort.set()


ABORT_KINDS = pytest.mark.parametrize("kind", [asyncio.Event, AbortSignal])
"""A plain Event (watched by a task) and the engine's AbortSignal (a callback)."""


@ABORT_KINDS
@pytest.mark.parametrize("strategy", ["sequential", "parallel", "mixed"])
async def test_abort_marks_in_flight_and_pending_calls_aborted(
    gated: tuple[Gated, str],
    executors: list[HttpExecutor],
    strategy: str,
    kind: type[asyncio.Event],
) -> None:
    server, base = gated
    ex = HttpExecutor(local_config(circuit_breaker=breaker(failure_threshold=1)))
    executors.append(ex)
    eps = by_id(
        endpoint("done", f"{base}/fast/done"),
        endpoint("slow", f"{base}/slow/slow"),
        endpoint("later", f"{base}/fast/later"),
    )
    deps: tuple[str, ...] = ("slow",) if strategy == "mixed" else ()
    p = plan(
        call("done", priority=0),
        call("slow", priority=1, depends_on=("done",) if strategy == "mixed" else ()),
        call("later", priority=2, depends_on=deps),
        strategy=strategy,
        limit=2 if strategy == "parallel" else None,
    )
    abort = kind()
    watcher = asyncio.create_task(abort_when(server.slow_started, abort))
    results = await asyncio.wait_for(ex.execute(p, eps, abort=abort), 3)
    await watcher
    by = {r.endpoint_id: r for r in results}
    assert by["done"].status == EndpointStatus.SUCCESS
    assert by["slow"].status == EndpointStatus.ABORTED
    assert by["slow"].error_category == ErrorCategory.ABORTED
    assert by["slow"].attempts == 1
    if strategy != "parallel":
        assert by["later"].status == EndpointStatus.ABORTED
        assert by["later"].attempts == 0
        assert "later" not in server.hits
    assert ex.circuit_state("slow") == "closed"  # an abort is not a failure
    server.gate.set()
    # The executor (and this task) still work normally afterwards, timeouts included.
    server.gate.clear()
    [again] = await ex.execute(
        plan(call("slow2")), {"slow2": endpoint("slow2", f"{base}/slow/x", timeout_ms=150)}
    )
    assert again.error_category == ErrorCategory.TIMEOUT
    server.gate.set()


@ABORT_KINDS
async def test_abort_during_backoff_returns_promptly(
    gated: tuple[Gated, str], executors: list[HttpExecutor], kind: type[asyncio.Event]
) -> None:
    server, base = gated
    ex = HttpExecutor(local_config(retry_after_cap_ms=60_000))
    executors.append(ex)
    abort = kind()
    asyncio.get_running_loop().call_later(0.2, abort.set)
    [result] = await asyncio.wait_for(
        ex.execute(plan(call("f")), by_id(endpoint("f", f"{base}/fail/f")), abort=abort), 2
    )
    assert result.status == EndpointStatus.ABORTED
    assert result.attempts == 1
    assert server.hits == ["f"]


async def test_abort_already_set_sends_nothing(
    gated: tuple[Gated, str], executors: list[HttpExecutor]
) -> None:
    server, base = gated
    ex = HttpExecutor(local_config())
    executors.append(ex)
    abort = asyncio.Event()
    abort.set()
    eps = by_id(endpoint("a", f"{base}/fast/a"), endpoint("b", f"{base}/fast/b"))
    for strategy in ("sequential", "parallel", "mixed"):
        results = await ex.execute(plan(call("a"), call("b"), strategy=strategy), eps, abort=abort)
        assert [r.status for r in results] == [EndpointStatus.ABORTED] * 2
    assert server.hits == []


async def test_cancelling_execute_propagates_and_leaves_executor_usable(
    gated: tuple[Gated, str], executors: list[HttpExecutor]
) -> None:
    server, base = gated
    ex = HttpExecutor(local_config())
    executors.append(ex)
    eps = by_id(endpoint("s", f"{base}/slow/s"))
    task = asyncio.create_task(ex.execute(plan(call("s")), eps))
    await server.slow_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [ok] = await ex.execute(plan(call("a")), by_id(endpoint("a", f"{base}/fast/a")))
    assert ok.status == EndpointStatus.SUCCESS
    server.gate.set()


class RaisingEvents:
    def __init__(self) -> None:
        self.calls = 0

    def _boom(self) -> None:
        self.calls += 1
        raise RuntimeError("hook bug")

    def on_endpoint_progress(self, endpoint_id: str, stage: str, data: Mapping[str, Any]) -> None:
        self._boom()

    def on_retry_attempt(self, endpoint_id: str, attempt: int, delay_s: float, reason: str) -> None:
        self._boom()

    def on_retry_exhausted(self, endpoint_id: str, attempts: int, reason: str) -> None:
        self._boom()

    def on_circuit_state_change(self, endpoint_id: str, old: str, new: str) -> None:
        self._boom()


async def test_raising_hooks_are_logged_and_ignored(
    serve: Serve, executors: list[HttpExecutor], caplog: pytest.LogCaptureFixture
) -> None:
    async def fail(_: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/", fail)
    base = await serve(app)
    config = local_config(max_endpoint_retries=2, circuit_breaker=breaker(failure_threshold=2))
    ex = HttpExecutor(config)
    executors.append(ex)
    hooks = RaisingEvents()
    with caplog.at_level(logging.WARNING, logger="cronicorn.executor.events"):
        [result] = await ex.execute(plan(call("e")), by_id(endpoint("e", f"{base}/")), events=hooks)
    assert result.error_category == ErrorCategory.HTTP_5XX
    assert result.attempts == 2  # circuit opened after 2 failures despite the raising hook
    assert ex.circuit_state("e") == "open"
    assert hooks.calls >= 4
    assert "hook" in caplog.text


async def test_progress_events_cover_start_retry_finish(
    serve: Serve, executors: list[HttpExecutor]
) -> None:
    attempts = 0

    async def flaky(_: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        return web.Response(status=500 if attempts == 1 else 200)

    app = web.Application()
    app.router.add_get("/", flaky)
    base = await serve(app)
    ex = HttpExecutor(local_config())
    executors.append(ex)
    events = RecordingEvents()
    await ex.execute(plan(call("e")), by_id(endpoint("e", f"{base}/")), events=events)
    stages = [c[2] for c in events.of("progress")]
    assert stages == ["started", "retrying", "finished"]
    assert events.of("progress")[-1][3]["status"] == "success"
    assert events.of("retry") == [("retry", "e", 2, 0.0, "HTTP 500 Internal Server Error")]
