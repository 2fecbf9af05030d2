"""Helpers for executor tests: real aiohttp servers on 127.0.0.1, recording events, a clock."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiohttp import web

from cronicorn.domain.models import (
    CircuitState,
    EndpointSpec,
    ExecutionStrategy,
    Plan,
    PlannedCall,
)
from cronicorn.executor import HttpExecutor
from cronicorn.executor.config import CircuitBreakerConfig, ExecutionConfig
from cronicorn.executor.ssrf import IPAddress

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an aiohttp app on 127.0.0.1 (random port); returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def local_config(**overrides: Any) -> ExecutionConfig:
    """Config for tests against 127.0.0.1: private networks allowed, fast retries."""
    values: dict[str, Any] = {
        "allow_private_networks": True,
        "retry_base_delay_ms": 0,
        "retry_max_delay_ms": 0,
        "max_concurrency": 50,
    }
    values.update(overrides)
    return ExecutionConfig(**values)


def breaker(**overrides: Any) -> CircuitBreakerConfig:
    return CircuitBreakerConfig(**overrides)


@pytest.fixture
async def executors() -> AsyncIterator[list[HttpExecutor]]:
    """Executors appended here are closed after the test."""
    made: list[HttpExecutor] = []
    yield made
    for executor in made:
        await executor.close()


def endpoint(eid: str, url: str, **kw: Any) -> EndpointSpec:
    return EndpointSpec(id=eid, name=eid, url=url, **kw)


def plan(*calls: PlannedCall, strategy: str = "sequential", limit: int | None = None) -> Plan:
    return Plan(calls=calls, strategy=ExecutionStrategy(strategy), concurrency_limit=limit)


def call(eid: str, **kw: Any) -> PlannedCall:
    return PlannedCall(endpoint_id=eid, **kw)


def by_id(*endpoints: EndpointSpec) -> dict[str, EndpointSpec]:
    return {e.id: e for e in endpoints}


class RecordingEvents:
    """ExecutorEvents that records every call as a tuple."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_endpoint_progress(self, endpoint_id: str, stage: str, data: Mapping[str, Any]) -> None:
        self.calls.append(("progress", endpoint_id, stage, dict(data)))

    def on_retry_attempt(self, endpoint_id: str, attempt: int, delay_s: float, reason: str) -> None:
        self.calls.append(("retry", endpoint_id, attempt, delay_s, reason))

    def on_retry_exhausted(self, endpoint_id: str, attempts: int, reason: str) -> None:
        self.calls.append(("exhausted", endpoint_id, attempts, reason))

    def on_circuit_state_change(
        self, endpoint_id: str, old: CircuitState, new: CircuitState
    ) -> None:
        self.calls.append(("circuit", endpoint_id, old, new))

    def of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class MapResolver:
    """Resolver mapping names to fixed addresses (tests only)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = dict(mapping)
        self.lookups: list[str] = []

    async def resolve(self, host: str) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.mapping:
            raise OSError(f"unknown host {host}")
        return [ipaddress.ip_address(self.mapping[host])]


class InFlightCounter:
    """Counts concurrent requests in a handler; `max` is the peak."""

    def __init__(self) -> None:
        self.current = 0
        self.max = 0
        self.total = 0

    async def around(self, delay: float) -> None:
        self.current += 1
        self.total += 1
        self.max = max(self.max, self.current)
        try:
            await asyncio.sleep(delay)
        finally:
            self.current -= 1


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
RawServe = Callable[[RawHandler], Awaitable[str]]


@pytest.fixture
async def raw_serve() -> AsyncIterator[RawServe]:
    """Start a raw TCP server on 127.0.0.1 (for misbehaving HTTP); returns its base URL.
    Handlers still running at teardown are cancelled and their connections closed."""
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[Any]] = set()

    async def start(handler: RawHandler) -> str:
        async def wrapped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
                handlers.discard(task)

        server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"

    yield start
    for server in servers:
        server.close()
    for task in list(handlers):
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    for server in servers:
        await server.wait_closed()
