"""A `request_schema` with a remote `$ref`, already stored in the database (written before the
API refused such schemas, or straight into the table), is used by the planner path without
any network access: the claimed context carries it, the OpenAI planner validates the model's
plan against it, and the canary the `$ref` points at never sees a connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.ai import OpenAIPlanner, RulesPlanner
from cronicorn.ai.config import AIAgentConfig
from cronicorn.ai.transport import Backoff
from cronicorn.domain.models import PlanSource
from cronicorn.domain.plan_validation import validate_plan
from cronicorn.store.secrets import SecretBox
from tests.ai.conftest import call, plan_json
from tests.engine.conftest import BackendFactory
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.fakes.seed import add_endpoint, add_job, add_tenant


@pytest.fixture
async def canary() -> AsyncIterator[tuple[int, list[int]]]:
    """A listener on 127.0.0.1 that counts connections (and closes them at once)."""
    accepted: list[int] = []

    async def on_connect(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted
    server.close()
    await server.wait_closed()


REMOTE_SCHEMAS = [
    "{url}/doc#/nope",
    "{url}/doc",
]


@pytest.mark.parametrize("ref", REMOTE_SCHEMAS)
async def test_stored_remote_ref_is_never_fetched_by_the_planner(
    db: AsyncEngine,
    box: SecretBox,
    make_backend: BackendFactory,
    canary: tuple[int, list[int]],
    ref: str,
) -> None:
    port, accepted = canary
    url = f"http://127.0.0.1:{port}"
    schema = {
        "type": "object",
        "properties": {"limit": {"$ref": ref.format(url=url)}},
        "$defs": {"x": {"$ref": ref.format(url=url)}},
    }
    tenant = await add_tenant(db)
    now = datetime.now(UTC)
    job_id = await add_job(db, tenant, next_run_at=now - timedelta(seconds=1))
    endpoint_id = await add_endpoint(
        db, box, job_id, "https://api.example.com/orders", request_schema=schema
    )
    [claimed] = await make_backend().claim("w1", 10, 60_000)
    [spec] = claimed.context.endpoints
    assert spec.request_schema == schema

    async with FakeOpenAI(api_key="sk-test") as fake:
        planned = plan_json(
            endpoints_to_call=[call(endpoint_id, parameters=[{"name": "limit", "value_json": "5"}])]
        )
        fake.enqueue(Reply.json(planned))
        config = AIAgentConfig.model_validate(
            {"api_key": "sk-test", "base_url": fake.base_url, "timeout_ms": 5_000}
        )
        planner = OpenAIPlanner(config, fallback=RulesPlanner(), backoff=Backoff(base_s=0.01))
        try:
            decision = await planner.plan(claimed.context)
        finally:
            await planner.close()

    assert decision.source is PlanSource.AI, decision.fallback_reason
    assert [c.endpoint_id for c in decision.plan.calls] == [endpoint_id]
    assert validate_plan(decision.plan, claimed.context.endpoints, now) == []
    assert accepted == []  # the $ref target was never contacted
