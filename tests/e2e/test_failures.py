"""Failures around the engine: the AI is down, the API goes down mid-run (the finished run
is kept), every endpoint of a job fails."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta

import pytest

from tests.e2e._api import Json, parse_time, wait_until
from tests.e2e._endpoints import Behavior
from tests.e2e._processes import free_port
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

LEASE_MS = 3_000
BACKOFF_WINDOW_S = 13.0
"""With interval 1 s and x2 per failure, runs start at 0, 2, 6, 14 s: 3 in the window (a hot
loop at the interval would make about 13)."""


@pytest.mark.timeout(120)
async def test_ai_down_falls_back_to_rules_and_failing_job_backs_off(stack: Stack) -> None:
    closed = free_port()  # nothing listens there
    stack.start_engine(
        "w1",
        OPENAI_BASE_URL=f"http://127.0.0.1:{closed}/v1",
        CRONICORN_AI_MAX_RETRIES="0",
        CRONICORN_PROCESSING_INTERVAL_MS="500",
    )
    ok = await stack.paused_job("ok", interval_ms=60_000)
    stack.endpoints.behave("down", Behavior(status=500))
    down = await stack.paused_job("down", ["a", "b"], interval_ms=1_000, min_interval_ms=1_000)
    await stack.wait_workers("w1")
    await stack.api.resume(ok["id"])
    await stack.api.resume(down["id"])

    async def first_calls() -> bool:
        return bool(stack.endpoints.calls_of("down")) and bool(stack.endpoints.calls_of("ok"))

    await wait_until(first_calls, 30, "both jobs' first calls", 0.05)
    first = stack.endpoints.calls_of("down")[0].arrived
    await asyncio.sleep(max(0.0, first + BACKOFF_WINDOW_S - time.time()))
    runs_in_window = [c for c in stack.endpoints.calls_of("down", "a")]
    assert 2 <= len(runs_in_window) <= 4, f"{len(runs_in_window)} runs in {BACKOFF_WINDOW_S} s"

    ok_runs = await stack.api.runs(ok["id"])
    assert [r["status"] for r in ok_runs] == ["completed"]
    assert ok_runs[0]["plan_source"] == "rules"
    assert ok_runs[0]["schedule"]["source"] == "baseline_interval"
    assert len(stack.endpoints.calls_of("ok")) == 1
    assert stack.fake_ai.requests == [], "the configured AI server is the closed port"

    await check_backoff(stack, down["id"])


async def check_backoff(stack: Stack, job_id: str) -> None:
    """Each failed run pushes the next one further out: x2 per consecutive failure."""

    async def settled_runs() -> list[Json]:
        runs = await stack.api.runs(job_id)
        return [] if any(r["status"] == "running" for r in runs) else runs

    runs = list(reversed(await wait_until(settled_runs, 10, "the failing job's runs to end")))
    assert len(runs) >= 2
    assert all(r["status"] == "failed" and r["plan_source"] == "rules" for r in runs)
    gaps = []
    for run in runs:
        assert run["schedule"]["source"] == "backoff", run["schedule"]
        finished = parse_time(run["finished_at"])
        gaps.append(parse_time(run["schedule"]["next_run_at"]) - finished)
    for n, gap in enumerate(gaps, start=1):
        expected = timedelta(seconds=2**n)
        assert expected - timedelta(seconds=1) <= gap <= expected + timedelta(seconds=1), gaps
    job = await stack.api.job(job_id)
    assert job["consecutive_failures"] == len(runs)
    results = (await stack.api.run(runs[-1]["id"]))["results"]
    assert {r["error_category"] for r in results} == {"http_5xx"}


@pytest.mark.timeout(120)
async def test_api_down_longer_than_the_lease_keeps_the_finished_run(stack: Stack) -> None:
    """The API dies while a call is in flight and stays down past the lease. The run
    finishes meanwhile; the worker keeps its completion and delivers it once the API is
    back. Nobody else claimed the job, so its fencing token is still the newest and the late
    completion is accepted: one call, one completed run, no re-run (issue 12)."""
    engine = stack.start_engine(
        "w1",
        CRONICORN_STALE_LOCK_THRESHOLD_MS=str(LEASE_MS),
        CRONICORN_PROCESSING_INTERVAL_MS="1000",
    )
    stack.endpoints.behave("j", Behavior(delay_s=LEASE_MS / 1000, delayed_calls=1))
    job = await stack.paused_job("j")
    await stack.wait_workers("w1")
    await stack.api.resume(job["id"])

    async def in_flight() -> bool:
        return stack.endpoints.in_flight("j") == 1

    await wait_until(in_flight, 30, "the slow call", 0.05)
    await stack.stop_api()
    down_at = time.monotonic()
    # Down for longer than the lease, so it has expired when the completion gets through.
    await asyncio.sleep(LEASE_MS / 1000 + 0.5)
    await stack.start_api()  # same port and database
    print(f"API was down for {time.monotonic() - down_at:.1f} s")

    async def completed() -> list[Json]:
        runs = await stack.api.runs(job["id"])
        return runs if runs and runs[0]["status"] == "completed" else []

    runs = await wait_until(completed, 60, "the kept completion to be stored", 0.25)
    await asyncio.sleep(1.0)  # a re-run, if there were one, would start now
    assert len(stack.endpoints.calls_of("j")) == 1, "the finished run was not re-run"
    runs = await stack.api.runs(job["id"])
    assert [r["status"] for r in runs] == ["completed"]
    kept = await stack.api.run(str(runs[0]["id"]))
    assert [r["status"] for r in kept["results"]] == ["success"], "its result was kept"
    assert engine.running, "the engine survives an API outage"
    out = engine.output()
    assert "delivered after" in out
    retried = re.findall(r"/api/scheduler/[\w/-]+ failed after (\d+) attempts", out)
    assert retried, "the completion was retried while the API was down"
    assert "lease lost" not in out
    assert stack.endpoints.max_in_flight["j"] == 1
    await stack.assert_settled()
