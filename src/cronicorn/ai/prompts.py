"""Prompts for both AI phases (SPEC §6), kept within the token budget and free of secrets.

Layout of every request (static text first so providers can cache the prefix):
  1. system  — the phase's instructions and output rules (identical across jobs)
  2. user    — the job: current time, definition, bounds, endpoints, recent results
  3. history — the job's messages in chronological order (system messages always kept)
  4. user    — the task: allowed ids and interval window; phase 2 adds the plan and the fresh
               results with bodies compacted to `max_result_chars` (structure-aware: every key
               and number kept, array lengths stated, long arrays summarised and sampled; see
               `domain.compaction`) and each endpoint's `ai_view` values

History stays bounded: runs that reused the AI decision write no summary, and consecutive
summaries with the same outcome are folded into one line ("unchanged for 37 runs since …").

Secrets never enter a prompt: header values, bearer tokens and `default_headers` values are
not rendered, URLs lose userinfo, query values and fragments, and every secret of the job
(`observability.redaction.job_secrets`: header values, bearer tokens, URL userinfo and
secret-named query values, in raw, JSON-escaped, URL-encoded and base64 forms) is replaced
by `***` wherever it appears — an echoed header in a response body, a token pasted in a
message. Masking runs on the structured data *before* it is rendered to JSON (so a secret
containing `"` or `\\` cannot slip through as its escaped form), and once more on the final
text as a last line of defence.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cronicorn.ai.budget import ChatMessage, estimate_prompt_tokens, fit_history
from cronicorn.ai.config import PromptOptimizationConfig
from cronicorn.ai.instructions import PLAN_INSTRUCTIONS, SCHEDULE_INSTRUCTIONS
from cronicorn.domain.compaction import compact_json, cut
from cronicorn.domain.governor import live_hint
from cronicorn.domain.jmes import evaluate_view
from cronicorn.domain.models import (
    EndpointResult,
    EndpointSpec,
    JobContext,
    JobSnapshot,
    JsonValue,
    Message,
    MessageRole,
    MessageSource,
    PastResult,
    PlanDecision,
)
from cronicorn.observability.redaction import SecretMasker, job_secrets, masker_for

log = logging.getLogger("cronicorn.ai")
_DIGITS = re.compile(r"\d+")
_NOISE = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ][\d:.]*)?(Z|[+-]\d{2}:?\d{2})?|[0-9a-fA-F]{8}(-[0-9a-fA-F]{1,4})+"
    r"[0-9a-fA-F]*|\b[0-9a-fA-F]{16,}\b|\b\d{10,13}\b"
)
"""Timestamps, UUIDs, long hex ids and epoch times (also when cut short): noise when
comparing past results."""

CURRENT_TIME_MARKER = "Current time (UTC): "
ALLOWED_IDS_MARKER = "Allowed endpoint_id values: "
REDACTED = "***"

Sections = tuple[list[ChatMessage], list[ChatMessage]]


def build_plan_messages(
    context: JobContext, now: datetime, opt: PromptOptimizationConfig
) -> list[ChatMessage]:
    """Phase-1 prompt: which endpoints to call now, and how."""
    mask = masker_for(job_secrets(context))

    def sections(result_chars: int) -> Sections:
        head = [
            ChatMessage(role="system", content=PLAN_INSTRUCTIONS),
            ChatMessage(role="user", content=render_job(context, now, result_chars, mask)),
        ]
        return head, [ChatMessage(role="user", content=_plan_task(context, now))]

    return _assemble(context, opt, sections, mask)


def build_schedule_messages(
    context: JobContext,
    plan: PlanDecision,
    results: Sequence[EndpointResult],
    now: datetime,
    opt: PromptOptimizationConfig,
) -> list[ChatMessage]:
    """Phase-2 prompt: when to run next, given the plan's reasoning and the fresh results."""
    mask = masker_for(job_secrets(context, plan.plan))

    def sections(result_chars: int) -> Sections:
        head = [
            ChatMessage(role="system", content=SCHEDULE_INSTRUCTIONS),
            ChatMessage(role="user", content=render_job(context, now, result_chars, mask)),
        ]
        task = _schedule_task(context, plan, results, now, result_chars, mask)
        return head, [ChatMessage(role="user", content=task)]

    return _assemble(context, opt, sections, mask)


