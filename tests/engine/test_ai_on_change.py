"""AI on change (issue 11), end to end in one process: jobs made and read through the REST
API (the real app over ASGI), the real engine with the real `OpenAIPlanner` (the official SDK
against the fake OpenAI server), the real `HttpExecutor` against a shop on 127.0.0.1, and the
real store. A fake clock drives the engine so 30 runs take seconds; the API's own clock is
the wall clock, which the engine never compares with its own.

Numbers printed with `-s` (calls per run, request sizes) are the ones reported in docs/ai.md.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cronicorn.ai.openai_planner import OpenAIPlanner
from cronicorn.ai.rules_planner import RulesPlanner
from cronicorn.client.api_backend import ApiSchedulerBackend
from cronicorn.demo import demo_job_spec, split_spec, start_target
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.executor import HttpExecutor
from cronicorn.runtime.clock import SystemClock
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.api.conftest import SECRET_KEY, Api, live_server
from tests.engine.conftest import engine_config
from tests.fakes.clock import FakeClock
from tests.fakes.fake_openai import FakeOpenAI, Reply, auto_reply

PAGE_ORDERS = 24
HIDDEN_TOTAL = 987_654
"""A value at the very end of the orders page, past its first 2 KB."""


@dataclass
class Shop:
    """A local service whose answers carry noise (timestamps, request ids, epoch times) on
    every call; `backlog` is what a material change changes."""

    base_url: str = ""
    backlog: int = 3
    down: bool = False
    calls: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def orders_page(self) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        pending = min(self.backlog, PAGE_ORDERS)
        orders = [
            {
                "id": f"ord-{i:04d}",
                "state": "pending" if i < pending else "shipped",
                "amount": 10 + i,
                "customer": f"customer {i % 7}",
                "updated_at": now,
            }
            for i in range(PAGE_ORDERS)
        ]
        return {
            "generated_at": now,
            "request_id": str(uuid.uuid4()),
            "page": 1,
            "backlog": self.backlog,
            "orders": orders,
            "totals": {"lifetime_orders": HIDDEN_TOTAL},
        }


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    state = Shop()

    async def handle(request: web.Request) -> web.Response:
        state.calls[request.path] += 1
        if request.path == "/orders":
            if state.down:
                return web.json_response({"error": "unavailable"}, status=503)
            return web.json_response(state.orders_page())
        if request.path == "/health":
            return web.json_response({"status": "ok", "checked_at": datetime.now(UTC).isoformat()})
        if request.path == "/stats":
            return web.json_response(
                {"count": 100, "ts": int(datetime.now(UTC).timestamp() * 1000),
                 "trace_id": uuid.uuid4().hex}
            )  # fmt: skip
        if request.path == "/backlog":
            return web.json_response({"backlog": state.backlog})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.base_url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


class Harness:
    """The engine over the API's database, with the fake clock; one `run()` per run."""

    def __init__(self, api: Api, fake_ai: FakeOpenAI | None, **ai_agent: Any) -> None:
        self.api = api
        self.clock = FakeClock(datetime.now(UTC) + timedelta(seconds=1))
        self.backend = LocalSchedulerBackend(
            api.app.state.db, SecretBox(SECRET_KEY), clock=self.clock, listen=False
        )
        if fake_ai is not None:
            ai_agent = {"api_key": "sk-test", "base_url": fake_ai.base_url, **ai_agent}
        config = engine_config(ai_agent=ai_agent)
        self.executor = HttpExecutor(config.execution)
        self.planner: OpenAIPlanner | RulesPlanner = (
            OpenAIPlanner(config.ai_agent, clock=self.clock)
            if fake_ai is not None
            else RulesPlanner(config.scheduler.rules_strategy)
        )
        self.engine = SchedulingEngine(
            config,
            backend=self.backend,
            planner=self.planner,
            executor=self.executor,
            clock=self.clock,
        )

    async def close(self) -> None:
        await self.planner.close()
        await self.executor.close()
        await self.backend.close()

    async def run(self, job_id: str) -> dict[str, Any]:
        """Move the clock to the job's next run (at least 1 s on, so runs never share a
        start time), run one cycle, return the run (API)."""
        job = await self.get(f"/api/jobs/{job_id}")
        due = datetime.fromisoformat(job["next_run_at"])
        self.clock.advance(max(1.0, (due - self.clock.now()).total_seconds()))
        result = await self.engine.process_cycle()
        assert result.jobs_processed == 1, result
        runs = await self.get(f"/api/jobs/{job_id}/runs?limit=1")
        run: dict[str, Any] = await self.get(f"/api/runs/{runs[0]['id']}")
        return run

    async def get(self, path: str) -> Any:
        r = await self.api.call("GET", path)
        assert r.status_code == 200, r.text
        return r.json()

    async def send(self, method: str, path: str, body: Any = None) -> Any:
        r = await self.api.call(method, path, json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()

    async def add_job(self, endpoints: list[dict[str, Any]], **job: Any) -> str:
        """A job with `endpoints`, created through the API (fields as keyword overrides)."""
        body = {"name": "orders", "definition": "watch the orders backlog"}
        created = await self.send("POST", "/api/jobs", {**body, "min_interval_ms": 10_000, **job})
        for endpoint in endpoints:
            await self.send("POST", f"/api/jobs/{created['id']}/endpoints", endpoint)
        return str(created["id"])


def three_endpoints(shop: Shop) -> list[dict[str, Any]]:
    return [
        {"name": "orders", "url": shop.url("/orders")},
        {"name": "health", "url": shop.url("/health")},
        {"name": "stats", "url": shop.url("/stats")},
    ]


def request_size(body: dict[str, Any]) -> int:
    return len(json.dumps(body["messages"]))


@dataclass
class Measured:
    runs: list[dict[str, Any]]
    calls: int
    sizes: dict[str, list[int]]

    @property
    def calls_per_run(self) -> float:
        return self.calls / len(self.runs)

    def ratio(self, phase: str | None = None) -> float:
        sizes = self.sizes[phase] if phase else [*self.sizes["plan"], *self.sizes["schedule"]]
        return max(sizes) / min(sizes)


async def measure(h: Harness, fake: FakeOpenAI, job_id: str, n: int, shop: Shop,
                  change_at: int | None = None) -> Measured:  # fmt: skip
    runs = []
    for i in range(n):
        if change_at is not None and i == change_at:
            shop.backlog = 40
        runs.append(await h.run(job_id))
    sizes: dict[str, list[int]] = {"plan": [], "schedule": []}
    for req in fake.requests:
        phase = (
            "plan"
            if req.body["response_format"]["json_schema"]["name"].endswith("plan")
            else "schedule"
        )
        sizes[phase].append(request_size(req.body))
    return Measured(runs, len(fake.requests), sizes)


# -- the "Done when" measurements ----------------------------------------------------------


async def test_steady_job_reuses_the_decision_and_keeps_prompts_bounded(
    api: Api, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    # A 10-minute decision lifetime at the fake model's 1-minute cadence: the model is asked
    # again at runs 11 and 21 (trigger `expired`), so prompt sizes are compared across runs.
    h = Harness(api, fake_ai, decision_ttl_ms=600_000)
    try:
        job_id = await h.add_job(three_endpoints(shop))
        m = await measure(h, fake_ai, job_id, 30, shop)
    finally:
        await h.close()
    triggers = [r["ai_trigger"] for r in m.runs]
    asked = [i for i, t in enumerate(triggers) if t is not None]
    assert asked == [0, 10, 20], triggers
    assert triggers[0] == "no_decision"
    assert triggers[10] == triggers[20] == "expired"
    reused = [r for i, r in enumerate(m.runs) if i not in asked]
    assert all(r["ai_calls"] == 0 for r in reused)
    assert {r["schedule"]["source"] for r in reused} == {"ai_reused"}
    assert {r["plan_source"] for r in reused} == {"ai_reused"}
    assert all(r["success_count"] == 3 for r in m.runs)
    assert m.calls_per_run <= 0.25
    # Reused runs write no summary: one summary per AI run only.
    messages = await h.get(f"/api/jobs/{job_id}/messages?limit=100")
    assert sum(1 for msg in messages if msg["source"] == "engine") == 3
    ratios = {phase: m.ratio(phase) for phase in ("plan", "schedule")}
    print(
        f"\non_change steady: {m.calls} model calls in 30 runs = {m.calls_per_run:.3f}/run; "
        f"request chars plan {m.sizes['plan']} schedule {m.sizes['schedule']}; "
        f"max/min plan {ratios['plan']:.2f}, schedule {ratios['schedule']:.2f}, "
        f"all requests {m.ratio():.2f}"
    )
    # Per phase, over every request of the 30 runs (the first plan request, with no past
    # results yet, included): history does not make prompts grow.
    assert ratios["schedule"] <= 1.5
    assert ratios["plan"] <= 1.5


async def test_every_run_mode_keeps_two_calls_per_run(
    api: Api, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    h = Harness(api, fake_ai, mode="every_run")
    try:
        job_id = await h.add_job(three_endpoints(shop))
        m = await measure(h, fake_ai, job_id, 30, shop)
    finally:
        await h.close()
    assert m.calls_per_run == 2.0
    assert {r["ai_trigger"] for r in m.runs} == {"every_run"}
    assert {r["schedule"]["source"] for r in m.runs} == {"ai"}
    print(
        f"\nevery_run: {m.calls} model calls in 30 runs = {m.calls_per_run:.3f}/run; "
        f"request chars plan {m.sizes['plan'][0]} → {m.sizes['plan'][-1]}, schedule "
        f"{m.sizes['schedule'][0]} → {m.sizes['schedule'][-1]}; all requests max/min "
        f"{m.ratio():.2f}"
    )


async def test_job_ai_mode_overrides_the_engine_mode(
    api: Api, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    h = Harness(api, fake_ai)  # engine default: on_change
    try:
        job_id = await h.add_job(three_endpoints(shop), ai_mode="every_run")
        runs = [await h.run(job_id) for _ in range(3)]
    finally:
        await h.close()
    assert [r["ai_calls"] for r in runs] == [2, 2, 2]
    assert (await h.get(f"/api/jobs/{job_id}"))["ai_mode"] == "every_run"


async def test_material_change_brings_the_model_back_within_the_run(
    api: Api, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    h = Harness(api, fake_ai)
    try:
        job_id = await h.add_job(three_endpoints(shop))
        m = await measure(h, fake_ai, job_id, 30, shop, change_at=15)
    finally:
        await h.close()
    triggers = [
        (i, r["ai_trigger"], r["ai_calls"]) for i, r in enumerate(m.runs) if r["ai_trigger"]
    ]
    # Run 15 sees the backlog jump after executing: its results go to phase 2 at once (one
    # call); run 16 re-plans (both phases); then the new decision is reused.
    assert triggers == [
        (0, "no_decision", 2),
        (15, "response_changed", 1),
        (16, "response_changed", 2),
    ], triggers
    assert m.runs[15]["schedule"]["source"] == "ai"
    assert m.runs[17]["schedule"]["source"] == "ai_reused"
    change_prompt = fake_ai.requests[2].text
    assert "response_changed" in change_prompt
    assert "backlog: 3 → 40" in change_prompt
    assert m.calls_per_run <= 0.25
    print(f"\non_change with one change: {m.calls} calls in 30 runs = {m.calls_per_run:.3f}/run")


async def test_replan_new_message_and_edit_each_ask_the_model(
    api: Api, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    h = Harness(api, fake_ai)
    try:
        job_id = await h.add_job(three_endpoints(shop))
        first = await h.run(job_id)
        reused = await h.run(job_id)
        await h.send("POST", f"/api/jobs/{job_id}/run-now", {"replan": True})
        replanned = await h.run(job_id)
        await h.send("POST", f"/api/jobs/{job_id}/messages", {"content": "check more often"})
        messaged = await h.run(job_id)
        await h.send("PATCH", f"/api/jobs/{job_id}", {"definition": "watch it closely"})
        edited = await h.run(job_id)
        plain = await h.send("POST", f"/api/jobs/{job_id}/run-now")
        again = await h.run(job_id)
    finally:
        await h.close()
    assert plain["id"] == job_id
    assert [r["ai_trigger"] for r in (first, reused, replanned, messaged, edited, again)] == [
        "no_decision",
        None,
        "replan_requested",
        "new_message",
        "job_edited",
        None,
    ]
    bad = await api.call("POST", f"/api/jobs/{job_id}/run-now", json={"replan": "yes"})
    assert bad.status_code == 422
    assert "replan" in bad.text


async def test_failing_endpoint_starts_a_streak(api: Api, fake_ai: FakeOpenAI, shop: Shop) -> None:
    h = Harness(api, fake_ai)
    try:
        job_id = await h.add_job([{"name": "orders", "url": shop.url("/orders")}])
        ok = [await h.run(job_id), await h.run(job_id)]
        shop.down = True
        failing = [await h.run(job_id), await h.run(job_id)]
        shop.down = False
        recovered = await h.run(job_id)
    finally:
        await h.close()
    assert [r["ai_trigger"] for r in ok] == ["no_decision", None]
    assert failing[0]["ai_trigger"] == "failure_streak_started"
    assert failing[0]["ai_calls"] == 1
    assert failing[1]["ai_trigger"] == "failure_streak_started"  # the next run re-plans
    assert recovered["ai_trigger"] == "failure_streak_ended"


# -- the model sees the data ---------------------------------------------------------------


async def test_model_reads_a_value_past_the_first_2kb_of_a_3kb_body(
    api: Api, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    page = json.dumps(shop.orders_page())
    assert len(page) > 3_000
    assert page.index(str(HIDDEN_TOTAL)) > 2_048
    seen: list[str] = []

    def schedule_reading_the_total(body: dict[str, Any]) -> Reply:
        prompt = "\n".join(str(m["content"]) for m in body["messages"])
        seen.append(prompt)
        return auto_reply(body, 60)

    h = Harness(api, fake_ai)
    try:
        endpoints = three_endpoints(shop)
        endpoints[0]["ai_view"] = {"pending": "length(orders[?state=='pending'])"}
        job_id = await h.add_job(endpoints)
        fake_ai.enqueue(lambda body: auto_reply(body, 60), schedule_reading_the_total)
        await h.run(job_id)
        await h.run(job_id)
        fake_ai.enqueue(schedule_reading_the_total, schedule_reading_the_total)
        await h.send("POST", f"/api/jobs/{job_id}/run-now", {"replan": True})
        await h.run(job_id)
    finally:
        await h.close()
    fresh = seen[0]  # phase 2 of run 1: the fresh 3 KB page, compacted
    assert f'"lifetime_orders":{HIDDEN_TOTAL}' in fresh
    assert "<24 items" in fresh
    assert "state: shipped 21, pending 3" in fresh
    assert 'view: {"pending":3}' in fresh
    plan = seen[1]  # phase 1 of run 3: the past results, compacted at 500 characters
    assert f'"lifetime_orders":{HIDDEN_TOTAL}' in plan
    assert 'view: {"pending":3}' in plan


# -- safe without the model ----------------------------------------------------------------


async def test_rules_planner_calls_a_conditional_endpoint_only_when_it_holds(
    api: Api, shop: Shop
) -> None:
    h = Harness(api, None)
    endpoints = [
        {"name": "backlog", "url": shop.url("/backlog")},
        {
            "name": "scale-up",
            "url": shop.url("/scale-up"),
            "method": "POST",
            "condition": "backlog.body.backlog > `20`",
        },
    ]
    levels = [3, 25, 10, 50, 21, 20]
    try:
        job_id = await h.add_job(endpoints, interval_ms=10_000)
        runs = []
        for level in levels:
            shop.backlog = level
            before = shop.calls["/scale-up"]
            run = await h.run(job_id)
            runs.append((run, shop.calls["/scale-up"] - before))
    finally:
        await h.close()
    assert [called for _, called in runs] == [int(level > 20) for level in levels]
    for (run, called), level in zip(runs, levels, strict=True):
        hook = run["results"][1]
        assert run["ai_trigger"] is None
        assert run["plan_source"] == "rules"
        if called:
            assert hook["status"] == "success"
        else:
            assert (hook["status"], hook["error_category"]) == ("skipped", "condition_not_met")
            assert "value: False" in hook["error"]
            assert level <= 20
        assert run["status"] == "completed"


async def test_conditions_and_views_are_validated(api: Api) -> None:
    job = (await api.call("POST", "/api/jobs", json={"name": "j", "definition": "d"})).json()
    base = {"name": "e", "url": "https://api.example.com/x"}
    for field_name, value in (
        ("condition", "backlog.body.backlog >"),
        ("condition", ""),
        ("ai_view", {"pending": "length(orders[?"}),
        ("ai_view", ["ok", "foo(("]),
        ("ai_view", "backlog"),
    ):
        before = await api.snapshot()
        r = await api.call(
            "POST", f"/api/jobs/{job['id']}/endpoints", json={**base, field_name: value}
        )
        assert r.status_code == 422, (field_name, value, r.text)
        assert field_name in r.text
        assert await api.snapshot() == before
    good = {**base, "condition": "a.ok", "ai_view": ["length(orders)"]}
    r = await api.call("POST", f"/api/jobs/{job['id']}/endpoints", json=good)
    assert r.status_code == 201, r.text
    assert (r.json()["condition"], r.json()["ai_view"]) == ("a.ok", ["length(orders)"])
    bad_mode = await api.call("PATCH", f"/api/jobs/{job['id']}", json={"ai_mode": "hourly"})
    assert bad_mode.status_code == 422
    assert "ai_mode" in bad_mode.text


# -- across processes: the decision travels through the API backend ---------------------------


async def test_the_decision_is_kept_through_the_api_backend(
    database_url: str, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    """The engine ↔ API wire (claim context in, completion out) carries the decision: a
    second run reuses it, a `replan` run-now asks again."""
    config = engine_config(ai_agent={"api_key": "sk-test", "base_url": fake_ai.base_url})
    async with live_server(database_url) as server, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bearer {server.keys['alice']}"}

        async def call(method: str, path: str, body: Any = None) -> Any:
            async with http.request(method, server.url + path, json=body, headers=auth) as r:
                assert r.status < 300, await r.text()
                return await r.json()

        job = await call("POST", "/api/jobs", {"name": "j", "definition": "watch orders"})
        for endpoint in three_endpoints(shop):
            await call("POST", f"/api/jobs/{job['id']}/endpoints", endpoint)
        backend = ApiSchedulerBackend(server.url, server.keys["engine"])
        planner = OpenAIPlanner(config.ai_agent)
        executor = HttpExecutor(config.execution)
        engine = SchedulingEngine(
            config, backend=backend, planner=planner, executor=executor, clock=SystemClock()
        )
        runs = []
        try:
            for replan in (None, False, True):
                if replan is not None:
                    await call("POST", f"/api/jobs/{job['id']}/run-now", {"replan": replan})
                assert (await engine.process_cycle()).jobs_processed == 1
                latest = await call("GET", f"/api/jobs/{job['id']}/runs?limit=1")
                runs.append(latest[0])
        finally:
            await planner.close()
            await executor.close()
            await backend.close()
    assert [(r["ai_trigger"], r["ai_calls"]) for r in runs] == [
        ("no_decision", 2),
        (None, 0),
        ("replan_requested", 2),
    ]
    assert runs[1]["schedule"]["source"] == "ai_reused"
    assert len(fake_ai.requests) == 4


async def test_demo_without_a_key_calls_its_hook_only_when_the_backlog_is_high(
    api: Api,
) -> None:
    target = await start_target()
    h = Harness(api, None)
    try:
        job_body, endpoints = split_spec(demo_job_spec(target.base_url))
        created = await h.send("POST", "/api/jobs", job_body)
        for endpoint in endpoints:
            await h.send("POST", f"/api/jobs/{created['id']}/endpoints", endpoint)
        statuses = []
        for _ in range(8):
            run = await h.run(created["id"])
            statuses.append(
                (run["results"][0]["response_body"]["status"], run["results"][1]["status"])
            )
            await asyncio.sleep(1.3)  # the target's backlog moves with real time
    finally:
        await h.close()
        await target.stop()
    assert target.calls["orders"] == 8
    assert target.calls["scale_up"] == sum(1 for _, hook in statuses if hook == "success")
    assert target.calls["scale_up"] < 8, statuses
    assert all((status == "high") == (hook == "success") for status, hook in statuses), statuses


async def test_a_rules_fallback_is_not_remembered_as_an_ai_decision(
    api: Api, fake_ai: FakeOpenAI, shop: Shop
) -> None:
    h = Harness(api, fake_ai, max_retries=0)
    try:
        job_id = await h.add_job(three_endpoints(shop))
        fake_ai.enqueue(Reply.server_error(500))
        down = await h.run(job_id)
        first_ai = await h.run(job_id)
        reused = await h.run(job_id)
    finally:
        await h.close()
    assert (down["ai_trigger"], down["plan_source"], down["ai_calls"]) == (
        "no_decision",
        "rules",
        1,
    )
    assert (first_ai["ai_trigger"], first_ai["ai_calls"]) == ("no_decision", 2)
    assert (reused["ai_trigger"], reused["ai_calls"]) == (None, 0)
