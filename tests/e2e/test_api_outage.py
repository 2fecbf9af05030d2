"""The API goes away while runs finish (issue 12): `cronicorn serve` is `kill -9`ed with
every job's endpoint call in flight and comes back 10 s later on the same port. The worker
keeps each finished run's completion and delivers it once the API answers: no run is
executed twice, no result is lost. And a restarted `cronicorn serve` on a current schema
answers at once (the migration check is one query)."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest

from tests.e2e._api import gather_limited, wait_until
from tests.e2e._endpoints import Behavior
from tests.e2e._processes import BIN, free_port
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(180)]

JOBS = 4
CALL_S = 2.0
OUTAGE_S = 10.0
ENGINE_ENV = {
    # Longer than the outage plus a slow restart on a loaded CI machine: this test is about
    # the completion being kept, not about the lease (tests/engine/test_outages.py checks
    # a completion arriving after the lease ran out).
    "CRONICORN_STALE_LOCK_THRESHOLD_MS": "90000",
    "CRONICORN_PROCESSING_INTERVAL_MS": "1000",
    "CRONICORN_JOB_CONCURRENCY": str(JOBS),
    "CRONICORN_MAX_CONCURRENCY": str(JOBS),
}


async def test_api_down_for_10_s_during_completions_loses_nothing_reruns_nothing(
    stack: Stack,
) -> None:
    engine = stack.start_engine("w1", **ENGINE_ENV)
    tags = [f"o{i}" for i in range(JOBS)]
    for tag in tags:
        stack.endpoints.behave(tag, Behavior(delay_s=CALL_S))
    jobs = {tag: await stack.paused_job(tag) for tag in tags}
    await stack.wait_workers("w1")
    await gather_limited(stack.api.resume(job["id"]) for job in jobs.values())

    async def all_in_flight() -> bool:
        return stack.endpoints.in_flight() == JOBS

    await wait_until(all_in_flight, 30, "every job's call to be in flight", 0.05)
    await stack.stop_api(signal.SIGKILL)
    down_at = time.monotonic()

    async def calls_ended() -> bool:
        return stack.endpoints.in_flight() == 0

    await wait_until(calls_ended, 15, "the calls to end while the API is down", 0.05)
    await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
    await stack.start_api()

    async def all_done() -> bool:
        listed = await stack.api.jobs()
        return all(j["last_run_at"] is not None and not j["locked"] for j in listed)

    await wait_until(all_done, 60, "every job's completion to be delivered", 0.25)

    for tag in tags:
        job_id = jobs[tag]["id"]
        calls = stack.endpoints.calls_of(tag)
        assert len(calls) == 1, f"{tag}: the run was executed again"
        assert not calls[0].disconnected
        runs = await stack.api.runs(job_id)
        assert [r["status"] for r in runs] == ["completed"], (tag, runs)
        detail = await stack.api.run(runs[0]["id"])
        assert [r["status_code"] for r in detail["results"]] == [200], tag
    out = engine.output()
    assert "delivered after" in out, "the completions were retried through the outage"
    assert "lease lost" not in out
    await stack.assert_settled()
    assert engine.running


async def test_serve_on_a_current_schema_answers_health_at_once(stack: Stack) -> None:
    """A second `cronicorn serve` on the (current) database: it says the schema is
    current (no migration) and answers /health right after — not seconds later."""
    port = free_port()
    argv = [str(BIN / "cronicorn"), "serve", "--port", str(port), "--log-level", "warning"]
    proc = stack.processes.spawn("serve-2", argv, stack._db_env(), stack.tmp)

    async def schema_checked() -> bool:
        assert proc.running, proc.output()
        return "database schema" in proc.output()

    await wait_until(schema_checked, 90, "the schema check", 0.02)
    checked_at = time.monotonic()
    assert "database schema current" in proc.output()

    async def healthy() -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"http://127.0.0.1:{port}/health", timeout=aiohttp.ClientTimeout(1)
                ) as resp,
            ):
                return resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    await wait_until(healthy, 30, "GET /health", 0.02)
    assert time.monotonic() - checked_at < 5.0, "serve took seconds after the schema check"
    assert "Running upgrade" not in proc.output()
