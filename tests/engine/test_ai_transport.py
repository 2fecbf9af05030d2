"""The AI planner's transport as the engine sees it: the SDK runs on aiohttp (see
`cronicorn.ai.openai_planner._make_client`), whose exception mapping reports any dropped
connection as a connect *timeout*; the transport must still call it a connection error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cronicorn.ai import OpenAIPlanner, RulesPlanner
from cronicorn.ai.config import AIAgentConfig
from cronicorn.domain.models import PlanSource
from tests.ai.conftest import make_context


@pytest.fixture
async def hang_up_url() -> AsyncIterator[str]:
    """A server on 127.0.0.1 that reads the request head and closes without answering."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_dropped_connection_is_a_connection_error_not_a_timeout(
    hang_up_url: str,
) -> None:
    config = AIAgentConfig.model_validate(
        {"api_key": "sk-x", "base_url": hang_up_url, "max_retries": 0, "timeout_ms": 5_000}
    )
    planner = OpenAIPlanner(config, fallback=RulesPlanner())
    try:
        decision = await planner.plan(make_context())
    finally:
        await planner.close()
    assert decision.source is PlanSource.RULES
    assert decision.fallback_reason is not None
    assert decision.fallback_reason.startswith("transport: connection"), decision.fallback_reason
    assert planner.stats.transport_errors == 1
