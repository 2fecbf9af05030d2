"""Secrets are encrypted at rest, masked in responses and decrypt for the executor."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from cronicorn.domain.models import ClaimedJob
from cronicorn.store.secrets import SecretBox
from cronicorn.store.tables import Endpoint, Job
from tests.api.conftest import ENDPOINT, JOB, SECRET_KEY, Api

HEADER_SECRET = "hdr-s3cret-value"
TOKEN = "bearer-t0ken-value"
JOB_SECRET = "job-default-s3cret"


async def _claim_as_engine(api: Api, job_id: str) -> ClaimedJob:
    """The job as the engine receives it: claimed, with its secrets decrypted."""
    claimed = await api.app.state.scheduler.claim("w", 10, 60_000)
    [job] = [c for c in claimed if c.lease.job_id == job_id]
    assert isinstance(job, ClaimedJob)
    return job


async def test_secrets_encrypted_masked_and_decryptable(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job = (
        await api.call("POST", "/api/jobs", json={**JOB, "default_headers": {"X-T": JOB_SECRET}})
    ).json()
    r = await api.call(
        "POST",
        f"/api/jobs/{job['id']}/endpoints",
        json={**ENDPOINT, "headers": {"X-Api-Key": HEADER_SECRET}, "bearer_token": TOKEN},
    )
    ep = r.json()
    assert job["default_headers"] == {"X-T": "***"}
    assert ep["headers"] == {"X-Api-Key": "***"}
    assert ep["bearer_token"] == "***"
    fetched = (await api.call("GET", f"/api/endpoints/{ep['id']}")).text
    assert HEADER_SECRET not in fetched
    assert TOKEN not in fetched

    async with api.app.state.db.connect() as conn:
        headers, token = (
            await conn.execute(
                sa.select(Endpoint.headers, Endpoint.bearer_token).where(Endpoint.id == ep["id"])
            )
        ).one()
        job_headers = await conn.scalar(sa.select(Job.default_headers).where(Job.id == job["id"]))
        dump = repr(await api.snapshot())
    for secret in (HEADER_SECRET, TOKEN, JOB_SECRET):
        assert secret not in dump
        assert secret not in caplog.text
    box = SecretBox(SECRET_KEY)
    assert box.decrypt(headers["X-Api-Key"]) == HEADER_SECRET
    assert box.decrypt(token) == TOKEN
    assert box.decrypt(job_headers["X-T"]) == JOB_SECRET

    claimed = await _claim_as_engine(api, job["id"])
    [spec] = claimed.context.endpoints
    assert (spec.headers["X-Api-Key"], spec.bearer_token) == (HEADER_SECRET, TOKEN)
    assert claimed.context.job.default_headers == {"X-T": JOB_SECRET}


async def test_patch_with_mask_keeps_secret_and_null_clears(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    body = {**ENDPOINT, "headers": {"X-Api-Key": HEADER_SECRET}, "bearer_token": TOKEN}
    ep = (await api.call("POST", f"/api/jobs/{job['id']}/endpoints", json=body)).json()
    patch = {"headers": {"X-Api-Key": "***", "X-New": "new"}, "bearer_token": "***"}
    r = await api.call("PATCH", f"/api/endpoints/{ep['id']}", json=patch)
    assert r.json()["headers"] == {"X-Api-Key": "***", "X-New": "***"}
    [spec] = (await _claim_as_engine(api, job["id"])).context.endpoints
    assert dict(spec.headers) == {"X-Api-Key": HEADER_SECRET, "X-New": "new"}
    assert spec.bearer_token == TOKEN
    cleared = await api.call("PATCH", f"/api/endpoints/{ep['id']}", json={"bearer_token": None})
    assert cleared.json()["bearer_token"] is None
