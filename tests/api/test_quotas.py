"""Per-tenant quotas (issue 10): jobs per tenant, endpoints per job, messages per job (the
oldest are pruned), message size. Exceeding one is a 409/422 that changes nothing."""

from __future__ import annotations

from cronicorn.service.quotas import Quotas
from tests.api.conftest import ENDPOINT, JOB, Api, make_api


async def test_jobs_per_tenant(database_url: str) -> None:
    async with make_api(database_url, quotas=Quotas(jobs_per_tenant=2)) as api:
        ids = [(await api.call("POST", "/api/jobs", json=JOB)).json()["id"] for _ in range(2)]
        before = await api.snapshot()
        r = await api.call("POST", "/api/jobs", json=JOB)
        assert r.status_code == 409
        assert "quota exceeded" in r.json()["detail"]
        assert await api.snapshot() == before
        assert (await api.call("POST", "/api/jobs", who="bob", json=JOB)).status_code == 201
        assert (await api.call("DELETE", f"/api/jobs/{ids[0]}")).status_code == 200
        assert (await api.call("POST", "/api/jobs", json=JOB)).status_code == 201


async def test_endpoints_per_job(database_url: str) -> None:
    async with make_api(database_url, quotas=Quotas(endpoints_per_job=2)) as api:
        job = (await api.call("POST", "/api/jobs", json=JOB)).json()
        path = f"/api/jobs/{job['id']}/endpoints"
        for _ in range(2):
            assert (await api.call("POST", path, json=ENDPOINT)).status_code == 201
        r = await api.call("POST", path, json=ENDPOINT)
        assert r.status_code == 409
        assert "2 endpoints" in r.json()["detail"]
        assert len((await api.call("GET", path)).json()) == 2


async def test_messages_per_job_prunes_the_oldest(database_url: str) -> None:
    async with make_api(database_url, quotas=Quotas(messages_per_job=3)) as api:
        job = (await api.call("POST", "/api/jobs", json=JOB)).json()
        path = f"/api/jobs/{job['id']}/messages"
        for i in range(5):
            assert (await api.call("POST", path, json={"content": f"m{i}"})).status_code == 201
        kept = [m["content"] for m in (await api.call("GET", path)).json()]
        assert kept == ["m4", "m3", "m2"]


async def test_message_size_is_counted_in_bytes(sqlite_url: str) -> None:
    async with make_api(sqlite_url, quotas=Quotas(message_bytes=8)) as api:
        job = (await api.call("POST", "/api/jobs", json=JOB)).json()
        path = f"/api/jobs/{job['id']}/messages"
        assert (await api.call("POST", path, json={"content": "12345678"})).status_code == 201
        before = await api.snapshot()
        r = await api.call("POST", path, json={"content": "ééééé"})  # 5 chars, 10 bytes
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "content"]
        assert "10 bytes" in r.json()["detail"][0]["msg"]
        assert await api.snapshot() == before


async def test_the_quota_lock_leaves_the_job_unchanged(api: Api) -> None:
    """The lock taken to count endpoints and messages is not an edit of the job."""
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    await api.call("POST", f"/api/jobs/{job['id']}/endpoints", json=ENDPOINT)
    await api.call("POST", f"/api/jobs/{job['id']}/messages", json={"content": "hi"})
    again = (await api.call("GET", f"/api/jobs/{job['id']}")).json()
    assert again["updated_at"] == job["updated_at"]
