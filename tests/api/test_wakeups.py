"""A user action that makes a job due wakes an engine's waiting claim at once.

The service layer's `notify_jobs_changed` is the only wake-up mechanism: the backend here
polls only once a minute, so a claim that returns within seconds was woken, not polled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from cronicorn.store.local_backend import LocalSchedulerBackend
from tests.api.conftest import JOB, Api

LONG_POLL_MS = 20_000
EARLY_S = 5.0  # far below both the long-poll deadline and the one-minute poll interval

Action = Callable[[Api, str], Awaitable[str]]


async def _create_due_job(api: Api, _job_id: str) -> str:
    r = await api.call("POST", "/api/jobs", json=JOB)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _run_now(api: Api, job_id: str) -> str:
    r = await api.call("POST", f"/api/jobs/{job_id}/run-now")
    assert r.status_code == 200, r.text
    return job_id


async def _patch_next_run_at(api: Api, job_id: str) -> str:
    now = datetime.now(UTC).isoformat()
    r = await api.call("PATCH", f"/api/jobs/{job_id}", json={"next_run_at": now})
    assert r.status_code == 200, r.text
    return job_id


async def _pause_then_resume_overdue(api: Api, job_id: str) -> str:
    """Paused while it became due; resuming makes it claimable."""
    await api.call("POST", f"/api/jobs/{job_id}/pause")
    await _patch_next_run_at(api, job_id)
    r = await api.call("POST", f"/api/jobs/{job_id}/resume")
    assert r.status_code == 200, r.text
    return job_id


@pytest.fixture
async def backend(api: Api) -> AsyncIterator[LocalSchedulerBackend]:
    box = api.app.state.settings.secret_box()
    backend = LocalSchedulerBackend(api.app.state.db, box, poll_interval_ms=60_000)
    yield backend
    await backend.close()


@pytest.mark.parametrize(
    "action", [_create_due_job, _run_now, _patch_next_run_at, _pause_then_resume_overdue]
)
async def test_user_action_wakes_a_waiting_claim(
    api: Api, backend: LocalSchedulerBackend, action: Action
) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    future = await api.call("POST", "/api/jobs", json={**JOB, "next_run_at": later})
    waiting = asyncio.create_task(backend.claim("w", 5, 60_000, wait_ms=LONG_POLL_MS))
    await asyncio.sleep(0.2)
    assert not waiting.done()

    due_id = await action(api, future.json()["id"])

    claimed = await asyncio.wait_for(waiting, timeout=EARLY_S)
    assert [c.lease.job_id for c in claimed] == [due_id]
