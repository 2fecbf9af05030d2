"""The compact run summary written as a message after every run.

The next AI call reads the job's history, so each run leaves one short, factual line block:
outcome counts, per-endpoint status/code/category, the schedule decision with its reasoning
and source, actions and escalation. Bounded in size so history stays cheap to prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cronicorn.domain.models import (
    EndpointResult,
    EndpointSpec,
    EndpointStatus,
    Escalation,
    NextRun,
    Plan,
    PlanSource,
    RecommendedAction,
    RunStatus,
)

MAX_SUMMARY_CHARS = 2_000
MAX_REASONING_CHARS = 400
_STATUSES = tuple(EndpointStatus)


def run_summary(
    *,
    status: RunStatus,
    duration_ms: float,
    plan: Plan | None,
    plan_source: PlanSource | None,
    results: Sequence[EndpointResult],
    endpoints: Mapping[str, EndpointSpec],
    next_run: NextRun,
    reasoning: str,
    confidence: float | None,
    actions: Sequence[RecommendedAction] = (),
    escalation: Escalation = Escalation.NONE,
    error: str | None = None,
    paused: bool = False,
) -> str:
    counts = dict.fromkeys(_STATUSES, 0)
    for r in results:
        counts[r.status] += 1
    outcome = ", ".join(f"{n} {s.value}" for s, n in counts.items())
    head = f"Run {status.value} in {duration_ms:.0f} ms: {outcome}."
    if plan is not None:
        head += f" Plan: {plan_source.value if plan_source else '?'}, {plan.strategy.value}."
    lines = [head]
    if results:
        lines.append("Endpoints: " + "; ".join(_result_line(r, endpoints) for r in results) + ".")
    conf = f", confidence {confidence:.2f}" if confidence is not None else ""
    lines.append(
        f"Next run {next_run.at.isoformat()} (source {next_run.source.value}{conf}): "
        f"{_clip(reasoning, MAX_REASONING_CHARS) or 'no reasoning'}"
    )
    if actions:
        acted = "; ".join(
            f"{a.type.value} ({a.priority.value}): {_clip(a.details, 120)}" for a in actions
        )
        lines.append(f"Recommended actions: {acted}" + (" — job paused." if paused else ""))
    if escalation is not Escalation.NONE:
        lines.append(f"Escalation: {escalation.value}.")
    if error:
        lines.append(f"Error: {_clip(error, 300)}")
    return _clip("\n".join(lines), MAX_SUMMARY_CHARS)


def _result_line(result: EndpointResult, endpoints: Mapping[str, EndpointSpec]) -> str:
    spec = endpoints.get(result.endpoint_id)
    name = spec.name if spec else result.endpoint_id
    parts = [name, result.status.value]
    if result.status_code is not None:
        parts.append(str(result.status_code))
    if result.error_category is not None:
        parts.append(result.error_category.value)
    parts.append(f"{result.duration_ms:.0f} ms")
    return " ".join(parts)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split()) if "\n" not in text else text
    return text if len(text) <= limit else text[: limit - 1] + "…"
