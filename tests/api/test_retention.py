"""Retention through the API: per-job overrides are job fields, and the API process prunes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx2 as httpx
import sqlalchemy as sa

from cronicorn.api import create_app
from cronicorn.service import Services
from cronicorn.store.retention import RetentionPolicy
from cronicorn.store.tables import Run, utcnow
from tests.api.conftest import JOB, Api, settings_for
from tests.store.test_retention import add_run


async def test_retention_overrides_are_job_fields_validated_like_the_rest(api: Api) -> None:
    created = await api.call("POST", "/api/jobs", json={**JOB, "run_retention_days": 7})
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["run_retention_days"], job["max_runs_per_job"]) == (7, None)

    patched = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"max_runs_per_job": 500})
    assert patched.json()["max_runs_per_job"] == 500

    before = await api.snapshot()
    bad = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"run_retention_days": -1})
    assert bad.status_code == 422
    assert "run_retention_days" in bad.text
    assert await api.snapshot() == before


async def test_the_api_process_prunes_in_the_background(sqlite_url: str) -> None:
    settings = settings_for(
        sqlite_url, prune_interval_ms=50, retention=RetentionPolicy(run_retention_days=1)
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        key = (await services.keys.create("alice", "user")).key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            job = await client.post(
                "/api/jobs", json=JOB, headers={"Authorization": f"Bearer {key}"}
            )
        job_id = job.json()["id"]
        old = await add_run(app.state.db, job_id, utcnow() - timedelta(days=3))
        fresh = await add_run(app.state.db, job_id, utcnow())

        async def remaining() -> set[str]:
            async with app.state.db.connect() as conn:
                return set((await conn.execute(sa.select(Run.id))).scalars())

        async with asyncio.timeout(10):
            while old in await remaining():  # noqa: ASYNC110 - polling the database
                await asyncio.sleep(0.05)
        assert await remaining() == {fresh}
