"""Stored AI sessions: the size cap shares characters fairly; secrets are scrubbed."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from cronicorn.ai.budget import ChatMessage
from cronicorn.ai.repair import PhaseOutcome
from cronicorn.ai.sessions import build_session, fair_shares
from cronicorn.domain.models import (
    AIAttempt,
    EndpointSpec,
    JobContext,
    JobSnapshot,
    TokenUsage,
)
from cronicorn.domain.pricing import ModelPrice

SECRET = "sk-live-Abc/123+xyz"


@given(st.lists(st.integers(min_value=0, max_value=5_000), max_size=12), st.integers(0, 20_000))
def test_fair_shares_fit_the_budget_and_keep_short_texts_whole(
    lengths: list[int], budget: int
) -> None:
    shares = fair_shares(lengths, budget)
    assert all(0 <= s <= n for s, n in zip(shares, lengths, strict=True))
    if sum(lengths) <= budget:
        assert shares == lengths
    else:
        assert sum(shares) <= budget
        cut = [s for s, n in zip(shares, lengths, strict=True) if s < n]
        # Every cut text got at least as much as any other text's share.
        assert all(c >= max(shares) - 1 for c in cut)


def context() -> JobContext:
    job = JobSnapshot(id="j", tenant_id="t", name="n", definition="d")
    endpoint = EndpointSpec(id="e", name="e", url="https://x.test/", bearer_token=SECRET)
    return JobContext(job=job, endpoints=(endpoint,))


def test_session_texts_are_capped_scrubbed_and_priced() -> None:
    messages = [
        ChatMessage(role="system", content="instructions " * 10),
        ChatMessage(role="user", content=f"echo: Bearer {SECRET} " + "x" * 5_000),
    ]
    outcome: PhaseOutcome[object] = PhaseOutcome(
        None,
        TokenUsage(input=1_000_000, output=0),
        1,
        failure="schema_invalid: not JSON",
        attempts=(
            AIAttempt(
                outcome="invalid_output",
                raw_reply=f'{{"x": "{SECRET}"}}',
                kind="schema_invalid",
                errors=("not JSON",),
                usage=TokenUsage(input=1_000_000, output=0),
            ),
        ),
    )
    session = build_session(
        phase="plan",
        model="m",
        started_at=datetime(2030, 1, 1, tzinfo=UTC),
        latency_s=0.5,
        messages=messages,
        outcome=outcome,
        context=context(),
        price=ModelPrice(2.0, 1.0, 8.0),
        max_chars=1_000,
    )
    texts = [m["content"] for m in session.messages] + [a.raw_reply or "" for a in session.attempts]
    assert SECRET not in "".join(texts)
    assert session.truncated is True
    assert "[truncated, " in session.messages[1]["content"]
    assert session.messages[0]["content"] == messages[0]["content"]  # short: kept whole
    assert session.outcome == "schema_invalid"
    assert session.cost_usd == 2.0
    assert session.latency_ms == 500.0
