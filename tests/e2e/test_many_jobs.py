"""`cronicorn serve` on PostgreSQL + two `cronicorn-engine start` processes + the fake OpenAI
server: 200 jobs become due at once and each runs exactly once, fully recorded, and its next
run follows the AI's proposal clamped into the job's window."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from tests.e2e._api import Json, gather_limited, parse_time, wait_until
from tests.e2e.conftest import AI_NEXT_RUN_S, Stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(180)]

JOBS = 200
CLAMP_MIN_MS = 120_000
"""Above the AI's +60 s: those jobs' next run is pinned to the minimum."""
CLAMP_MAX_MS = 30_000
"""Below the AI's +60 s: those jobs' next run is pinned to the maximum."""
SLACK = timedelta(seconds=1)


def kind_of(i: int) -> str:
    return {3: "clamped_min", 7: "clamped_max"}.get(i % 10, "ai")


def fields_of(i: int) -> dict[str, Any]:
    kind = kind_of(i)
    if kind == "clamped_min":
        return {"min_interval_ms": CLAMP_MIN_MS}
    if kind == "clamped_max":
        return {"max_interval_ms": CLAMP_MAX_MS}
    return {}


def endpoint_names(i: int) -> list[str]:
    return ["a", "b"] if i % 2 == 0 else ["a"]


async def create_paused_job(stack: Stack, i: int) -> Json:
    return await stack.paused_job(f"j{i}", endpoint_names(i), **fields_of(i))


async def test_two_engines_run_every_due_job_exactly_once(stack: Stack) -> None:
    stack.start_engine("w1")
    stack.start_engine("w2")
    jobs = await gather_limited(create_paused_job(stack, i) for i in range(JOBS))
    await stack.wait_workers("w1", "w2")
    await gather_limited(stack.api.resume(job["id"]) for job in jobs)

    async def all_ran() -> bool:
        listed = await stack.api.jobs()
        return sum(j["last_run_at"] is not None and not j["locked"] for j in listed) == JOBS

    await wait_until(all_ran, 120, f"{JOBS} jobs to run", interval_s=0.5)
    await asyncio.sleep(1.5)  # anything that would run twice has time to show up

    expected_calls = {(f"j{i}", name): 1 for i in range(JOBS) for name in endpoint_names(i)}
    assert dict(stack.endpoints.per_endpoint()) == expected_calls
    assert len(stack.fake_ai.requests) == 2 * JOBS, "one plan and one schedule call per run"

    checked = await gather_limited(check_job(stack, i, job["id"]) for i, job in enumerate(jobs))
    workers = {worker for worker, _ in checked}
    assert workers == {"w1", "w2"}, "both engines took part"
    sources = {source for _, source in checked}
    assert sources == {"ai", "clamped_min", "clamped_max"}


async def check_job(stack: Stack, i: int, job_id: str) -> tuple[str, str]:
    """Everything one run leaves behind; returns (worker, schedule source)."""
    job = await stack.api.job(job_id)
    runs = await stack.api.runs(job_id)
    assert len(runs) == 1, f"j{i}: {len(runs)} runs"
    run = await stack.api.run(runs[0]["id"])
    assert run["status"] == "completed", run
    assert run["plan_source"] == "ai"
    endpoint_ids = {e["id"] for e in await stack.api.call("GET", f"/api/jobs/{job_id}/endpoints")}
    assert {r["endpoint_id"] for r in run["results"]} == endpoint_ids
    assert all(r["status"] == "success" and r["status_code"] == 200 for r in run["results"])
    assert run["success_count"] == len(endpoint_names(i))
    messages = await stack.api.messages(job_id)
    assert any(m["source"] == "engine" for m in messages), f"j{i}: no run summary"

    tokens = run["tokens"]
    assert tokens["input"] > 0
    assert tokens["output"] > 0
    assert (job["input_tokens"], job["output_tokens"]) == (tokens["input"], tokens["output"])
    assert job["total_tokens"] == tokens["input"] + tokens["output"]

    assert not job["locked"]
    assert job["consecutive_failures"] == 0
    check_schedule(i, job, run)
    assert run["ai_calls"] == 2, f"j{i}: one plan and one schedule request, counted per run"
    return str(run["worker_id"]), str(run["schedule"]["source"])


def check_schedule(i: int, job: Json, run: Json) -> None:
    """The AI proposed prompt time + 60 s; the governor clamped it into [min, max]."""
    schedule = run["schedule"]
    kind = kind_of(i)
    assert schedule["source"] == kind, f"j{i}: {schedule}"
    assert job["last_schedule"]["source"] == kind
    next_at = parse_time(schedule["next_run_at"])
    assert parse_time(job["next_run_at"]) == next_at
    started, finished = parse_time(run["started_at"]), parse_time(run["finished_at"])
    proposed = parse_time(schedule["proposed_next_run_at"])
    ai_delay = timedelta(seconds=AI_NEXT_RUN_S)
    assert started + ai_delay - SLACK <= proposed <= finished + ai_delay + SLACK
    delay = {
        "ai": ai_delay,
        "clamped_min": timedelta(milliseconds=CLAMP_MIN_MS),
        "clamped_max": timedelta(milliseconds=CLAMP_MAX_MS),
    }[kind]
    assert started + delay - SLACK <= next_at <= finished + delay + SLACK, (
        f"j{i}: next {next_at} not ~{delay} after the run ({started}..{finished})"
    )
    if kind == "ai":
        assert next_at == proposed
