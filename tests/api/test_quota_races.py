"""Quota checks are atomic: concurrent creates near a limit never exceed it (issue 10,
finding 6). SQLite ignores `FOR UPDATE`, so the count and the insert must share a lock that
SQLite honours too."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from cronicorn.service.quotas import DEFAULT_ENDPOINTS_PER_JOB as MAX_ENDPOINTS_PER_JOB
from cronicorn.service.quotas import Quotas
from cronicorn.store.tables import Endpoint, Job
from tests.api.conftest import ENDPOINT, JOB, Api, make_api


async def test_concurrent_endpoint_posts_never_exceed_the_limit(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    path = f"/api/jobs/{job['id']}/endpoints"
    for i in range(MAX_ENDPOINTS_PER_JOB - 3):
        assert (await api.call("POST", path, json={**ENDPOINT, "name": f"e{i}"})).status_code == 201

    racing = [api.call("POST", path, json={**ENDPOINT, "name": f"r{i}"}) for i in range(24)]
    answers = await asyncio.gather(*racing)

    codes = sorted(r.status_code for r in answers)
    assert codes.count(201) == 3, codes
    assert set(codes) == {201, 409}, codes
    stored = await api.scalar(
        sa.select(sa.func.count()).select_from(Endpoint).where(Endpoint.job_id == job["id"])
    )
    assert stored == MAX_ENDPOINTS_PER_JOB


async def test_concurrent_job_creates_never_exceed_the_tenant_quota(database_url: str) -> None:
    async with make_api(database_url, quotas=Quotas(jobs_per_tenant=5)) as api:
        assert (await api.call("POST", "/api/jobs", json=JOB)).status_code == 201
        racing = [api.call("POST", "/api/jobs", json=JOB) for _ in range(20)]
        answers = await asyncio.gather(*racing)
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] * 4 + [409] * 16, codes
        tenant_jobs = await api.scalar(sa.select(sa.func.count()).select_from(Job))
        assert tenant_jobs == 5
