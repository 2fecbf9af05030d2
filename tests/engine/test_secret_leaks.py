"""No secret of a job leaves in any encoding: a real run through the API, the engine, the
OpenAI planner (real SDK, fake server) and a target that echoes everything it receives —
then every surface is searched for every encoding of every secret: API output of jobs,
endpoints, runs, errors and messages; the captured log stream; the stored bodies; the raw
bytes of the SQLite database file (and its WAL); the prompts the fake AI received.

Secrets contain `"` and `\\` so their JSON-escaped form differs from the raw one."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from aiohttp import web

from cronicorn.ai import OpenAIPlanner, RulesPlanner
from cronicorn.ai.config import AIAgentConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.executor import HttpExecutor
from cronicorn.executor.config import ExecutionConfig
from cronicorn.observability import configure_logging
from cronicorn.observability.redaction import clear_secrets
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.api.conftest import SECRET_KEY, make_api
from tests.conftest import fresh_sqlite_url
from tests.engine.conftest import engine_config
from tests.fakes.fake_openai import FakeOpenAI
from tests.leaks import leaks

DEFAULT = 'dflt"quo\\te-5d1c'
HEADER = 'hdr\\back"slash-77a2'
BEARER = 'bear"er-token-91be'
PASSWORD = "pw-url-4c0ffee"
QUERY = "qk-9988-secret"
BASIC = f"svc:{PASSWORD}"
CONFIGURED = [DEFAULT, HEADER, BEARER]
"""Stored encrypted: they may appear nowhere, the database file included."""
ALL = [*CONFIGURED, PASSWORD, QUERY, BASIC]
AT_REST = ALL
"""What the database file may not contain: everything (URL secrets are stored encrypted)."""


class Echo:
    """Answers with everything it received, in raw, JSON, URL-encoded and base64 forms."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        headers = dict(request.headers)
        self.seen.append(headers)
        dump = json.dumps({"headers": headers, "url": str(request.url)})
        encoded = base64.b64encode(dump.encode()).decode()
        body: dict[str, Any] = {
            "headers": headers,
            "url": str(request.url),
            "query": dict(request.query),
            "json_text": dump,
            "base64": encoded,
            "urlencoded": urlencode(headers),
        }
        if request.path == "/text":
            return web.Response(text=dump + "\n" + encoded + "\n" + quote(dump))
        if request.path == "/fail":
            reason = f"echo {headers.get('X-Api-Key', '')} {headers.get('Authorization', '')}"
            return web.json_response(body, status=500, reason=reason)
        return web.json_response(body)


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Echo, str]]:
    state = Echo()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield state, f"127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging("DEBUG", "json", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


async def test_no_secret_leaves_in_any_encoding(
    tmp_path: Path, echo: tuple[Echo, str], log_stream: io.StringIO
) -> None:
    clear_secrets()  # masking must not rely on secrets registered by earlier tests
    target, host = echo
    url = fresh_sqlite_url(tmp_path)
    db_file = Path(url.removeprefix("sqlite:///"))
    async with make_api(url) as api, FakeOpenAI(api_key="sk-test", auto=True) as fake:
        job = await api.call(
            "POST",
            "/api/jobs",
            json={
                "name": "echo",
                "definition": "call every endpoint",
                "interval_ms": 60_000,
                "default_headers": {"X-Tenant-Token": DEFAULT},
            },
        )
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]
        endpoints: list[dict[str, Any]] = [
            {
                "name": "userinfo",
                "url": f"http://svc:{PASSWORD}@{host}/json?api_key={QUERY}&page=2",
            },
            {
                "name": "headers",
                "url": f"http://{host}/text?token={QUERY}",
                "headers": {"X-Api-Key": HEADER},
                "bearer_token": BEARER,
            },
            {
                "name": "failing",
                "url": f"http://{host}/fail",
                "headers": {"X-Api-Key": HEADER},
                "bearer_token": BEARER,
            },
        ]
        for ep in endpoints:
            r = await api.call("POST", f"/api/jobs/{job_id}/endpoints", json=ep)
            assert r.status_code == 201, r.text

        config = AIAgentConfig.model_validate(
            {"api_key": "sk-test", "base_url": fake.base_url, "timeout_ms": 5_000}
        )
        planner = OpenAIPlanner(config, fallback=RulesPlanner())
        executor = HttpExecutor(
            ExecutionConfig(allow_private_networks=True, max_endpoint_retries=0)
        )
        backend = LocalSchedulerBackend(url, SecretBox(SECRET_KEY))
        engine = SchedulingEngine(
            engine_config(), backend=backend, planner=planner, executor=executor, worker_id="w1"
        )
        try:
            result = await engine.process_cycle()
        finally:
            await executor.close()
            await planner.close()
            await backend.close()
        assert result.jobs_processed == 1

        # the target did receive every secret: what follows must find them masked
        received = json.dumps(target.seen)
        for secret in (DEFAULT, HEADER, BEARER):
            assert json.dumps(secret)[1:-1] in received
        assert base64.b64encode(BASIC.encode()).decode() in received
        assert len(fake.requests) == 2

        outputs: dict[str, str] = {}
        for path in (
            "/api/jobs",
            f"/api/jobs/{job_id}",
            f"/api/jobs/{job_id}/endpoints",
            f"/api/jobs/{job_id}/runs",
            f"/api/jobs/{job_id}/errors",
            f"/api/jobs/{job_id}/messages",
        ):
            r = await api.call("GET", path)
            assert r.status_code == 200, (path, r.text)
            outputs[path] = r.text
        [run] = json.loads(outputs[f"/api/jobs/{job_id}/runs"])
        detail = await api.call("GET", f"/api/runs/{run['id']}")
        outputs["/api/runs/{id}"] = detail.text
        results = detail.json()["results"]
        assert len(results) == 3
        assert all(r["response_body"] is not None for r in results)
        assert "***" in detail.text  # the echoes were stored, masked
        assert any("***" in (r["error"] or "") for r in results)  # the echoing reason phrase

    api_leaks = {path: leaks(text, ALL) for path, text in outputs.items()}
    assert {p: found for p, found in api_leaks.items() if found} == {}

    logs = log_stream.getvalue()
    assert "HTTP 500" in logs or "endpoint" in logs  # the stream did capture the run
    assert leaks(logs, ALL) == []

    for request in fake.requests:
        assert leaks(request.text, ALL) == []
        assert leaks(json.dumps(request.body), ALL) == []

    files = sorted(db_file.parent.glob(db_file.name + "*"))
    assert db_file in files
    for file in files:
        assert leaks(file.read_bytes(), AT_REST) == [], file
