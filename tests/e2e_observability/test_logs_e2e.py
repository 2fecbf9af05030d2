"""JSON (and text) logs of a real run: every line written while the job runs carries the
correlation fields, and no secret — endpoint header values, bearer tokens, the job's default
headers, the AI key — appears anywhere: at DEBUG with nothing sampled out, with the endpoint
echoing the secrets back (into stored results and the AI prompt) and a careless hook logging
them outright."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from cronicorn.ai import OpenAIPlanner, RulesPlanner
from cronicorn.ai.config import AIAgentConfig
from cronicorn.engine.engine import SchedulingEngine
from cronicorn.engine.events import EngineEvent
from cronicorn.executor import HttpExecutor
from cronicorn.observability import configure_logging
from cronicorn.observability.redaction import clear_secrets
from cronicorn.store.local_backend import LocalSchedulerBackend
from cronicorn.store.secrets import SecretBox
from tests.e2e_observability.conftest import EndpointDef, EndpointServer, add_jobs, config
from tests.fakes.fake_openai import FakeOpenAI, Reply

HEADER_SECRET = "hdr-5ecret-Zq81x"
BEARER_SECRET = "bearer-5ecret-Lp07w"
DEFAULT_SECRET = "default-5ecret-Km33v"
AI_KEY = "sk-ai-5ecret-Tt19u"
SECRETS = (HEADER_SECRET, BEARER_SECRET, DEFAULT_SECRET, AI_KEY)
WORKER = "worker-logs-1"
careless = logging.getLogger("tests.careless_plugin")


class Capture:
    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler: logging.Handler | None = None

    def start(self, fmt: str) -> None:
        self.handler = configure_logging(
            level="DEBUG",
            fmt="json" if fmt == "json" else "text",
            sampling_rate=1.0,
            stream=self.stream,
        )

    def mark(self) -> int:
        return len(self.stream.getvalue())

    def since(self, offset: int) -> str:
        return self.stream.getvalue()[offset:]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """DEBUG everywhere, the OpenAI SDK included (as with OPENAI_LOG=debug)."""
    root, sdk = logging.getLogger(), logging.getLogger("openai")
    levels = root.level, sdk.level
    sdk.setLevel(logging.DEBUG)
    cap = Capture()
    yield cap
    if cap.handler is not None:
        root.removeHandler(cap.handler)
    root.setLevel(levels[0])
    sdk.setLevel(levels[1])
    clear_secrets()


async def run_one_job(
    db: AsyncEngine, box: SecretBox, server: EndpointServer, capture: Capture, fmt: str
) -> tuple[str, str]:
    """Seed one job with secrets everywhere, run it (AI plan with one repair, an endpoint
    that fails and is retried, one that echoes its headers); return (job id, log text)."""
    endpoints = [
        EndpointDef("/echo", headers={"X-Api-Key": HEADER_SECRET}, bearer_token=BEARER_SECRET),
        EndpointDef("/fail", name="flaky", headers={"Content-Type": "application/json"}),
    ]
    [job_id] = await add_jobs(
        db, box, server, endpoints, default_headers={"X-Tenant-Token": DEFAULT_SECRET}
    )
    clear_secrets()  # seeding encrypted (and registered) them: only the run may protect them
    capture.start(fmt)
    async with FakeOpenAI(auto=True, api_key=AI_KEY) as fake:
        fake.enqueue(Reply.text(f'{{"oops": "{HEADER_SECRET}"'))  # invalid, secret-bearing
        cfg = config(execution={"max_endpoint_retries": 1}, events={"on_job_start": careless_hook})
        ai = AIAgentConfig(api_key=SecretStr(AI_KEY), base_url=fake.base_url, max_retries=0)
        backend, executor = LocalSchedulerBackend(db, box), HttpExecutor(cfg.execution)
        planner = OpenAIPlanner(ai, fallback=RulesPlanner())
        engine = SchedulingEngine(
            cfg,
            backend=backend,
            planner=planner,
            executor=executor,
            worker_id=WORKER,
            owned=[backend, executor, planner],
        )
        try:
            start = capture.mark()
            result = await engine.process_cycle()
            text = capture.since(start)
        finally:
            await engine.stop()
        assert len(fake.requests) == 3  # plan, its repair, schedule
    assert result.jobs_processed == 1
    # The secrets really travelled: the server got them, and echoed them back.
    sent = {k.lower(): v for k, v in server.headers_seen[0].items()}
    assert sent["x-api-key"] == HEADER_SECRET
    assert sent["authorization"] == f"Bearer {BEARER_SECRET}"
    assert sent["x-tenant-token"] == DEFAULT_SECRET
    assert server.count("/fail") == 2
    return job_id, text


def careless_hook(event: EngineEvent) -> None:
    """User code that logs what it should not: the redaction must catch it, and the line
    (written inside the run) must carry the run's correlation fields like any other."""
    careless.info("job %s uses %s and %s", event.job_id, HEADER_SECRET, DEFAULT_SECRET)
    careless.info("calling with Authorization: Bearer %s", BEARER_SECRET)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"secret {secret!r} leaked into the log"


