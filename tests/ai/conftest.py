"""Shared helpers for the AI agent tests: a fake clock, a job context with secrets, a fake
OpenAI server and planners pointed at it through the real SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronicorn.ai import OpenAIPlanner, RulesPlanner
from cronicorn.ai.config import AIAgentConfig
from cronicorn.ai.transport import Backoff
from cronicorn.domain.models import (
    EndpointResult,
    EndpointSpec,
    EndpointStatus,
    JobContext,
    JobSnapshot,
    Message,
    MessageRole,
    MessageSource,
    PastResult,
)
from tests.fakes.clock import FakeClock
from tests.fakes.fake_openai import FakeOpenAI

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SECRET_HEADER = "hdr-secret-9f8e7d6c5b4a"
SECRET_BEARER = "bearer-secret-0a1b2c3d4e5f"
SECRET_DEFAULT = "default-secret-13579bdf"
SECRET_PASSWORD = "url-pass-2468ace"
SECRETS = (SECRET_HEADER, SECRET_BEARER, SECRET_DEFAULT, SECRET_PASSWORD)


def make_context(*, endpoints: int = 2, messages: int = 2, budget: int | None = None) -> JobContext:
    """A job whose endpoints carry every kind of secret; ids and times are fixed."""
    specs = [
        EndpointSpec(
            id="ep-orders",
            name="Orders API",
            url=f"https://svc:{SECRET_PASSWORD}@api.example.com/orders?status=open&key=abc",
            method="GET",
            description="Lists open orders; returns {backlog: int}",
            headers={"X-Api-Key": SECRET_HEADER},
            bearer_token=SECRET_BEARER,
            request_schema={
                "type": "object",
                "properties": {"limit": {"type": "integer", "minimum": 1}},
                "additionalProperties": False,
            },
            timeout_ms=5_000,
        ),
        EndpointSpec(
            id="ep-scale",
            name="Scale-up hook",
            url="https://hooks.example.com/scale#frag",
            method="POST",
            description="Adds a worker",
        ),
    ]
    specs += [
        EndpointSpec(id=f"ep-{i:02d}", name=f"Extra {i}", url=f"https://x.example.com/{i}")
        for i in range(len(specs), endpoints)
    ]
    job = JobSnapshot(
        id="job-1",
        tenant_id="tenant-1",
        name="Orders backlog",
        definition="Poll the orders API; when the backlog grows, check every 30 s and scale up.",
        interval_ms=300_000,
        min_interval_ms=10_000,
        max_interval_ms=3_600_000,
        last_run_at=NOW - timedelta(minutes=5),
        default_headers={"X-Tenant-Token": SECRET_DEFAULT},
        daily_token_budget=budget,
    )
    history = [
        Message(
            role=MessageRole.USER if i % 2 == 0 else MessageRole.ASSISTANT,
            content=f"message {i}",
            source=MessageSource.USER if i % 2 == 0 else MessageSource.SCHEDULER,
            created_at=NOW - timedelta(minutes=messages - i),
        )
        for i in range(messages)
    ]
    past = (
        PastResult(
            endpoint_id="ep-orders",
            status=EndpointStatus.SUCCESS,
            status_code=200,
            started_at=NOW - timedelta(minutes=5),
            duration_ms=42.0,
            response_excerpt='{"backlog": 12}',
            error=None,
        ),
    )
    return JobContext(job=job, endpoints=tuple(specs), messages=tuple(history), recent_results=past)


def fresh_results() -> list[EndpointResult]:
    return [
        EndpointResult(
            endpoint_id="ep-orders",
            status=EndpointStatus.SUCCESS,
            status_code=200,
            attempts=1,
            duration_ms=35.0,
            response_body={"backlog": 250, "echo": f"Bearer {SECRET_BEARER}"},
        ),
        EndpointResult(
            endpoint_id="ep-scale",
            status=EndpointStatus.FAILED,
            status_code=503,
            attempts=3,
            duration_ms=120.0,
            response_body="x" * 5000,
            error="HTTP 503",
        ),
    ]


def call(endpoint_id: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "endpoint_id": endpoint_id,
        "parameters": [],
        "headers": [],
        "priority": 0,
        "depends_on": [],
        "critical": False,
    }
    return base | overrides


def plan_json(*ids: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "endpoints_to_call": [call(i) for i in ids],
        "execution_strategy": "sequential",
        "concurrency_limit": None,
        "preliminary_next_run_at": None,
        "reasoning": "check the backlog",
        "confidence": 0.8,
    }
    return base | overrides


def schedule_json(next_run_at: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "next_run_at": next_run_at,
        "reasoning": "backlog is high",
        "confidence": 0.7,
        "recommended_actions": [],
    }
    return base | overrides


PlannerFactory = Callable[..., OpenAIPlanner]


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="sk-test") as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    """Starts at NOW; a sleep (a retry's backoff) moves it and returns at once."""
    return FakeClock(NOW, auto_advance=True)


@pytest.fixture
async def make_planner(fake: FakeOpenAI, clock: FakeClock) -> AsyncIterator[PlannerFactory]:
    """Planners on the real SDK against `fake`; config fields as keyword overrides."""
    created: list[OpenAIPlanner] = []

    def factory(**overrides: Any) -> OpenAIPlanner:
        config = AIAgentConfig.model_validate(
            {"api_key": "sk-test", "base_url": fake.base_url, "timeout_ms": 5_000} | overrides
        )
        planner = OpenAIPlanner(
            config, clock=clock, fallback=RulesPlanner(), backoff=Backoff(base_s=0.01)
        )
        created.append(planner)
        return planner

    yield factory
    for planner in created:
        await planner.close()
