"""End-to-end observability fixtures: the engine in-process on a real SQLite store, the real
HttpExecutor against a local aiohttp endpoint server (allowed via `allowed_hosts`), and the
fake OpenAI server for the AI series. Jobs are inserted with plain SQL, secrets encrypted
with the store's SecretBox (so they are decrypted, and registered, by the claim)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.engine.config import EngineConfig
from cronicorn.store.db import create_engine
from cronicorn.store.secrets import SecretBox
from tests.fakes import seed


@dataclass
class EndpointServer:
    """/ok → 200, /fail → 500, /echo → 200 with the request headers in the body (so a
    secret reaches stored results and the AI prompt, and only redaction keeps it out of
    the logs). Counts requests per (path, status) and keeps the headers received."""

    base_url: str = ""
    hits: Counter[tuple[str, int]] = field(default_factory=Counter)
    headers_seen: list[dict[str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def count(self, path: str) -> int:
        return sum(n for (p, _), n in self.hits.items() if p == path)


@pytest.fixture
async def server() -> AsyncIterator[EndpointServer]:
    state = EndpointServer()

    async def handle(request: web.Request) -> web.Response:
        status = 500 if request.path == "/fail" else 200
        state.hits[(request.path, status)] += 1
        headers = dict(request.headers)
        state.headers_seen.append(headers)
        if request.path == "/echo":
            return web.json_response({"you_sent": headers})
        return web.json_response({"ok": status == 200, "queue": 3}, status=status)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(SecretBox.generate_key())


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """SQLite only: for the heavier tests."""
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def any_db(database_url: str) -> AsyncIterator[AsyncEngine]:
    """SQLite and (when configured) PostgreSQL."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def config(**sections: Mapping[str, Any]) -> EngineConfig:
    """The executor may reach only the local server: private networks stay blocked, and
    127.0.0.1 is allowed by name. No backoff between retries; a long idle interval."""
    execution = {
        "allowed_hosts": ["127.0.0.1"],
        "max_endpoint_retries": 0,
        "retry_base_delay_ms": 0,
        "retry_max_delay_ms": 0,
        **sections.pop("execution", {}),
    }
    scheduler = {"processing_interval_ms": 60_000, **sections.pop("scheduler", {})}
    return EngineConfig.model_validate({"execution": execution, "scheduler": scheduler, **sections})


@dataclass(frozen=True)
class EndpointDef:
    path: str
    name: str = "orders"
    headers: Mapping[str, str] = field(default_factory=dict)
    bearer_token: str | None = None


async def add_jobs(
    db: AsyncEngine,
    box: SecretBox,
    server: EndpointServer,
    endpoints: list[EndpointDef],
    count: int = 1,
    **job_fields: Any,
) -> list[str]:
    """`count` jobs, due a second ago, each with its own copy of `endpoints` (fresh ids),
    in one transaction (fast even for hundreds)."""
    due = datetime.now(UTC) - timedelta(seconds=1)
    tenant_id = await seed.add_tenant(db)
    default_headers = box.encrypt_map(job_fields.pop("default_headers", {}))
    job_rows = [
        seed.job_row(
            tenant_id,
            name=f"job-{i}",
            definition="check the orders API",
            next_run_at=due,
            default_headers=default_headers,
            **job_fields,
        )
        for i in range(count)
    ]
    endpoint_rows = [
        seed.endpoint_row(
            box,
            row["id"],
            server.url(e.path),
            name=e.name,
            headers=e.headers,
            bearer_token=e.bearer_token,
        )
        for row in job_rows
        for e in endpoints
    ]
    return await seed.add_jobs(db, job_rows, endpoint_rows)


def series_count(registry: CollectorRegistry) -> int:
    """How many time series the registry exposes (every sample line of a scrape)."""
    return sum(len(metric.samples) for metric in registry.collect())
