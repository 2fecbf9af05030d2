"""SIGTERM during a slow endpoint call, and how late an idle engine starts a job."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e._api import parse_time, wait_until
from tests.e2e._endpoints import Behavior
from tests.e2e._processes import Proc
from tests.e2e.conftest import Stack

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

GRACE_ENV = "CRONICORN_SHUTDOWN_GRACE_MS"
SHORT_GRACE_MS = 2_000


def shutdown_grace_ms() -> tuple[int, dict[str, str]]:
    """The grace period in effect and the env that sets it."""
    return SHORT_GRACE_MS, {GRACE_ENV: str(SHORT_GRACE_MS)}


@pytest.mark.timeout(150)
async def test_idle_engine_starts_on_time_then_stops_within_grace_on_sigterm(
    stack: Stack,
) -> None:
    """One engine (processing interval 60 s) for both checks: process start-up is the
    expensive part of these tests."""
    grace_ms, grace_env = shutdown_grace_ms()
    engine = stack.start_engine("w1", CRONICORN_PROCESSING_INTERVAL_MS="60000", **grace_env)
    await stack.wait_workers("w1")
    await check_on_time_start(stack)
    await check_sigterm_mid_call(stack, engine, grace_ms / 1000)


async def check_on_time_start(stack: Stack) -> None:
    """A job created 2 s ahead starts (first request at its endpoint) < 1 s after due."""
    due = datetime.now(UTC) + timedelta(seconds=2)
    job = await stack.api.create_job("lag", next_run_at=due)
    await stack.api.add_endpoint(job["id"], "a", stack.endpoints.url("lag"))
    due_at = parse_time(job["next_run_at"]).timestamp()

    async def called() -> bool:
        return bool(stack.endpoints.calls_of("lag"))

    await wait_until(called, 30, "the job's first call", 0.02)
    lag = stack.endpoints.calls_of("lag")[0].arrived - due_at
    print(f"scheduling lag (due -> first endpoint request): {lag * 1000:.0f} ms")
    assert -0.05 < lag < 1.0


async def check_sigterm_mid_call(stack: Stack, engine: Proc, grace_s: float) -> None:
    """SIGTERM while a slow call is in flight: exit 0 within the grace period, the call
    aborted and recorded as such, the lease released, the failure count untouched."""
    stack.endpoints.behave("slow", Behavior(delay_s=grace_s + 60))
    job = await stack.paused_job("slow", ["a", "b"], endpoint={"timeout_ms": 300_000})
    await stack.api.resume(job["id"])

    async def in_flight() -> bool:
        return stack.endpoints.in_flight("slow") == 1

    await wait_until(in_flight, 30, "the slow call", 0.05)
    started = time.monotonic()
    engine.signal(signal.SIGTERM)
    code = await engine.wait(grace_s + 20)
    elapsed = time.monotonic() - started
    print(f"engine exited {elapsed:.2f} s after SIGTERM (grace {grace_s:g} s)")
    assert code == 0, engine.output()
    assert elapsed < grace_s + 5, f"took {elapsed:.1f} s with a {grace_s:g} s grace"

    calls = stack.endpoints.calls_of("slow")
    assert [c.endpoint for c in calls] == ["a"], "sequential: b never started"
    assert calls[0].disconnected, "the call was aborted, not waited for"
    runs = await stack.api.runs(job["id"])
    assert [r["status"] for r in runs] == ["aborted"]
    run = await stack.api.run(runs[0]["id"])
    statuses = {r["status"] for r in run["results"]}
    assert "aborted" in statuses, run["results"]
    assert statuses <= {"aborted", "skipped"}, run["results"]
    aborted = [r for r in run["results"] if r["status"] == "aborted"]
    assert all(r["error_category"] == "aborted" for r in aborted)
    final = await stack.api.job(job["id"])
    assert not final["locked"]
    assert final["lease_expires_at"] is None
    assert final["consecutive_failures"] == 0, "a shutdown is not the job's failure"
    await stack.assert_settled()