def _assemble(
    context: JobContext,
    opt: PromptOptimizationConfig,
    sections: Callable[[int], Sections],
    mask: SecretMasker,
) -> list[ChatMessage]:
    """Fit the prompt into `max_prompt_tokens`: drop the oldest history first, then halve the
    result excerpts until it fits. Disabled optimisation sends the whole history."""
    history = _history(context.messages, opt, mask)
    if not opt.enabled:
        head, tail = sections(opt.max_result_chars)
        return _scrub([*head, *history, *tail], mask)
    result_chars = opt.max_result_chars
    while True:
        head, tail = sections(result_chars)
        available = opt.max_prompt_tokens - estimate_prompt_tokens([*head, *tail])
        messages = _scrub([*head, *fit_history(history, available), *tail], mask)
        if estimate_prompt_tokens(messages) <= opt.max_prompt_tokens or result_chars == 0:
            break
        result_chars //= 2
    if estimate_prompt_tokens(messages) > opt.max_prompt_tokens:
        log.warning(
            "prompt for job %s exceeds max_prompt_tokens=%d even without history",
            context.job.id,
            opt.max_prompt_tokens,
        )
    return messages


def _history(
    messages: Iterable[Message], opt: PromptOptimizationConfig, mask: SecretMasker
) -> list[ChatMessage]:
    """Chronological history; with optimisation on, only the newest `max_history_messages`
    non-system messages (system messages are always kept)."""
    ordered = sorted(messages, key=lambda m: m.created_at)
    if opt.enabled:
        others = [m for m in ordered if m.role is not MessageRole.SYSTEM]
        allowed = {id(m) for m in others[len(others) - opt.max_history_messages :]}
        if opt.max_history_messages == 0:
            allowed = set()
        ordered = [m for m in ordered if m.role is MessageRole.SYSTEM or id(m) in allowed]
    return [
        ChatMessage(
            role=m.role.value,
            content=f"[{stamp} {m.source.value}] {mask.text(m.content)}",
        )
        for m, stamp in _fold_repeats(ordered)
    ]


def _fold_repeats(messages: list[Message]) -> list[tuple[Message, str]]:
    """Consecutive engine summaries that differ only in numbers (times, durations) are
    folded into the newest, stamped "unchanged for N runs since <first>"."""
    out: list[tuple[Message, str]] = []
    run: list[Message] = []

    def flush() -> None:
        if not run:
            return
        last = run[-1]
        stamp = _iso(last.created_at)
        if len(run) > 1:
            stamp = f"{stamp}, unchanged for {len(run)} runs since {_iso(run[0].created_at)}"
        out.append((last, stamp))
        run.clear()

    for m in messages:
        if m.source is MessageSource.ENGINE and m.role is MessageRole.ASSISTANT:
            if run and _outcome_key(run[-1].content) != _outcome_key(m.content):
                flush()
            run.append(m)
            continue
        flush()
        out.append((m, _iso(m.created_at)))
    flush()
    return out


def _outcome_key(summary: str) -> str:
    return _DIGITS.sub("#", summary)


