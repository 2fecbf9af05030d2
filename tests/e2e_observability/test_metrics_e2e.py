"""`/metrics` of a real engine after an end-to-end run: the expected series with the right
counts (cross-checked against the endpoint server, the fake OpenAI server and the engine's
own stats), and a number of series that does not grow with the number of jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.ai import OpenAIPlanner, RulesPlanner
from cronicorn.ai.config import AIAgentConfig
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.stats import CycleResult
from cronicorn.executor import HttpExecutor
from cronicorn.observability import EngineMetrics
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.e2e_observability.conftest import (
    EndpointDef,
    EndpointServer,
    add_jobs,
    config,
    series_count,
)
from tests.engine.conftest import eventually
from tests.fakes.fake_openai import FakeOpenAI, Reply

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((f"cronicorn_{name}", frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == f"cronicorn_{name}" and want <= ls)


@pytest.fixture
async def fake_ai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(auto=True, next_run_s=600) as fake:
        yield fake


def build(
    cfg: EngineConfig, db: AsyncEngine, box: SecretBox, planner: object, metrics: EngineMetrics
) -> SchedulingEngine:
    """An engine that closes its backend, executor and planner on `stop()`."""
    backend, executor = LocalSchedulerBackend(db, box), HttpExecutor(cfg.execution)
    return SchedulingEngine(
        cfg,
        backend=backend,
        planner=planner,  # type: ignore[arg-type]
        executor=executor,
        metrics=metrics,
        worker_id="metrics-e2e",
        owned=[backend, executor, planner],
    )


async def test_scrape_after_an_end_to_end_run_has_the_right_counts(
    any_db: AsyncEngine, box: SecretBox, server: EndpointServer, fake_ai: FakeOpenAI
) -> None:
    ok, fail = EndpointDef("/ok"), EndpointDef("/fail", name="flaky")
    await add_jobs(any_db, box, server, [ok, EndpointDef("/ok", name="stock")])  # completed
    await add_jobs(any_db, box, server, [ok, fail])  # completed, one endpoint failed
    await add_jobs(any_db, box, server, [fail])  # failed
    await add_jobs(any_db, box, server, [ok], daily_token_budget=0)  # rules: budget fallback
    fake_ai.enqueue(Reply.text("this is not JSON"))  # the first plan request is repaired
    cfg = config(
        execution={
            "max_endpoint_retries": 1,
            "circuit_breaker": {"failure_threshold": 2},
        },
        metrics={"port": 0},
    )
    ai = AIAgentConfig(api_key=SecretStr("sk-e2e"), base_url=fake_ai.base_url, max_retries=0)
    metrics = EngineMetrics()
    engine = build(cfg, any_db, box, OpenAIPlanner(ai, fallback=RulesPlanner()), metrics)
    async with engine:
        await eventually(lambda: engine.get_state().stats.total_jobs_processed == 4, 15)
        assert engine.metrics_url is not None
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{engine.metrics_url}/metrics") as response,
        ):
            assert response.status == 200
            samples = parse(await response.text())
    stats = engine.get_state().stats

    assert value(samples, "jobs_processed_total", outcome="completed") == 3
    assert value(samples, "jobs_processed_total", outcome="failed") == 1
    assert value(samples, "jobs_processed_total", outcome="aborted") == 0
    # Endpoint results against what the server saw: 4 successes, 2 failed calls of 2 attempts.
    assert value(samples, "endpoint_calls_total", outcome="success", category="none") == 4
    assert server.count("/ok") == 4
    assert value(samples, "endpoint_calls_total", outcome="failed", category="http_5xx") == 2
    assert server.count("/fail") == 4
    assert value(samples, "endpoint_latency_seconds_count", outcome="success") == 4
    assert value(samples, "endpoint_latency_seconds_count", outcome="failed") == 2
    assert value(samples, "scheduling_lag_seconds_count") == 4
    assert value(samples, "scheduling_lag_seconds_sum") > 0  # due a second before the run
    assert value(samples, "cycle_duration_seconds_count") >= 1
    # Two failures within the window open both /fail endpoints' circuits.
    assert value(samples, "circuit_state", state="open") == 2
    # AI: 3 jobs x (plan + schedule) + 1 re-ask; the budget job never calls the model.
    assert value(samples, "ai_calls_total", phase="plan", outcome="invalid_output") == 1
    assert value(samples, "ai_calls_total", phase="plan", outcome="success") == 3
    assert value(samples, "ai_calls_total", phase="schedule", outcome="success") == 3
    assert total(samples, "ai_calls_total") == len(fake_ai.requests) == 7
    assert value(samples, "ai_latency_seconds_count", phase="plan") == 4
    assert value(samples, "ai_repairs_total", outcome="success") == 1
    assert total(samples, "ai_tokens_total", kind="input") == stats.input_tokens > 0
    assert total(samples, "ai_tokens_total", kind="output") == stats.output_tokens > 0
    assert value(samples, "planner_fallbacks_total", reason_class="budget_exceeded") == 2
    assert total(samples, "planner_fallbacks_total") == 2
    assert value(samples, "leases_lost_total") == 0
    assert value(samples, "jobs_in_flight") == 0


async def run_all(engine: SchedulingEngine, jobs: int) -> None:
    done = 0
    while done < jobs:
        result: CycleResult = await engine.process_cycle()
        assert result.failed_jobs == 0, result.errors
        assert result.jobs_processed > 0
        done += result.jobs_processed


async def processed_series(
    db: AsyncEngine, box: SecretBox, server: EndpointServer, jobs: int, per_job_labels: bool
) -> int:
    """Series in the registry after running `jobs` fresh jobs (each with its own ids)."""
    await add_jobs(db, box, server, [EndpointDef("/ok"), EndpointDef("/ok", name="b")], jobs)
    cfg = config(scheduler={"job_concurrency": 100, "max_batch_size": 250})
    metrics = EngineMetrics(per_job_labels=per_job_labels)
    engine = build(cfg, db, box, RulesPlanner(), metrics)
    try:
        await run_all(engine, jobs)
    finally:
        await engine.stop()
    assert metrics.jobs_processed.labels(outcome="completed")._value.get() == jobs
    return series_count(metrics.registry)


async def test_label_cardinality_is_the_same_for_1_and_500_jobs(
    db: AsyncEngine, box: SecretBox, server: EndpointServer
) -> None:
    one = await processed_series(db, box, server, 1, per_job_labels=False)
    many = await processed_series(db, box, server, 500, per_job_labels=False)
    assert server.count("/ok") == 2 * 501
    assert one == many


async def test_per_job_labels_opt_in_does_grow_with_jobs(
    db: AsyncEngine, box: SecretBox, server: EndpointServer
) -> None:
    """The counting above can fail: with job ids in labels, more jobs mean more series."""
    one = await processed_series(db, box, server, 1, per_job_labels=True)
    three = await processed_series(db, box, server, 3, per_job_labels=True)
    assert three > one
