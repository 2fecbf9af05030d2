"""Authentication and tenant isolation on every user route (SPEC §3)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import sqlalchemy as sa

from cronicorn.store.tables import ApiKey, Run
from tests.api.conftest import ENDPOINT, JOB, Api

# (method, path template, JSON body or None). {job}, {endpoint}, {run} are alice's objects.
USER_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/jobs/{job}", None),
    ("PATCH", "/api/jobs/{job}", {"name": "stolen"}),
    ("DELETE", "/api/jobs/{job}", None),
    ("POST", "/api/jobs/{job}/pause", None),
    ("POST", "/api/jobs/{job}/resume", None),
    ("POST", "/api/jobs/{job}/run-now", None),
    ("POST", "/api/jobs/{job}/endpoints", ENDPOINT),
    ("GET", "/api/jobs/{job}/endpoints", None),
    ("GET", "/api/endpoints/{endpoint}", None),
    ("PATCH", "/api/endpoints/{endpoint}", {"name": "stolen"}),
    ("DELETE", "/api/endpoints/{endpoint}", None),
    ("POST", "/api/jobs/{job}/messages", {"content": "hi"}),
    ("GET", "/api/jobs/{job}/messages", None),
    ("GET", "/api/jobs/{job}/runs", None),
    ("GET", "/api/runs/{run}", None),
    ("GET", "/api/jobs/{job}/errors", None),
]
COLLECTION_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/jobs", JOB),
    ("GET", "/api/jobs", None),
]
RUN_ID = "00000000-0000-4000-8000-000000000001"
ROUTE_IDS = [f"{m} {p}" for m, p, _ in USER_ROUTES]


async def alice_objects(api: Api) -> dict[str, str]:
    job = (await api.call("POST", "/api/jobs", json=JOB)).json()
    endpoint = (await api.call("POST", f"/api/jobs/{job['id']}/endpoints", json=ENDPOINT)).json()
    async with api.app.state.db.begin() as conn:
        await conn.execute(
            sa.insert(Run).values(
                id=RUN_ID,
                job_id=job["id"],
                worker_id="w",
                lease_token=1,
                status="completed",
            )
        )
    return {"job": job["id"], "endpoint": endpoint["id"], "run": RUN_ID}


@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES, ids=ROUTE_IDS)
async def test_other_tenant_gets_404_and_nothing_changes(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    ids = await alice_objects(api)
    before = await api.snapshot()
    r = await api.call(method, path.format(**ids), who="bob", json=body)
    assert r.status_code == 404, r.text
    assert await api.snapshot() == before
    # The same route works for the owner (another key of the same tenant) and for admin.
    owner = await api.call(method, path.format(**ids), who="alice2", json=body)
    assert owner.status_code < 300 or owner.status_code == 409, owner.text


@pytest.mark.parametrize(
    ("method", "path", "body"), USER_ROUTES + COLLECTION_ROUTES,
    ids=ROUTE_IDS + [f"{m} {p}" for m, p, _ in COLLECTION_ROUTES],
)  # fmt: skip
async def test_missing_invalid_and_wrong_scope_keys(
    sqlite_api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    api = sqlite_api
    ids = await alice_objects(api)
    url = path.format(**ids)
    before = await api.snapshot()
    assert (await api.call(method, url, who=None, json=body)).status_code == 401
    bad = {"Authorization": "Bearer ck_not-a-real-key"}
    assert (await api.call(method, url, who=None, json=body, headers=bad)).status_code == 401
    basic = {"Authorization": "Basic YWxpY2U6c2VjcmV0"}
    assert (await api.call(method, url, who=None, json=body, headers=basic)).status_code == 401
    assert (await api.call(method, url, who="engine", json=body)).status_code == 403
    assert await api.snapshot() == before


async def test_admin_sees_every_tenant(api: Api) -> None:
    ids = await alice_objects(api)
    assert (await api.call("GET", f"/api/jobs/{ids['job']}", who="admin")).status_code == 200
    listed = (await api.call("GET", "/api/jobs", who="admin")).json()
    assert ids["job"] in {j["id"] for j in listed}


async def test_unauthorized_response_asks_for_bearer(api: Api) -> None:
    r = await api.call("GET", "/api/jobs", who=None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


async def test_key_management_is_admin_only_and_revocation_works(api: Api) -> None:
    body = {"tenant": "carol", "scope": "user"}
    assert (await api.call("POST", "/api/admin/keys", who="alice", json=body)).status_code == 403
    assert (await api.call("POST", "/api/admin/keys", who="engine", json=body)).status_code == 403
    created = await api.call("POST", "/api/admin/keys", who="admin", json=body)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    assert (await api.call("GET", "/api/jobs", who=None, headers=headers)).status_code == 200
    listed = (await api.call("GET", "/api/admin/keys", who="admin")).json()
    assert all("key" not in k for k in listed)
    assert created.json()["id"] in {k["id"] for k in listed}
    revoked = await api.call("DELETE", f"/api/admin/keys/{created.json()['id']}", who="admin")
    assert revoked.json()["revoked_at"] is not None
    assert (await api.call("GET", "/api/jobs", who=None, headers=headers)).status_code == 401


async def test_keys_are_stored_hashed(api: Api) -> None:
    async with api.app.state.db.connect() as conn:
        hashes = set((await conn.execute(sa.select(ApiKey.key_hash))).scalars())
    assert len(hashes) == len(api.keys)
    assert not hashes & set(api.keys.values())
    assert hashlib.sha256(api.keys["alice"].encode()).hexdigest() in hashes
