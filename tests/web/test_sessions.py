"""Dashboard sessions, CSRF, throttling, escaping and secrets, in-process on SQLite and
PostgreSQL (the browser tests cover the same pages end to end)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import pytest
import sqlalchemy as sa

from cronicorn.service.throttle import RateLimits
from cronicorn.service.web_sessions import WebSessions
from cronicorn.store.db import session_factory
from cronicorn.store.tables import Endpoint, EndpointResult, Job, Message, Run, WebSession
from tests.api.conftest import Api, make_api

JOB = {"name": "orders", "definition": "poll", "interval_ms": 60_000}
WINDOW_S = 3600  # an hour-long throttling window: a test never straddles two in practice
BAD = {"Authorization": "Bearer ck_not-a-real-key"}


@pytest.fixture
async def web(database_url: str) -> AsyncIterator[Api]:
    async with make_api(database_url) as api:
        yield api


@pytest.fixture
async def sqlite_api(sqlite_url: str) -> AsyncIterator[Api]:
    async with make_api(sqlite_url) as api:
        yield api


async def sign_in(client: httpx.AsyncClient, key: str, next_url: str = "") -> httpx.Response:
    client.cookies.clear()
    form = await client.get("/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    return await client.post(
        "/signin", data={"csrf_token": token.group(1), "key": key, "next": next_url}
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def create_job(api: Api, who: str = "alice", **fields: object) -> str:
    r = await api.call("POST", "/api/jobs", who, json={**JOB, **fields})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_sign_in_sets_an_opaque_strict_httponly_cookie(web: Api) -> None:
    r = await sign_in(web.client, web.keys["alice"])
    assert r.status_code == 303
    assert r.headers["location"] == "/jobs"
    cookie = next(c for c in r.headers.get_list("set-cookie") if "cronicorn_session=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http here
    assert web.keys["alice"] not in cookie
    page = await web.client.get("/jobs")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


async def test_the_cookie_is_secure_over_https(sqlite_api: Api) -> None:
    transport = httpx.ASGITransport(app=sqlite_api.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as client:
        r = await sign_in(client, sqlite_api.keys["alice"])
    cookie = next(c for c in r.headers.get_list("set-cookie") if "cronicorn_session=" in c)
    assert "Secure" in cookie


async def test_wrong_and_engine_keys_cannot_sign_in(web: Api) -> None:
    bad = await sign_in(web.client, "ck_not-a-key")
    assert bad.status_code == 401
    assert "unknown or revoked API key" in bad.text
    engine = await sign_in(web.client, web.keys["engine"])
    assert engine.status_code == 401
    assert "engine key cannot sign in" in engine.text
    assert (await web.client.get("/jobs")).status_code == 303


async def test_failed_sign_ins_share_the_api_failed_authentication_limit(
    database_url: str,
) -> None:
    limits = RateLimits(window_s=WINDOW_S, auth_failures=4)
    async with make_api(database_url, rate_limits=limits) as web:
        for _ in range(2):  # refused keys on the API and on the form count together
            assert (await web.call("GET", "/api/jobs", who=None, headers=BAD)).status_code == 401
        assert (await sign_in(web.client, "ck_wrong")).status_code == 401
        # a valid engine key is refused by the form but, as on the API (403), not counted
        assert (await sign_in(web.client, web.keys["engine"])).status_code == 401
        assert (await sign_in(web.client, web.keys["alice"])).status_code == 303
        assert (await sign_in(web.client, "ck_wrong")).status_code == 401  # the 4th failure
        throttled = await sign_in(web.client, web.keys["alice"])
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= WINDOW_S
        assert "too many failed authentication attempts" in throttled.text
        assert 'name="key"' in throttled.text  # the form again, to retry later
        # and the API refuses this address too (alice2 was never validated by this process)
        api = await web.call("GET", "/api/jobs", who="alice2")
        assert api.status_code == 429
        assert 1 <= int(api.headers["retry-after"]) <= WINDOW_S


async def test_dashboard_requests_spend_the_key_request_budget(database_url: str) -> None:
    async with make_api(database_url, rate_limits=RateLimits(window_s=WINDOW_S, user=5)) as web:
        assert (await sign_in(web.client, web.keys["alice"])).status_code == 303
        for _ in range(3):
            assert (await web.client.get("/jobs")).status_code == 200
        assert (await web.call("GET", "/api/jobs")).status_code == 200  # the same key: 4
        fragment = await web.client.get("/jobs/table", headers={"X-Fragment": "1"})
        assert fragment.status_code == 200  # 5: the budget is spent
        page = await web.client.get("/jobs")
        assert page.status_code == 429
        assert 1 <= int(page.headers["retry-after"]) <= WINDOW_S
        assert "Request budget of this key spent (5 per 3600 s)" in page.text
        fragment = await web.client.get("/jobs/table", headers={"X-Fragment": "1"})
        assert fragment.status_code == 429
        assert (await web.call("GET", "/api/jobs")).status_code == 429
        # another key (and its session) has its own budget
        other = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=web.app), base_url="http://test"
        )
        async with other:
            await sign_in(other, web.keys["alice2"])
            assert (await other.get("/jobs")).status_code == 200


async def test_revoking_the_key_ends_its_sessions(web: Api) -> None:
    await sign_in(web.client, web.keys["alice2"])
    assert (await web.client.get("/jobs")).status_code == 200
    keys = (await web.call("GET", "/api/admin/keys", "admin")).json()
    alice2 = next(k for k in keys if web.keys["alice2"].startswith(k["prefix"]))
    revoked = await web.call("DELETE", f"/api/admin/keys/{alice2['id']}", "admin")
    assert revoked.status_code == 200, revoked.text
    after = await web.client.get("/jobs")
    assert after.status_code == 303
    assert after.headers["location"].startswith("/?next=")


async def test_sessions_end_after_idle_time_and_lifetime(web: Api) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [now]
    sessions = WebSessions(
        session_factory(web.app.state.db),
        web.services.keys,
        lambda: clock[0],
        idle=timedelta(minutes=30),
        lifetime=timedelta(hours=2),
    )
    token = await sessions.sign_in(web.keys["alice"])
    clock[0] = now + timedelta(minutes=29)
    assert await sessions.resolve(token) is not None  # and this request counts as activity
    clock[0] = now + timedelta(minutes=58)
    assert await sessions.resolve(token) is not None
    clock[0] = now + timedelta(minutes=89)
    assert await sessions.resolve(token) is None  # 31 idle minutes
    token = await sessions.sign_in(web.keys["alice"])
    async with web.app.state.db.connect() as conn:  # the expired one was swept
        assert await conn.scalar(sa.select(sa.func.count()).select_from(WebSession)) == 1
    for minutes in range(20, 121, 20):
        clock[0] = now + timedelta(minutes=89 + minutes)
        alive = await sessions.resolve(token)
        assert (alive is not None) == (minutes < 120)


async def test_posts_need_the_session_csrf_token(web: Api) -> None:
    job_id = await create_job(web)
    await sign_in(web.client, web.keys["alice"])
    page = await web.client.get(f"/jobs/{job_id}")
    token = csrf_of(page.text)
    for data in ({}, {"csrf_token": "x" * len(token)}):
        r = await web.client.post(f"/jobs/{job_id}/pause", data=data)
        assert r.status_code == 403
    assert (await web.call("GET", f"/api/jobs/{job_id}")).json()["status"] == "active"
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=web.app), base_url="http://test")
    async with other:  # bob's token does not work for alice's session
        await sign_in(other, web.keys["bob"])
        bob_token = csrf_of((await other.get("/jobs")).text)
    r = await web.client.post(f"/jobs/{job_id}/pause", data={"csrf_token": bob_token})
    assert r.status_code == 403
    r = await web.client.post(f"/jobs/{job_id}/pause", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await web.call("GET", f"/api/jobs/{job_id}")).json()["status"] == "paused"


async def test_sign_in_never_redirects_off_site(sqlite_api: Api) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        r = await sign_in(sqlite_api.client, sqlite_api.keys["alice"], target)
        assert r.headers["location"] == "/jobs"
    r = await sign_in(sqlite_api.client, sqlite_api.keys["alice"], "/workers")
    assert r.headers["location"] == "/workers"


async def test_fragments_answer_401_without_a_session(sqlite_api: Api) -> None:
    r = await sqlite_api.client.get("/jobs/table", headers={"X-Fragment": "1"})
    assert r.status_code == 401


async def test_edit_errors_are_the_api_messages_and_change_nothing(web: Api) -> None:
    job_id = await create_job(web)
    api = await web.call("PATCH", f"/api/jobs/{job_id}", json={"min_interval_ms": "abc"})
    assert api.status_code == 422
    await sign_in(web.client, web.keys["alice"])
    token = csrf_of((await web.client.get(f"/jobs/{job_id}")).text)
    before = await web.snapshot()
    form = {"csrf_token": token, "name": "orders", "definition": "poll", "min_interval_ms": "abc"}
    r = await web.client.post(f"/jobs/{job_id}/edit", data=form)
    assert r.status_code == 422
    assert api.json()["detail"][0]["msg"] in r.text
    assert await web.snapshot() == before
    form = {**form, "min_interval_ms": "90000", "max_interval_ms": "60000"}
    r = await web.client.post(f"/jobs/{job_id}/edit", data=form)
    assert r.status_code == 422
    assert "min_interval_ms (90000) must be &lt;= max_interval_ms (60000)" in r.text
    assert await web.snapshot() == before


async def test_endpoint_secrets_are_masked_and_kept_on_edit(web: Api) -> None:
    job_id = await create_job(web)
    created = await web.call(
        "POST",
        f"/api/jobs/{job_id}/endpoints",
        json={
            "name": "e",
            "url": "https://api.example.com/x",
            "headers": {"X-Api-Key": "header-secret"},
            "bearer_token": "token-secret",
        },
    )
    endpoint_id = created.json()["id"]
    stored = sa.select(Endpoint.headers, Endpoint.bearer_token).where(Endpoint.id == endpoint_id)
    async with web.app.state.db.connect() as conn:
        ciphertext = (await conn.execute(stored)).one()
    await sign_in(web.client, web.keys["alice"])
    page = await web.client.get(f"/jobs/{job_id}")
    assert "header-secret" not in page.text
    assert "token-secret" not in page.text
    assert "X-Api-Key: ***" in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "name": "renamed",
        "url": "https://api.example.com/x",
        "method": "GET",
        "headers": "X-Api-Key: ***",
        "bearer_token": "",
    }
    r = await web.client.post(f"/endpoints/{endpoint_id}/edit", data=form)
    assert r.status_code == 303, r.text
    async with web.app.state.db.connect() as conn:
        assert (await conn.execute(stored)).one() == ciphertext
    shown = await web.call("GET", f"/api/endpoints/{endpoint_id}")
    assert shown.json()["name"] == "renamed"
    assert shown.json()["bearer_token"] == "***"


async def test_run_page_escapes_and_caps_response_bodies(web: Api) -> None:
    job_id = await create_job(web)
    run_id = str(uuid.uuid4())
    body = "<script>alert(1)</script>" + "x" * 10_000
    now = datetime.now(UTC)
    async with web.app.state.db.begin() as conn:
        await conn.execute(
            sa.insert(Run).values(
                id=run_id, job_id=job_id, worker_id="w", lease_token=1, status="failed",
                started_at=now, finished_at=now, duration_ms=12.0,
            )
        )  # fmt: skip
        await conn.execute(
            sa.insert(EndpointResult).values(
                run_id=run_id, job_id=job_id, endpoint_id="gone", status="failure",
                status_code=500, attempts=3, duration_ms=5.0, response_body=body,
                error="HTTP 500", error_category="http_5xx",
            )
        )  # fmt: skip
    await sign_in(web.client, web.keys["alice"])
    page = await web.client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "x" * 5000 not in page.text
    assert "more characters" in page.text
    assert "http_5xx" in page.text
    bob = httpx.AsyncClient(transport=httpx.ASGITransport(app=web.app), base_url="http://test")
    async with bob:
        await sign_in(bob, web.keys["bob"])
        assert (await bob.get(f"/runs/{run_id}")).status_code == 404
        assert (await bob.get(f"/jobs/{job_id}")).status_code == 404
        assert job_id not in (await bob.get("/jobs")).text


async def test_search_and_status_filter(web: Api) -> None:
    await create_job(web, name="alpha_1")
    await create_job(web, name="beta%")
    paused = await create_job(web, name="gamma")
    await web.call("POST", f"/api/jobs/{paused}/pause")
    await sign_in(web.client, web.keys["alice"])
    page = (await web.client.get("/jobs", params={"q": "%"})).text
    assert "beta%" in page
    assert "alpha_1" not in page
    page = (await web.client.get("/jobs", params={"status": "paused"})).text
    assert "gamma" in page
    assert "beta%" not in page
    async with web.app.state.db.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(Job)) == 3


async def test_static_assets_are_served_from_the_package(sqlite_api: Api) -> None:
    for path, kind in (("/static/app.css", "text/css"), ("/static/app.js", "javascript")):
        r = await sqlite_api.client.get(path)
        assert r.status_code == 200
        assert kind in r.headers["content-type"]
    page = (await sqlite_api.client.get("/")).text
    assert '<script src="/static/app.js"' in page
    assert "<style" not in page
    assert " style=" not in page
    assert "onclick" not in page


async def test_endpoints_and_notes_through_the_forms(web: Api) -> None:
    job_id = await create_job(web)
    await sign_in(web.client, web.keys["alice"])
    token = csrf_of((await web.client.get(f"/jobs/{job_id}")).text)
    form = {
        "csrf_token": token,
        "name": "backlog",
        "url": "https://api.example.com/backlog",
        "method": "POST",
        "headers": "X-Api-Key: k1",
        "body": '{"limit": 5}',
        "timeout_ms": "5000",
    }
    r = await web.client.post(f"/jobs/{job_id}/endpoints", data=form)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/jobs/{job_id}?done=endpoint-added"
    (endpoint,) = (await web.call("GET", f"/api/jobs/{job_id}/endpoints")).json()
    assert (endpoint["method"], endpoint["body"], endpoint["timeout_ms"]) == (
        "POST",
        {"limit": 5},
        5000,
    )
    assert endpoint["headers"] == {"X-Api-Key": "***"}
    bad = await web.client.post(f"/jobs/{job_id}/endpoints", data={**form, "url": "ftp://x"})
    assert bad.status_code == 422
    api = await web.call(
        "POST", f"/api/jobs/{job_id}/endpoints", json={"name": "b", "url": "ftp://x"}
    )
    assert api.json()["detail"][0]["msg"].replace("'", "&#39;") in bad.text
    r = await web.client.post(
        f"/jobs/{job_id}/messages", data={"csrf_token": token, "content": "busy week"}
    )
    assert r.status_code == 303
    async with web.app.state.db.connect() as conn:
        notes = (await conn.execute(sa.select(Message.content, Message.source))).all()
    assert [tuple(n) for n in notes] == [("busy week", "user")]
    r = await web.client.post(f"/endpoints/{endpoint['id']}/delete", data={"csrf_token": token})
    assert r.status_code == 303
    assert (await web.call("GET", f"/api/jobs/{job_id}/endpoints")).json() == []