def render_job(
    context: JobContext, now: datetime, result_chars: int, mask: SecretMasker | None = None
) -> str:
    """The job block: what it is, its bounds, its endpoints and their recent results."""
    mask = mask or masker_for(job_secrets(context))
    job = context.job
    lines = [
        f"{CURRENT_TIME_MARKER}{_iso(now)}",
        f"Job: {mask.text(job.name)} (id {job.id})",
        "Definition:",
        mask.text(job.definition),
        f"Baseline schedule: {_baseline(context)}",
        f"Interval bounds: min_interval_ms={job.min_interval_ms} "
        f"({_human_ms(job.min_interval_ms)}), max_interval_ms={job.max_interval_ms} "
        f"({_human_ms(job.max_interval_ms)})",
        f"Last run: {_iso(job.last_run_at)}; consecutive failures: {job.consecutive_failures}",
    ]
    if job.paused_until is not None:
        lines.append(f"Paused until: {_iso(job.paused_until)}")
    hint = _hint_line(job, now)
    if hint:
        lines.append(hint)
    lines += ["", "Endpoints (one JSON object per line):"]
    lines += [
        json.dumps(mask.json(_endpoint_view(e)), ensure_ascii=False) for e in context.endpoints
    ]
    lines += ["", "Recent results by endpoint (oldest first):"]
    lines += _recent_results(context, result_chars, mask) or ["(none yet)"]
    return "\n".join(lines)


def _hint_line(job: JobSnapshot, now: datetime) -> str | None:
    """The user's live hint: it overrides the AI's next run until it expires."""
    hint = live_hint(job.hint, now)
    if hint is None:
        return None
    if hint.interval_ms is not None:
        what = f"run every {_human_ms(hint.interval_ms)} (interval_ms={hint.interval_ms})"
    else:
        what = f"run next at {_iso(hint.next_run_at)}"
    reason = f"; reason: {hint.reason}" if hint.reason else ""
    return f"User hint (overrides your next_run_at until {_iso(hint.expires_at)}): {what}{reason}"


def _endpoint_view(endpoint: EndpointSpec) -> dict[str, JsonValue]:
    view: dict[str, JsonValue] = {
        "id": endpoint.id,
        "name": endpoint.name,
        "method": endpoint.method,
        "url": redact_url(endpoint.url),
        "description": endpoint.description,
    }
    if endpoint.timeout_ms is not None:
        view["timeout_ms"] = endpoint.timeout_ms
    if endpoint.request_schema:
        view["request_schema"] = endpoint.request_schema
    if endpoint.fire_and_forget:
        view["fire_and_forget"] = True
    if endpoint.condition:
        view["condition"] = endpoint.condition
    if endpoint.ai_view:
        view["ai_view"] = endpoint.ai_view
    return view


def _recent_results(context: JobContext, result_chars: int, mask: SecretMasker) -> list[str]:
    """Past results per endpoint, oldest first; consecutive results that differ only in
    noise (timestamps, ids, durations) are shown once, as "same for N results since …"."""
    lines: list[str] = []
    for endpoint in context.endpoints:
        past = sorted(
            (r for r in context.recent_results if r.endpoint_id == endpoint.id),
            key=lambda r: (r.started_at is None, r.started_at),
        )
        if not past:
            continue
        lines.append(f"{endpoint.id} ({mask.text(endpoint.name)}):")
        groups: list[list[PastResult]] = []
        for r in past:
            if groups and _same_outcome(groups[-1][-1], r):
                groups[-1].append(r)
            else:
                groups.append([r])
        for group in groups:
            r = group[-1]
            code = f" HTTP {r.status_code}" if r.status_code is not None else ""
            text = f"- {_iso(r.started_at)} {r.status.value}{code} in {r.duration_ms:.0f} ms"
            if len(group) > 1:
                text += f" (same for {len(group)} results since {_iso(group[0].started_at)})"
            if r.error:
                text += f"; error: {truncate(mask.text(r.error), result_chars)}"
            if r.response_excerpt:
                text += f"; body: {truncate(mask.text(r.response_excerpt), result_chars)}"
            if r.view:
                text += f"; view: {_json(mask.json(r.view), result_chars)}"
            lines.append(text)
    return lines


