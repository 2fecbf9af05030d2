"""The prompt never carries a secret of the job, in any encoding: secrets with `"` and `\\`
(which JSON-escaping changes), URL query values and userinfo (also as the Basic header a
target may echo), header values echoed in response bodies, errors and history. Checked on
what the real openai SDK sent to the fake server."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from cronicorn.domain.models import (
    EndpointResult,
    EndpointSpec,
    EndpointStatus,
    JobContext,
    JobSnapshot,
    Message,
    MessageRole,
    MessageSource,
    PastResult,
)
from tests.ai.conftest import NOW, PlannerFactory, plan_json, schedule_json
from tests.fakes.fake_openai import FakeOpenAI, Reply
from tests.leaks import encodings, leaks

DEFAULT = 'dflt"quo\\te-5d1c'
HEADER = 'hdr\\back"slash-77a2'
BEARER = 'bear"er-token-91be'
PASSWORD = "pw-url-4c0ffee"
QUERY = "qk-9988-secret"
SECRETS = [DEFAULT, HEADER, BEARER, PASSWORD, QUERY, f"svc:{PASSWORD}"]


def echo_of_everything() -> dict[str, object]:
    """What a target echoing its request would answer, in several encodings."""
    basic = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()
    headers = {
        "X-Tenant-Token": DEFAULT,
        "X-Api-Key": HEADER,
        "Authorization": f"Bearer {BEARER}",
        "X-Proxy-Authorization": f"Basic {basic}",
    }
    return {
        "headers": headers,
        "url": f"https://api.example.com/orders?api_key={QUERY}&page=2",
        "query_escaped": quote(QUERY),
        "as_text": json.dumps(headers),
        "as_base64": base64.b64encode(json.dumps(headers).encode()).decode(),
        "url_encoded": quote(HEADER, safe=""),
    }


def context() -> JobContext:
    endpoint = EndpointSpec(
        id="ep-orders",
        name="Orders",
        url=f"https://svc:{PASSWORD}@api.example.com/orders?api_key={QUERY}&page=2",
        headers={"X-Api-Key": HEADER},
        bearer_token=BEARER,
    )
    job = JobSnapshot(
        id="job-1",
        tenant_id="t-1",
        name="Orders",
        definition="Poll orders.",
        interval_ms=300_000,
        min_interval_ms=10_000,
        max_interval_ms=3_600_000,
        default_headers={"X-Tenant-Token": DEFAULT},
    )
    past = PastResult(
        endpoint_id="ep-orders",
        status=EndpointStatus.SUCCESS,
        status_code=200,
        started_at=NOW,
        duration_ms=5.0,
        response_excerpt=json.dumps(echo_of_everything()),
        error=f"upstream said {json.dumps(HEADER)}",
    )
    history = (
        Message(
            role=MessageRole.USER,
            content=f"my key is {json.dumps(DEFAULT)} and {quote(QUERY)}",
            source=MessageSource.USER,
            created_at=NOW,
        ),
    )
    return JobContext(job=job, endpoints=(endpoint,), messages=history, recent_results=(past,))


async def test_no_secret_encoding_reaches_the_prompt(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(
        Reply.json(plan_json("ep-orders")), Reply.json(schedule_json("2024-05-01T12:10:00Z"))
    )
    planner = make_planner()
    ctx = context()
    decision = await planner.plan(ctx)
    result = EndpointResult(
        endpoint_id="ep-orders",
        status=EndpointStatus.FAILED,
        status_code=500,
        attempts=1,
        response_body=echo_of_everything(),
        error=f"HTTP 500; echoed {BEARER!r}",
    )
    await planner.schedule(ctx, decision, [result])
    assert len(fake.requests) == 2
    for request in fake.requests:
        assert leaks(request.text, SECRETS) == []
        assert leaks(json.dumps(request.body), SECRETS) == []
        assert "***" in request.text  # the echoes were there, masked
    assert any(e["json"] != e["raw"] for e in map(encodings, SECRETS))  # the test has teeth
