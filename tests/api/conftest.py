"""API test fixtures: the real app on a fresh database (SQLite and PostgreSQL), driven
in-process through httpx's ASGI transport, with keys for two tenants, an engine and an admin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI

from cronicorn.api import create_app
from cronicorn.service import Services
from cronicorn.settings import Settings
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Base

SECRET_KEY = SecretBox.generate_key()


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    async def call(
        self, method: str, path: str, who: str | None = "alice", **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers.update(self.auth(who))
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, for "the database is unchanged" assertions (request
        counters excepted: every authenticated request counts against its key's budget)."""
        out: dict[str, list[tuple[Any, ...]]] = {}
        async with self.app.state.db.connect() as conn:
            for table in Base.metadata.sorted_tables:
                if table.name == "rate_limits":
                    continue
                rows = (await conn.execute(sa.select(table))).all()
                out[table.name] = sorted(tuple(map(repr, row)) for row in rows)
        return out

    async def scalar(self, stmt: Any) -> Any:
        async with self.app.state.db.connect() as conn:
            return await conn.scalar(stmt)


def settings_for(database_url: str, **kwargs: Any) -> Settings:
    return Settings(database_url=database_url, secret_key=SECRET_KEY, **kwargs)


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """The app on SQLite and on PostgreSQL."""
    async with make_api(database_url) as client:
        yield client


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[Api]:
    """SQLite only: for rules that are checked before the database is touched."""
    async with make_api(sqlite_url) as client:
        yield client


@asynccontextmanager
async def make_api(database_url: str, **settings: Any) -> AsyncIterator[Api]:
    app = create_app(settings_for(database_url, **settings))
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        keys = {
            "alice": (await services.keys.create("alice", "user")).key,
            "alice2": (await services.keys.create("alice", "user")).key,
            "bob": (await services.keys.create("bob", "user")).key,
            "engine": (await services.keys.create("ops", "engine")).key,
            "admin": (await services.keys.create("ops", "admin")).key,
        }
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(app, client, keys)


JOB = {"name": "orders", "definition": "poll the orders API"}
ENDPOINT = {"name": "orders", "url": "https://api.example.com/orders"}


@dataclass
class LiveServer:
    """The real app served by uvicorn on 127.0.0.1 (port chosen by the OS)."""

    url: str
    app: FastAPI
    keys: dict[str, str]


@asynccontextmanager
async def live_server(database_url: str, **settings: Any) -> AsyncIterator[LiveServer]:
    app = create_app(settings_for(database_url, **settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        services: Services = app.state.services
        keys = {
            "alice": (await services.keys.create("alice", "user")).key,
            "engine": (await services.keys.create("ops", "engine")).key,
            "admin": (await services.keys.create("ops", "admin")).key,
        }
        yield LiveServer(f"http://127.0.0.1:{port}", app, keys)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
