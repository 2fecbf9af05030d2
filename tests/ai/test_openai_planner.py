"""OpenAIPlanner through the real `openai` SDK against the fake server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

from cronicorn.domain.models import (
    ActionPriority,
    ActionType,
    ExecutionStrategy,
    PlanSource,
    TokenUsage,
)
from tests.ai.conftest import (
    PlannerFactory,
    call,
    fresh_results,
    make_context,
    plan_json,
    schedule_json,
)
from tests.fakes.clock import FakeClock
from tests.fakes.fake_openai import FakeOpenAI, Reply, Usage


async def test_valid_plan_and_schedule_are_parsed_and_normalised_to_utc(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    planned = plan_json(
        preliminary_next_run_at="2024-05-01T14:30:00+02:00",
        execution_strategy="mixed",
        concurrency_limit=2,
        endpoints_to_call=[
            call(
                "ep-orders",
                parameters=[{"name": "limit", "value_json": "50"}],
                headers=[{"name": "X-Trace", "value": "t1"}],
                priority=5,
                critical=True,
            ),
            call("ep-scale", depends_on=["ep-orders"]),
        ],
    )
    action = {"type": "notify_user", "details": "backlog high", "priority": "high"}
    fake.enqueue(
        Reply.json(planned, usage=Usage(120, 40)),
        Reply.json(
            schedule_json("2024-05-01T08:00:30-05:00", recommended_actions=[action]),
            usage=Usage(150, 30),
        ),
    )
    planner = make_planner(temperature=0.1, max_output_tokens=777, model="gpt-test")
    context = make_context()

    decision = await planner.plan(context)
    schedule = await planner.schedule(context, decision, fresh_results())

    assert decision.source is PlanSource.AI
    assert not decision.repaired
    assert decision.fallback_reason is None
    assert decision.plan.preliminary_next_run_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    assert decision.plan.strategy is ExecutionStrategy.MIXED
    assert decision.plan.concurrency_limit == 2
    first, second = decision.plan.calls
    assert (first.endpoint_id, dict(first.parameters), dict(first.headers)) == (
        "ep-orders",
        {"limit": 50},
        {"X-Trace": "t1"},
    )
    assert (first.priority, first.critical, second.depends_on) == (5, True, ("ep-orders",))
    assert decision.usage == TokenUsage(120, 40)
    assert decision.ai_calls == 1

    assert schedule.source is PlanSource.AI
    assert schedule.proposal is not None
    at = schedule.proposal.next_run_at
    assert at == datetime(2024, 5, 1, 13, 0, 30, tzinfo=UTC)
    assert at.tzinfo is UTC
    assert schedule.proposal.recommended_actions[0].type is ActionType.NOTIFY_USER
    assert schedule.proposal.recommended_actions[0].priority is ActionPriority.HIGH
    assert schedule.usage == TokenUsage(150, 30)

    request = fake.requests[0]
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert (request.body["model"], request.body["temperature"]) == ("gpt-test", 0.1)
    assert request.body["max_completion_tokens"] == 777
    fmt = request.body["response_format"]
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "cronicorn_plan"
    assert fake.requests[1].body["response_format"]["json_schema"]["name"] == "cronicorn_schedule"


async def test_unknown_endpoint_is_repaired_by_reasking_with_output_and_errors(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    bad = json.dumps(plan_json("ep-orders", "ep-ghost"))
    fake.enqueue(Reply.text(bad), Reply.json(plan_json("ep-orders")))
    planner = make_planner()

    decision = await planner.plan(make_context())

    assert decision.source is PlanSource.AI_REPAIRED
    assert decision.repaired
    assert [c.endpoint_id for c in decision.plan.calls] == ["ep-orders"]
    assert decision.ai_calls == 2
    repair = fake.requests[1].messages
    assert repair[-2] == {"role": "assistant", "content": bad}
    assert (
        "endpoints_to_call[1].endpoint_id: 'ep-ghost' is not an endpoint of this job "
        "(allowed: ep-orders, ep-scale)" in repair[-1]["content"]
    )
    assert repair[:-2] == fake.requests[0].messages
    s = planner.stats
    assert (s.malformed_responses, s.repair_attempts, s.repair_successes) == (1, 1, 1)
    assert (s.repair_failures, s.fallbacks, s.transport_errors) == (0, 0, 0)
    assert s.invalid_by_kind["semantic_invalid"] == 1


async def test_malformed_json_twice_falls_back_to_rules_with_reason(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(
        Reply.text('{"endpoints_to_call": [', usage=Usage(100, 10)),
        Reply.text("not json at all", usage=Usage(110, 5)),
    )
    planner = make_planner(max_repair_attempts=1)

    decision = await planner.plan(make_context())

    assert decision.source is PlanSource.RULES
    assert decision.fallback_reason is not None
    assert decision.fallback_reason.startswith("schema_invalid: reply is not valid JSON")
    assert [c.endpoint_id for c in decision.plan.calls] == ["ep-orders", "ep-scale"]
    assert decision.usage == TokenUsage(210, 15)
    assert decision.ai_calls == 2
    s = planner.stats
    assert (s.malformed_responses, s.repair_attempts, s.repair_failures) == (2, 1, 1)
    assert (s.repair_successes, s.fallbacks) == (0, 1)
    assert s.invalid_by_kind["schema_invalid"] == 2
    assert len(fake.requests) == 2


async def test_rate_limit_then_success_is_one_transport_retry_honouring_retry_after(
    fake: FakeOpenAI, make_planner: PlannerFactory, clock: FakeClock
) -> None:
    fake.enqueue(Reply.rate_limited(retry_after="2"), Reply.json(plan_json("ep-orders")))
    planner = make_planner()

    decision = await planner.plan(make_context())

    assert decision.source is PlanSource.AI
    assert decision.ai_calls == 2
    s = planner.stats
    assert (s.transport_errors, s.transport_retries, s.malformed_responses) == (1, 1, 0)
    assert (s.repair_attempts, s.fallbacks) == (0, 0)
    assert clock.sleeps == [2.0]


async def test_timeout_is_a_transport_error_within_the_configured_time(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(Reply.slow(10, Reply.json(plan_json("ep-orders"))))
    planner = make_planner(timeout_ms=300, max_retries=0)

    started = time.monotonic()
    decision = await planner.plan(make_context())
    elapsed = time.monotonic() - started

    assert elapsed < 3.0  # the reply would come after 10 s
    assert decision.source is PlanSource.RULES
    assert decision.fallback_reason is not None
    assert decision.fallback_reason.startswith("transport: timeout")
    s = planner.stats
    assert (s.transport_errors, s.malformed_responses, s.ai_calls) == (1, 0, 1)


async def test_tokens_of_all_attempts_are_summed(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(
        Reply.server_error(503),
        Reply.json(
            plan_json("ep-ghost"), usage=Usage(100, 20, reasoning_tokens=5, cached_tokens=10)
        ),
        Reply.truncated('{"endpoints', usage=Usage(130, 64, reasoning_tokens=7)),
        Reply.json(plan_json("ep-scale"), usage=Usage(200, 30, cached_tokens=50)),
    )
    planner = make_planner(max_repair_attempts=2)

    decision = await planner.plan(make_context())

    assert decision.source is PlanSource.AI_REPAIRED
    assert decision.usage == TokenUsage(input=430, output=114, reasoning=12, cached=60)
    assert decision.ai_calls == 4
    assert planner.stats.tokens == decision.usage
    assert planner.stats.invalid_by_kind == {
        "refusal": 0,
        "truncated": 1,
        "schema_invalid": 0,
        "semantic_invalid": 1,
    }
    assert (planner.stats.transport_errors, planner.stats.repair_attempts) == (1, 2)


async def test_server_errors_are_retried_exactly_max_retries_times(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(*(Reply.server_error(500) for _ in range(3)))
    planner = make_planner(max_retries=2)

    decision = await planner.plan(make_context())

    assert len(fake.requests) == 3
    assert decision.fallback_reason is not None
    assert decision.fallback_reason.startswith("transport: http_500:")
    assert (planner.stats.transport_errors, planner.stats.transport_retries) == (3, 2)
    # Planning could not reach the model: phase 2 does not try again.
    schedule = await planner.schedule(make_context(), decision, [])
    assert schedule.source is PlanSource.RULES
    assert schedule.proposal is None
    assert len(fake.requests) == 3


async def test_client_errors_are_not_retried(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    planner = make_planner(api_key="sk-wrong", max_retries=3)

    decision = await planner.plan(make_context())

    assert len(fake.requests) == 1
    assert decision.fallback_reason is not None
    assert decision.fallback_reason.startswith("transport: http_401")


async def test_refusal_falls_back_without_repair(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(Reply.refusal_of("I can't help with that"))
    planner = make_planner()

    decision = await planner.plan(make_context())

    assert decision.fallback_reason == "refusal: I can't help with that"
    assert len(fake.requests) == 1
    assert planner.stats.repair_attempts == 0
    assert planner.stats.invalid_by_kind["refusal"] == 1


async def test_non_strict_mode_salvages_locally_with_notes(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(Reply.json(plan_json("ep-orders", "ep-ghost", confidence=1.7)))
    planner = make_planner(strict=False)

    decision = await planner.plan(make_context())

    assert len(fake.requests) == 1
    assert decision.source is PlanSource.AI_REPAIRED
    assert [c.endpoint_id for c in decision.plan.calls] == ["ep-orders"]
    assert decision.plan.confidence == 1.0
    assert "[salvaged: dropped call to unknown endpoint 'ep-ghost'" in decision.plan.reasoning
    assert (planner.stats.salvaged, planner.stats.malformed_responses) == (1, 0)


async def test_schedule_in_the_past_is_repaired(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(
        Reply.json(plan_json("ep-orders")),
        Reply.json(schedule_json("2024-05-01T11:00:00Z")),
        Reply.json(schedule_json("2024-05-01T12:05:00Z")),
    )
    planner = make_planner()
    context = make_context()

    decision = await planner.schedule(context, await planner.plan(context), fresh_results())

    assert decision.source is PlanSource.AI_REPAIRED
    assert decision.proposal is not None
    assert decision.proposal.next_run_at == datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    assert "is not after the current time 2024-05-01T12:00:00Z" in fake.requests[2].text


async def test_exhausted_daily_token_budget_uses_rules_without_calling_the_model(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    planner = make_planner()
    context = make_context(budget=0)

    decision = await planner.plan(context)
    schedule = await planner.schedule(context, decision, [])

    assert decision.source is PlanSource.RULES
    assert schedule.source is PlanSource.RULES
    assert decision.fallback_reason is not None
    assert schedule.fallback_reason is not None
    assert decision.fallback_reason.startswith("budget: daily token budget exhausted")
    assert fake.requests == []
    assert (planner.stats.fallbacks, planner.stats.budget_fallbacks) == (2, 2)


async def test_budget_spent_by_phase_one_switches_phase_two_to_rules(
    fake: FakeOpenAI, make_planner: PlannerFactory
) -> None:
    fake.enqueue(Reply.json(plan_json("ep-orders"), usage=Usage(900, 100)))
    planner = make_planner()
    context = make_context(budget=1000)

    decision = await planner.plan(context)
    schedule = await planner.schedule(context, decision, [])

    assert decision.source is PlanSource.AI
    assert schedule.fallback_reason == ("budget: daily token budget exhausted (1000 of 1000 used)")
    assert len(fake.requests) == 1


async def test_auto_mode_of_the_fake_serves_any_job(make_planner: PlannerFactory) -> None:
    async with FakeOpenAI(auto=True, next_run_s=90) as auto:
        planner = make_planner(base_url=auto.base_url, api_key="anything")
        context = make_context(endpoints=4)
        decision = await planner.plan(context)
        schedule = await planner.schedule(context, decision, [])
    assert [c.endpoint_id for c in decision.plan.calls] == [e.id for e in context.endpoints]
    assert schedule.proposal is not None
    assert schedule.proposal.next_run_at == datetime(2024, 5, 1, 12, 1, 30, tzinfo=UTC)


async def test_concurrent_jobs_each_count_only_their_own_ai_calls(
    make_planner: PlannerFactory,
) -> None:
    # One planner serves every job of a worker; a decision's ai_calls must not include
    # requests other jobs made meanwhile (the planner-wide counter is shared).
    async with FakeOpenAI(auto=True, next_run_s=90, latency_s=0.05) as auto:
        planner = make_planner(base_url=auto.base_url, api_key="anything")
        decisions = await asyncio.gather(*(planner.plan(make_context()) for _ in range(8)))
        requests_sent = len(auto.requests)
    assert requests_sent == 8
    assert [d.ai_calls for d in decisions] == [1] * 8
    assert planner.stats.ai_calls == 8