async def test_json_log_lines_of_a_run_carry_correlation_fields_and_no_secret(
    any_db: AsyncEngine, box: SecretBox, server: EndpointServer, capture: Capture
) -> None:
    job_id, text = await run_one_job(any_db, box, server, capture, "json")
    assert_no_secret(text)
    lines: list[dict[str, Any]] = [json.loads(line) for line in text.splitlines()]
    assert len(lines) > 10
    cycle_ids = {line.get("cycle_id") for line in lines}
    assert len(cycle_ids) == 1
    assert None not in cycle_ids
    for line in lines:
        assert line.get("worker_id") == WORKER, line
        if line["logger"] == "cronicorn.engine":  # the cycle's own start/end lines
            continue
        assert line.get("job_id") == job_id, line
        assert line.get("run_id"), line
    run_ids = {line["run_id"] for line in lines if "run_id" in line}
    assert len(run_ids) == 1
    # The run is told: plan source, the AI requests, every attempt, the retry, the outcome
    # with the next run and its source; store, planner and executor lines are included.
    messages = [line["msg"] for line in lines]
    loggers = {line["logger"] for line in lines}
    assert {"cronicorn.engine.pipeline", "cronicorn.executor", "cronicorn.ai"} <= loggers
    assert "openai._base_client" in loggers
    assert [line["msg"] for line in lines if line["logger"] == careless.name] == [
        f"job {job_id} uses *** and ***",
        "calling with Authorization: ***",
    ]
    assert any(m.startswith("cycle started: claimed 1") for m in messages)
    assert any(m.startswith("plan from ai_repaired") for m in messages)
    assert any(m.startswith("AI plan request: invalid_output") for m in messages)
    assert any(m.startswith("AI schedule request: success") for m in messages)
    assert sum(" attempt " in m for m in messages if "flaky" not in m) >= 3
    assert any("attempt 2 in" in m for m in messages)  # the retry of /fail
    end = next(line for line in lines if line["msg"].startswith("job completed"))
    assert end["next_run_source"]
    assert end["next_run_at"]
    assert end["endpoints"] == {"success": 1, "failed": 1, "skipped": 0, "aborted": 0}
    attempts = [line for line in lines if line["msg"].startswith("endpoint ") and "attempt" in line]
    assert attempts
    assert all(line.get("endpoint_id") for line in attempts)


async def test_text_log_of_a_run_has_no_secret_either(
    db: AsyncEngine, box: SecretBox, server: EndpointServer, capture: Capture
) -> None:
    job_id, text = await run_one_job(db, box, server, capture, "text")
    assert_no_secret(text)
    assert f"job_id={job_id}" in text
    assert "uses *** and ***" in text
    assert "Authorization: ***" in text
