"""Bad input is refused with 4xx naming the field, and nothing is stored (SPEC §2, §3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.api.conftest import ENDPOINT, JOB, Api

# Field rules are checked before the database is touched: SQLite is enough, except for the
# values only PostgreSQL refuses (see test_text_postgres_cannot_store_is_refused).


@pytest.fixture
def api(sqlite_api: Api) -> Api:
    return sqlite_api


MIB = 1024 * 1024

JOB_CASES: list[tuple[str, dict[str, Any]]] = [
    ("name", {"definition": "d"}),
    ("name", {**JOB, "name": ""}),
    ("name", {**JOB, "name": "x" * 201}),
    ("name", {**JOB, "name": 5}),
    ("name", {**JOB, "name": "nul\x00byte"}),
    ("definition", {**JOB, "definition": ""}),
    ("definition", {**JOB, "definition": "x" * 4001}),
    ("interval_ms", {**JOB, "cron": "* * * * *", "interval_ms": 60_000}),
    ("cron", {**JOB, "cron": "* * *"}),
    ("cron", {**JOB, "cron": "61 * * * *"}),
    ("cron", {**JOB, "cron": "* * * * * * *"}),
    ("timezone", {**JOB, "cron": "0 9 * * *", "timezone": "Mars/Olympus"}),
    ("timezone", {**JOB, "timezone": "../../etc/passwd"}),
    ("interval_ms", {**JOB, "interval_ms": 999}),
    ("interval_ms", {**JOB, "interval_ms": "60000"}),
    ("interval_ms", {**JOB, "interval_ms": 1000.5}),
    ("max_interval_ms", {**JOB, "min_interval_ms": 20_000, "max_interval_ms": 10_000}),
    ("next_run_at", {**JOB, "next_run_at": "2030-01-01T00:00:00"}),
    ("next_run_at", {**JOB, "next_run_at": "tomorrow"}),
    ("default_headers", {**JOB, "default_headers": {"bad name": "x"}}),
    ("default_headers", {**JOB, "default_headers": {"X-Token": "a\r\nInjected: 1"}}),
    ("default_headers", {**JOB, "default_headers": {"X-Token": 5}}),
    ("status", {**JOB, "status": "archived"}),
    ("daily_token_budget", {**JOB, "daily_token_budget": -1}),
    ("surprise", {**JOB, "surprise": 1}),
]

ENDPOINT_CASES: list[tuple[str, dict[str, Any]]] = [
    ("url", {"name": "e"}),
    ("url", {**ENDPOINT, "url": "ftp://example.com/x"}),
    ("url", {**ENDPOINT, "url": "http://"}),
    ("url", {**ENDPOINT, "url": "not a url"}),
    ("url", {**ENDPOINT, "url": "https://exa mple.com/"}),
    ("url", {**ENDPOINT, "url": "http://example.com:99999/"}),
    ("method", {**ENDPOINT, "method": "FETCH"}),
    ("timeout_ms", {**ENDPOINT, "timeout_ms": 99}),
    ("timeout_ms", {**ENDPOINT, "timeout_ms": 300_001}),
    ("max_response_bytes", {**ENDPOINT, "max_response_bytes": 50 * MIB + 1}),
    ("headers", {**ENDPOINT, "headers": {"Host": "evil.example"}}),
    ("headers", {**ENDPOINT, "headers": {"X-A": "1", "x-a": "2"}}),
    ("request_schema", {**ENDPOINT, "request_schema": {"type": 5}}),
    ("bearer_token", {**ENDPOINT, "bearer_token": "abc\r\nX: y"}),
    ("fire_and_forget", {**ENDPOINT, "fire_and_forget": "yes"}),
    ("body", {**ENDPOINT, "body": {"k": "nul\x00"}}),
    ("name", {**ENDPOINT, "name": ""}),
    ("extra", {**ENDPOINT, "extra": True}),
]


async def assert_refused(
    api: Api, method: str, path: str, field: str, status: int = 422, **kwargs: Any
) -> None:
    before = await api.snapshot()
    r = await api.call(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert field in r.text, r.text
    assert await api.snapshot() == before


@pytest.fixture
async def job_id(api: Api) -> str:
    r = await api.call("POST", "/api/jobs", json={**JOB, "interval_ms": 60_000})
    job: str = r.json()["id"]
    return job


@pytest.mark.parametrize(("field", "body"), JOB_CASES, ids=[f for f, _ in JOB_CASES])
async def test_job_create_rules(api: Api, field: str, body: dict[str, Any]) -> None:
    await assert_refused(api, "POST", "/api/jobs", field, json=body)


@pytest.mark.parametrize(("field", "body"), ENDPOINT_CASES, ids=[f for f, _ in ENDPOINT_CASES])
async def test_endpoint_create_rules(
    api: Api, job_id: str, field: str, body: dict[str, Any]
) -> None:
    await assert_refused(api, "POST", f"/api/jobs/{job_id}/endpoints", field, json=body)


PATCH_CASES: list[tuple[str, dict[str, Any]]] = [
    ("min_interval_ms", {"min_interval_ms": 700_000_000}),  # > stored max (7 days)
    ("max_interval_ms", {"max_interval_ms": 5_000}),  # < stored min (10 s)
    ("cron", {"cron": "*/5 * * * *"}),  # stored interval_ms not cleared
    ("name", {"name": None}),
    ("timezone", {"timezone": None}),
    ("default_headers", {"default_headers": {"X-New": "***"}}),  # nothing stored to keep
    ("status", {"status": "paused"}),
]


@pytest.mark.parametrize(("field", "body"), PATCH_CASES, ids=[f for f, _ in PATCH_CASES])
async def test_job_patch_rules(api: Api, job_id: str, field: str, body: dict[str, Any]) -> None:
    await assert_refused(api, "PATCH", f"/api/jobs/{job_id}", field, json=body)


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("url", {"url": None}),
        ("timeout_ms", {"timeout_ms": 50}),
        ("bearer_token", {"bearer_token": "***"}),
    ],
)
async def test_endpoint_patch_rules(
    api: Api, job_id: str, field: str, body: dict[str, Any]
) -> None:
    ep = (await api.call("POST", f"/api/jobs/{job_id}/endpoints", json=ENDPOINT)).json()
    await assert_refused(api, "PATCH", f"/api/endpoints/{ep['id']}", field, json=body)


@pytest.mark.parametrize(
    ("field", "body"),
    [("content", {"content": ""}), ("role", {"content": "x", "role": "assistant"})],
)
async def test_message_rules(api: Api, job_id: str, field: str, body: dict[str, Any]) -> None:
    await assert_refused(api, "POST", f"/api/jobs/{job_id}/messages", field, json=body)


@pytest.mark.parametrize(
    ("field", "params"),
    [("limit", {"limit": 0}), ("limit", {"limit": 1001}), ("limit", {"limit": "many"}),
     ("before", {"before": "not an id!"}), ("before", {"before": "0000-unknown"})],
)  # fmt: skip
async def test_query_params(api: Api, job_id: str, field: str, params: dict[str, Any]) -> None:
    await assert_refused(api, "GET", f"/api/jobs/{job_id}/runs", field, params=params)


async def test_malformed_json(api: Api) -> None:
    headers = {"Content-Type": "application/json"}
    await assert_refused(
        api, "POST", "/api/jobs", "JSON", content=b'{"name": "x",', headers=headers
    )


async def test_oversized_body_by_content_length(api: Api) -> None:
    body = {**JOB, "definition": "x" * 100, "padding": "y" * (MIB + 10)}
    await assert_refused(api, "POST", "/api/jobs", "exceeds", status=413, json=body)


async def test_oversized_chunked_body(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "definition": "'
        for _ in range(20):
            yield b"y" * 64 * 1024
        yield b'"}'

    await assert_refused(
        api, "POST", "/api/jobs", "exceeds", status=413, content=chunks(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip


async def test_body_just_under_the_limit_is_accepted(api: Api) -> None:
    r = await api.call("POST", "/api/jobs", json={**JOB, "definition": "x" * 4000})
    assert r.status_code == 201


# One validator (issue 15): the API accepts exactly the cron expressions the scheduler runs.
@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 0 31 2 *", "never fires"),  # February has no 31st
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 * * * 30", "second minute hour"),  # seconds first: 30 is the day-of-week
        ("@reboot", "unknown cron alias"),
    ],
)
async def test_cron_the_scheduler_cannot_run_is_refused(api: Api, cron: str, fragment: str) -> None:
    await assert_refused(api, "POST", "/api/jobs", "cron", json={**JOB, "cron": cron})
    r = await api.call("POST", "/api/jobs", json={**JOB, "cron": cron})
    assert fragment in r.text, r.text


@pytest.mark.parametrize("cron", ["@hourly", "@daily", "0 0 30 2,4 *", "*/10 * * * * *"])
async def test_cron_the_scheduler_runs_is_accepted_and_scheduled(api: Api, cron: str) -> None:
    r = await api.call("POST", "/api/jobs", json={**JOB, "cron": cron, "timezone": "Europe/Berlin"})
    assert r.status_code == 201, r.text
    assert r.json()["cron"] == cron
