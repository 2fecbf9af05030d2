"""`kill -9` an engine while its jobs are mid-run: after the (short) lease expires the other
engine re-runs them; nothing stays locked and no job ever runs twice at the same time."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from tests.e2e._api import gather_limited, parse_time, wait_until
from tests.e2e._endpoints import Behavior
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]

JOBS = 8
LEASE_MS = 3_000
SLOW_S = 5.0
"""Longer than the lease: the lease must be renewed while the call is in flight, or the
other engine would take the job over and run it a second time concurrently."""
ENGINE_ENV = {
    "CRONICORN_STALE_LOCK_THRESHOLD_MS": str(LEASE_MS),
    "CRONICORN_PROCESSING_INTERVAL_MS": "1000",
    "CRONICORN_JOB_CONCURRENCY": str(JOBS // 2),
    # An idle engine's first claim takes up to max_batch_size jobs (the extra ones wait for a
    # slot); at the concurrency, the two engines share the jobs as soon as they are due.
    "CRONICORN_MAX_BATCH_SIZE": str(JOBS // 2),
    "CRONICORN_MAX_CONCURRENCY": str(JOBS),
}


async def test_killed_engine_jobs_are_rerun_by_the_other_after_lease_expiry(
    stack: Stack,
) -> None:
    engines = {w: stack.start_engine(w, **ENGINE_ENV) for w in ("w1", "w2")}
    tags = [f"c{i}" for i in range(JOBS)]
    for tag in tags:  # only the first call is slow: the re-run is quick
        stack.endpoints.behave(tag, Behavior(delay_s=SLOW_S, delayed_calls=1))
    jobs = {tag: await stack.paused_job(tag) for tag in tags}
    await stack.wait_workers("w1", "w2")
    await gather_limited(stack.api.resume(job["id"]) for job in jobs.values())

    async def all_in_flight() -> bool:
        return stack.endpoints.in_flight() == JOBS

    await wait_until(all_in_flight, 30, "every job's slow call to be in flight", 0.05)
    owner = {tag: await running_worker(stack, jobs[tag]["id"]) for tag in tags}
    victims = [tag for tag in tags if owner[tag] == "w1"]
    assert 0 < len(victims) < JOBS, f"both engines must hold jobs: {owner}"

    killed_at = time.time()
    engines["w1"].signal(signal.SIGKILL)
    assert await engines["w1"].wait(5) == -signal.SIGKILL

    async def all_done() -> bool:
        listed = await stack.api.jobs()
        return all(j["last_run_at"] is not None and not j["locked"] for j in listed)

    await wait_until(all_done, 60, "every job to complete a run", 0.25)
    await asyncio.sleep(0.5)

    for tag in tags:
        runs = await stack.api.runs(jobs[tag]["id"])  # newest first
        calls = stack.endpoints.calls_of(tag)
        assert runs[0]["status"] == "completed", (tag, runs[0])
        assert runs[0]["worker_id"] == "w2", f"{tag}: only w2 is alive"
        if tag in victims:
            assert [r["status"] for r in runs] == ["completed", "aborted"], tag
            assert runs[1]["worker_id"] == "w1"
            assert runs[1]["error"], f"{tag}: the aborted run says why"
            assert (await stack.api.run(runs[1]["id"]))["results"] == []
            assert parse_time(runs[0]["started_at"]).timestamp() > killed_at
            assert len(calls) == 2, tag
            assert calls[0].disconnected, f"{tag}: the killed engine's call broke off"
            assert calls[0].idempotency_key is not None, tag
            assert calls[0].idempotency_key == calls[1].idempotency_key, "a re-run repeats the key"
        else:
            assert len(runs) == 1, tag
            assert len(calls) == 1, tag
            assert not calls[0].disconnected, tag
    assert max(stack.endpoints.max_in_flight.values()) == 1, stack.endpoints.max_in_flight
    await stack.assert_settled()
    assert engines["w2"].running


async def running_worker(stack: Stack, job_id: str) -> str:
    runs = await stack.api.runs(job_id)
    assert runs, job_id
    assert runs[0]["status"] == "running", runs
    return str(runs[0]["worker_id"])
