"""Outbound request signing (issue 10): a real engine (over the real API) calls a real
receiver on 127.0.0.1, which verifies each call with the snippet printed in docs/signing.md.
Rotation makes the old secret fail at once; revocation stops signing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import sqlalchemy as sa
from aiohttp import web

from cronicorn.ai.rules_planner import RulesPlanner
from cronicorn.client import ApiSchedulerBackend
from cronicorn.engine.config import EngineConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.factory import create_scheduling_engine
from cronicorn.store.tables import Base
from tests.api.conftest import JOB, LiveServer, live_server

DOC = Path(__file__).parents[2] / "docs" / "signing.md"
Verify = Callable[[str, Any, bytes], bool]


def documented_verify() -> Verify:
    """The receiver example of docs/signing.md, exactly as printed there."""
    text = DOC.read_text()
    found = re.search(r"<!-- receiver-example.*?-->\n```python\n(.*?)```", text, re.DOTALL)
    assert found, "docs/signing.md lost its receiver example"
    code = found.group(1)
    assert len(code.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # our own documentation
    verify: Verify = namespace["verify"]
    return verify


@dataclass
class Receiver:
    url: str = ""
    calls: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((request.method, dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    def take(self) -> list[tuple[str, dict[str, str], bytes]]:
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


@dataclass
class Stack:
    server: LiveServer
    client: httpx.AsyncClient
    engine: SchedulingEngine

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.server.keys['alice']}"}
        return await self.client.request(method, self.server.url + path, headers=headers, **kwargs)


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as exits:
        server = await exits.enter_async_context(live_server(database_url))
        client = await exits.enter_async_context(httpx.AsyncClient(timeout=10))
        backend = ApiSchedulerBackend(server.url, server.keys["engine"])
        exits.push_async_callback(backend.close)
        config = EngineConfig.model_validate(
            {"execution": {"allowed_hosts": ["127.0.0.1"], "max_endpoint_retries": 0}}
        )
        engine = create_scheduling_engine(config, backend=backend, planner=RulesPlanner())
        exits.push_async_callback(engine.stop)
        yield Stack(server, client, engine)


async def job_calling(stack: Stack, receiver: Receiver) -> str:
    job = (await stack.call("POST", "/api/jobs", json={**JOB, "interval_ms": 3_600_000})).json()
    for body in (
        {"name": "get", "url": f"{receiver.url}/get?x=1"},
        {"name": "post", "url": f"{receiver.url}/post", "method": "POST", "body": {"a": "é"}},
    ):
        r = await stack.call("POST", f"/api/jobs/{job['id']}/endpoints", json=body)
        assert r.status_code == 201, r.text
    return str(job["id"])


async def run_once(stack: Stack, receiver: Receiver, job_id: str) -> list[Any]:
    assert (await stack.call("POST", f"/api/jobs/{job_id}/run-now")).status_code == 200
    result = await stack.engine.process_cycle()
    assert result.jobs_processed == 1, result
    calls = receiver.take()
    assert sorted(method for method, _, _ in calls) == ["GET", "POST"]
    return calls


async def test_calls_verify_with_the_documented_snippet_and_rotation_kills_the_old_secret(
    stack: Stack, receiver: Receiver
) -> None:
    verify = documented_verify()
    shown = (await stack.call("GET", "/api/signing-key")).json()
    secret = shown["secret"]
    assert secret
    assert shown["status"] == "active"
    assert (await stack.call("GET", "/api/signing-key")).json()["secret"] is None  # once
    job_id = await job_calling(stack, receiver)

    for method, headers, body in await run_once(stack, receiver, job_id):
        assert verify(secret, headers, body), (method, headers)
        assert headers["X-Cronicorn-Signature"].startswith("sha256=")
        assert (body == b"") == (method == "GET")
        assert not verify(secret, headers, body + b" ")  # the body is covered

    rotated = await stack.call("POST", "/api/signing-key")
    assert rotated.status_code == 201
    new_secret = rotated.json()["secret"]
    assert new_secret not in (None, secret)
    assert rotated.json()["key_id"] != shown["key_id"]
    for _method, headers, body in await run_once(stack, receiver, job_id):
        assert verify(new_secret, headers, body)
        assert not verify(secret, headers, body)  # the old secret fails at once

    revoked = (await stack.call("DELETE", "/api/signing-key")).json()
    assert revoked["status"] == "revoked"
    assert revoked["secret"] is None
    for _method, headers, _body in await run_once(stack, receiver, job_id):
        assert "X-Cronicorn-Signature" not in headers
        assert "X-Cronicorn-Timestamp" not in headers
    assert (await stack.call("GET", "/api/signing-key")).json()["status"] == "revoked"


async def test_key_created_by_the_first_claim_is_revealed_by_the_first_get(
    stack: Stack, receiver: Receiver
) -> None:
    verify = documented_verify()
    job_id = await job_calling(stack, receiver)
    calls = await run_once(stack, receiver, job_id)  # the tenant never asked for a key
    secret = (await stack.call("GET", "/api/signing-key")).json()["secret"]
    assert secret
    for _method, headers, body in calls:
        assert verify(secret, headers, body)
    # stored encrypted only: the plaintext appears in no row of any table
    async with stack.server.app.state.db.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in (await conn.execute(sa.select(table))).all():
                assert secret not in repr(tuple(row)), table.name
