"""Output schemas (strict-mode shape, conversion) and the rules planner / planner factory."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

import cronicorn.ai as ai
from cronicorn.ai import OpenAIPlanner, RulesPlanner, create_planner
from cronicorn.ai.config import AIAgentConfig, RulesStrategy
from cronicorn.ai.schemas import (
    AIPlan,
    AISchedule,
    OutputInvalid,
    parse_plan,
    parse_schedule,
    strict_json_schema,
)
from cronicorn.domain.models import ExecutionStrategy, PlanSource
from tests.ai.conftest import call, make_context, plan_json, schedule_json
from tests.fakes.fake_openai import strict_schema_problem


def _objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [o for item in node for o in _objects(item)]
    if not isinstance(node, dict):
        return []
    found = [node] if node.get("type") == "object" else []
    return found + [o for value in node.values() for o in _objects(value)]


@pytest.mark.parametrize("model", [AIPlan, AISchedule])
def test_schemas_are_strict_mode_compatible(model: type[AIPlan] | type[AISchedule]) -> None:
    schema = strict_json_schema(model)
    text = json.dumps(schema)
    assert "$ref" not in text
    assert '"default"' not in text
    objects = _objects(schema)
    assert objects
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    body = {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"strict": True, "schema": schema},
        }
    }
    assert strict_schema_problem(body) is None


def test_fake_server_rejects_a_non_strict_schema() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "object"}}, "required": ["a"]}
    body = {
        "response_format": {"type": "json_schema", "json_schema": {"strict": True, "schema": loose}}
    }
    assert strict_schema_problem(body) == "#: additionalProperties must be false"


def test_plan_field_names_follow_the_spec() -> None:
    props = strict_json_schema(AIPlan)["properties"]
    assert list(props) == [
        "endpoints_to_call",
        "execution_strategy",
        "concurrency_limit",
        "preliminary_next_run_at",
        "reasoning",
        "confidence",
    ]
    item = props["endpoints_to_call"]["items"]["properties"]
    assert list(item) == [
        "endpoint_id",
        "parameters",
        "headers",
        "priority",
        "depends_on",
        "critical",
    ]
    assert list(strict_json_schema(AISchedule)["properties"]) == [
        "next_run_at",
        "reasoning",
        "confidence",
        "recommended_actions",
        "valid_for_ms",
    ]


def test_parse_plan_converts_pairs_and_naive_times_to_utc() -> None:
    raw = plan_json(
        preliminary_next_run_at="2024-05-01T12:30:00",
        endpoints_to_call=[
            call("a", parameters=[{"name": "q", "value_json": '{"x": [1, "y"]}'}]),
        ],
    )
    plan = parse_plan(json.dumps(raw))
    assert plan.calls[0].parameters == {"q": {"x": [1, "y"]}}
    assert plan.preliminary_next_run_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert plan.strategy is ExecutionStrategy.SEQUENTIAL


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("{", "reply is not valid JSON"),
        (json.dumps({"endpoints_to_call": []}), "execution_strategy: Field required"),
        (json.dumps(plan_json(extra=1)), "extra: Extra inputs are not permitted"),
        (
            json.dumps(
                plan_json(
                    endpoints_to_call=[call("a", parameters=[{"name": "q", "value_json": "x"}])]
                )
            ),
            "value_json of 'q' is not valid JSON text: 'x'",
        ),
        (
            json.dumps(plan_json(preliminary_next_run_at="tomorrow")),
            "preliminary_next_run_at: 'tomorrow' is not an ISO 8601 date-time",
        ),
    ],
)
def test_parse_plan_errors_are_exact(raw: str, error: str) -> None:
    with pytest.raises(OutputInvalid) as info:
        parse_plan(raw)
    assert any(error in e for e in info.value.errors), info.value.errors


def test_parse_schedule_normalises_offsets() -> None:
    proposal = parse_schedule(json.dumps(schedule_json("2024-05-01T23:30:00+09:30")))
    assert proposal.next_run_at == datetime(2024, 5, 1, 14, 0, tzinfo=UTC)
    with pytest.raises(OutputInvalid):
        parse_schedule(json.dumps(schedule_json("2024-05-01", recommended_actions=[{"type": "x"}])))


@pytest.mark.parametrize("strategy", ["sequential", "parallel"])
async def test_rules_planner_calls_every_endpoint_in_order(strategy: RulesStrategy) -> None:
    planner = RulesPlanner(strategy)
    context = make_context(endpoints=5)
    decision = await planner.plan(context)
    assert [c.endpoint_id for c in decision.plan.calls] == [e.id for e in context.endpoints]
    assert decision.plan.strategy.value == strategy
    assert (decision.source, decision.usage.total, decision.ai_calls) == (PlanSource.RULES, 0, 0)
    schedule = await planner.schedule(context, decision, [])
    assert (schedule.proposal, schedule.source) == (None, PlanSource.RULES)


def test_rules_planner_never_suspends() -> None:
    """The pipeline awaits the rules planner without an abort guard (see
    `JobPipeline._guard`): that is only sound while its calls finish at their first step."""
    planner = RulesPlanner()
    context = make_context(endpoints=2)
    plan_call = planner.plan(context)
    with pytest.raises(StopIteration) as planned:
        plan_call.send(None)
    decision = planned.value.value
    assert decision.source is PlanSource.RULES
    schedule_call = planner.schedule(context, decision, [])
    with pytest.raises(StopIteration) as scheduled:
        schedule_call.send(None)
    assert scheduled.value.value.source is PlanSource.RULES


async def test_create_planner_without_key_warns_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ai, "_warned_no_key", False)
    with caplog.at_level(logging.WARNING, logger="cronicorn.ai"):
        first = create_planner(AIAgentConfig(), rules_strategy="parallel")
        second = create_planner(AIAgentConfig())
    assert isinstance(first, RulesPlanner)
    assert isinstance(second, RulesPlanner)
    assert first.strategy is ExecutionStrategy.PARALLEL
    assert sum("no AI API key" in r.message for r in caplog.records) == 1


async def test_create_planner_with_key_uses_openai_with_rules_fallback() -> None:
    config = AIAgentConfig(api_key="sk-x", base_url="http://127.0.0.1:9/v1")  # type: ignore[arg-type]
    planner = create_planner(config, rules_strategy="parallel")
    assert isinstance(planner, OpenAIPlanner)
    try:
        # Nothing listens on port 9: the call fails in transport and falls back to rules.
        config.max_retries = 0
        decision = await planner.plan(make_context())
        assert decision.source is PlanSource.RULES
        assert decision.plan.strategy is ExecutionStrategy.PARALLEL
        assert decision.fallback_reason is not None
        assert decision.fallback_reason.startswith("transport: connection")
    finally:
        await planner.close()
