"""The scheduler wire refuses values no database column could hold, naming where they are.

`check_storable` runs on every scheduler request, so it was rewritten to build no path
strings on the way down; these cases pin the messages it gives when it refuses."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from cronicorn.domain.models import (
    EndpointResult,
    EndpointStatus,
    Escalation,
    Lease,
    NextRun,
    Plan,
    PlannedCall,
    PlanSource,
    RunCompletion,
    RunStatus,
    ScheduleSource,
    TokenUsage,
)
from cronicorn.wire.scheduler import CompleteRequest, check_storable

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
EP = "0f8b5a4e-0000-4000-8000-000000000001"


def completion(**result: object) -> RunCompletion:
    res = EndpointResult(
        endpoint_id=EP,
        status=EndpointStatus.SUCCESS,
        status_code=200,
        attempts=1,
        started_at=NOW,
        duration_ms=1.0,
        response_bytes=2,
        content_type="text/plain",
        response_body="ok",
    )
    return RunCompletion(
        status=RunStatus.COMPLETED,
        started_at=NOW,
        finished_at=NOW,
        plan=Plan(calls=(PlannedCall(endpoint_id=EP),), reasoning="rules"),
        plan_source=PlanSource.RULES,
        results=(replace(res, **result),),  # type: ignore[arg-type]
        escalation=Escalation.NONE,
        next_run=NextRun(NOW + timedelta(hours=1), ScheduleSource.BASELINE_INTERVAL),
        schedule_reasoning="baseline",
        schedule_confidence=None,
        recommended_actions=(),
        usage=TokenUsage(),
        ai_calls=0,
        summary="done",
    )


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ({"response_body": "a\x00b"}, "completion.results[0].response_body must not contain NUL"),
        (
            {"response_body": {"k": ["x", "\ud800"]}},
            "completion.results[0].response_body.k[1] must be valid Unicode",
        ),
        (
            {"response_body": {"a\x00": 1}},
            "completion.results[0].response_body key must not contain NUL",
        ),
        ({"status_code": 2**40}, "completion.results[0].status_code is out of range"),
        (
            {"duration_ms": float("nan")},
            "completion.results[0].duration_ms must be a finite number",
        ),
        (
            {"started_at": datetime(2026, 11, 30)},
            "completion.results[0].started_at must include a time zone offset",
        ),
        (
            {"content_type": "x" * 201},
            "completion.results[0].content_type must be at most 200 characters",
        ),
    ],
)
def test_unstorable_values_are_named_by_their_path(result: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        check_storable(completion(**result), "completion", "completion")
    assert str(refused.value).startswith(message)


def test_large_integers_inside_json_columns_and_64_bit_token_counts_are_storable() -> None:
    value = replace(
        completion(response_body={"ts": 1_796_004_034_025, "n": [2**62]}),
        usage=TokenUsage(input=2**40),
    )
    check_storable(value, "completion", "completion")


def test_a_request_with_an_unstorable_value_is_refused_at_validation() -> None:
    lease = Lease("0f8b5a4e-0000-4000-8000-000000000002", EP, "w1", 1, NOW)
    with pytest.raises(ValidationError, match="must not contain NUL"):
        CompleteRequest(lease=lease, completion=completion(response_body="\x00"))
    CompleteRequest(lease=lease, completion=completion())
