"""Regression tests for the security review (issue 10): schema references are never
fetched, header validation is anchored, no redirect takes its host from the request, and the
SQLite file is private."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cronicorn.domain.json_schema import MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH
from cronicorn.store.db import create_engine
from tests.api.conftest import ENDPOINT, JOB, Api
from tests.api.test_validation import assert_refused


@pytest.fixture
def api(sqlite_api: Api) -> Api:
    return sqlite_api


@pytest.fixture
async def job_id(api: Api) -> str:
    r = await api.call("POST", "/api/jobs", json={**JOB, "interval_ms": 60_000})
    job: str = r.json()["id"]
    return job


@pytest.fixture
async def canary() -> AsyncIterator[tuple[str, list[int]]]:
    """A listener on 127.0.0.1 that counts connections and never answers."""
    accepted: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def on_connect(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        writers.append(writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", accepted
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


REMOTE_REFS = [
    {"$ref": "{url}/doc#/nope"},
    {"type": "object", "properties": {"a": {"$ref": "{url}/doc#/nope"}}},
    {"$defs": {"x": {"$ref": "{url}/x.json"}}, "$ref": "#/$defs/x"},
    {"allOf": [{"$dynamicRef": "{url}/doc#meta"}]},
    {"$ref": "file:///etc/passwd"},
    {"$ref": "other.json#/x"},
    {"$ref": "//127.0.0.1:9/doc"},
]


def fill(schema: Any, url: str) -> Any:
    if isinstance(schema, dict):
        return {k: fill(v, url) for k, v in schema.items()}
    if isinstance(schema, list):
        return [fill(v, url) for v in schema]
    return schema.replace("{url}", url) if isinstance(schema, str) else schema


@pytest.mark.parametrize("schema", REMOTE_REFS, ids=range(len(REMOTE_REFS)))
async def test_non_local_ref_is_refused_and_never_fetched(
    api: Api, job_id: str, canary: tuple[str, list[int]], schema: dict[str, Any]
) -> None:
    url, accepted = canary
    body = {**ENDPOINT, "request_schema": fill(schema, url)}
    await assert_refused(api, "POST", f"/api/jobs/{job_id}/endpoints", "request_schema", json=body)
    r = await api.call("POST", f"/api/jobs/{job_id}/endpoints", json=body)
    assert "not a local reference" in r.text
    created = await api.call("POST", f"/api/jobs/{job_id}/endpoints", json=ENDPOINT)
    patch = {"request_schema": fill(schema, url)}
    path = f"/api/endpoints/{created.json()['id']}"
    await assert_refused(api, "PATCH", path, "request_schema", json=patch)
    assert accepted == []


async def test_local_refs_are_accepted(api: Api, job_id: str) -> None:
    schema = {
        "type": "object",
        "properties": {"limit": {"$ref": "#/$defs/limit"}},
        "$defs": {"limit": {"type": "integer", "minimum": 1}},
    }
    r = await api.call(
        "POST", f"/api/jobs/{job_id}/endpoints", json={**ENDPOINT, "request_schema": schema}
    )
    assert r.status_code == 201, r.text
    assert r.json()["request_schema"] == schema


async def test_schema_depth_and_size_are_bounded(api: Api, job_id: str) -> None:
    path = f"/api/jobs/{job_id}/endpoints"
    deep = {**ENDPOINT, "request_schema": nested(MAX_SCHEMA_DEPTH)}
    await assert_refused(api, "POST", path, "request_schema", json=deep)
    big = {"type": "object", "description": "x" * (MAX_SCHEMA_BYTES + 1)}
    await assert_refused(
        api, "POST", path, "request_schema", json={**ENDPOINT, "request_schema": big}
    )
    ok = {**ENDPOINT, "request_schema": nested(MAX_SCHEMA_DEPTH // 2 - 1)}
    assert (await api.call("POST", path, json=ok)).status_code == 201


@pytest.mark.parametrize(
    ("field", "patch"),
    [
        ("default_headers", {"default_headers": {"X-Token\n": "v"}}),
        ("default_headers", {"default_headers": {"X-Token": "value\n"}}),
    ],
)
async def test_job_header_with_trailing_newline_is_refused(
    api: Api, job_id: str, field: str, patch: dict[str, Any]
) -> None:
    await assert_refused(api, "POST", "/api/jobs", field, json={**JOB, **patch})
    await assert_refused(api, "PATCH", f"/api/jobs/{job_id}", field, json=patch)


@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("headers", {"headers": {"X-Api-Key\n": "v"}}),
        ("headers", {"headers": {"X-Api-Key": "v\n"}}),
        ("bearer_token", {"bearer_token": "token\n"}),
    ],
)
async def test_endpoint_header_with_trailing_newline_is_refused(
    api: Api, job_id: str, field: str, extra: dict[str, Any]
) -> None:
    path = f"/api/jobs/{job_id}/endpoints"
    await assert_refused(api, "POST", path, field, json={**ENDPOINT, **extra})


@pytest.mark.parametrize("path", ["/api/jobs/", "/api/keys/", "/api/jobs/x/endpoints/"])
async def test_no_redirect_takes_its_host_from_the_request(api: Api, path: str) -> None:
    r = await api.call("GET", path, headers={"Host": "evil.example"})
    location = r.headers.get("location", "")
    assert "evil.example" not in location, (r.status_code, location)
    assert not location.startswith(("http:", "https:", "//")), location


def test_sqlite_database_file_is_private(tmp_path: Path) -> None:
    async def touch() -> None:
        engine = create_engine(f"sqlite:///{tmp_path / 'new.db'}")
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        await engine.dispose()

    old = os.umask(0o022)
    try:
        asyncio.run(touch())
    finally:
        os.umask(old)
    for name in ("new.db", "new.db-wal", "new.db-shm"):
        file = tmp_path / name
        if file.exists():
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, (name, oct(file.stat().st_mode))
    assert (tmp_path / "new.db").exists()


def test_existing_world_readable_sqlite_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)

    async def open_it() -> None:
        engine = create_engine(f"sqlite:///{path}")
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
        await engine.dispose()

    asyncio.run(open_it())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_db_upgrade_creates_a_private_sqlite_file(tmp_path: Path) -> None:
    from cronicorn.store.migrate import upgrade_database

    path = tmp_path / "migrated.db"
    old = os.umask(0o022)
    try:
        upgrade_database(f"sqlite:///{path}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_url_secrets_are_stored_encrypted_and_shown_masked(api: Api, job_id: str) -> None:
    url = "https://svc:pa55-word-x@api.example.com/orders?api_key=k3y-v4lue&page=2"
    r = await api.call("POST", f"/api/jobs/{job_id}/endpoints", json={**ENDPOINT, "url": url})
    assert r.status_code == 201, r.text
    shown = r.json()["url"]
    assert shown == "https://svc:***@api.example.com/orders?api_key=***&page=2"
    stored = str(await api.snapshot())
    assert "pa55-word-x" not in stored
    assert "k3y-v4lue" not in stored

    # sending back what was read keeps the secrets; the engine gets the real URL
    ep = r.json()["id"]
    patched = await api.call("PATCH", f"/api/endpoints/{ep}", json={"url": shown + "&x=1"})
    assert patched.status_code == 200, patched.text
    claim = await api.call(
        "POST",
        "/api/scheduler/claim",
        who="engine",
        json={"worker_id": "w1", "limit": 10, "lease_ms": 60_000},
    )
    assert claim.status_code == 200, claim.text
    [job] = claim.json()["jobs"]
    [spec] = job["context"]["endpoints"]
    assert spec["url"] == url + "&x=1"


async def test_mask_in_a_url_without_a_stored_secret_is_refused(api: Api, job_id: str) -> None:
    body = {**ENDPOINT, "url": "https://svc:***@api.example.com/orders"}
    await assert_refused(api, "POST", f"/api/jobs/{job_id}/endpoints", "url", json=body)
