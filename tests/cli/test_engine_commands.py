"""`cronicorn engine process|unlock-jobs|status` against SQLite and a local endpoint server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cronicorn.domain.models import Heartbeat
from cronicorn.settings import Settings
from cronicorn.store.local_backend import LocalSchedulerBackend
from tests.cli.conftest import Endpoints, Invoke
from tests.fakes.clock import FakeClock, until_past


async def _job(invoke: Invoke, name: str, url: str) -> str:
    created = await invoke("jobs", "create", "--name", name, "--definition", "call it", "--json")
    job_id = str(json.loads(created.stdout)["id"])
    added = await invoke("endpoints", "add", job_id, "--name", "ep", "--url", url)
    assert added.exit_code == 0, added.output
    return job_id


def _backend(**kwargs: object) -> LocalSchedulerBackend:
    settings = Settings.from_env()
    return LocalSchedulerBackend(settings.database_url, settings.secret_box(), **kwargs)  # type: ignore[arg-type]


async def test_process_exit_1_when_a_job_fails(invoke: Invoke, endpoints: Endpoints) -> None:
    await _job(invoke, "good", endpoints.url("/ok"))
    await _job(invoke, "bad", endpoints.url("/fail"))
    result = await invoke("engine", "process")
    assert result.exit_code == 1, result.output
    assert endpoints.calls == {"/ok": 1, "/fail": 1}
    assert "jobs processed" in result.stdout
    assert "2" in result.stdout
    # Both jobs ran and got a later next run: nothing is due now.
    again = await invoke("engine", "process")
    assert again.exit_code == 0
    assert "No jobs due." in again.stdout
    assert endpoints.calls == {"/ok": 1, "/fail": 1}


async def test_process_exit_0_when_every_job_succeeds(invoke: Invoke, endpoints: Endpoints) -> None:
    await _job(invoke, "good", endpoints.url("/ok"))
    result = await invoke("engine", "process")
    assert result.exit_code == 0, result.output
    assert endpoints.calls["/ok"] == 1


async def test_process_blocks_private_hosts_unless_allowed(
    invoke: Invoke, endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRONICORN_ALLOWED_HOSTS")
    await _job(invoke, "good", endpoints.url("/ok"))
    result = await invoke("engine", "process")
    assert result.exit_code == 1
    assert endpoints.calls["/ok"] == 0


async def test_unlock_jobs_releases_stale_and_named_locks(
    invoke: Invoke, endpoints: Endpoints
) -> None:
    live_id = await _job(invoke, "live-one", endpoints.url("/ok"))
    stale_id = await _job(invoke, "stale-one", endpoints.url("/ok"))
    backend = _backend()
    try:  # oldest due first: a live worker's long lease, then a crashed worker's, run out
        live = await backend.claim("live-worker", 1, 60_000)
        crashed = await backend.claim("crashed-worker", 1, 1)
    finally:
        await backend.close()
    assert [c.lease.job_id for c in crashed] == [stale_id]
    assert [c.lease.job_id for c in live] == [live_id]
    await until_past(crashed[0].lease.expires_at)  # the CLI reads the real clock

    stale = await invoke("engine", "unlock-jobs", "--stale")
    assert stale.exit_code == 0, stale.output
    assert "Released 1 lock(s)" in stale.stdout
    assert stale_id in stale.stdout
    assert "stale-one" in stale.stdout
    assert live_id not in stale.stdout
    again = await invoke("engine", "unlock-jobs", "--stale")
    assert "No locks released" in again.stdout

    named = await invoke("engine", "unlock-jobs", "--job", live_id)
    assert named.exit_code == 0
    assert live_id in named.stdout
    assert "Released 1 lock(s)" in named.stdout
    # Both are claimable again.
    backend = _backend()
    try:
        assert len(await backend.claim("next-worker", 10, 60_000)) == 2
    finally:
        await backend.close()


async def _status(invoke: Invoke, interval_ms: int) -> dict[str, Any]:
    result = await invoke("engine", "status", "--json", "--heartbeat-interval-ms", str(interval_ms))
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


async def test_status_json_shows_live_workers_and_drops_a_dead_one(
    invoke: Invoke, endpoints: Endpoints
) -> None:
    await _job(invoke, "due", endpoints.url("/ok"))
    failing = await _job(invoke, "broken", endpoints.url("/fail"))
    assert (await invoke("engine", "process")).exit_code == 1
    await _job(invoke, "due-now", endpoints.url("/ok"))

    # The last 40 s of two workers' heartbeats, every 10 s, on a fake clock that ends now:
    # worker-b died without a goodbye after its first one.
    clock = FakeClock(datetime.now(UTC) - timedelta(seconds=40))
    backend = _backend(clock=clock)
    beat = Heartbeat(host="h", pid=1, stats={"total_cycles": 3})
    try:
        await backend.heartbeat("worker-b", beat)
        for _ in range(4):
            await backend.heartbeat("worker-a", beat)
            clock.advance(10)
        await backend.heartbeat("worker-a", beat)
    finally:
        await backend.close()

    report = await _status(invoke, 60_000)  # alive: a heartbeat within the last 3 minutes
    assert [w["id"] for w in report["workers"]] == ["worker-a", "worker-b"]
    assert report["workers_alive"] == 2
    assert report["jobs_due_now"] == 1
    assert report["failing_jobs_total"] == 1
    assert report["failing_jobs"][0]["id"] == failing
    report = await _status(invoke, 10_000)  # alive: a heartbeat within the last 30 s
    assert [w["id"] for w in report["workers"]] == ["worker-a"]
    assert report["workers_alive"] == 1

    human = await invoke("engine", "status", "--heartbeat-interval-ms", "60000")
    assert "Workers alive 2" in human.stdout
    assert "broken" in human.stdout


async def test_status_on_an_empty_database(invoke: Invoke) -> None:
    report = await _status(invoke, 10_000)
    assert report["workers"] == []
    assert report["jobs_due_now"] == 0
    assert report["token_spend"]["total_tokens"] == 0
    assert datetime.fromisoformat(str(report["generated_at"])) <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        ("not-a-uuid", "unknown job id (job ids are UUIDs)"),
        ("5f0c3b8e-0000-4000-8000-000000000000", "unknown job id(s)"),
    ],
)
async def test_unlock_jobs_with_an_unknown_id_exits_1(
    invoke: Invoke, endpoints: Endpoints, job_id: str, message: str
) -> None:
    locked = await _job(invoke, "locked", endpoints.url("/ok"))
    backend = _backend()
    try:
        await backend.claim("some-worker", 1, 60_000)
    finally:
        await backend.close()
    result = await invoke("engine", "unlock-jobs", "--job", job_id, "--job", locked)
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert job_id in result.stderr
    again = await invoke("engine", "unlock-jobs", "--job", locked)
    assert "Released 1 lock(s)" in again.stdout  # the failed call released nothing
