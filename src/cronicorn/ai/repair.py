"""The repair loop of one AI phase: ask, check, re-ask with the exact errors, give up.

Each reply is classified once: refusal (`message.refusal`, not re-asked: the same request
would be refused again), truncated (`finish_reason == "length"`), schema-invalid (bad JSON,
wrong shape, unconvertible values) or semantically invalid (`domain.plan_validation`).
Truncated and invalid replies are re-asked up to `max_repair_attempts` times; each re-ask
carries the invalid reply (as the assistant's turn) and the exact errors, and replaces the
previous re-ask so repeated repairs do not grow the prompt. In non-strict mode semantic
errors are salvaged locally instead, with notes appended to the reasoning.
Transport failures end the phase at once (the transport already retried them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from openai.types.chat import ChatCompletion

from cronicorn.ai.budget import ChatMessage
from cronicorn.ai.schemas import OutputInvalid
from cronicorn.ai.stats import InvalidKind, PlannerStats
from cronicorn.ai.transport import ChatTransport, RequestCounter, TransportFailure
from cronicorn.domain.models import AIAttempt, TokenUsage

T = TypeVar("T")


@dataclass(frozen=True)
class PhaseSpec(Generic[T]):
    """How to parse, check and salvage one phase's output."""

    response_format: dict[str, Any]
    parse: Callable[[str], T]
    """Raises OutputInvalid with exact errors."""
    validate: Callable[[T], list[str]]
    salvage: Callable[[T], tuple[T, list[str]]]
    """Returns a valid value (the notes already appended to its reasoning) and the notes."""
    phase: str = ""
    """`plan` or `schedule`: the label of this phase's requests in logs and metrics."""


@dataclass(frozen=True)
class PhaseOutcome(Generic[T]):
    value: T | None
    usage: TokenUsage
    ai_calls: int
    repaired: bool = False
    failure: str | None = None
    """Why no value: "<class>: <detail>", class one of transport (then "timeout",
    "connection" or "http_<status>"), refusal, truncated, schema_invalid, semantic_invalid."""
    attempts: tuple[AIAttempt, ...] = field(default=())
    """Every reply (or transport failure) of the phase, in order, for the AI session."""
    salvaged: bool = False


@dataclass
class _Reply:
    kind: InvalidKind
    errors: list[str]
    raw: str


async def run_phase(
    transport: ChatTransport,
    messages: list[ChatMessage],
    spec: PhaseSpec[T],
    *,
    strict: bool,
    max_repairs: int,
    stats: PlannerStats,
) -> PhaseOutcome[T]:
    usage = TokenUsage()
    requests = RequestCounter()
    request = list(messages)
    attempts: list[AIAttempt] = []
    for attempt in range(max_repairs + 1):
        try:
            completion, latency_s = await transport.complete_timed(
                request, spec.response_format, spec.phase, requests
            )
        except TransportFailure as exc:
            if attempt > 0:
                stats.repair_failures += 1
                transport.report_repair("failure")
            attempts.append(AIAttempt(outcome="error", kind=exc.kind, errors=(str(exc),)))
            return PhaseOutcome(
                None, usage, requests.count, failure=f"transport: {exc}", attempts=tuple(attempts)
            )
        spent = usage_of(completion)
        usage += spent
        stats.tokens += spent
        result = _check(completion, spec, strict, stats)
        valid = not isinstance(result, _Reply)
        transport.report(spec.phase, "success" if valid else "invalid_output", spent, latency_s)
        attempts.append(_attempt(completion, result, spent, latency_s))
        if not isinstance(result, _Reply):
            if attempt > 0:
                stats.repair_successes += 1
                transport.report_repair("success")
            value, salvaged = result
            return PhaseOutcome(
                value,
                usage,
                requests.count,
                repaired=attempt > 0 or salvaged,
                attempts=tuple(attempts),
                salvaged=salvaged,
            )
        stats.count_invalid(result.kind)
        failure = f"{result.kind.value}: {'; '.join(result.errors)}"
        if result.kind is InvalidKind.REFUSAL or attempt == max_repairs:
            if attempt > 0:
                stats.repair_failures += 1
                transport.report_repair("failure")
            return PhaseOutcome(
                None, usage, requests.count, failure=failure, attempts=tuple(attempts)
            )
        stats.repair_attempts += 1
        request = [*messages, *repair_messages(result)]
    raise AssertionError("unreachable")  # pragma: no cover


def _attempt(
    completion: ChatCompletion,
    result: tuple[Any, bool] | _Reply,
    usage: TokenUsage,
    latency_s: float,
) -> AIAttempt:
    latency_ms = round(latency_s * 1000, 1)
    if isinstance(result, _Reply):
        return AIAttempt(
            outcome="invalid_output",
            raw_reply=result.raw,
            kind=result.kind.value,
            errors=tuple(result.errors),
            usage=usage,
            latency_ms=latency_ms,
        )
    raw = completion.choices[0].message.content if completion.choices else None
    return AIAttempt(outcome="success", raw_reply=raw, usage=usage, latency_ms=latency_ms)


def _check(
    completion: ChatCompletion, spec: PhaseSpec[T], strict: bool, stats: PlannerStats
) -> tuple[T, bool] | _Reply:
    """(value, salvaged) for a usable reply, else the classified problem."""
    if not completion.choices:
        return _Reply(InvalidKind.SCHEMA_INVALID, ["the reply has no choices"], "")
    choice = completion.choices[0]
    message = choice.message
    if message.refusal:
        return _Reply(InvalidKind.REFUSAL, [message.refusal], message.refusal)
    raw = message.content or ""
    if choice.finish_reason == "length":
        return _Reply(
            InvalidKind.TRUNCATED,
            ["the reply was cut off at the output token limit; answer more briefly"],
            raw,
        )
    try:
        value = spec.parse(raw)
    except OutputInvalid as exc:
        return _Reply(InvalidKind.SCHEMA_INVALID, exc.errors, raw)
    errors = spec.validate(value)
    if not errors:
        return value, False
    if strict:
        return _Reply(InvalidKind.SEMANTIC_INVALID, errors, raw)
    stats.salvaged += 1
    salvaged, _ = spec.salvage(value)
    return salvaged, True


def repair_messages(reply: _Reply) -> list[ChatMessage]:
    """The re-ask: the invalid reply as the assistant's turn, then the exact errors."""
    errors = "\n".join(f"- {e}" for e in reply.errors)
    return [
        ChatMessage(role="assistant", content=reply.raw or "(empty reply)"),
        ChatMessage(
            role="user",
            content=(
                f"Your previous reply was rejected ({reply.kind.value}). Errors:\n{errors}\n"
                "Reply again with one complete JSON object that fixes every error. "
                "Use only the allowed endpoint ids."
            ),
        ),
    ]


def usage_of(completion: ChatCompletion) -> TokenUsage:
    """Input, output, reasoning and cached tokens of one completion (zeros when absent)."""
    u = completion.usage
    if u is None:
        return TokenUsage()
    reasoning = (
        (u.completion_tokens_details.reasoning_tokens or 0) if (u.completion_tokens_details) else 0
    )
    cached = (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0
    return TokenUsage(
        input=u.prompt_tokens or 0,
        output=u.completion_tokens or 0,
        reasoning=reasoning,
        cached=cached,
    )
