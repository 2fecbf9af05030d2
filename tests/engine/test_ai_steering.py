"""Steering, pricing and inspecting the AI, end to end: jobs made and read through the REST
API (SQLite and PostgreSQL), the real engine with the real `OpenAIPlanner` against the fake
OpenAI server, the real executor against a service on 127.0.0.1, the real store.

Hints (`POST/DELETE /api/jobs/{id}/hints`, schedule source `hint`), cost in money (runs, jobs,
tenants), tenant monthly budgets (admin route; spent → rules planner), stored AI sessions
(`GET /api/runs/{id}/ai`) and decisions (`GET /api/jobs/{id}/decisions`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from cronicorn.ai.openai_planner import OpenAIPlanner
from cronicorn.client.api_backend import ApiSchedulerBackend
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.executor import HttpExecutor
from cronicorn.runtime.clock import SystemClock
from cronicorn.store.tables import AISessionRow
from tests.api.conftest import Api, live_server
from tests.engine.conftest import engine_config
from tests.engine.test_ai_on_change import Harness
from tests.fakes.fake_openai import FakeOpenAI, Reply

SECRETS = {
    "header": 'hdr-S3cret/Val+ue="x"&y',
    "bearer": "bearer-T0ken+/with=stuff",
    "default": "dflt-Secret#Value?q=1",
}


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """A service that answers with its request headers (an endpoint that leaks secrets)."""

    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"backlog": 3, "headers": dict(request.headers)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def make_job(h: Harness, url: str, **job: Any) -> str:
    """A job with one endpoint, `url` (the echo server)."""
    return await h.add_job([{"name": "echo", "url": url}], definition="watch the backlog", **job)


# -- AI sessions and decisions --------------------------------------------------------------


async def test_sessions_record_every_exchange_with_cost(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    h = Harness(api, fake_ai, decision_ttl_ms=600_000)
    try:
        job_id = await make_job(h, echo)
        asked = await h.run(job_id)
        reused = await h.run(job_id)
        sessions = await h.get(f"/api/runs/{asked['id']}/ai")
        none = await h.get(f"/api/runs/{reused['id']}/ai")
        job = await h.get(f"/api/jobs/{job_id}")
        cost = await h.get("/api/cost")
    finally:
        await h.close()
    assert [s["phase"] for s in sessions] == ["plan", "schedule"]
    assert {s["trigger"] for s in sessions} == {"no_decision"}
    assert {s["outcome"] for s in sessions} == {"success"}
    assert {s["model"] for s in sessions} == {"gpt-4o"}
    plan, schedule = sessions
    assert plan["messages"][0]["role"] == "system"
    assert "Allowed endpoint_id values" in plan["messages"][-1]["content"]
    assert plan["attempts"][0]["raw_reply"].startswith("{")
    assert plan["decision"]["calls"][0]["endpoint_id"]
    assert schedule["decision"]["next_run_at"]
    # Tokens and cost: the sessions add up to the run; gpt-4o list prices apply.
    tokens = {k: sum(s["tokens"][k] for s in sessions) for k in ("input", "output")}
    assert tokens == {"input": asked["tokens"]["input"], "output": asked["tokens"]["output"]}
    expected = (tokens["input"] * 2.5 + tokens["output"] * 10.0) / 1_000_000
    assert asked["cost_usd"] == pytest.approx(expected)
    assert sum(s["cost_usd"] for s in sessions) == pytest.approx(expected)
    assert none == []
    assert reused["cost_usd"] == 0.0
    assert job["cost"]["total_usd"] == pytest.approx(expected)
    assert job["cost"]["today_usd"] == job["cost"]["month_usd"] == job["cost"]["total_usd"]
    assert cost["month_usd"] == pytest.approx(expected)
    assert cost["total_usd"] == pytest.approx(expected)
    assert cost["budget_source"] == "none"
    assert cost["budget_exhausted"] is False


async def test_sessions_show_invalid_replies_and_repairs(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    fake_ai.enqueue(Reply.text("this is not JSON"))
    h = Harness(api, fake_ai)
    try:
        job_id = await make_job(h, echo)
        run = await h.run(job_id)
        sessions = await h.get(f"/api/runs/{run['id']}/ai")
    finally:
        await h.close()
    plan = sessions[0]
    assert plan["outcome"] == "repaired"
    assert plan["repair_attempts"] == 1
    first, second = plan["attempts"]
    assert (first["outcome"], first["kind"], first["raw_reply"]) == (
        "invalid_output",
        "schema_invalid",
        "this is not JSON",
    )
    assert first["errors"]
    assert second["outcome"] == "success"
    assert run["plan_source"] == "ai_repaired"


async def test_decisions_list_what_the_model_decided_and_how_often_it_was_reused(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    h = Harness(api, fake_ai, decision_ttl_ms=600_000)
    try:
        job_id = await make_job(h, echo)
        runs = [await h.run(job_id) for _ in range(5)]
        await h.send("POST", f"/api/jobs/{job_id}/run-now", {"replan": True})
        runs.append(await h.run(job_id))
        runs.append(await h.run(job_id))
        decisions = await h.get(f"/api/jobs/{job_id}/decisions")
        page = await h.get(f"/api/jobs/{job_id}/decisions?limit=1")
        rest = await h.get(f"/api/jobs/{job_id}/decisions?limit=1&before={page[0]['run_id']}")
        bad = await api.call("GET", f"/api/jobs/{job_id}/decisions?limit=5000")
        other = await api.call("GET", f"/api/jobs/{job_id}/decisions", who="bob")
    finally:
        await h.close()
    assert [d["run_id"] for d in decisions] == [runs[5]["id"], runs[0]["id"]]
    assert [d["trigger"] for d in decisions] == ["replan_requested", "no_decision"]
    assert [d["reused_runs"] for d in decisions] == [1, 4]
    assert all(d["made_by_model"] for d in decisions)
    assert decisions[0]["reasoning"].startswith("auto: run again")
    assert decisions[0]["confidence"] == 0.9
    assert decisions[0]["schedule_source"] == "ai"
    assert [d["run_id"] for d in [*page, *rest]] == [d["run_id"] for d in decisions]
    assert bad.status_code == 422
    assert "limit" in bad.text
    assert other.status_code == 404


async def test_sessions_are_tenant_scoped(api: Api, fake_ai: FakeOpenAI, echo: str) -> None:
    h = Harness(api, fake_ai)
    try:
        job_id = await make_job(h, echo)
        run = await h.run(job_id)
    finally:
        await h.close()
    assert (await api.call("GET", f"/api/runs/{run['id']}/ai", who="bob")).status_code == 404
    assert (await api.call("GET", "/api/runs/nope/ai")).status_code == 404
    limited = await api.call("GET", f"/api/runs/{run['id']}/ai?limit=1")
    assert [s["phase"] for s in limited.json()] == ["plan"]
    after = limited.json()[0]["id"]
    rest = await api.call("GET", f"/api/runs/{run['id']}/ai?limit=1&after={after}")
    assert [s["phase"] for s in rest.json()] == ["schedule"]


def _encodings(secret: str) -> dict[str, str]:
    raw = secret.encode()
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json-twice": json.dumps(json.dumps(secret)[1:-1])[1:-1],
        "url": quote(secret, safe=""),
        "url-lower": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe="")),
        "url_plus": quote_plus(secret),
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
    }


async def test_secrets_never_reach_the_stored_sessions(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    h = Harness(api, fake_ai, mode="every_run")
    try:
        created = await h.send(
            "POST",
            "/api/jobs",
            {
                "name": "secretive",
                "definition": "watch the backlog",
                "default_headers": {"X-Tenant-Token": SECRETS["default"]},
            },
        )
        job_id = created["id"]
        await h.send(
            "POST",
            f"/api/jobs/{job_id}/endpoints",
            {
                "name": "echo",
                "url": echo + "/orders?token=abc",
                "headers": {"X-Api-Key": SECRETS["header"]},
                "bearer_token": SECRETS["bearer"],
            },
        )
        # A user pastes a secret into a message; the model sees it only masked.
        await h.send(
            "POST", f"/api/jobs/{job_id}/messages", {"content": f"key is {SECRETS['header']}"}
        )
        for _ in range(2):
            run = await h.run(job_id)
        echoed = run["results"][0]["response_body"]["headers"]
    finally:
        await h.close()
    # The target did echo the token (its stored body is masked too, see docs/observability.md).
    assert echoed["Authorization"] == "Bearer ***"
    async with api.app.state.db.connect() as conn:
        rows = (await conn.execute(sa.select(AISessionRow))).mappings().all()
    assert len(rows) == 4
    stored = "\n".join(json.dumps(dict(row), default=str, ensure_ascii=False) for row in rows)
    stored_ascii = "\n".join(json.dumps(dict(row), default=str) for row in rows)
    assert "***" in stored
    for name, secret in SECRETS.items():
        for encoding, form in _encodings(secret).items():
            assert form not in stored, (name, encoding)
            assert form not in stored_ascii, (name, encoding)


async def test_sessions_travel_through_the_api_backend(
    database_url: str, fake_ai: FakeOpenAI, echo: str
) -> None:
    config = engine_config(ai_agent={"api_key": "sk-test", "base_url": fake_ai.base_url})
    async with live_server(database_url) as server, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {server.keys['alice']}"}

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with http.request(method, server.url + path, json=body, headers=auth) as r:
                assert r.status < 300, await r.text()
                return await r.json()

        job = await call("POST", "/api/jobs", {"name": "j", "definition": "watch"})
        await call("POST", f"/api/jobs/{job['id']}/endpoints", {"name": "e", "url": echo})
        backend = ApiSchedulerBackend(server.url, server.keys["engine"])
        planner = OpenAIPlanner(config.ai_agent)
        executor = HttpExecutor(config.execution)
        engine = SchedulingEngine(
            config, backend=backend, planner=planner, executor=executor, clock=SystemClock()
        )
        try:
            assert (await engine.process_cycle()).jobs_processed == 1
            run = (await call("GET", f"/api/jobs/{job['id']}/runs?limit=1"))[0]
            sessions = await call("GET", f"/api/runs/{run['id']}/ai")
            job_after = await call("GET", f"/api/jobs/{job['id']}")
        finally:
            await planner.close()
            await executor.close()
            await backend.close()
    assert [s["phase"] for s in sessions] == ["plan", "schedule"]
    assert run["cost_usd"] > 0
    assert job_after["cost"]["total_usd"] == pytest.approx(run["cost_usd"])


# -- budgets --------------------------------------------------------------------------------


async def test_a_spent_tenant_budget_switches_to_the_rules_planner(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    h = Harness(api, fake_ai, mode="every_run")
    try:
        job_id = await make_job(h, echo)
        first = await h.run(job_id)
        assert first["ai_calls"] == 2
        assert first["cost_usd"] > 0
        r = await api.call(
            "PUT", "/api/admin/tenants/alice/budget", who="admin",
            json={"monthly_budget_usd": first["cost_usd"] / 2},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["budget_exhausted"] is True
        assert r.json()["budget_source"] == "tenant"
        calls_before = len(fake_ai.requests)
        second = await h.run(job_id)
        errors = await h.get(f"/api/jobs/{job_id}/errors")
        cost = await h.get("/api/cost")
        refused = await api.call(
            "PUT", "/api/admin/tenants/alice/budget", json={"monthly_budget_usd": 1}
        )
        bad = await api.call(
            "PUT", "/api/admin/tenants/alice/budget", who="admin",
            json={"monthly_budget_usd": -1},
        )  # fmt: skip
        missing = await api.call(
            "PUT", "/api/admin/tenants/nobody/budget", who="admin",
            json={"monthly_budget_usd": 1},
        )  # fmt: skip
        raised = await api.call(
            "PUT", "/api/admin/tenants/alice/budget", who="admin",
            json={"monthly_budget_usd": 100},
        )  # fmt: skip
        third = await h.run(job_id)
    finally:
        await h.close()
    assert len(fake_ai.requests) == calls_before + 2  # only the third run asked
    assert (second["plan_source"], second["ai_calls"], second["cost_usd"]) == ("rules", 0, 0.0)
    assert errors == [] or all("budget" not in e["message"] for e in errors)
    assert cost["budget_exhausted"] is True
    assert refused.status_code == 403
    assert bad.status_code == 422
    assert "monthly_budget_usd" in bad.text
    assert missing.status_code == 404
    assert raised.json()["budget_exhausted"] is False
    assert third["plan_source"] == "ai"
    assert third["ai_calls"] == 2


async def test_the_default_tenant_budget_applies_when_the_tenant_has_none(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    h = Harness(api, fake_ai, tenant_monthly_budget_usd=0.0)
    try:
        job_id = await make_job(h, echo)
        run = await h.run(job_id)
    finally:
        await h.close()
    assert (run["plan_source"], run["ai_calls"]) == ("rules", 0)
    assert fake_ai.requests == []


# -- hints ----------------------------------------------------------------------------------


async def test_a_hint_steers_the_schedule_until_it_expires(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    h = Harness(api, fake_ai, mode="every_run")
    try:
        job_id = await make_job(h, echo)
        await h.run(job_id)  # the model's cadence: 60 s
        before = await h.get(f"/api/jobs/{job_id}")
        job = await h.send(
            "POST", f"/api/jobs/{job_id}/hints",
            {"interval_ms": 300_000, "ttl_ms": 3_600_000, "reason": "sale is over"},
        )  # fmt: skip
        assert job["hint"]["interval_ms"] == 300_000
        assert job["hint"]["reason"] == "sale is over"
        # An idle active job is rescheduled at once (the API's clock: now + 5 min).
        moved = datetime.fromisoformat(job["next_run_at"])
        assert moved > datetime.fromisoformat(before["next_run_at"])
        hinted = await h.run(job_id)
        prompt = fake_ai.requests[-2].text
        cleared = await h.send("DELETE", f"/api/jobs/{job_id}/hints")
        after = await h.run(job_id)
    finally:
        await h.close()
    assert hinted["schedule"]["source"] == "hint"
    finished = datetime.fromisoformat(hinted["finished_at"])
    assert datetime.fromisoformat(hinted["schedule"]["next_run_at"]) == finished + timedelta(
        minutes=5
    )
    assert "User hint" in prompt
    assert "sale is over" in prompt
    assert cleared["hint"] is None
    assert after["schedule"]["source"] == "ai"


async def test_hints_stay_inside_the_bounds_and_expire(
    api: Api, fake_ai: FakeOpenAI, echo: str
) -> None:
    h = Harness(api, fake_ai, mode="every_run")
    try:
        job_id = await make_job(h, echo, max_interval_ms=120_000)
        await h.send(
            "POST", f"/api/jobs/{job_id}/hints", {"interval_ms": 600_000, "ttl_ms": 200_000}
        )
        clamped = await h.run(job_id)
        h.clock.advance(300)  # past the hint's expiry (API time + 200 s)
        expired = await h.run(job_id)
        await h.get(f"/api/jobs/{job_id}")
    finally:
        await h.close()
    assert clamped["schedule"]["source"] == "clamped_max"
    # The engine's clock is past the expiry (the API's wall clock is not: the job still
    # shows the hint until it expires in real time).
    assert expired["schedule"]["source"] == "ai"


async def test_hint_input_is_validated_and_changes_nothing(api: Api) -> None:
    created = await api.call("POST", "/api/jobs", json={"name": "j", "definition": "d"})
    job_id = created.json()["id"]
    before = await api.snapshot()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    cases = [
        ({}, "interval_ms"),
        ({"interval_ms": 60_000, "next_run_at": "2099-01-01T00:00:00Z"}, "interval_ms"),
        ({"interval_ms": 10}, "interval_ms"),
        ({"next_run_at": past}, "next_run_at"),
        ({"next_run_at": "2099-01-01T00:00:00"}, "next_run_at"),
        ({"interval_ms": 60_000, "ttl_ms": 0}, "ttl_ms"),
        ({"interval_ms": 60_000, "reason": "x" * 501}, "reason"),
        ({"interval_ms": 60_000, "extra": 1}, "extra"),
    ]
    for body, field in cases:
        r = await api.call("POST", f"/api/jobs/{job_id}/hints", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.text, (body, r.text)
    other = await api.call(
        "POST", f"/api/jobs/{job_id}/hints", who="bob", json={"interval_ms": 60_000}
    )
    assert other.status_code == 404
    assert await api.snapshot() == before
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    ok = await api.call(
        "POST",
        f"/api/jobs/{job_id}/hints",
        json={"next_run_at": at.isoformat(), "ttl_ms": 10_800_000},
    )
    assert ok.status_code == 200, ok.text
    assert datetime.fromisoformat(ok.json()["next_run_at"]) == at
    assert datetime.fromisoformat(ok.json()["hint"]["next_run_at"]) == at
    await api.call("DELETE", f"/api/jobs/{job_id}")
    archived = await api.call("POST", f"/api/jobs/{job_id}/hints", json={"interval_ms": 60_000})
    assert archived.status_code == 409
