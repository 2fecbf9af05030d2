"""Prompt content, secrecy and token budget. Snapshots live in tests/ai/snapshots/;
regenerate with CRONICORN_UPDATE_SNAPSHOTS=1 after an intended change and review the diff."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from cronicorn.ai.budget import ChatMessage, estimate_prompt_tokens, estimate_tokens
from cronicorn.ai.config import PromptOptimizationConfig
from cronicorn.ai.prompts import build_plan_messages, build_schedule_messages, redact_url
from cronicorn.domain.models import (
    Message,
    MessageRole,
    MessageSource,
    Plan,
    PlanDecision,
    PlannedCall,
    PlanSource,
)
from tests.ai.conftest import NOW, SECRETS, fresh_results, make_context

SNAPSHOTS = Path(__file__).parent / "snapshots"
OPT = PromptOptimizationConfig()


def render(messages: list[ChatMessage]) -> str:
    return "".join(f"=== {m['role']} ===\n{m['content']}\n" for m in messages)


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("CRONICORN_UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        path.write_text(text, encoding="utf-8")
        pytest.fail(f"snapshot {path} created: review it and run again")
    assert text == path.read_text(encoding="utf-8"), f"prompt changed: compare with {path}"


def executed_plan() -> PlanDecision:
    plan = Plan(
        calls=(PlannedCall("ep-orders"), PlannedCall("ep-scale", depends_on=("ep-orders",))),
        reasoning="backlog was 12; check it and scale if needed",
    )
    return PlanDecision(plan=plan, source=PlanSource.AI)


def test_plan_prompt_snapshot() -> None:
    check_snapshot("plan_prompt.txt", render(build_plan_messages(make_context(), NOW, OPT)))


def test_schedule_prompt_snapshot() -> None:
    opt = PromptOptimizationConfig(max_result_chars=200)
    messages = build_schedule_messages(make_context(), executed_plan(), fresh_results(), NOW, opt)
    check_snapshot("schedule_prompt.txt", render(messages))


def test_schedule_prompt_has_plan_reasoning_and_truncated_fresh_results() -> None:
    opt = PromptOptimizationConfig(max_result_chars=100)
    messages = build_schedule_messages(make_context(), executed_plan(), fresh_results(), NOW, opt)
    task = messages[-1]["content"]
    assert "backlog was 12; check it and scale if needed" in task
    assert '"backlog":250' in task
    assert "x" * 100 + "… [truncated, 5000 chars in total]" in task
    assert "x" * 101 not in task


def test_no_secret_ever_reaches_a_prompt() -> None:
    context = make_context()
    leaky = Message(
        role=MessageRole.USER,
        content=f"my token is {SECRETS[1]} and header {SECRETS[0]}",
        source=MessageSource.USER,
        created_at=NOW,
    )
    context = context.__class__(
        job=context.job,
        endpoints=context.endpoints,
        messages=(*context.messages, leaky),
        recent_results=context.recent_results,
    )
    prompts = [
        build_plan_messages(context, NOW, OPT),
        build_schedule_messages(context, executed_plan(), fresh_results(), NOW, OPT),
        build_plan_messages(context, NOW, PromptOptimizationConfig(enabled=False)),
    ]
    for messages in prompts:
        text = render(messages)
        for secret in SECRETS:
            assert secret not in text
        assert "Bearer ***" in text or "my token is ***" in text


def test_url_redaction_drops_userinfo_query_values_and_fragment() -> None:
    assert redact_url("https://u:p@h.example.com:8443/a/b?x=1&token=s3#frag") == (
        "https://h.example.com:8443/a/b?x=***&token=***"
    )
    assert redact_url("http://[::1]:80/") == "http://[::1]:80/"


def test_history_is_chronological_and_system_messages_are_kept() -> None:
    context = make_context(messages=0)

    def mk(minutes: int, role: MessageRole, text: str) -> Message:
        return Message(
            role=role,
            content=text,
            source=MessageSource.ENGINE,
            created_at=NOW - timedelta(minutes=minutes),
        )

    shuffled = (
        mk(1, MessageRole.USER, "newest"),
        mk(50, MessageRole.SYSTEM, "system-old"),
        mk(30, MessageRole.USER, "middle"),
        mk(40, MessageRole.USER, "oldest-user"),
    )
    context = context.__class__(job=context.job, endpoints=context.endpoints, messages=shuffled)
    opt = PromptOptimizationConfig(max_history_messages=2)
    contents = [m["content"] for m in build_plan_messages(context, NOW, opt)[2:-1]]
    assert [c.rsplit("] ", 1)[1] for c in contents] == ["system-old", "middle", "newest"]


def test_200_messages_and_50_endpoints_stay_under_budget_keeping_the_newest() -> None:
    context = make_context(endpoints=50, messages=200)
    budget = 4_000
    opt = PromptOptimizationConfig(max_prompt_tokens=budget, max_history_messages=1_000)
    for messages in (
        build_plan_messages(context, NOW, opt),
        build_schedule_messages(context, executed_plan(), fresh_results(), NOW, opt),
    ):
        assert estimate_prompt_tokens(messages) <= budget
        history = [m["content"] for m in messages[2:-1]]
        assert history[-1].endswith("] message 199")
        assert not any(c.endswith("] message 0") for c in history)
        kept = [int(c.rsplit(" ", 1)[1]) for c in history]
        assert kept == list(range(kept[0], 200))  # a contiguous newest run
        assert all(f'"id": "ep-{i:02d}"' in messages[1]["content"] for i in range(2, 50))


def test_result_bodies_shrink_when_history_alone_is_not_enough() -> None:
    context = make_context(messages=0)
    opt = PromptOptimizationConfig(max_prompt_tokens=1_500, max_result_chars=100_000)
    results = fresh_results()
    results[1].response_body = "y" * 40_000
    messages = build_schedule_messages(context, executed_plan(), results, NOW, opt)
    assert estimate_prompt_tokens(messages) <= 1_500
    assert "… [truncated, 40000 chars in total]" in messages[-1]["content"]


def test_disabled_optimisation_sends_the_whole_history() -> None:
    context = make_context(messages=300)
    opt = PromptOptimizationConfig(enabled=False, max_prompt_tokens=500, max_history_messages=5)
    messages = build_plan_messages(context, NOW, opt)
    assert len(messages) == 2 + 300 + 1


@pytest.mark.parametrize(("text", "tokens"), [("", 0), ("abcd", 1), ("abcde", 2), ("日本", 2)])
def test_token_estimate_is_utf8_bytes_over_four(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens
