"""The stored record of one model exchange (`AISession`): what was asked, what came back.

Built by the planner after each phase that reached the model. Texts are made safe before
they leave the planner: every secret value of the job is masked in all its encodings
(`observability.redaction.job_secrets`, as the prompts are) and known credential shapes and
registered secrets are masked too (`observability.redaction.redact_text`). All texts of a session
together are kept within `ai_agent.session_max_chars` characters: short texts stay whole and
the long ones share the rest equally (max-min fairness), each cut marked. A session then
stays small in the store and on the wire (`/complete` requests carry the sessions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from cronicorn.ai.budget import ChatMessage
from cronicorn.ai.repair import PhaseOutcome
from cronicorn.domain.compaction import cut
from cronicorn.domain.models import (
    AIAttempt,
    AISession,
    JobContext,
    JsonValue,
    Plan,
    ScheduleProposal,
    TokenUsage,
)
from cronicorn.domain.pricing import ModelPrice, cost_usd
from cronicorn.observability.redaction import job_secrets, masker_for, redact_text

_plan_adapter: TypeAdapter[Plan] = TypeAdapter(Plan)
_schedule_adapter: TypeAdapter[ScheduleProposal] = TypeAdapter(ScheduleProposal)


class _Cleaner:
    def __init__(self, context: JobContext) -> None:
        self._mask = masker_for(job_secrets(context))

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        return redact_text(self._mask.text(text))


def fair_shares(lengths: Sequence[int], budget: int) -> list[int]:
    """Characters each text may keep so that the total fits `budget`: texts shorter than an
    equal share keep everything, the rest split what is left equally."""
    shares = list(lengths)
    if sum(lengths) <= budget:
        return shares
    remaining = budget
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for position, index in enumerate(order):
        share = remaining // (len(order) - position)
        shares[index] = min(lengths[index], share)
        remaining -= shares[index]
    return shares


def _clean_json(value: JsonValue, clean: _Cleaner) -> JsonValue:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_clean_json(v, clean) for v in value]
    if isinstance(value, dict):
        return {k: _clean_json(v, clean) for k, v in value.items()}
    return value


def decision_json(value: Plan | ScheduleProposal | None) -> JsonValue:
    if isinstance(value, Plan):
        return _plan_adapter.dump_python(value, mode="json")
    if isinstance(value, ScheduleProposal):
        return _schedule_adapter.dump_python(value, mode="json")
    return None


def session_outcome(outcome: PhaseOutcome[Any]) -> str:
    """success, repaired, salvaged, or the failure class (transport, refusal, truncated,
    schema_invalid, semantic_invalid)."""
    if outcome.value is not None:
        if outcome.salvaged:
            return "salvaged"
        return "repaired" if outcome.repaired else "success"
    failure = outcome.failure or "error"
    return failure.split(":", 1)[0].strip() or "error"


def build_session(
    *,
    phase: str,
    model: str,
    started_at: datetime,
    latency_s: float,
    messages: Sequence[ChatMessage],
    outcome: PhaseOutcome[Any],
    context: JobContext,
    price: ModelPrice | None,
    max_chars: int,
) -> AISession:
    clean = _Cleaner(context)
    contents = [clean(m["content"]) or "" for m in messages]
    replies = [clean(a.raw_reply) for a in outcome.attempts]
    texts = [*contents, *(r or "" for r in replies)]
    shares = fair_shares([len(t) for t in texts], max_chars)
    truncated = shares != [len(t) for t in texts]
    kept = [t if len(t) <= n else cut(t, n) for t, n in zip(texts, shares, strict=True)]
    sent = tuple(
        {"role": m["role"], "content": text}
        for m, text in zip(messages, kept[: len(contents)], strict=True)
    )
    attempts = tuple(
        replace(
            a,
            raw_reply=None if raw is None else text,
            errors=tuple(cut(clean(e) or "", 2_000) for e in a.errors),
        )
        for a, raw, text in zip(outcome.attempts, replies, kept[len(contents) :], strict=True)
    )
    usage = sum((a.usage for a in outcome.attempts), TokenUsage())
    return AISession(
        phase=phase,
        model=model,
        started_at=started_at,
        messages=sent,
        attempts=attempts,
        decision=_clean_json(decision_json(outcome.value), clean),
        outcome=session_outcome(outcome),
        failure=cut(clean(outcome.failure) or "", 2_000) if outcome.failure else None,
        usage=usage,
        cost_usd=cost_usd(usage, price),
        latency_ms=round(latency_s * 1000, 1),
        truncated=truncated,
    )


__all__ = ["AIAttempt", "build_session", "decision_json", "session_outcome"]