def _same_outcome(a: PastResult, b: PastResult) -> bool:
    def key(r: PastResult) -> tuple[object, ...]:
        view = json.dumps(r.view, sort_keys=True, default=str) if r.view else ""
        return (
            r.status,
            r.status_code,
            _NOISE.sub("#", r.error or ""),
            _NOISE.sub("#", r.response_excerpt or ""),
            _NOISE.sub("#", view),
        )

    return key(a) == key(b)


def _plan_task(context: JobContext, now: datetime) -> str:
    ids = json.dumps([e.id for e in context.endpoints])
    return "\n".join(
        [
            "Task: phase 1 — plan this run of the job.",
            f"{ALLOWED_IDS_MARKER}{ids}",
            "Use each endpoint_id at most once; depends_on may only name endpoints of this plan.",
            _window(context, now),
            "Reply with the JSON object only.",
        ]
    )


def _schedule_task(
    context: JobContext,
    decision: PlanDecision,
    results: Sequence[EndpointResult],
    now: datetime,
    result_chars: int,
    mask: SecretMasker,
) -> str:
    plan = decision.plan
    lines = [
        "Task: phase 2 — decide when this job runs next.",
        f"The plan that was executed (source {decision.source.value}, strategy "
        f"{plan.strategy.value}) reasoned: {mask.text(plan.reasoning) or '(no reasoning)'}",
        "Fresh results of this run:",
    ]
    names = {e.id: mask.text(e.name) for e in context.endpoints}
    views = {e.id: e.ai_view for e in context.endpoints if e.ai_view}
    for r in results:
        code = f" HTTP {r.status_code}" if r.status_code is not None else ""
        category = f" [{r.error_category.value}]" if r.error_category else ""
        lines.append(
            f"- {r.endpoint_id} ({names.get(r.endpoint_id, '?')}): {r.status.value}{code}"
            f"{category} in {r.duration_ms:.0f} ms, {r.attempts} attempt(s)"
        )
        if r.error:
            lines.append(f"  error: {truncate(mask.text(r.error), result_chars)}")
        if r.response_body is not None:
            body = mask.json(r.response_body)
            lines.append(f"  body: {compact_json(body, result_chars)}")
        if r.endpoint_id in views and r.response_body is not None:
            view = evaluate_view(views[r.endpoint_id], mask.json(r.response_body))
            lines.append(f"  view: {_json(mask.json(view), result_chars)}")
    if not results:
        lines.append("(no endpoint was called)")
    lines += [_window(context, now), "Reply with the JSON object only."]
    return "\n".join(lines)


def _window(context: JobContext, now: datetime) -> str:
    earliest = now + timedelta(milliseconds=context.job.min_interval_ms)
    latest = now + timedelta(milliseconds=context.job.max_interval_ms)
    return (
        f"Times are ISO 8601 in UTC (suffix Z). A next run must lie between {_iso(earliest)} "
        f"and {_iso(latest)}."
    )


def _baseline(context: JobContext) -> str:
    job = context.job
    if job.cron:
        return f'cron "{job.cron}" in {job.timezone}'
    if job.interval_ms:
        return f"every {job.interval_ms} ms ({_human_ms(job.interval_ms)})"
    return "none (the AI decides within the bounds)"


def redact_url(url: str) -> str:
    """`url` without userinfo, query values or fragment (parameter names are kept so the model
    knows they exist)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    query = "&".join(f"{k}={REDACTED}" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _scrub(messages: list[ChatMessage], mask: SecretMasker) -> list[ChatMessage]:
    """The last line of defence: mask the rendered text too."""
    return [ChatMessage(role=m["role"], content=mask.text(m["content"])) for m in messages]


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    return cut(text, limit)


def _json(value: JsonValue, limit: int) -> str:
    return compact_json(value, limit)


def _iso(value: datetime | None) -> str:
    if value is None:
        return "never"
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _human_ms(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms / 1000:g} s"
