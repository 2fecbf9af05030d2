"""MCP test fixtures: the real API server (uvicorn, with an in-process engine) on 127.0.0.1,
keys for two tenants, an endpoint server, and MCP clients from the SDK over stdio (a
`cronicorn mcp` subprocess) and over streamable HTTP (`/mcp`)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from cronicorn.cli.allinone import AllInOne
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.factory import API_KEY_ENV, API_URL_ENV
from cronicorn.service import Services
from cronicorn.settings import Settings
from cronicorn.store.db import create_engine, session_factory
from cronicorn.store.secrets import SecretBox
from tests.cli.conftest import Endpoints, endpoints

__all__ = ["Endpoints", "endpoints"]  # the local endpoint server fixture, shared with the CLI tests

Connect = Callable[..., AbstractAsyncContextManager[Client]]


@dataclass
class LiveApi:
    url: str
    keys: dict[str, str]


@pytest.fixture
async def live_api(tmp_path: Path) -> AsyncIterator[LiveApi]:
    """`cronicorn run` in this event loop on a fresh SQLite file, with keys: alice and bob
    (user keys of two tenants), ops (an engine key)."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'mcp.db'}", secret_key=SecretBox.generate_key()
    )
    config = EngineConfig.model_validate(
        {
            "execution": {"allowed_hosts": ["127.0.0.1"], "max_endpoint_retries": 0},
            "scheduler": {"heartbeat_interval_ms": 200},
        }
    )
    async with AllInOne(settings, config, port=0) as aio:
        db = create_engine(settings.database_url)
        services = Services.build(session_factory(db), settings.secret_box())
        keys = {
            "alice": (await services.keys.create("alice", "user")).key,
            "bob": (await services.keys.create("bob", "user")).key,
            "ops": (await services.keys.create("ops", "engine")).key,
        }
        await db.dispose()
        yield LiveApi(aio.api_url, keys)


@asynccontextmanager
async def stdio_client_for(api_url: str, key: str, mode: str = "auto") -> AsyncIterator[Client]:
    """`cronicorn mcp` as a subprocess, the way an MCP client configuration starts it."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cronicorn.cli.main", "mcp"],
        env={API_URL_ENV: api_url, API_KEY_ENV: key},
    )
    async with Client(params, cache=None, mode=mode) as client:
        yield client


@asynccontextmanager
async def http_client_for(api_url: str, key: str, mode: str = "auto") -> AsyncIterator[Client]:
    """The API server's `/mcp`, with the key as a bearer header."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=30.0) as http:
        transport = streamable_http_client(f"{api_url}/mcp", http_client=http)
        async with Client(transport, cache=None, mode=mode) as client:
            yield client


@pytest.fixture(params=["stdio", "http"])
def connect(request: pytest.FixtureRequest, live_api: LiveApi) -> Connect:
    """`async with connect("alice") as client:` over the parametrised transport; the SDK
    client's default `mode="auto"` negotiates the newest protocol, `mode="legacy"` the
    initialize handshake most MCP clients still use."""
    factory = stdio_client_for if request.param == "stdio" else http_client_for

    def open_client(who: str, mode: str = "auto") -> AbstractAsyncContextManager[Client]:
        return factory(live_api.url, live_api.keys[who], mode)

    return open_client


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def call_ok(client: Client, name: str, arguments: dict[str, Any] | None = None) -> Any:
    """Call a tool that must succeed; its JSON answer."""
    result = await client.call_tool(name, arguments or {})
    assert not result.is_error, text_of(result)
    return json.loads(text_of(result))


async def call_error(client: Client, name: str, arguments: dict[str, Any]) -> str:
    """Call a tool that must fail; its error message."""
    result = await client.call_tool(name, arguments)
    assert result.is_error, text_of(result)
    return text_of(result)
