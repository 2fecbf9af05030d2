"""AI on change, the pure parts: response signatures (noise never counts, material changes
do), JSON compaction, the triggers, JMESPath views and endpoint conditions."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cronicorn.domain.ai_decision import (
    context_fingerprint,
    new_decision,
    reusable_plan,
    trigger_after_run,
    trigger_before_plan,
)
from cronicorn.domain.compaction import compact_json
from cronicorn.domain.conditions import condition_holds
from cronicorn.domain.jmes import evaluate_view, validate_view
from cronicorn.domain.models import (
    AITrigger,
    EndpointResult,
    EndpointSpec,
    EndpointStatus,
    ErrorCategory,
    JobContext,
    JobSnapshot,
    Message,
    MessageRole,
    MessageSource,
    Plan,
    PlannedCall,
    PlanSource,
)
from cronicorn.domain.signature import response_signature, signature_change

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def ok(body: Any, code: int = 200) -> EndpointResult:
    return EndpointResult("e1", EndpointStatus.SUCCESS, status_code=code, response_body=body)


def changed(a: Any, b: Any) -> str | None:
    return signature_change(response_signature(ok(a)), response_signature(ok(b)))


# -- signatures ---------------------------------------------------------------------------------

stamps = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(tzinfo=UTC).isoformat()
)
epochs = st.integers(min_value=1_000_000_000, max_value=9_999_999_999_999)


def page(backlog: int, stamp: str, request_id: str, epoch: int) -> dict[str, Any]:
    return {
        "generated_at": stamp,
        "request_id": request_id,
        "ts": epoch,
        "backlog": backlog,
        "status": "normal",
        "orders": [
            {"id": f"o{i}-{request_id[:4]}", "state": "pending", "updated_at": stamp}
            for i in range(backlog % 7)
        ],
    }


@given(st.integers(0, 10_000), stamps, stamps, st.uuids(), st.uuids(), epochs, epochs)
def test_timestamps_request_ids_and_epochs_never_count(
    backlog: int, s1: str, s2: str, r1: uuid.UUID, r2: uuid.UUID, e1: int, e2: int
) -> None:
    assert changed(page(backlog, s1, str(r1), e1), page(backlog, s2, str(r2), e2)) is None


@given(st.integers(0, 1_000), st.integers(0, 1_000))
def test_numbers_count_beyond_the_relative_threshold(a: int, b: int) -> None:
    change = changed({"backlog": a}, {"backlog": b})
    material = abs(a - b) > 1 and abs(a - b) > 0.2 * max(a, b)
    assert (change is not None) == material
    if material:
        assert change == f"backlog: {a} → {b}"


def test_status_shape_labels_and_text() -> None:
    assert changed({"a": 1}, {"a": 1}) is None
    assert changed({"status": "normal"}, {"status": "high"}) == "status: 'normal' → 'high'"
    assert changed({"a": 1}, {"a": 1, "b": 2}) == "shape changed (+b:number)"
    assert changed("OK at 10:42, 17 jobs", "OK at 10:43, 18 jobs") is None
    assert changed("OK", "DEGRADED") == "text changed"
    items = [{"state": "pending"}] * 3 + [{"state": "shipped"}] * 20
    more = [{"state": "pending"}] * 21 + [{"state": "shipped"}] * 2
    assert "count(orders[].state=pending): 3 → 21" in str(
        changed({"orders": items}, {"orders": more})
    )
    failed = EndpointResult("e1", EndpointStatus.FAILED, status_code=503, response_body={"a": 1})
    assert signature_change(response_signature(ok({"a": 1})), response_signature(failed)) == (
        "started failing"
    )
    timeout = EndpointResult("e1", EndpointStatus.FAILED, error_category=ErrorCategory.TIMEOUT)
    assert response_signature(timeout).status_class == "timeout"


def test_view_values_are_part_of_the_signature() -> None:
    body = {"orders": [{"state": "pending"}] * 5}
    before = response_signature(ok(body), {"pending": 5})
    after = response_signature(ok(body), {"pending": 9})
    assert signature_change(before, after) == "view.pending: 5 → 9"


# -- compaction ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=60),
    lambda children: (
        st.lists(children, max_size=40)
        | st.dictionaries(st.text(min_size=1, max_size=12), children, max_size=8)
    ),
    max_leaves=300,
)


@given(json_values, st.integers(min_value=50, max_value=3_000))
def test_compaction_stays_near_the_budget(value: Any, limit: int) -> None:
    text = compact_json(value, limit)
    assert len(text) <= limit + len(f"… [truncated, {10**9} chars in total]")


@given(st.integers(30, 200), st.integers(0, 10**9))
def test_compaction_keeps_every_key_number_and_array_length(n: int, hidden: int) -> None:
    body = {
        "orders": [{"id": f"o{i}", "state": ["new", "done"][i % 2], "amount": i} for i in range(n)],
        "totals": {"hidden_number": hidden, "flag": True},
    }
    assert len(json.dumps(body)) > 1_000
    text = compact_json(body, 600)
    assert f'"hidden_number":{hidden}' in text
    assert f"<{n} items" in text
    assert f"state: new {(n + 1) // 2}, done {n // 2}" in text
    assert f"amount: min 0, max {n - 1}" in text


def test_small_values_are_plain_compact_json() -> None:
    assert compact_json({"a": [1, 2]}, 100) == '{"a":[1,2]}'
    assert compact_json("x" * 30, 10).startswith("xxxxxxxxxx… [truncated, 30 chars")


# -- triggers -----------------------------------------------------------------------------------


def context(**job: Any) -> JobContext:
    snapshot = JobSnapshot(id="j", tenant_id="t", name="j", definition="watch", **job)
    endpoints = (
        EndpointSpec(id="e1", name="orders", url="http://x/orders"),
        EndpointSpec(id="e2", name="hook", url="http://x/hook", condition="orders.ok"),
    )
    return JobContext(job=snapshot, endpoints=endpoints)


PLAN = Plan(calls=(PlannedCall("e1"), PlannedCall("e2"), PlannedCall("gone")))


def decided(ctx: JobContext, **fields: Any) -> JobContext:
    decision = new_decision(
        plan=PLAN,
        plan_source=PlanSource.AI,
        context=ctx,
        now=NOW,
        next_run_at=NOW + timedelta(minutes=1),
        valid_for_ms=fields.pop("valid_for_ms", None),
        ttl_ms=3_600_000,
        signatures={"e1": response_signature(ok({"backlog": 3}))},
        failing=False,
        reasoning="steady",
        confidence=0.9,
    )
    return replace(ctx, ai_decision=replace(decision, **fields))


def test_each_trigger_before_planning() -> None:
    base = context()
    assert trigger_before_plan(base, NOW) == (AITrigger.NO_DECISION, "no AI decision yet")
    ctx = decided(base)
    assert trigger_before_plan(ctx, NOW + timedelta(minutes=59)) is None
    assert trigger_before_plan(ctx, NOW + timedelta(hours=1))[0] is AITrigger.EXPIRED  # type: ignore[index]
    short = decided(base, valid_for_ms=60_000)
    assert trigger_before_plan(short, NOW + timedelta(minutes=1))[0] is AITrigger.EXPIRED  # type: ignore[index]
    edited = replace(ctx, job=replace(ctx.job, definition="watch harder"))
    assert trigger_before_plan(edited, NOW)[0] is AITrigger.JOB_EDITED  # type: ignore[index]
    note = Message(MessageRole.USER, "hi", MessageSource.USER, NOW - timedelta(days=9))
    assert trigger_before_plan(replace(ctx, messages=(note,)), NOW)[0] is AITrigger.NEW_MESSAGE  # type: ignore[index]
    seen = decided(replace(base, messages=(note,)))
    assert trigger_before_plan(seen, NOW) is None
    replan = replace(ctx, job=replace(ctx.job, replan_requested_at=NOW - timedelta(days=1)))
    assert trigger_before_plan(replan, NOW)[0] is AITrigger.REPLAN_REQUESTED  # type: ignore[index]
    failing = replace(ctx, job=replace(ctx.job, consecutive_failures=2))
    assert trigger_before_plan(failing, NOW)[0] is AITrigger.FAILURE_STREAK_STARTED  # type: ignore[index]
    pending = decided(base, pending_trigger=AITrigger.RESPONSE_CHANGED, pending_detail="x")
    assert trigger_before_plan(pending, NOW) == (AITrigger.RESPONSE_CHANGED, "x")


def test_fingerprint_ignores_secret_values_but_not_endpoints() -> None:
    ctx = context()
    secret = replace(ctx.endpoints[0], headers={"X-Key": "s3cret-value"})
    other = replace(ctx.endpoints[0], headers={"X-Key": "another-value"})
    assert context_fingerprint(ctx.job, [secret]) == context_fingerprint(ctx.job, [other])
    assert context_fingerprint(ctx.job, ctx.endpoints) != context_fingerprint(
        ctx.job, ctx.endpoints[:1]
    )


def test_triggers_after_the_run() -> None:
    decision = decided(context()).ai_decision
    assert decision is not None
    same = {"e1": response_signature(ok({"backlog": 3}))}
    assert trigger_after_run(decision, same, False, 0.2) is None
    jump = {"e1": response_signature(ok({"backlog": 40}))}
    assert trigger_after_run(decision, jump, False, 0.2) == (
        AITrigger.RESPONSE_CHANGED,
        "e1: backlog: 3 → 40",
    )
    assert trigger_after_run(decision, same, True, 0.2)[0] is AITrigger.FAILURE_STREAK_STARTED  # type: ignore[index]


def test_reused_plan_drops_gone_endpoints_and_carries_conditions() -> None:
    ctx = decided(context())
    assert ctx.ai_decision is not None
    plan = reusable_plan(ctx.ai_decision, ctx.endpoints)
    assert [(c.endpoint_id, c.condition) for c in plan.calls] == [("e1", None), ("e2", "orders.ok")]
    assert plan.preliminary_next_run_at is None
    assert ctx.ai_decision.interval_ms == 60_000


# -- JMESPath views and conditions --------------------------------------------------------------


def test_views_and_their_validation() -> None:
    body = {"orders": [{"state": "pending"}, {"state": "done"}, {"state": "pending"}]}
    view = {"pending": "length(orders[?state=='pending'])", "bad": "length(`1`)"}
    assert evaluate_view(view, body)["pending"] == 2
    assert "error" in evaluate_view(view, body)["bad"]
    assert evaluate_view(["length(orders)"], body) == {"length(orders)": 3}
    assert validate_view(["length(orders)"]) == []
    assert validate_view({"x": "orders[?"})[0].startswith("'x': ")
    assert validate_view([f"a{i}" for i in range(21)]) == ["at most 20 expressions"]


@pytest.mark.parametrize(
    ("expression", "holds"),
    [
        ("backlog.body.backlog > `20`", True),
        ("backlog.body.backlog > `50`", False),
        ('"scale-up".ok', False),
        ("backlog.ok && backlog.status_code == `200`", True),
        ("length(backlog)", False),  # length of an object holds; of null it cannot evaluate
    ],
)
def test_conditions(expression: str, holds: bool) -> None:
    earlier = {"backlog": ok({"backlog": 25})}
    if expression == "length(backlog)":
        earlier = {}
    assert condition_holds(expression, earlier)[0] is holds
