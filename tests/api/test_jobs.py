"""Jobs, endpoints, messages through the HTTP API: happy paths and state rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from cronicorn.store.tables import Job
from tests.api.conftest import ENDPOINT, JOB, Api


async def test_create_job_defaults_and_due_now(api: Api) -> None:
    before = datetime.now(UTC)
    r = await api.call("POST", "/api/jobs", json=JOB)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "active"
    assert job["min_interval_ms"] == 10_000
    assert job["max_interval_ms"] == 7 * 24 * 3600 * 1000
    assert job["timezone"] == "UTC"
    assert job["locked"] is False
    assert job["total_tokens"] == 0
    assert job["last_schedule"] is None
    assert before <= datetime.fromisoformat(job["next_run_at"]) <= datetime.now(UTC)
    fields = {
        "id", "tenant_id", "name", "definition", "status", "cron", "timezone", "interval_ms",
        "min_interval_ms", "max_interval_ms", "next_run_at", "last_run_at",
        "consecutive_failures", "paused_until", "locked", "lease_expires_at", "input_tokens",
        "output_tokens", "reasoning_tokens", "cached_input_tokens", "total_tokens",
        "last_schedule", "default_headers", "daily_token_budget", "ai_mode", "created_at",
        "updated_at", "run_retention_days", "max_runs_per_job", "hint", "cost",
    }  # fmt: skip
    assert set(job) == fields
    got = await api.call("GET", f"/api/jobs/{job['id']}")
    assert got.json() == job


async def test_next_run_at_given_is_kept_in_utc(api: Api) -> None:
    r = await api.call(
        "POST",
        "/api/jobs",
        json={**JOB, "next_run_at": "2030-01-01T12:00:00+02:00", "cron": "*/5 * * * *"},
    )
    assert r.status_code == 201, r.text
    assert datetime.fromisoformat(r.json()["next_run_at"]) == datetime(2030, 1, 1, 10, tzinfo=UTC)


async def test_list_newest_first_with_keyset_pages(api: Api) -> None:
    ids = [(await api.call("POST", "/api/jobs", json=JOB)).json()["id"] for _ in range(5)]
    page1 = (await api.call("GET", "/api/jobs", params={"limit": 2})).json()
    assert [j["id"] for j in page1] == ids[::-1][:2]
    page2 = (
        await api.call("GET", "/api/jobs", params={"limit": 2, "before": page1[-1]["id"]})
    ).json()
    assert [j["id"] for j in page2] == ids[::-1][2:4]
    assert (await api.call("GET", "/api/jobs", who="bob")).json() == []


async def test_patch_pause_resume_run_now_archive(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json={**JOB, "interval_ms": 60_000})).json()
    url = f"/api/jobs/{job['id']}"
    r = await api.call(
        "PATCH", url, json={"name": "renamed", "interval_ms": None, "cron": "0 * * * *"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["cron"], r.json()["interval_ms"]) == (
        "renamed", "0 * * * *", None,
    )  # fmt: skip
    assert (await api.call("POST", f"{url}/pause")).json()["status"] == "paused"
    assert (await api.call("POST", f"{url}/run-now")).status_code == 409
    assert (await api.call("POST", f"{url}/resume")).json()["status"] == "active"
    later = datetime.now(UTC) + timedelta(days=1)
    await api.call("PATCH", url, json={"next_run_at": later.isoformat()})
    ran = (await api.call("POST", f"{url}/run-now")).json()
    assert datetime.fromisoformat(ran["next_run_at"]) <= datetime.now(UTC)
    archived = await api.call("DELETE", url)
    assert archived.json()["status"] == "archived"
    assert (await api.call("GET", url)).json()["status"] == "archived"
    assert (await api.call("PATCH", url, json={"name": "x"})).status_code == 409
    assert (await api.call("POST", f"{url}/resume")).status_code == 409
    assert all(j["id"] != job["id"] for j in (await api.call("GET", "/api/jobs")).json())
    listed = await api.call("GET", "/api/jobs", params={"status": "archived"})
    assert [j["id"] for j in listed.json()] == [job["id"]]


async def test_locked_is_derived_from_the_lease(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    expires = datetime.now(UTC) + timedelta(minutes=5)
    async with api.app.state.db.begin() as conn:
        await conn.execute(
            sa.update(Job)
            .where(Job.id == job["id"])
            .values(lease_owner="w1", lease_token=1, lease_expires_at=expires)
        )
    got = (await api.call("GET", f"/api/jobs/{job['id']}")).json()
    assert got["locked"] is True
    assert datetime.fromisoformat(got["lease_expires_at"]) == expires


async def test_endpoint_crud(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    r = await api.call(
        "POST",
        f"/api/jobs/{job['id']}/endpoints",
        json={**ENDPOINT, "method": "POST", "body": {"a": [1, 2]}, "timeout_ms": 5000},
    )
    assert r.status_code == 201, r.text
    ep = r.json()
    assert (ep["method"], ep["body"], ep["timeout_ms"], ep["bearer_token"]) == (
        "POST", {"a": [1, 2]}, 5000, None,
    )  # fmt: skip
    listed = (await api.call("GET", f"/api/jobs/{job['id']}/endpoints")).json()
    assert [e["id"] for e in listed] == [ep["id"]]
    patched = await api.call("PATCH", f"/api/endpoints/{ep['id']}", json={"fire_and_forget": True})
    assert patched.json()["fire_and_forget"] is True
    assert (await api.call("DELETE", f"/api/endpoints/{ep['id']}")).status_code == 204
    assert (await api.call("GET", f"/api/endpoints/{ep['id']}")).status_code == 404


async def test_an_archived_jobs_endpoints_and_messages_are_read_only(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    ep = (await api.call("POST", f"/api/jobs/{job['id']}/endpoints", json=ENDPOINT)).json()
    assert (await api.call("DELETE", f"/api/jobs/{job['id']}")).status_code == 200
    before = await api.snapshot()
    refused = [
        await api.call("POST", f"/api/jobs/{job['id']}/endpoints", json=ENDPOINT),
        await api.call("PATCH", f"/api/endpoints/{ep['id']}", json={"name": "x"}),
        await api.call("DELETE", f"/api/endpoints/{ep['id']}"),
        await api.call("POST", f"/api/jobs/{job['id']}/messages", json={"content": "hi"}),
        await api.call("POST", f"/api/jobs/{job['id']}/pause"),
    ]
    assert [(r.status_code, "archived" in r.text) for r in refused] == [(409, True)] * 5
    assert await api.snapshot() == before


async def test_messages_newest_first(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    url = f"/api/jobs/{job['id']}/messages"
    for text in ("one", "two", "three"):
        r = await api.call("POST", url, json={"content": text})
        assert r.status_code == 201, r.text
        assert (r.json()["role"], r.json()["source"]) == ("user", "user")
    got = (await api.call("GET", url, params={"limit": 2})).json()
    assert [m["content"] for m in got] == ["three", "two"]
    rest = (await api.call("GET", url, params={"before": got[-1]["id"]})).json()
    assert [m["content"] for m in rest] == ["one"]


async def test_text_postgres_cannot_store_is_refused(api: Api) -> None:
    before = await api.snapshot()
    for body in (
        {**JOB, "name": "nul\x00"},
        {**JOB, "next_run_at": "0001-01-01T00:00:00+01:00"},
    ):
        r = await api.call("POST", "/api/jobs", json=body)
        assert r.status_code == 422, r.text
    raw = b'{"name": "x", "definition": "lone \\ud800 surrogate"}'
    headers = {"Content-Type": "application/json"}
    r = await api.call("POST", "/api/jobs", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert "definition" in r.text
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    r = await api.call(
        "POST", f"/api/jobs/{job['id']}/endpoints", json={**ENDPOINT, "body": {"k": "\x00"}}
    )
    assert r.status_code == 422, r.text
    assert (await api.call("GET", "/api/jobs/bad%00id")).status_code == 404
    assert len((await api.snapshot())["jobs"]) == len(before["jobs"]) + 1
